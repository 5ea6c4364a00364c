package state

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDHCPv4LeaseFile(t *testing.T) {
	dir := t.TempDir()
	s := NewStore(dir)
	if errs := s.LoadState(); len(errs) > 0 {
		t.Fatal(errs)
	}
	if s.DHCPv4Lease.Value().Valid() {
		t.Fatal("lease without a file")
	}
	acked := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	want := DHCPv4Lease{
		Addr:     netip.MustParsePrefix("10.77.0.150/24"),
		Router:   netip.MustParseAddr("10.77.0.1"),
		Routes:   []DHCPv4Route{{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.77.0.1")}},
		DNS:      []netip.Addr{netip.MustParseAddr("10.77.0.1")},
		ServerID: netip.MustParseAddr("10.77.0.1"),
		Duration: Duration(2 * time.Minute),
		T1:       Duration(time.Minute),
		T2:       Duration(105 * time.Second),
		Acked:    acked,
		Expiry:   acked.Add(2 * time.Minute),
	}
	s.DHCPv4Lease.Publish(want)
	if err := s.FlushState(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "dhcp4-lease.json"))
	for _, line := range []string{`"addr": "10.77.0.150/24"`, `"lease_duration": "2m0s"`, `"t2": "1m45s"`} {
		if !strings.Contains(string(data), line) {
			t.Errorf("file lacks %s:\n%s", line, data)
		}
	}
	s2 := NewStore(dir)
	if errs := s2.LoadState(); len(errs) > 0 {
		t.Fatal(errs)
	}
	if diff := cmp.Diff(want, s2.DHCPv4Lease.Value(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("reloaded lease: -want +got:\n%s", diff)
	}

	os.WriteFile(filepath.Join(dir, "dhcp4-lease.json"), []byte(`{"addr": "10.77.0.150/24", "t1": "soon"}`), 0o644)
	errs := NewStore(dir).LoadState()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `dhcp4-lease.json:1:34: t1: "soon" is not a duration`) {
		t.Errorf("LoadState of a bad duration: %v", errs)
	}
}
