package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
	"github.com/homerouter/homerouter/state"
)

// TestDHCPv6Lab runs the router against ISC dhcpd -6 (prefix delegation,
// 60 s leases) and radvd, and checks the LAN prefix through restarts and
// the server's absence.
func TestDHCPv6Lab(t *testing.T) {
	bin := lab.RouterBinary(t)
	lab.Require(t, "dnsmasq", "dhcpd", "radvd", "tcpdump")
	l := lab.NewT(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	h, err := lab.NewHome(l, lab.HomeOptions{NoRouter: true})
	if err != nil {
		t.Fatal(err)
	}
	readLease := func() state.DHCPv6Lease {
		t.Helper()
		var lease state.DHCPv6Lease
		data, err := os.ReadFile(filepath.Join(h.PermDir, "dhcp6-lease.json"))
		if err == nil {
			err = json.Unmarshal(data, &lease)
		}
		if err != nil {
			t.Fatalf("dhcp6-lease.json: %v", err)
		}
		return lease
	}
	// lanAddr returns lan0's address in the delegated prefix.
	lanAddr := func() string {
		for _, a := range links(ctx, t, h.Router)["lan0"].addrs() {
			if strings.HasPrefix(a, "fd00:78:") {
				return a
			}
		}
		return ""
	}

	dump := startCapture(ctx, t, l, h.ISP, "udp port 546 or udp port 547")
	start := time.Now()
	router, err := l.Start(h.Router, bin, "run", "-perm", h.PermDir)
	if err != nil {
		t.Fatal(err)
	}
	var addr string
	if err := lab.WaitFor(ctx, "lan0's address in the delegated prefix", func() error {
		if addr = lanAddr(); addr == "" {
			return fmt.Errorf("lan0: %v", links(ctx, t, h.Router)["lan0"].addrs())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	lease := readLease()
	if len(lease.Prefixes) == 0 {
		t.Fatalf("lease without a prefix: %+v", lease)
	}
	prefix := lease.Prefixes[0].Prefix
	t.Logf("delegated %v; lan0 has %s, %v after the start", prefix, addr, took.Round(time.Millisecond))

	t.Run("lan0 gets <prefix>::1/64 within 30 s", func(t *testing.T) {
		want := netip.PrefixFrom(prefix.Addr().Next(), 64).String()
		if addr != want {
			t.Errorf("lan0 has %s, want %s", addr, want)
		}
		if took > 30*time.Second {
			t.Errorf("took %v, want within 30 s", took)
		}
		out, err := h.Router.Run(ctx, "ip", "-6", "route", "show", "type", "unreachable", "proto", "dhcp")
		if err != nil || !strings.Contains(out, prefix.String()) {
			t.Errorf("no unreachable route for %v: %q %v", prefix, out, err)
		}
	})

	t.Run("IPv6 default route via the ISP's link-local address", func(t *testing.T) {
		if err := lab.WaitFor(ctx, "an RA default route", func() error {
			out, err := h.Router.Run(ctx, "ip", "-6", "route", "show", "default", "dev", "uplink0")
			if err != nil || !strings.Contains(out, "via fe80::") {
				return fmt.Errorf("%q %v", out, err)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	})

	t.Run("renewal is a RENEW, not a new SOLICIT", func(t *testing.T) {
		if err := h.DHCPD6.WaitOutput(ctx, "Renew message from"); err != nil {
			t.Fatal(err)
		}
		log := h.DHCPD6.Output()
		if n := strings.Count(log, "Solicit message from"); n != 1 {
			t.Errorf("dhcpd saw %d SOLICITs, want 1:\n%s", n, log)
		}
		// SOLICIT, ADVERTISE, REQUEST, REPLY, RENEW, REPLY.
		dump.keep(ctx, t, "dhcp6", 6, "services/dhcp6/testdata/dhcpd.pcap")
	})

	t.Run("a restart gets the same prefix", func(t *testing.T) {
		before := readLease()
		stopRouter(ctx, t, router)
		router, err = l.Start(h.Router, bin, "run", "-perm", h.PermDir)
		if err != nil {
			t.Fatal(err)
		}
		if err := lab.WaitFor(ctx, "a new REPLY", func() error {
			if l := readLease(); !l.Acked.After(before.Acked) {
				return fmt.Errorf("lease acked %v", l.Acked)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if after := readLease(); after.Prefixes[0].Prefix != prefix {
			t.Errorf("after a restart the prefix is %v, want %v", after.Prefixes[0].Prefix, prefix)
		}
	})

	t.Run("with the server stopped, a restart configures the expired persisted prefix within 1 s", func(t *testing.T) {
		stopRouter(ctx, t, router)
		h.DHCPD6.Stop(3 * time.Second)
		if _, err := h.Router.Run(ctx, "ip", "-6", "addr", "flush", "dev", "lan0", "scope", "global"); err != nil {
			t.Fatal(err)
		}
		// Let the persisted lease be long expired: it is used all the same.
		old := readLease()
		old.Acked = old.Acked.Add(-time.Hour)
		for i := range old.Prefixes {
			old.Prefixes[i].Given = old.Prefixes[i].Given.Add(-time.Hour)
		}
		if old.Addr != nil {
			old.Addr.Given = old.Addr.Given.Add(-time.Hour)
		}
		data, err := json.MarshalIndent(old, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(h.PermDir, "dhcp6-lease.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if a := lanAddr(); a != "" {
			t.Fatalf("after the flush lan0 still has %s", a)
		}
		start := time.Now()
		router, err = l.Start(h.Router, bin, "run", "-perm", h.PermDir)
		if err != nil {
			t.Fatal(err)
		}
		if err := lab.WaitFor(ctx, "the persisted prefix on lan0", func() error {
			if a := lanAddr(); a != addr {
				return fmt.Errorf("lan0 has %q", a)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("the persisted prefix came %v after the start, want within 1 s", took)
		}
	})
}
