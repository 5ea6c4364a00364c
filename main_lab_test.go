package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
	"github.com/homerouter/homerouter/state"
)

func TestMain(m *testing.M) { lab.Main(m) }

// ipLink is the part of `ip -j addr show` the tests look at.
type ipLink struct {
	Name     string   `json:"ifname"`
	Address  string   `json:"address"`
	Flags    []string `json:"flags"`
	AddrInfo []struct {
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
		Scope     string `json:"scope"`
	} `json:"addr_info"`
}

// addrs returns the link's non-link-local addresses as "addr/len".
func (l ipLink) addrs() []string {
	var out []string
	for _, a := range l.AddrInfo {
		if a.Scope != "link" {
			out = append(out, a.Local+"/"+strconv.Itoa(a.PrefixLen))
		}
	}
	return out
}

func links(ctx context.Context, t *testing.T, ns *lab.Netns) map[string]ipLink {
	t.Helper()
	out, err := ns.Run(ctx, "ip", "-j", "addr", "show")
	if err != nil {
		t.Fatal(err)
	}
	var ls []ipLink
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		t.Fatalf("ip -j addr: %v\n%s", err, out)
	}
	m := make(map[string]ipLink)
	for _, l := range ls {
		m[l.Name] = l
	}
	return m
}

// waitLinks waits until cond holds for the router namespace's links.
func waitLinks(ctx context.Context, t *testing.T, ns *lab.Netns, what string, cond func(map[string]ipLink) bool) map[string]ipLink {
	t.Helper()
	var last map[string]ipLink
	err := lab.WaitFor(ctx, what, func() error {
		last = links(ctx, t, ns)
		if !cond(last) {
			return fmt.Errorf("links: %+v", last)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// TestRouterLab runs the real binary in the lab's router namespace and
// checks the foundation end to end: links renamed and addressed, reload of
// a broken and of a changed interfaces.json, /health.json on loopback and
// lan0 (never on the uplink), and a prompt stop.
func TestRouterLab(t *testing.T) {
	bin := lab.RouterBinary(t)
	lab.Require(t, "curl", "ss")
	l := lab.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	perm := t.TempDir()
	ifacesPath := filepath.Join(perm, "interfaces.json")
	extra := "" // more entries for interfaces.json
	writeInterfaces := func(lanAddr string, broken bool) {
		t.Helper()
		sep := ","
		if broken {
			sep = ""
		}
		content := "{\n  \"interfaces\": [\n" +
			"    {\"hardware_addr\": \"" + lab.RouterWANMAC + "\", \"name\": \"uplink0\"},\n" +
			"    {\"hardware_addr\": \"" + lab.RouterLANMAC + "\", \"name\": \"lan0\"" + sep + " \"addr\": \"" + lanAddr + "\", \"extra_addrs\": [\"fd00:42::1/64\"]}\n" +
			extra + "  ]\n}\n"
		if err := os.WriteFile(ifacesPath, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeInterfaces("192.168.42.1/24", false)

	h, err := lab.NewHome(l, lab.HomeOptions{PermDir: perm, NoPeers: true, NoRouter: true})
	if err != nil {
		t.Fatal(err)
	}
	// The LAN client can reach both the old and the new lan0 subnet.
	for _, a := range []string{"192.168.42.2/24", "10.42.0.2/24", "fd00:42::2/64"} {
		if _, err := h.LAN.Run(ctx, "ip", "addr", "add", a, "dev", "eth0", "nodad"); err != nil {
			t.Fatal(err)
		}
	}
	if h.RouterProc, err = l.Start(h.Router, bin, "run", "-perm", perm); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitRouterServing(ctx, ""); err != nil {
		t.Fatal(err)
	}

	t.Run("links renamed and addressed", func(t *testing.T) {
		ls := waitLinks(ctx, t, h.Router, "uplink0 and lan0 configured", func(ls map[string]ipLink) bool {
			return slices.Contains(ls["lan0"].addrs(), "192.168.42.1/24") && slices.Contains(ls["lan0"].addrs(), "fd00:42::1/64")
		})
		if _, ok := ls["wan"]; ok {
			t.Error("link wan was not renamed")
		}
		if ls["uplink0"].Address != lab.RouterWANMAC || ls["lan0"].Address != lab.RouterLANMAC {
			t.Errorf("uplink0 is %s, lan0 is %s; want %s and %s", ls["uplink0"].Address, ls["lan0"].Address, lab.RouterWANMAC, lab.RouterLANMAC)
		}
		if !slices.Contains(ls["lan0"].Flags, "UP") {
			t.Errorf("lan0 flags %v, want UP", ls["lan0"].Flags)
		}
		ula, rest := splitULA(ls["lan0"].addrs())
		if !slices.Equal(rest, []string{"192.168.42.1/24", "fd00:42::1/64"}) || ula == "" {
			t.Errorf("lan0 addresses %v, want 192.168.42.1/24, fd00:42::1/64 and the ::1/64 of a unique local prefix", ls["lan0"].addrs())
		}
	})

	t.Run("health on loopback and lan0 only", func(t *testing.T) {
		// Without an ISP (NoPeers) the router is not healthy, and
		// says why: the uplink has no lease. Everything else passes.
		code, body, err := h.RouterHealth(ctx, "http://127.0.0.1:80/health.json")
		if err != nil || code != 503 || !strings.Contains(body, `"first_error": "homerouter/link/uplink0/dhcp4: no lease`) || lab.UplinkOnly(body) != nil {
			t.Errorf("health on 127.0.0.1:80: %d %v %v\n%s", code, err, lab.UplinkOnly(body), body)
		}
		if out, err := h.LAN.Run(ctx, "curl", "-sS", "-m", "5", "http://192.168.42.1/health.json"); err != nil {
			t.Errorf("health from the LAN on 192.168.42.1: %v", err)
		} else if err := lab.UplinkOnly(out); err != nil {
			t.Errorf("health from the LAN: %v", err)
		}
		// From the ISP, uplink0's link-local address answers a ping but
		// not HTTP: httpd does not listen there (see the listeners
		// below), and the firewall drops what the uplink did not ask
		// for, so curl times out (exit 28) rather than being refused.
		if err := h.Router.WaitLinkLocal(ctx, "uplink0"); err != nil {
			t.Fatal(err)
		}
		if err := h.ISP.WaitLinkLocal(ctx, "isp0"); err != nil {
			t.Fatal(err)
		}
		var ll string
		for _, a := range links(ctx, t, h.Router)["uplink0"].AddrInfo {
			if a.Scope == "link" {
				ll = a.Local
			}
		}
		if out, err := h.ISP.Run(ctx, "busybox", "ping6", "-c", "1", "-W", "5", ll+"%isp0"); err != nil {
			t.Errorf("ping uplink0 (%s) from the ISP: %v: %s", ll, err, out)
		}
		cmd := h.ISP.Command(ctx, "curl", "-sS", "-m", "3", "-g", "http://["+ll+"%isp0]:80/health.json")
		if out, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 28 {
			t.Errorf("HTTP to uplink0 (%s) from the ISP: curl %v, want exit 28 (no answer): %s", ll, err, out)
		}
		if err := lab.WaitFor(ctx, "health from the LAN on fd00:42::1", func() error {
			_, err := h.LAN.Run(ctx, "curl", "-sS", "-m", "2", "http://[fd00:42::1]/health.json")
			return err
		}); err != nil {
			t.Error(err)
		}
		// HTTP (80) and DNS (53, also on lan0's link-local address).
		ula, _ := splitULA(links(ctx, t, h.Router)["lan0"].addrs())
		ula = strings.TrimSuffix(ula, "/64")
		want := []string{"127.0.0.1:53", "127.0.0.1:80", "192.168.42.1:53", "192.168.42.1:80", "[::1]:53", "[::1]:80",
			"[fd00:42::1]:53", "[fd00:42::1]:80", "[" + ula + "]:53", "[" + ula + "]:80", "[fe80::77:ff:fe00:2]%lan0:53"}
		slices.Sort(want)
		if err := lab.WaitFor(ctx, "the listeners", func() error {
			if got := listening(ctx, t, h.Router); !slices.Equal(got, want) {
				return fmt.Errorf("router listens on %v, want only loopback and lan0: %v", got, want)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	})

	t.Run("metrics from the LAN pass promtool", func(t *testing.T) {
		lab.Require(t, "promtool")
		out, err := h.LAN.HTTPGet(ctx, "http://192.168.42.1/metrics", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// promtool only reads the text it is given: run on the host.
		cmd := exec.CommandContext(ctx, "promtool", "check", "metrics")
		cmd.Stdin = strings.NewReader(out)
		if lint, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, lint)
		}
		for _, want := range []string{"homerouter_healthy ", `homerouter_service_running{service="dns"} 1`, "homerouter_firewall_forwarding ", "go_goroutines "} {
			if !strings.Contains(out, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	})

	t.Run("the status page from the LAN", func(t *testing.T) {
		out, err := h.LAN.HTTPGet(ctx, "http://192.168.42.1/", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"<title>homerouter: ✘ homerouter/link/uplink0/dhcp4: no lease", "<code>192.168.42.1/24 (static)</code>", "<td>netconfig</td>", `<pre id="log">`} {
			if !strings.Contains(out, want) {
				t.Errorf("the status page lacks %q:\n%s", want, out)
			}
		}
		// The whole log, kept in memory under run as by PID 1.
		log, err := h.LAN.HTTPGet(ctx, "http://192.168.42.1/log", 10*time.Second)
		if err != nil || !strings.Contains(log, "netconfig: lan0: renamed from lan") {
			t.Errorf("GET /log: %v\n%s", err, log)
		}
		// The password made at the first start is on the console
		// (stderr under run) and nowhere a LAN client can read it.
		pw, err := state.ReadPassword(perm)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(h.RouterProc.Output(), "password, for updates and backups, is "+pw) {
			t.Errorf("the password is not on the console")
		}
		if strings.Contains(log, pw) || strings.Contains(out, pw) {
			t.Errorf("the password is in /log or on the status page")
		}
	})

	t.Run("SIGHUP with a broken file keeps the router running", func(t *testing.T) {
		writeInterfaces("10.42.0.1/24", true)
		if err := h.RouterProc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if err := h.RouterProc.WaitOutput(ctx, `interfaces.json:4:`); err != nil {
			t.Fatal(err)
		}
		var code int
		var body string
		if err := lab.WaitFor(ctx, "503 from /health.json naming interfaces.json", func() error {
			code, body, err = h.RouterHealth(ctx, "")
			if err != nil || code != 503 || !strings.Contains(body, "interfaces.json:4:") {
				return fmt.Errorf("health: %d %v", code, err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var health struct {
			FirstError string `json:"first_error"`
		}
		if err := json.Unmarshal([]byte(body), &health); err != nil {
			t.Fatal(err)
		}
		if want := `interfaces.json:4:`; !strings.Contains(health.FirstError, want) {
			t.Errorf("first_error = %q, want it to name %s", health.FirstError, want)
		}
		if ula, got := splitULA(links(ctx, t, h.Router)["lan0"].addrs()); !slices.Equal(got, []string{"192.168.42.1/24", "fd00:42::1/64"}) || ula == "" {
			t.Errorf("after a broken reload lan0 has %v and %q, want [192.168.42.1/24 fd00:42::1/64] and its ULA kept", got, ula)
		}
		select {
		case <-h.RouterProc.Exited():
			t.Fatalf("router exited: %v", h.RouterProc.Err())
		default:
		}
	})

	t.Run("SIGHUP with a new lan0 address applies it", func(t *testing.T) {
		writeInterfaces("10.42.0.1/24", false)
		if err := h.RouterProc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitLinks(ctx, t, h.Router, "lan0 readdressed", func(ls map[string]ipLink) bool {
			_, rest := splitULA(ls["lan0"].addrs())
			return slices.Equal(rest, []string{"10.42.0.1/24", "fd00:42::1/64"})
		})
		if err := h.WaitRouterServing(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if err := lab.WaitFor(ctx, "health on the new lan0 address", func() error {
			_, err := h.LAN.Run(ctx, "curl", "-sS", "-m", "2", "http://10.42.0.1/health.json")
			return err
		}); err != nil {
			t.Error(err)
		}
		ula, _ := splitULA(links(ctx, t, h.Router)["lan0"].addrs())
		ula = strings.TrimSuffix(ula, "/64")
		want := []string{"10.42.0.1:53", "10.42.0.1:80", "127.0.0.1:53", "127.0.0.1:80", "[::1]:53", "[::1]:80",
			"[fd00:42::1]:53", "[fd00:42::1]:80", "[" + ula + "]:53", "[" + ula + "]:80", "[fe80::77:ff:fe00:2]%lan0:53"}
		slices.Sort(want)
		if err := lab.WaitFor(ctx, "the listeners after the address change", func() error {
			if got := listening(ctx, t, h.Router); !slices.Equal(got, want) {
				return fmt.Errorf("after the address change the router listens on %v, want %v", got, want)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	})

	t.Run("restart with the same config changes nothing", func(t *testing.T) {
		before := links(ctx, t, h.Router)
		stopRouter(ctx, t, h.RouterProc)
		again, err := l.Start(h.Router, bin, "run", "-perm", perm)
		if err != nil {
			t.Fatal(err)
		}
		h.RouterProc = again
		// httpd listens on lan0's address once netconfig has published
		// it, that is, after netconfig's first apply.
		if err := again.WaitOutput(ctx, "httpd: listening on http://10.42.0.1:80"); err != nil {
			t.Fatal(err)
		}
		after := links(ctx, t, h.Router)
		for _, name := range []string{"uplink0", "lan0"} {
			if !slices.Equal(before[name].addrs(), after[name].addrs()) || before[name].Address != after[name].Address {
				t.Errorf("%s changed across a restart: %+v -> %+v", name, before[name], after[name])
			}
		}
		if out := again.Output(); changeLogged(out) {
			t.Errorf("second start changed something:\n%s", out)
		}
	})

	t.Run("an entry that cannot be applied is reported, the rest keeps working", func(t *testing.T) {
		// nic9 is to be renamed taken0, a name another link holds.
		if _, err := h.Router.Run(ctx, "ip", "link", "add", "taken0", "type", "veth", "peer", "name", "nic9", "address", "02:77:00:00:00:09"); err != nil {
			t.Fatal(err)
		}
		extra = "    ,{\"hardware_addr\": \"02:77:00:00:00:09\", \"name\": \"taken0\"}\n"
		writeInterfaces("10.42.0.1/24", false)
		if err := h.RouterProc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		want := "homerouter/services/netconfig: netconfig: rename nic9 to taken0: link"
		if err := lab.WaitFor(ctx, "503 naming the entry", func() error {
			code, body, err := h.RouterHealth(ctx, "")
			if err != nil || code != 503 || !strings.Contains(body, want) {
				return fmt.Errorf("health: %d %v %s", code, err, body)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.LAN.Run(ctx, "curl", "-sS", "-m", "2", "http://10.42.0.1/health.json"); err != nil {
			t.Errorf("LAN lost the router while an entry failed: %v", err)
		}
		extra = ""
		writeInterfaces("10.42.0.1/24", false)
		if err := h.RouterProc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if err := h.WaitRouterServing(ctx, ""); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("SIGTERM stops within 5 s", func(t *testing.T) {
		stopRouter(ctx, t, h.RouterProc)
	})
}

// changeLogged reports whether netconfig logged a change to the kernel:
// it logs one line per change, and otherwise only links that are absent.
func changeLogged(out string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "netconfig: ") && !strings.Contains(line, "is absent") {
			return true
		}
	}
	return false
}

// listening returns the router's listening TCP sockets, sorted.
// splitULA returns, of addrs ("addr/len"), the address in the unique
// local prefix netconfig made for lan0 (in fd00::/8, but in none of the
// lab's own ranges), and the others.
func splitULA(addrs []string) (ula string, rest []string) {
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a); err == nil && isRouterULA(p.Addr()) {
			ula = a
			continue
		}
		rest = append(rest, a)
	}
	return ula, rest
}

func listening(ctx context.Context, t *testing.T, ns *lab.Netns) []string {
	t.Helper()
	out, err := ns.Run(ctx, "ss", "-Htln")
	if err != nil {
		t.Fatal(err)
	}
	var socks []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) >= 4 {
			socks = append(socks, f[3])
		}
	}
	slices.Sort(socks)
	return socks
}

func stopRouter(ctx context.Context, t *testing.T, p *lab.Process) {
	t.Helper()
	start := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	case <-ctx.Done():
		t.Fatal("router did not exit")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("router took %v to stop, want at most 5 s", took)
	}
	if err := p.Err(); err != nil {
		t.Errorf("router exit: %v\n%s", err, p.Output())
	}
}
