package state

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReplaceState: the files replace names are loaded into their
// topics and stay on disk; the others keep their topics' values, even a
// value newer than their file (a renewal not written yet), which a
// reload of every file would have put back to the file's older one.
func TestReplaceState(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"ula.json":         `{"prefix": "fd99::/48"}`,
		"dhcp4-lease.json": `{"addr": "203.0.113.10/24", "server_id": "203.0.113.1", "lease_duration": "1h", "t1": "30m", "t2": "52m", "acked": "2025-06-01T12:00:00Z", "expiry": "2025-06-01T13:00:00Z"}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st := NewStore(dir)
	if errs := st.LoadState(); len(errs) > 0 {
		t.Fatal(errs)
	}
	renewed := st.DHCPv4Lease.Value()
	renewed.Acked = renewed.Acked.Add(30 * time.Minute)
	st.DHCPv4Lease.Publish(renewed)

	const restored = `{"prefix": "fd12:3456:789a::/48"}` + "\n"
	err := st.ReplaceState(func() ([]string, error) {
		return []string{"ula.json"}, WriteFileAtomic(filepath.Join(dir, "ula.json"), []byte(restored), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.ULA.Value().Prefix.String(); got != "fd12:3456:789a::/48" {
		t.Errorf("the ULA = %s, want the replaced file's", got)
	}
	if got := st.DHCPv4Lease.Value(); !got.Acked.Equal(renewed.Acked) {
		t.Errorf("the lease = %+v, want the renewal published before (its file was not replaced)", got)
	}
	if err := st.FlushState(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ula.json")); string(b) != restored {
		t.Errorf("ula.json after a flush:\n%s\nwant the replaced file", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "dhcp4-lease.json")); !strings.Contains(string(b), "12:30:00Z") {
		t.Errorf("dhcp4-lease.json after a flush:\n%s\nwant the renewal", b)
	}

	// A replace that fails part way: what it did replace is loaded all
	// the same, and the error is replace's.
	broken := errors.New("disk error")
	err = st.ReplaceState(func() ([]string, error) {
		if err := WriteFileAtomic(filepath.Join(dir, "dhcp6-duid.json"), []byte(`{"duid": "00:04:aa:bb"}`), 0o644); err != nil {
			return nil, err
		}
		return []string{"dhcp6-duid.json"}, broken
	})
	if !errors.Is(err, broken) {
		t.Errorf("ReplaceState = %v, want replace's error", err)
	}
	if got := st.DHCPv6DUID.Value().DUID; got != "00:04:aa:bb" {
		t.Errorf("the DUID = %q, want the file replace had put in place", got)
	}
}

// TestCheckState: every problem of every state file, one per entry, as
// Check lists the config files' (appendProblems), and the live files are
// named by LiveStateFileNames among StateFileNames.
func TestCheckState(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"ula.json":        `{"prefix": "nope"}`,
		"dhcp6-duid.json": `{"duid": "00:01", "extra": 1}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	errs := CheckState(dir)
	var got []string
	for _, err := range errs {
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%v: not a ConfigError", err)
		}
		got = append(got, err.Error())
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], "dhcp6-duid.json:") || !strings.HasPrefix(got[1], "ula.json:") {
		t.Errorf("CheckState = %q, want one problem of dhcp6-duid.json and one of ula.json", got)
	}

	st := NewStore(dir)
	live := st.LiveStateFileNames()
	if want := []string{"dhcp4-lease.json", "dhcp6-lease.json", "dhcp4d-leases.json"}; !slices.Equal(live, want) {
		t.Errorf("LiveStateFileNames = %q, want %q", live, want)
	}
	for _, name := range live {
		if !slices.Contains(st.StateFileNames(), name) {
			t.Errorf("%s is live but not a state file", name)
		}
	}
}
