package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
)

// The perfdhcp tests serve a /16, so that thousands of simulated clients
// fit in the pool. perfdhcp is a relay agent on the LAN: it sends from
// perfLANAddr:67 with giaddr perfLANAddr, and the server answers there.
const (
	perfRouterNet  = "10.42.0.1/16"
	perfRouterAddr = "10.42.0.1"
	perfLANAddr    = "10.42.0.2"
	perfRangeStart = "10.42.1.1"
	perfRangeEnd   = "10.42.200.254"
)

// perfStats is perfdhcp's final report of one run.
type perfStats struct {
	// DOSent, DORecv: DISCOVERs sent, OFFERs received; RASent, RARecv:
	// REQUESTs sent, ACKs received.
	DOSent, DORecv, RASent, RARecv int
	// Rate is perfdhcp's measured rate of 4-way exchanges per second.
	Rate float64
}

// completed is the share of DORAs started that got their ACK.
func (s perfStats) completed() float64 {
	if s.DOSent == 0 {
		return 0
	}
	return float64(s.RARecv) / float64(s.DOSent)
}

func (s perfStats) String() string {
	return fmt.Sprintf("DISCOVER-OFFER %d/%d, REQUEST-ACK %d/%d, completed DORAs %.2f%%, %.0f exchanges/s",
		s.DORecv, s.DOSent, s.RARecv, s.RASent, 100*s.completed(), s.Rate)
}

var (
	perfSection = regexp.MustCompile(`\*\*\*Statistics for: (DISCOVER-OFFER|REQUEST-ACK)\*\*\*`)
	perfSent    = regexp.MustCompile(`(?m)^sent packets: (\d+)`)
	perfRecv    = regexp.MustCompile(`(?m)^received packets: (\d+)`)
	perfRate    = regexp.MustCompile(`Rate: ([0-9.]+) 4-way exchanges/second`)
)

// parsePerfdhcp reads the statistics of perfdhcp's final report.
func parsePerfdhcp(out string) (perfStats, error) {
	var s perfStats
	locs := perfSection.FindAllStringSubmatchIndex(out, -1)
	seen := 0
	for i, loc := range locs {
		end := len(out)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		part := out[loc[1]:end]
		sent, recv := perfSent.FindStringSubmatch(part), perfRecv.FindStringSubmatch(part)
		if sent == nil || recv == nil {
			return s, fmt.Errorf("no sent/received packets for %s in perfdhcp's report", out[loc[2]:loc[3]])
		}
		ns, _ := strconv.Atoi(sent[1])
		nr, _ := strconv.Atoi(recv[1])
		if out[loc[2]:loc[3]] == "DISCOVER-OFFER" {
			s.DOSent, s.DORecv = ns, nr
		} else {
			s.RASent, s.RARecv = ns, nr
		}
		seen++
	}
	if seen != 2 {
		return s, fmt.Errorf("perfdhcp's report lacks the DISCOVER-OFFER and REQUEST-ACK statistics:\n%s", out)
	}
	if m := perfRate.FindStringSubmatch(out); m != nil {
		s.Rate, _ = strconv.ParseFloat(m[1], 64)
	}
	return s, nil
}

// runPerfdhcp runs perfdhcp in the LAN namespace against the router at
// rate exchanges per second, with clients simulated clients, for period
// seconds, and returns its report. perfdhcp exits non-zero when packets
// were dropped, so only a missing report is an error.
func runPerfdhcp(ctx context.Context, h *lab.Home, rate, clients, period int) (perfStats, error) {
	cmd := h.LAN.Command(ctx, "perfdhcp", "-4",
		"-r", strconv.Itoa(rate), "-R", strconv.Itoa(clients), "-p", strconv.Itoa(period),
		"-W", "1000000", // wait 1 s for the last answers
		"-l", "eth0", perfRouterAddr)
	out, err := cmd.CombinedOutput()
	s, perr := parsePerfdhcp(string(out))
	if perr != nil {
		return s, fmt.Errorf("perfdhcp: %v: %w\n%s", err, perr, out)
	}
	return s, nil
}

// newPerfHome builds the home topology with no peers and no router, and
// gives the LAN's eth0 perfLANAddr on the /16. perm holds the router's
// interfaces.json (lan0 at perfRouterNet) and a dhcp4d.json whose range
// is perfRangeStart-perfRangeEnd.
func newPerfHome(t *testing.T, l *lab.Lab) (h *lab.Home, perm string) {
	t.Helper()
	perm = t.TempDir()
	files := map[string]string{
		"interfaces.json": `{"interfaces": [
  {"hardware_addr": "` + lab.RouterWANMAC + `", "name": "uplink0"},
  {"hardware_addr": "` + lab.RouterLANMAC + `", "name": "lan0", "addr": "` + perfRouterNet + `"}
]}
`,
		"dhcp4d.json": `{"range_start": "` + perfRangeStart + `", "range_end": "` + perfRangeEnd + `"}
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(perm, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, err := lab.NewHome(l, lab.HomeOptions{PermDir: perm, NoPeers: true, NoRouter: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.LAN.Run(ctx, "ip", "addr", "add", perfLANAddr+"/16", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	return h, perm
}

// startPerfRouter runs the router on perm and waits until dhcp4d serves.
func startPerfRouter(ctx context.Context, t *testing.T, l *lab.Lab, h *lab.Home, bin, perm string) {
	t.Helper()
	var err error
	if h.RouterProc, err = l.Start(h.Router, bin, "run", "-perm", perm); err != nil {
		t.Fatal(err)
	}
	if err := h.RouterProc.WaitOutput(ctx, "dhcp4d: serving 10.42.0.0/16 on lan0"); err != nil {
		t.Fatal(err)
	}
}

// countLeases counts the leases in homerouter's dhcp4d-leases.json.
func countLeases(t *testing.T, perm string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(perm, "dhcp4d-leases.json"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), `"addr": "10.42.`)
}

// TestDHCPv4ServerPerfdhcp has perfdhcp, as a relay agent on the LAN,
// run 100 DORA exchanges a second from 100 clients for 5 s: at least 99%
// of each exchange must be answered.
func TestDHCPv4ServerPerfdhcp(t *testing.T) {
	t.Parallel()
	bin := lab.RouterBinary(t)
	lab.Require(t, "perfdhcp")
	l := lab.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, perm := newPerfHome(t, l)
	startPerfRouter(ctx, t, l, h, bin, perm)

	s, err := runPerfdhcp(ctx, h, 100, 100, 5)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("perfdhcp -4 -r 100 -R 100 -p 5 -l eth0 %s: %v", perfRouterAddr, s)
	for _, x := range []struct {
		name       string
		sent, recv int
	}{{"DISCOVER-OFFER", s.DOSent, s.DORecv}, {"REQUEST-ACK", s.RASent, s.RARecv}} {
		if x.sent == 0 || float64(x.recv) < 0.99*float64(x.sent) {
			t.Errorf("%s: %d of %d answered, want at least 99%%", x.name, x.recv, x.sent)
		}
	}
	stopRouter(ctx, t, h.RouterProc)
	if n := countLeases(t, perm); n == 0 {
		t.Errorf("dhcp4d-leases.json has no lease after the run")
	} else {
		t.Logf("dhcp4d-leases.json: %d leases", n)
	}
}
