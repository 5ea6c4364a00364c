package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
	"github.com/homerouter/homerouter/services/firewall"
)

// The firewall benchmark: fwBenchRounds rounds, each one iperf3 run of
// fwBenchTime with the full ruleset and one with none.
const (
	fwBenchRounds = 5
	fwBenchTime   = 5 * time.Second
	fwBenchPort   = 5201
)

// TestBenchFirewall is `make bench`'s firewall figure: iperf3 TCP from the
// LAN host to an iperf3 server on the ISP side, through the router, with
// the full ruleset (NAT, conntrack, the forward chain, MSS clamping; no
// flowtable on the lab's kernel) and with no ruleset at all (the
// firewall's bench mode "off": the table taken away while the router
// runs, forwarding on, and the ISP routes the LAN back to the router). The two alternate, in
// swapped order each round, so that drift in the machine's speed falls on
// both; it prints each run, both medians and their ratio. A benchmark,
// not a timed test: it asserts only that the runs measured something. It
// runs only with HOMEROUTER_BENCH=1.
func TestBenchFirewall(t *testing.T) {
	if os.Getenv("HOMEROUTER_BENCH") != "1" {
		t.Skip("set HOMEROUTER_BENCH=1 (make bench) to run the firewall benchmark")
	}
	bin := lab.RouterBinary(t)
	lab.Require(t, "iperf3", "nft", "busybox", "curl", "udhcpc", "dnsmasq", "dhcpd", "radvd", "ss", "sysctl")
	l := lab.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	f := newFWHome(ctx, t, l, bin, fwForward)
	f.logOnFailure(t)
	// The bench mode switch (POST /firewall/mode).
	if err := os.WriteFile(filepath.Join(f.PermDir, firewall.BenchFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f.startRouter(t)
	f.waitUplink(ctx, t)
	f.setUpClient(ctx, t)
	f.waitRuleset(ctx, t)
	if err := f.WaitRouterHealthy(ctx, ""); err != nil {
		t.Fatal(err)
	}
	server := netip.AddrPortFrom(netip.MustParseAddr(lab.ISPWWWA), fwBenchPort)
	if _, err := l.StartIPerf3Server(ctx, f.ISP, server); err != nil {
		t.Fatal(err)
	}
	hasTable := func() bool {
		t.Helper()
		rs, err := f.Router.Ruleset(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(rs, fwOwnTable+" {")
	}
	// setMode switches the firewall's bench mode and waits until the
	// table is there (full) or gone (off).
	setMode := func(mode string) {
		t.Helper()
		if out, err := f.LAN.Run(ctx, "curl", "-sSf", "--max-time", "5", "-X", "POST", "-H", firewall.BenchHeader+": 1", "--data", mode, "http://"+fwLANIP+"/firewall/mode"); err != nil {
			t.Fatalf("POST /firewall/mode %s: %v: %s", mode, err, out)
		}
		if err := lab.WaitFor(ctx, "the firewall's table in mode "+mode, func() error {
			if hasTable() != (mode == "full") {
				return errors.New("not yet")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	run := func(full bool) float64 {
		t.Helper()
		mode := "off"
		if full {
			mode = "full"
		}
		setMode(mode)
		if v4, _ := f.forwarding(ctx, t); v4 != "1" {
			t.Fatalf("net.ipv4.ip_forward is %s in the router namespace, want 1", v4)
		}
		r, err := f.LAN.IPerf3(ctx, server, fwBenchTime)
		if err != nil {
			t.Fatal(err)
		}
		// The run measured what it says only if the table stayed as
		// it was (present, or absent) all along.
		if v4, _ := f.forwarding(ctx, t); v4 != "1" {
			t.Fatalf("net.ipv4.ip_forward went to %s during the run", v4)
		}
		if got := hasTable(); got != full {
			t.Fatalf("the firewall's table present = %v after a run that wanted %v: the router changed it", got, full)
		}
		if r.ReceivedBPS <= 0 {
			t.Fatalf("iperf3 measured nothing: %+v", r)
		}
		return r.ReceivedBPS
	}

	var fullRuns, noneRuns []float64
	for i := range fwBenchRounds {
		order := []bool{true, false}
		if i%2 == 1 {
			order = []bool{false, true}
		}
		for _, full := range order {
			bps := run(full)
			name := "no ruleset"
			if full {
				fullRuns = append(fullRuns, bps)
				name = "full ruleset"
			} else {
				noneRuns = append(noneRuns, bps)
			}
			t.Logf("round %d, %s: %s", i+1, name, gbits(bps))
		}
	}
	// Back to the full ruleset, which the bench switch must restore.
	setMode("full")
	if !hasTable() {
		t.Fatal("the firewall's table is gone after the benchmark")
	}
	if err := f.WaitRouterHealthy(ctx, ""); err != nil {
		t.Error(err)
	}
	full, none := median(fullRuns), median(noneRuns)
	t.Logf("iperf3 TCP from the LAN through the router to the ISP (median of %d runs of %v each): full ruleset %s, no ruleset %s, ratio full/none %.3f",
		fwBenchRounds, fwBenchTime, gbits(full), gbits(none), full/none)
}

// gbits formats a throughput in bits per second.
func gbits(bps float64) string { return fmt.Sprintf("%.2f Gbit/s", bps/1e9) }

// median of a non-empty list.
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
