package dhcp6

import (
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homerouter/homerouter/state"
)

// TestDUID: made once from the MAC and persisted as hex, then used as it
// is, also when set by hand (with colons, another DUID type).
func TestDUID(t *testing.T) {
	dir := t.TempDir()
	st := state.NewStore(dir)
	st.LoadState()
	s := New(st, log.New(io.Discard, "", 0))
	d, err := s.duid("02:77:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.FlushState(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "dhcp6-duid.json"))
	if !strings.Contains(string(data), `"duid": "00030001027700000001"`) {
		t.Errorf("dhcp6-duid.json = %s, want the DUID-LL of 02:77:00:00:00:01", data)
	}
	// Another MAC later (a new NIC) does not change it.
	st2 := state.NewStore(dir)
	st2.LoadState()
	d2, err := New(st2, log.New(io.Discard, "", 0)).duid("02:77:00:00:00:99")
	if err != nil || !d2.Equal(d) {
		t.Errorf("after a restart with another MAC the DUID is %v (%v), want %v", d2, err, d)
	}
	// A DUID-EN set by hand, with colons.
	os.WriteFile(filepath.Join(dir, "dhcp6-duid.json"), []byte(`{"duid": "00:02:00:00:ab:11:01:02:03:04"}`), 0o644)
	st3 := state.NewStore(dir)
	st3.LoadState()
	d3, err := New(st3, log.New(io.Discard, "", 0)).duid("02:77:00:00:00:01")
	if err != nil || d3.DUIDType().String() != "DUID-EN" {
		t.Errorf("hand-set DUID-EN read as %v (%v)", d3, err)
	}
}
