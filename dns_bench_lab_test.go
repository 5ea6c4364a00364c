package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
)

// The DNS benchmark's workloads.
const (
	dnsBenchNames     = 1000             // the hit set: names the ISP serves, warmed into every cache
	dnsBenchHitTime   = 10               // seconds of the cache-hit run
	dnsBenchMissEvery = 10               // every 10th query of the mixed run is a miss (10%)
	dnsBenchMixedTime = 5 * time.Second  // the mixed run is sized for this long at the best hit rate
	dnsBenchMinMixed  = 20000            // ... and has at least this many queries
	dnsBenchFill      = 10000            // distinct names that fill a 10,000-entry cache
	dnsBenchDnsmasq   = 5300             // the port of the dnsmasq under test (on lan0's address)
	dnsBenchUnbound   = 5301             // the port of unbound
	dnsBenchCache     = 10000            // dnsmasq's --cache-size, homerouter's default
	dnsBenchTimeout   = 10 * time.Minute // the whole benchmark
)

// dnsperfLoad is how dnsperf drives every server: the same clients and
// queries in flight for all three.
var dnsperfLoad = []string{"-c", "4", "-q", "100", "-t", "5"}

// dnsBenchServer is one resolver under test.
type dnsBenchServer struct {
	name string
	port uint16
	proc *lab.Process
	hits lab.DnsperfResult
	mix  lab.DnsperfResult
	// hitsCPU is the CPU time the server used during the cache-hit
	// run: dnsperf and the three servers share the machine's cores, so
	// QPS alone is capped by dnsperf; queries per CPU second are what
	// each server would sustain on a core of its own.
	hitsCPU time.Duration
}

// dnsBenchName is the i-th name of the hit set.
func dnsBenchName(i int) string { return fmt.Sprintf("n%04d.bench.isp.test", i) }

// writeQueries writes dnsperf's input (one "NAME A" a line) into the
// lab's dir and returns its path.
func writeQueries(t *testing.T, l *lab.Lab, file string, names []string) string {
	t.Helper()
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n + " A\n")
	}
	path, err := l.WriteFile(file, b.String(), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// vmRSS reads a process's resident set size in KiB from /proc.
func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("VmRSS of %d: %q: %v", pid, line, err)
			}
			return kb
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// cpuTime reads the CPU time (user and system, of all its threads) a
// process has used, from /proc/PID/stat.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command's closing parenthesis: state is the
	// first (field 3 of proc(5)), utime and stime fields 14 and 15.
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/stat: %q: %v", pid, s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every
// Linux architecture the router runs on.
const clockTicks = 100

// TestBenchDNS is `make bench`'s DNS figure: dnsperf from the LAN host
// against homerouter's resolver (port 53 of lan0's 192.168.42.1), dnsmasq
// (--cache-size=10000) and unbound (its defaults), both in the router's
// namespace on lan0's address too (other ports), all three forwarding to
// the ISP's dnsmasq, in one run. Workloads: cache hits over a 1,000-name
// set (warmed first), then a mixed run in which every 10th query is a
// name never asked before. It prints QPS and average latency of each and
// the ratios homerouter/dnsmasq and homerouter/unbound, and the resident
// memory of each with a full cache (10,000 distinct names asked) while
// idle. A benchmark, not a timed test: it asserts only that it measured
// something. It runs only with HOMEROUTER_BENCH=1.
func TestBenchDNS(t *testing.T) {
	if os.Getenv("HOMEROUTER_BENCH") != "1" {
		t.Skip("set HOMEROUTER_BENCH=1 (make bench) to run the DNS benchmark")
	}
	bin := lab.RouterBinary(t)
	lab.Require(t, "dnsperf", "unbound", "dig", "dnsmasq", "dhcpd", "radvd", "ss", "curl")
	l := lab.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), dnsBenchTimeout)
	defer cancel()

	// The ISP serves the hit set from a hosts file (10.77.1.0-10.77.4.255).
	var hosts strings.Builder
	hitNames := make([]string, dnsBenchNames)
	for i := range hitNames {
		hitNames[i] = dnsBenchName(i)
		fmt.Fprintf(&hosts, "10.77.%d.%d %s\n", 1+i/256, i%256, hitNames[i])
	}
	hostsFile, err := l.WriteFile("bench-hosts", hosts.String(), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	d := newDNSHome(ctx, t, l, bin, lab.DNSPeerOptions{HostsFile: hostsFile, Quiet: true})
	lanIP := netip.MustParseAddr(dnsLANIP)
	dm, err := l.StartDnsmasqForwarder(ctx, d.Router, netip.AddrPortFrom(lanIP, dnsBenchDnsmasq), lab.ISPAddr4, dnsBenchCache)
	if err != nil {
		t.Fatal(err)
	}
	ub, err := l.StartUnbound(ctx, d.Router, netip.AddrPortFrom(lanIP, dnsBenchUnbound), lab.ISPAddr4)
	if err != nil {
		t.Fatal(err)
	}
	servers := []*dnsBenchServer{
		{name: "homerouter", port: 53, proc: d.RouterProc},
		{name: "dnsmasq", port: dnsBenchDnsmasq, proc: dm},
		{name: "unbound", port: dnsBenchUnbound, proc: ub},
	}
	d.settleDNS(ctx, t, dnsLANIP, hitNames[0], "A", "NOERROR", "10.77.1.0")
	for _, s := range servers {
		r, err := d.LAN.Dig(ctx, dnsLANIP, hitNames[1], "A", dnsAnswer, dnsOneTry, "-p", strconv.Itoa(int(s.port)))
		if err != nil || r.Status != "NOERROR" || len(r.Data("A")) != 1 || r.Data("A")[0] != "10.77.1.1" {
			t.Fatalf("%s: %s A: %v %v; want 10.77.1.1", s.name, hitNames[1], r, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	run := func(s *dnsBenchServer, what, file string, extra ...string) lab.DnsperfResult {
		t.Helper()
		r, err := d.LAN.Dnsperf(ctx, dnsLANIP, s.port, file, append(append([]string(nil), dnsperfLoad...), extra...)...)
		if err != nil {
			t.Fatalf("%s, %s: %v", s.name, what, err)
		}
		t.Logf("%s, %s: %v", s.name, what, r)
		if r.Completed == 0 || r.QPS <= 0 {
			t.Fatalf("%s, %s: measured nothing:\n%s", s.name, what, r.Output)
		}
		return r
	}

	// Cache hits: each server gets the hit set once (warm), then for
	// dnsBenchHitTime seconds, shuffled.
	shuffled := append([]string(nil), hitNames...)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	hitFile := writeQueries(t, l, "bench-hits.txt", shuffled)
	best := 0.0
	for _, s := range servers {
		w := run(s, "warming the hit set", hitFile, "-n", "1")
		if w.Completed != dnsBenchNames || !strings.HasPrefix(w.Codes, "NOERROR "+strconv.Itoa(dnsBenchNames)+" ") {
			t.Fatalf("%s: warming: %v, want %d NOERROR answers", s.name, w, dnsBenchNames)
		}
		cpu := cpuTime(t, s.proc.Pid())
		s.hits = run(s, "cache hits", hitFile, "-l", strconv.Itoa(dnsBenchHitTime))
		s.hitsCPU = cpuTime(t, s.proc.Pid()) - cpu
		best = max(best, s.hits.QPS)
	}

	// Mixed: the same hit set with every dnsBenchMissEvery-th query a
	// name nobody asked before (the ISP's wildcard answers it), each
	// server its own misses, once through a file sized for
	// dnsBenchMixedTime at the best hit rate.
	n := max(dnsBenchMinMixed, int(best*dnsBenchMixedTime.Seconds()))
	for _, s := range servers {
		names := make([]string, n)
		for i := range names {
			if i%dnsBenchMissEvery == dnsBenchMissEvery-1 {
				names[i] = fmt.Sprintf("miss-%d.%s.isp.test", i, s.name)
			} else {
				names[i] = shuffled[i%len(shuffled)]
			}
		}
		file := writeQueries(t, l, "bench-mixed-"+s.name+".txt", names)
		s.mix = run(s, fmt.Sprintf("mixed, %d queries, 1 in %d a miss", n, dnsBenchMissEvery), file, "-n", "1")
	}

	// Memory: a full cache (dnsBenchFill names nobody asked before),
	// then the resident set while idle.
	fill := make([]string, dnsBenchFill)
	rss := map[string]int{}
	for _, s := range servers {
		for i := range fill {
			fill[i] = fmt.Sprintf("fill-%05d.%s.isp.test", i, s.name)
		}
		run(s, fmt.Sprintf("filling the cache with %d names", dnsBenchFill), writeQueries(t, l, "bench-fill-"+s.name+".txt", fill), "-n", "1")
		rss[s.name] = vmRSS(t, s.proc.Pid())
	}

	hr, dmr, ubr := servers[0], servers[1], servers[2]
	for _, w := range []struct {
		what string
		get  func(*dnsBenchServer) lab.DnsperfResult
	}{
		{fmt.Sprintf("cache hits over %d names", dnsBenchNames), func(s *dnsBenchServer) lab.DnsperfResult { return s.hits }},
		{fmt.Sprintf("mixed, %d%% misses", 100/dnsBenchMissEvery), func(s *dnsBenchServer) lab.DnsperfResult { return s.mix }},
	} {
		h, m, u := w.get(hr), w.get(dmr), w.get(ubr)
		t.Logf("DNS %s (dnsperf %s from the LAN): homerouter %.0f queries/s, %.3f ms; dnsmasq %.0f queries/s, %.3f ms; unbound %.0f queries/s, %.3f ms; "+
			"QPS ratio homerouter/dnsmasq %.2f, homerouter/unbound %.2f; latency ratio homerouter/dnsmasq %.2f, homerouter/unbound %.2f",
			w.what, strings.Join(dnsperfLoad, " "),
			h.QPS, h.AvgLatency*1000, m.QPS, m.AvgLatency*1000, u.QPS, u.AvgLatency*1000,
			h.QPS/m.QPS, h.QPS/u.QPS, h.AvgLatency/m.AvgLatency, h.AvgLatency/u.AvgLatency)
	}
	perCPU := func(s *dnsBenchServer) float64 { return float64(s.hits.Completed) / s.hitsCPU.Seconds() }
	t.Logf("DNS cache hits per CPU second of the server (what it would answer with a core of its own; dnsperf caps the QPS above): "+
		"homerouter %.0f (%.1f s of CPU), dnsmasq %.0f (%.1f s), unbound %.0f (%.1f s); ratio homerouter/dnsmasq %.2f, homerouter/unbound %.2f",
		perCPU(hr), hr.hitsCPU.Seconds(), perCPU(dmr), dmr.hitsCPU.Seconds(), perCPU(ubr), ubr.hitsCPU.Seconds(),
		perCPU(hr)/perCPU(dmr), perCPU(hr)/perCPU(ubr))
	t.Logf("idle resident memory after %d distinct names (a full %d-entry cache): homerouter (the whole router) %d KiB, dnsmasq %d KiB, unbound %d KiB",
		dnsBenchFill, dnsBenchCache, rss["homerouter"], rss["dnsmasq"], rss["unbound"])
	if code, body, err := d.RouterHealth(ctx, "http://127.0.0.1/metrics"); err == nil && code == 200 {
		for _, line := range strings.Split(body, "\n") {
			if strings.Contains(line, "dns") && !strings.HasPrefix(line, "#") {
				t.Logf("router /metrics: %s", line)
			}
		}
	}
}
