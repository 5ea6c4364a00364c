package state

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSaveStateFailing: while /perm cannot be written, a persistent topic
// still publishes at once, the failed write is a problem under
// SaveProblem naming the file, and once /perm is back the file is
// written and the problem clears. The last value published before
// SaveState stops is on disk.
func TestSaveStateFailing(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "perm")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st := NewStore(dir)
	if errs := st.LoadState(); len(errs) > 0 {
		t.Fatal(errs)
	}
	st.saving.retryMin, st.saving.retryMax = time.Millisecond, 2*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var logMu sync.Mutex
	var logged []string
	wg.Go(func() {
		st.SaveState(ctx, func(format string, args ...any) {
			logMu.Lock()
			defer logMu.Unlock()
			logged = append(logged, fmt.Sprintf(format, args...))
		})
	})
	t.Cleanup(func() { cancel(); wg.Wait() })

	// /perm "fails": the directory is replaced by a file, so that even
	// root cannot write into it.
	hidden := filepath.Join(parent, "perm.away")
	if err := os.Rename(dir, hidden); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	lease := DHCPv4ServerLeases{Leases: []DHCPv4ServerLease{{Addr: netip.MustParseAddr("10.42.0.100"), HardwareAddr: "02:77:00:00:00:21"}}}
	ch := st.DHCPv4ServerLeases.Changed()
	st.DHCPv4ServerLeases.Publish(lease)
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("publication did not reach a subscriber")
	}
	if got := st.DHCPv4ServerLeases.Value(); len(got.Leases) != 1 {
		t.Fatalf("topic holds %+v", got)
	}

	waitFor(t, "the failed write reported", func() bool {
		return strings.Contains(st.Problems.Value()[SaveProblem], "dhcp4d-leases.json: create temp file: not a directory")
	})
	// Retried, and still reported (and logged) once: the error reads
	// the same each time.
	_, version := st.Problems.Get()
	tried := st.saving.attempts.Load()
	waitFor(t, "three more tries", func() bool { return st.saving.attempts.Load() >= tried+3 })
	if _, v := st.Problems.Get(); v != version {
		t.Errorf("Problems published again by a retry with the same error: %q", st.Problems.Value()[SaveProblem])
	}

	// /perm is back.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(hidden, dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the file written and the problem cleared", func() bool {
		data, _ := os.ReadFile(filepath.Join(dir, "dhcp4d-leases.json"))
		return strings.Contains(string(data), "02:77:00:00:00:21") && st.Problems.Value()[SaveProblem] == ""
	})

	// The last words: published, then SaveState stopped at once.
	st.DHCPv6DUID.Publish(DUID{DUID: "00030001027700000001"})
	cancel()
	wg.Wait()
	if data, _ := os.ReadFile(filepath.Join(dir, "dhcp6-duid.json")); !strings.Contains(string(data), "00030001027700000001") {
		t.Errorf("dhcp6-duid.json after SaveState stopped = %q", data)
	}
	logMu.Lock()
	defer logMu.Unlock()
	// A retry between the two steps that put /perm back fails with
	// another error (no such file or directory), which is news and is
	// logged; an error that repeats is not.
	if len(logged) < 2 || !strings.Contains(logged[0], "dhcp4d-leases.json: create temp file: not a directory") || logged[len(logged)-1] != "written again" {
		t.Errorf("logged %q, want the failure once and its end", logged)
	}
	for i := 1; i < len(logged)-1; i++ {
		if logged[i] == logged[i-1] || !strings.Contains(logged[i], "dhcp4d-leases.json: create temp file: no such file or directory") {
			t.Errorf("logged %q, want each failure once", logged)
		}
	}
}

// waitFor polls cond until it holds, for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPersistentDeclared: every persistent topic of the Store is loaded
// by LoadState and written by FlushState, with no list to keep.
func TestPersistentDeclared(t *testing.T) {
	dir := t.TempDir()
	st := NewStore(dir)
	st.DHCPv4Lease.Publish(DHCPv4Lease{Addr: netip.MustParsePrefix("10.77.0.150/24")})
	st.DHCPv4ServerLeases.Publish(DHCPv4ServerLeases{Leases: []DHCPv4ServerLease{{Addr: netip.MustParseAddr("10.42.0.100")}}})
	st.DHCPv6Lease.Publish(DHCPv6Lease{Prefixes: []DelegatedPrefix{{Prefix: netip.MustParsePrefix("fd00:78::/56")}}})
	st.DHCPv6DUID.Publish(DUID{DUID: "0003"})
	st.ULA.Publish(ULA{Prefix: netip.MustParsePrefix("fd12:3456:789a::/48")})
	st.AdvertisedPrefixes.Publish(AdvertisedPrefixes{Prefixes: []AdvertisedPrefix{{Prefix: netip.MustParsePrefix("fd00:78:0:100::/64")}}})
	if err := st.FlushState(); err != nil {
		t.Fatal(err)
	}
	st2 := NewStore(dir)
	if errs := st2.LoadState(); len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(st2.persistent) != 6 {
		t.Errorf("%d persistent topics, want 6", len(st2.persistent))
	}
	for _, p := range st2.persistent {
		if _, err := os.Stat(filepath.Join(dir, p.File())); err != nil {
			t.Errorf("%s: %v", p.File(), err)
		}
	}
	if !st2.DHCPv4Lease.Value().Valid() || len(st2.DHCPv4ServerLeases.Value().Leases) != 1 || len(st2.DHCPv6Lease.Value().Prefixes) != 1 || st2.DHCPv6DUID.Value().DUID != "0003" ||
		!st2.ULA.Value().Prefix.IsValid() || len(st2.AdvertisedPrefixes.Value().Prefixes) != 1 {
		t.Errorf("not every topic loaded back")
	}
}

// TestSaveStateLastWrite: what is published while a write is under way,
// just before SaveState is stopped, is what ends up on disk.
func TestSaveStateLastWrite(t *testing.T) {
	for i := range 20 {
		dir := t.TempDir()
		st := NewStore(dir)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			st.SaveState(ctx, t.Logf)
		}()
		var last string
		for j := range 50 + i {
			last = fmt.Sprintf("%04x", j)
			st.DHCPv6DUID.Publish(DUID{DUID: last})
		}
		cancel()
		<-done
		data, _ := os.ReadFile(filepath.Join(dir, "dhcp6-duid.json"))
		if !strings.Contains(string(data), `"`+last+`"`) {
			t.Fatalf("run %d: dhcp6-duid.json = %q, want the last value %s", i, data, last)
		}
	}
}
