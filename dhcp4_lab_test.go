package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
	"github.com/homerouter/homerouter/state"
)

// recordEnv, set to 1, makes the lab tests save their captures of the
// exchanges with the ISP's servers (services/dhcp4/testdata/dnsmasq.pcap,
// services/dhcp6/testdata/dhcpd.pcap), which the unit tests replay.
const recordEnv = "HOMEROUTER_RECORD"

// TestDHCPv4Lab runs the router against dnsmasq with 2-minute leases and
// checks that the uplink keeps its address through the server's outage.
func TestDHCPv4Lab(t *testing.T) {
	bin := lab.RouterBinary(t)
	lab.Require(t, "dnsmasq", "dhcpd", "radvd", "tcpdump")
	l := lab.NewT(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// The ISP knows the router by a spoofed MAC.
	const spoofed = "02:77:00:00:00:11"
	perm := t.TempDir()
	if err := os.WriteFile(filepath.Join(perm, "interfaces.json"), []byte(`{"interfaces": [
  {"hardware_addr": "`+lab.RouterWANMAC+`", "spoof_hardware_addr": "`+spoofed+`", "name": "uplink0"},
  {"hardware_addr": "`+lab.RouterLANMAC+`", "name": "lan0", "addr": "10.42.0.1/24"}
]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := lab.NewHome(l, lab.HomeOptions{NoRouter: true, PermDir: perm})
	if err != nil {
		t.Fatal(err)
	}
	dump := startCapture(ctx, t, l, h.ISP, "udp port 67 or udp port 68")
	router, err := l.Start(h.Router, bin, "run", "-perm", h.PermDir)
	if err != nil {
		t.Fatal(err)
	}

	uplinkAddr := func() (addr string, defaultRoute bool) {
		ls := links(ctx, t, h.Router)
		for _, a := range ls["uplink0"].addrs() {
			if strings.HasPrefix(a, "10.77.0.") {
				addr = a
			}
		}
		out, _ := h.Router.Run(ctx, "ip", "route", "show", "default", "proto", "dhcp")
		return addr, strings.Contains(out, "default via 10.77.0.1 dev uplink0") && addr != "" && strings.Contains(out, "src "+strings.Split(addr, "/")[0])
	}
	var addr string
	if err := lab.WaitFor(ctx, "uplink0's lease", func() error {
		a, route := uplinkAddr()
		if a == "" || !route {
			return fmt.Errorf("address %q, default route %v", a, route)
		}
		addr = a
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("uplink0 has %s and a default route via 10.77.0.1", addr)

	t.Run("renewal at T1 is REQUEST/ACK with no DISCOVER", func(t *testing.T) {
		if err := lab.WaitFor(ctx, "a second DHCPACK", func() error {
			if n := strings.Count(h.Dnsmasq.Output(), "DHCPACK(isp0)"); n < 2 {
				return fmt.Errorf("%d ACKs", n)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		log := h.Dnsmasq.Output()
		if !strings.Contains(log, "DHCPACK(isp0) "+strings.Split(addr, "/")[0]+" "+spoofed) {
			t.Errorf("dnsmasq did not ACK %s to the spoofed MAC %s:\n%s", addr, spoofed, log)
		}
		if n := strings.Count(log, "DHCPDISCOVER(isp0)"); n != 1 {
			t.Errorf("dnsmasq saw %d DISCOVERs, want only the first:\n%s", n, log)
		}
		if n := strings.Count(log, "DHCPREQUEST(isp0)"); n != 2 {
			t.Errorf("dnsmasq saw %d REQUESTs, want 2 (select, renew):\n%s", n, log)
		}
	})
	if t.Failed() {
		return
	}
	// DISCOVER, OFFER, REQUEST, ACK, and the renewal's REQUEST and ACK.
	dump.keep(ctx, t, "BOOTP/DHCP", 6, "services/dhcp4/testdata/dnsmasq.pcap")

	// The ISP's server goes away, and the router restarts.
	var lease state.DHCPv4Lease
	data, err := os.ReadFile(filepath.Join(h.PermDir, "dhcp4-lease.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &lease); err != nil {
		t.Fatal(err)
	}
	stopRouter(ctx, t, router)
	h.Dnsmasq.Stop(3 * time.Second)
	// The kernel keeps what the router configured; take it away, so that
	// only the persisted lease can bring it back.
	for _, args := range [][]string{{"addr", "flush", "dev", "uplink0"}, {"route", "flush", "proto", "dhcp"}} {
		if _, err := h.Router.Run(ctx, "ip", args...); err != nil {
			t.Fatal(err)
		}
	}
	if a, route := uplinkAddr(); a != "" || route {
		t.Fatalf("after the flush uplink0 still has %q, default route %v", a, route)
	}
	start := time.Now()
	router, err = l.Start(h.Router, bin, "run", "-perm", h.PermDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("persisted address configured within 1 s of a restart", func(t *testing.T) {
		if err := lab.WaitFor(ctx, "the persisted address", func() error {
			if a, route := uplinkAddr(); a != addr || !route {
				return fmt.Errorf("address %q, default route %v", a, route)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("the persisted address came %v after the start, want within 1 s", took)
		}
		// And before the first packet: netconfig logs the address before
		// the client logs what it asks for.
		if err := router.WaitOutput(ctx, "dhcp4: asking to keep "+addr); err != nil {
			t.Fatal(err)
		}
		out := router.Output()
		if a, b := strings.Index(out, "netconfig: uplink0: added address "+addr), strings.Index(out, "dhcp4: asking to keep"); a < 0 || a > b {
			t.Errorf("the client asked before the address was configured:\n%s", out)
		}
	})

	t.Run("address and route kept 2 minutes past the last ACK", func(t *testing.T) {
		past := lease.Acked.Add(2*time.Minute + 5*time.Second)
		t.Logf("last ACK at %v, lease expired at %v; waiting until %v", lease.Acked.Format(time.TimeOnly), lease.Expiry.Format(time.TimeOnly), past.Format(time.TimeOnly))
		select {
		case <-time.After(time.Until(past)):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		if a, route := uplinkAddr(); a != addr || !route {
			t.Errorf("past expiry: address %q (want %s), default route %v", a, addr, route)
		}
		if !strings.Contains(router.Output(), "keeping "+addr) {
			t.Errorf("the router did not log that it keeps %s:\n%s", addr, router.Output())
		}
	})

	t.Run("a new ACK within 90 s of the server's return", func(t *testing.T) {
		if err := h.StartDnsmasq(ctx); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		if err := h.Dnsmasq.WaitOutput(wctx, "DHCPACK(isp0)"); err != nil {
			t.Fatalf("no ACK within 90 s: %v\nrouter:\n%s", err, router.Output())
		}
		t.Logf("new ACK %v after dnsmasq returned", time.Since(back).Round(time.Second))
		if a, route := uplinkAddr(); a != addr || !route {
			t.Errorf("after the new ACK: address %q (want %s), default route %v", a, addr, route)
		}
	})
}

// tcpdump is tcpdump on the ISP's isp0, recording an exchange for the
// replay tests.
type tcpdump struct {
	p    *lab.Process
	ns   *lab.Netns
	file string
}

func startCapture(ctx context.Context, t *testing.T, l *lab.Lab, isp *lab.Netns, filter string) *tcpdump {
	t.Helper()
	c := &tcpdump{ns: isp, file: filepath.Join(l.Dir(), "capture.pcap")}
	var err error
	if c.p, err = l.Start(isp, "tcpdump", "-i", "isp0", "-n", "-U", "-w", c.file, filter); err != nil {
		t.Fatal(err)
	}
	if err := c.p.WaitOutput(ctx, "listening on isp0"); err != nil {
		t.Fatal(err)
	}
	return c
}

// keep waits until the capture holds n packets that tcpdump describes
// with marker (it may not have read the last ones yet), stops tcpdump and,
// with HOMEROUTER_RECORD=1, saves the capture as dest.
func (c *tcpdump) keep(ctx context.Context, t *testing.T, marker string, n int, dest string) {
	t.Helper()
	if err := lab.WaitFor(ctx, fmt.Sprintf("%d packets captured", n), func() error {
		out, err := c.ns.Run(ctx, "tcpdump", "-nn", "-r", c.file)
		if got := strings.Count(out, marker); err != nil || got < n {
			return fmt.Errorf("%d packets (%v)", got, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c.p.Signal(os.Interrupt)
	<-c.p.Exited()
	if os.Getenv(recordEnv) != "1" {
		return
	}
	data, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dest, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
