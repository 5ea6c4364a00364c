package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
	"github.com/homerouter/homerouter/services/httpd"
	"github.com/homerouter/homerouter/state"
)

// The firewall lab's addresses. The LAN is lan0's 192.168.42.0/24 with
// the web server host at its static lease; the ISP's extra addresses are
// a web server (lab.ISPWWWA, lab.ISPWWWAAAA) and a target that only the
// spoofing test sends to.
const (
	fwLANNet     = "192.168.42.1/24"
	fwLANIP      = "192.168.42.1"
	fwLANSubnet  = "192.168.42.0/24"
	fwClient4    = "192.168.42.10"
	fwSpoofDst4  = "10.77.0.99"
	fwSpoofDst6  = "fd00:77::99"
	fwSpoofSrc4  = "10.99.0.5"  // not in any LAN prefix
	fwSpoofSrc6  = "fd00:99::5" // not in any LAN prefix
	fwEchoPort   = 2222         // the ISP's echo server, for a long-lived session
	fwPinhole    = 8000         // the LAN host's IPv6-only port the pinhole opens
	fwFaultEnv   = "HOMEROUTER_FIREWALL_FAULT"
	fwOwnTable   = "table inet homerouter"
	fwISPBody    = "the ISP's web server"
	fwLANBody    = "the LAN host's web server"
	fwHoleBody   = "the LAN host's pinholed server"
	fwNoAnswer   = 2 * time.Second // how long a probe waits for an answer that must not come
	fwAnswerWait = 5 * time.Second // how long a probe waits for an answer that must come
	// fwSettle bounds the wait for what must work: the firewall applies
	// what the router learns (an address, a prefix, a reload) moments
	// after it shows.
	fwSettle = 15 * time.Second
)

// fwForward is the port forward the firewall lab starts with.
var fwForward = state.Forwarding{Proto: "tcp", Port: "8080", DestAddr: fwClient4, DestPort: "80"}

// fwHome is the home topology as the firewall tests use it: the router
// with lan0 at 192.168.42.1/24, a static lease for the LAN client and
// port forwards; web servers on the ISP side and on the LAN client, which
// has 192.168.42.10 from the router's DHCP server, <prefix>::10 in
// lan0's delegated /64 (a fixed address for the pinhole) and its IPv6
// default route from the router's advertisements.
type fwHome struct {
	*lab.Home
	l   *lab.Lab
	bin string

	ISPWeb4, ISPWeb6 *lab.WebServer
	LANWeb4, LANWeb6 *lab.WebServer
	// LANHole6 listens on fwPinhole, for the IPv6 pinhole.
	LANHole6 *lab.WebServer

	// Found once the router has its leases.
	Uplink4   netip.Addr   // uplink0's DHCPv4 address
	Uplink6   []netip.Addr // uplink0's global IPv6 addresses
	UplinkLL  netip.Addr   // uplink0's link-local address
	LAN6      netip.Prefix // lan0's address in the delegated prefix (<prefix>::1/64)
	LANLL     netip.Addr   // lan0's link-local address
	Delegated netip.Prefix // the delegated /56
	Client6   netip.Addr   // the LAN client's address in lan0's /64
}

// newFWHome builds the topology (ISP peers, no router yet), with
// portforwardings.json holding forwards, and starts the ISP's web servers.
func newFWHome(ctx context.Context, t *testing.T, l *lab.Lab, bin string, forwards ...state.Forwarding) *fwHome {
	t.Helper()
	perm := t.TempDir()
	files := map[string]string{
		"interfaces.json": `{"interfaces": [
  {"hardware_addr": "` + lab.RouterWANMAC + `", "name": "uplink0"},
  {"hardware_addr": "` + lab.RouterLANMAC + `", "name": "lan0", "addr": "` + fwLANNet + `"}
]}
`,
		"dhcp4d.json": `{"static_leases": [
  {"hardware_addr": "` + lab.LANMAC + `", "addr": "` + fwClient4 + `", "hostname": "web"}
]}
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(perm, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, err := lab.NewHome(l, lab.HomeOptions{PermDir: perm, NoRouter: true})
	if err != nil {
		t.Fatal(err)
	}
	f := &fwHome{Home: h, l: l, bin: bin}
	f.writeForwards(t, forwards...)
	for _, a := range []string{lab.ISPWWWA + "/24", fwSpoofDst4 + "/24", lab.ISPWWWAAAA + "/64", fwSpoofDst6 + "/64"} {
		if _, err := h.ISP.Run(ctx, "ip", "addr", "add", a, "dev", "isp0", "nodad"); err != nil {
			t.Fatal(err)
		}
	}
	if f.ISPWeb4, err = l.StartWebServer(ctx, h.ISP, netip.AddrPortFrom(netip.MustParseAddr(lab.ISPWWWA), 80), fwISPBody); err != nil {
		t.Fatal(err)
	}
	if f.ISPWeb6, err = l.StartWebServer(ctx, h.ISP, netip.AddrPortFrom(netip.MustParseAddr(lab.ISPWWWAAAA), 80), fwISPBody); err != nil {
		t.Fatal(err)
	}
	return f
}

// writeForwards replaces portforwardings.json; the router reads it at
// start and on SIGHUP.
func (f *fwHome) writeForwards(t *testing.T, forwards ...state.Forwarding) {
	t.Helper()
	v := state.PortForwardings{Forwardings: forwards}
	if v.Forwardings == nil {
		v.Forwardings = []state.Forwarding{}
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.PermDir, "portforwardings.json"), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reload rewrites portforwardings.json and sends SIGHUP.
func (f *fwHome) reload(t *testing.T, forwards ...state.Forwarding) {
	t.Helper()
	f.writeForwards(t, forwards...)
	if err := f.RouterProc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// startRouter starts the router with env added to its environment.
func (f *fwHome) startRouter(t *testing.T, env ...string) {
	t.Helper()
	var err error
	f.RouterProc, err = f.l.StartWith(f.Router, lab.StartOptions{Env: env}, f.bin, "run", "-perm", f.PermDir)
	if err != nil {
		t.Fatal(err)
	}
}

// waitUplink waits for the router's leases (uplink0's IPv4 and IPv6
// addresses, lan0's address in the delegated prefix) and gives the ISP
// the routes a real ISP has: the delegated /56 via the router's uplink
// (dhcpd -6 adds none) and, for the tests that try to reach the LAN from
// the internet, 192.168.42.0/24 via the router's uplink address.
func (f *fwHome) waitUplink(ctx context.Context, t *testing.T) {
	t.Helper()
	if err := f.Router.WaitLinkLocal(ctx, "uplink0"); err != nil {
		t.Fatal(err)
	}
	r := waitRouterAddrs(ctx, t, f.Home)
	f.Uplink4, f.Uplink6, f.UplinkLL, f.LAN6, f.LANLL = r.Uplink4, r.Uplink6, r.UplinkLL, r.LAN6, r.LANLL
	var err error
	f.Delegated, err = f.LAN6.Addr().Prefix(lab.ISPPDLen)
	if err != nil {
		t.Fatal(err)
	}
	b := netip.PrefixFrom(f.LAN6.Addr(), 64).Masked().Addr().As16()
	b[15] = 0x10
	f.Client6 = netip.AddrFrom16(b)
	t.Logf("uplink0 has %v, %v and %v; lan0 has %v of the delegated %v", f.Uplink4, f.Uplink6, f.UplinkLL, f.LAN6, f.Delegated)
	for _, args := range [][]string{
		{"-6", "route", "replace", f.Delegated.String(), "via", f.UplinkLL.String(), "dev", "isp0"},
		{"route", "replace", fwLANSubnet, "via", f.Uplink4.String(), "dev", "isp0"},
	} {
		if _, err := f.ISP.Run(ctx, "ip", args...); err != nil {
			t.Fatal(err)
		}
	}
}

// setUpClient gives the LAN client its static lease from the router's
// DHCP server (udhcpc, configured by hand: the lab's hook changes
// nothing), <prefix>::10/64 with lan0's address as the IPv6 default
// route, and starts its web servers.
func (f *fwHome) setUpClient(ctx context.Context, t *testing.T) {
	t.Helper()
	env, err := f.l.UDHCPC(ctx, f.LAN, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if env["ip"] != fwClient4 || env["router"] != fwLANIP {
		t.Fatalf("the LAN client got %s via %s from the router, want its static lease %s via %s", env["ip"], env["router"], fwClient4, fwLANIP)
	}
	for _, args := range [][]string{
		{"addr", "add", fwClient4 + "/24", "dev", "eth0"},
		{"route", "add", "default", "via", fwLANIP},
		{"-6", "addr", "add", netip.PrefixFrom(f.Client6, 64).String(), "dev", "eth0", "nodad"},
	} {
		if _, err := f.LAN.Run(ctx, "ip", args...); err != nil {
			t.Fatal(err)
		}
	}
	waitDefaultRoute6(ctx, t, f.LAN, f.LANLL)
	if f.LANWeb4, err = f.l.StartWebServer(ctx, f.LAN, netip.AddrPortFrom(netip.MustParseAddr(fwClient4), 80), fwLANBody); err != nil {
		t.Fatal(err)
	}
	if f.LANWeb6, err = f.l.StartWebServer(ctx, f.LAN, netip.AddrPortFrom(f.Client6, 80), fwLANBody); err != nil {
		t.Fatal(err)
	}
	if f.LANHole6, err = f.l.StartWebServer(ctx, f.LAN, netip.AddrPortFrom(f.Client6, fwPinhole), fwHoleBody); err != nil {
		t.Fatal(err)
	}
}

// waitRuleset waits until the router namespace has the firewall's table
// and returns the whole ruleset.
func (f *fwHome) waitRuleset(ctx context.Context, t *testing.T) string {
	t.Helper()
	var rs string
	if err := lab.WaitFor(ctx, fwOwnTable+" in the router namespace", func() error {
		var err error
		if rs, err = f.Router.Ruleset(ctx); err != nil {
			return err
		}
		if !strings.Contains(rs, fwOwnTable+" {") {
			return fmt.Errorf("ruleset:\n%s", rs)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return rs
}

// health fetches /health.json in the router namespace.
func (f *fwHome) health(ctx context.Context, t *testing.T) (int, httpd.Health, string) {
	t.Helper()
	code, body, err := f.RouterHealth(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var h httpd.Health
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("/health.json: %v\n%s", err, body)
	}
	return code, h, body
}

// get waits (up to fwSettle) until url, fetched from n, answers with
// want.
func get(ctx context.Context, t *testing.T, n *lab.Netns, url, want string, curlArgs ...string) {
	t.Helper()
	if err := settle(ctx, fmt.Sprintf("GET %s from %s to give %q", url, n.Role(), want), func(ctx context.Context) error {
		body, err := n.HTTPGet(ctx, url, fwAnswerWait, curlArgs...)
		if err != nil {
			return err
		}
		if strings.TrimSpace(body) != want {
			return fmt.Errorf("got %q", body)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// settle waits up to fwSettle for cond.
func settle(ctx context.Context, what string, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, fwSettle)
	defer cancel()
	return lab.WaitFor(ctx, what, func() error { return cond(ctx) })
}

// noAnswer checks that url gets no answer at all from n: a timeout, not a
// refusal (which would mean the packet got through and something said
// no).
func noAnswer(ctx context.Context, t *testing.T, n *lab.Netns, url string) {
	t.Helper()
	body, err := n.HTTPGet(ctx, url, fwNoAnswer)
	var ce *lab.CurlError
	if !errors.As(err, &ce) || !ce.TimedOut() {
		t.Errorf("GET %s from %s: %q, %v; want no answer (a timeout)", url, n.Role(), body, err)
	}
}

// probeNoAnswer runs the noAnswer checks in parallel subtests, one per
// URL, so that their timeouts overlap.
func probeNoAnswer(ctx context.Context, t *testing.T, n *lab.Netns, urls ...string) {
	t.Helper()
	for _, u := range urls {
		t.Run(u, func(t *testing.T) {
			t.Parallel()
			noAnswer(ctx, t, n, u)
		})
	}
}

// forwarding reads the forwarding settings of the router namespace.
func (f *fwHome) forwarding(ctx context.Context, t *testing.T) (v4, v6 string) {
	t.Helper()
	var err error
	if v4, err = f.Router.Sysctl(ctx, "net.ipv4.ip_forward"); err != nil {
		t.Fatal(err)
	}
	if v6, err = f.Router.Sysctl(ctx, "net.ipv6.conf.all.forwarding"); err != nil {
		t.Fatal(err)
	}
	return v4, v6
}

// logOnFailure logs, when t failed, what the lead needs to see: the
// ruleset, the forwarding settings and /health.json of the router.
func (f *fwHome) logOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rs, err := f.Router.Ruleset(ctx)
		t.Logf("nft list ruleset in the router namespace (%v):\n%s", err, rs)
		v4, err4 := f.Router.Sysctl(ctx, "net.ipv4.ip_forward")
		v6, err6 := f.Router.Sysctl(ctx, "net.ipv6.conf.all.forwarding")
		t.Logf("router forwarding: ipv4 %q (%v), ipv6 %q (%v)", v4, err4, v6, err6)
		code, body, err := f.RouterHealth(ctx, "")
		t.Logf("router /health.json: %d %v\n%s", code, err, body)
	})
}

// TestFirewallLab runs the real router between the lab's ISP and a LAN
// host with web servers on both sides, and checks the firewall's policy
// from outside: what gets through, what gets no answer, NAT, port
// forwards with hairpin, an IPv6 pinhole, a reload that swaps forwards
// under an open session, anti-spoofing, other tables left alone, MSS
// clamping, and the flowtable notice of this kernel.
func TestFirewallLab(t *testing.T) {
	bin := lab.RouterBinary(t)
	lab.Require(t, "nft", "busybox", "curl", "dig", "tcpdump", "udhcpc", "dnsmasq", "dhcpd", "radvd", "ss", "sysctl")
	l := lab.NewT(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	f := newFWHome(ctx, t, l, bin, fwForward)
	f.logOnFailure(t)
	// Someone else's table, there before the router starts (a container
	// engine, a user's own rules).
	if _, err := f.Router.NFT(ctx, "add table inet other; add chain inet other c; add rule inet other c counter"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartEchoServer(ctx, f.ISP, fwEchoPort); err != nil {
		t.Fatal(err)
	}
	f.startRouter(t)
	f.waitUplink(ctx, t)
	f.setUpClient(ctx, t)
	rs := f.waitRuleset(ctx, t)
	inForce := time.Now()
	// ... and one added while the router runs.
	if _, err := f.Router.NFT(ctx, "add table ip later; add chain ip later lc { type filter hook forward priority 10; policy accept; }"); err != nil {
		t.Fatal(err)
	}
	// at is a URL on the uplink's IPv4 address.
	at := func(port uint16, path string) string {
		return lab.URL(netip.AddrPortFrom(f.Uplink4, port), path)
	}

	t.Run("the ruleset: MSS clamping, no flowtable on this kernel, the other table kept", func(t *testing.T) {
		if !strings.Contains(rs, "maxseg size set rt mtu") {
			t.Errorf("no MSS clamping (tcp option maxseg size set rt mtu) in the ruleset:\n%s", rs)
		}
		if strings.Contains(rs, "flowtable") {
			t.Errorf("a flowtable on a kernel without CONFIG_NF_FLOW_TABLE:\n%s", rs)
		}
		for _, want := range []string{"table inet other {", "chain c {"} {
			if !strings.Contains(rs, want) {
				t.Errorf("the start removed %q from the ruleset:\n%s", want, rs)
			}
		}
	})

	t.Run("forwarding is on with the ruleset in force", func(t *testing.T) {
		if err := settle(ctx, "forwarding on (ipv4 and ipv6)", func(context.Context) error {
			if v4, v6 := f.forwarding(ctx, t); v4 != "1" || v6 != "1" {
				return fmt.Errorf("ipv4 %s, ipv6 %s", v4, v6)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	})

	t.Run("health is 200 with a flowtable notice", func(t *testing.T) {
		var code int
		var body string
		var notice string
		err := settle(ctx, "the firewall's notice on /health.json", func(context.Context) error {
			var h httpd.Health
			code, h, body = f.health(ctx, t)
			notice = ""
			for _, c := range h.Checks.Children {
				if c.Name == "firewall" {
					notice = c.Notice
				}
			}
			// The diagnostics pass a moment after the uplink's lease.
			if notice == "" || code != 200 {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(notice, "flowtable") {
			t.Errorf("the firewall's notice %q does not mention the flowtable", notice)
		}
		if code != 200 {
			t.Errorf("/health.json is %d, want 200 (a notice is not a failure):\n%s", code, body)
		}
	})

	t.Run("the LAN reaches the router", func(t *testing.T) {
		for _, u := range []string{"http://" + fwLANIP + "/health.json", lab.URL(netip.AddrPortFrom(f.LAN6.Addr(), 80), "/health.json")} {
			if _, err := f.LAN.HTTPGet(ctx, u, fwAnswerWait); err != nil {
				var ce *lab.CurlError
				// 503 is an answer too.
				if !errors.As(err, &ce) || ce.Exit != 22 {
					t.Errorf("GET %s from the LAN: %v", u, err)
				}
			}
		}
	})

	t.Run("LAN to ISP over IPv4 is masqueraded", func(t *testing.T) {
		get(ctx, t, f.LAN, f.ISPWeb4.URL("/"), fwISPBody)
		get(ctx, t, f.LAN, f.ISPWeb4.URL(lab.RemotePath), f.Uplink4.String())
	})

	t.Run("LAN to ISP over IPv6 is routed from the delegated prefix", func(t *testing.T) {
		// From the host's fixed address: it also has addresses of its
		// own making (SLAAC) in the /64, and which one the kernel picks
		// is its business.
		from := []string{"--interface", f.Client6.String()}
		get(ctx, t, f.LAN, f.ISPWeb6.URL("/"), fwISPBody, from...)
		get(ctx, t, f.LAN, f.ISPWeb6.URL(lab.RemotePath), "["+f.Client6.String()+"]", from...)
	})

	t.Run("the ISP cannot reach the LAN host", func(t *testing.T) {
		probeNoAnswer(ctx, t, f.ISP,
			f.LANWeb4.URL("/"),  // via the ISP's route for 192.168.42.0/24
			f.LANWeb6.URL("/"),  // via the ISP's route for the delegated prefix
			f.LANHole6.URL("/"), // not opened yet
		)
	})

	t.Run("the ISP gets no answer from the uplink's ports", func(t *testing.T) {
		addrs := append([]netip.Addr{f.Uplink4}, f.Uplink6...)
		// A control: echo is allowed (rate-limited), so each address is
		// reachable (and the ISP knows its neighbour: a refusal below
		// would come at once) and the silence below is the firewall's.
		for _, a := range addrs {
			if out, err := f.ISP.Run(ctx, "busybox", "ping", "-c", "1", "-W", "3", a.String()); err != nil {
				t.Errorf("ping %v from the ISP: %v\n%s", a, err, out)
			}
		}
		var urls []string
		for _, a := range addrs {
			for _, port := range []uint16{22, 53, 80} {
				urls = append(urls, lab.URL(netip.AddrPortFrom(a, port), "/"))
			}
		}
		probeNoAnswer(ctx, t, f.ISP, urls...)
		for _, a := range addrs {
			t.Run("udp "+netip.AddrPortFrom(a, 53).String(), func(t *testing.T) {
				t.Parallel()
				out, _ := f.ISP.Run(ctx, "dig", "@"+a.String(), "+timeout=2", "+tries=1", "+notcp", "isp.test")
				if !strings.Contains(out, "timed out") || strings.Contains(out, "refused") || strings.Contains(out, "status:") {
					t.Errorf("dig @%v from the ISP, want no answer (timed out):\n%s", a, out)
				}
			})
		}
	})

	t.Run("port forward 8080 from the ISP", func(t *testing.T) {
		get(ctx, t, f.ISP, at(8080, "/"), fwLANBody)
		if body, err := f.ISP.HTTPGet(ctx, at(8080, lab.RemotePath), fwAnswerWait); err == nil {
			t.Logf("the LAN host saw the forwarded connection from %s", strings.TrimSpace(body))
		}
		// Only the router's own address forwards the port: 8080 of
		// another address the ISP routes to the uplink is not NATed.
		probeNoAnswer(ctx, t, f.ISP, lab.URL(netip.MustParseAddrPort("192.168.42.99:8080"), "/"))
	})

	t.Run("port forward 8080 from the LAN (hairpin)", func(t *testing.T) {
		get(ctx, t, f.LAN, at(8080, "/"), fwLANBody)
	})

	t.Run("an IPv6 pinhole opens one port of one LAN host", func(t *testing.T) {
		hole := state.Forwarding{Proto: "tcp", Port: fmt.Sprint(fwPinhole), DestAddr: f.Client6.String(), DestPort: fmt.Sprint(fwPinhole)}
		f.reload(t, fwForward, hole)
		get(ctx, t, f.ISP, f.LANHole6.URL("/"), fwHoleBody)
		// No NAT: the LAN host sees the ISP's own address.
		if body, err := f.ISP.HTTPGet(ctx, f.LANHole6.URL(lab.RemotePath), fwAnswerWait); err != nil {
			t.Error(err)
		} else if a, err := netip.ParseAddr(strings.Trim(strings.TrimSpace(body), "[]")); err != nil || !netip.MustParsePrefix(lab.ISPPrefix6).Contains(a) || slices.Contains(f.Uplink6, a) {
			t.Errorf("through the pinhole the LAN host saw the connection from %q, want one of the ISP's addresses", body)
		}
		probeNoAnswer(ctx, t, f.ISP, f.LANWeb6.URL("/"), f.LANWeb4.URL("/"))
		get(ctx, t, f.ISP, at(8080, "/"), fwLANBody)
	})

	t.Run("SIGHUP swaps 8080 for 8081 and keeps open sessions", func(t *testing.T) {
		s4, err := l.Dial(ctx, f.LAN, netip.AddrPortFrom(f.ISPWeb4.Addr.Addr(), fwEchoPort))
		if err != nil {
			t.Fatal(err)
		}
		s6, err := l.Dial(ctx, f.LAN, netip.AddrPortFrom(f.ISPWeb6.Addr.Addr(), fwEchoPort))
		if err != nil {
			t.Fatal(err)
		}
		f.reload(t, state.Forwarding{Proto: "tcp", Port: "8081", DestAddr: fwClient4, DestPort: "80"})
		get(ctx, t, f.ISP, at(8081, "/"), fwLANBody)
		get(ctx, t, f.LAN, at(8081, "/"), fwLANBody)
		probeNoAnswer(ctx, t, f.ISP, at(8080, "/"), f.LANHole6.URL("/"))
		for _, s := range []*lab.Session{s4, s6} {
			if err := s.Echo(ctx); err != nil {
				t.Errorf("the session %s after the reload: %v", s, err)
			}
			select {
			case <-s.Exited():
				t.Errorf("the session %s ended: %v\n%s", s, s.Err(), s.Output())
			default:
			}
		}
		if err := f.WaitRouterHealthy(ctx, ""); err != nil {
			t.Error(err)
		}
	})

	t.Run("other tables survive the start and a reload", func(t *testing.T) {
		// The reload above replaced the firewall's table.
		rs, err := f.Router.Ruleset(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"table inet other {", "chain c {", "table ip later {", "chain lc {", fwOwnTable + " {"} {
			if !strings.Contains(rs, want) {
				t.Errorf("no %q in the ruleset:\n%s", want, rs)
			}
		}
	})

	t.Run("a table flushed by someone else comes back", func(t *testing.T) {
		// nft flush ruleset, say: without the table the router would
		// forward with no filter and no NAT.
		if _, err := f.Router.NFT(ctx, "delete", "table", "inet", "homerouter"); err != nil {
			t.Fatal(err)
		}
		if err := lab.WaitFor(ctx, "the firewall's table back", func() error {
			rs, err := f.Router.Ruleset(ctx)
			if err != nil {
				return err
			}
			if !strings.Contains(rs, fwOwnTable+" {") || !strings.Contains(rs, "masquerade") {
				return errors.New("not yet")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		get(ctx, t, f.LAN, f.ISPWeb4.URL(lab.RemotePath), f.Uplink4.String())
	})

	t.Run("a LAN packet with a spoofed source is not forwarded", func(t *testing.T) {
		for _, a := range []string{fwSpoofSrc4 + "/32", fwSpoofSrc6 + "/128"} {
			if _, err := f.LAN.Run(ctx, "ip", "addr", "add", a, "dev", "eth0", "nodad"); err != nil {
				t.Fatal(err)
			}
		}
		// Every TCP packet to the spoofing targets, as the ISP sees it.
		dump, err := l.Start(f.ISP, "tcpdump", "-i", "isp0", "-l", "-nn",
			"tcp and (dst host "+fwSpoofDst4+" or dst host "+fwSpoofDst6+")")
		if err != nil {
			t.Fatal(err)
		}
		if err := dump.WaitOutput(ctx, "listening on isp0"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ src, own, dst string }{
			{fwSpoofSrc4, fwClient4, fwSpoofDst4},
			{fwSpoofSrc6, f.Client6.String(), fwSpoofDst6},
		} {
			dst := netip.MustParseAddr(c.dst)
			// Port 81 from the spoofed source: whatever the LAN host sees,
			// the ISP must not see it. Then port 82 from the host's own
			// address: the ISP refuses it (an answer), so the packet got
			// there, after the spoofed one would have.
			f.LAN.HTTPGet(ctx, lab.URL(netip.AddrPortFrom(dst, 81), "/"), time.Second, "--interface", c.src)
			_, err := f.LAN.HTTPGet(ctx, lab.URL(netip.AddrPortFrom(dst, 82), "/"), fwAnswerWait, "--interface", c.own)
			var ce *lab.CurlError
			if !errors.As(err, &ce) || ce.Exit != 7 {
				t.Errorf("GET %v:82 from the LAN host's own address: %v, want refused by the ISP", dst, err)
			}
			marker := fmt.Sprintf("> %s.82:", dst)
			if err := dump.WaitOutput(ctx, marker); err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(dump.Output(), "\n") {
				if strings.Contains(line, fmt.Sprintf("> %s.81:", dst)) {
					t.Errorf("the ISP saw the packet from the spoofed source %s: %s", c.src, line)
				}
			}
		}
	})

	t.Run("the uplink's DHCP renewals pass the firewall", func(t *testing.T) {
		// dnsmasq's leases are 2 minutes (T1 at 1), dhcpd -6's T1 is 20 s.
		for _, c := range []struct {
			file  string
			acked func([]byte) (time.Time, error)
		}{
			{"dhcp4-lease.json", func(b []byte) (time.Time, error) {
				var v state.DHCPv4Lease
				err := json.Unmarshal(b, &v)
				return v.Acked, err
			}},
			{"dhcp6-lease.json", func(b []byte) (time.Time, error) {
				var v state.DHCPv6Lease
				err := json.Unmarshal(b, &v)
				return v.Acked, err
			}},
		} {
			if err := lab.WaitFor(ctx, "a renewal in "+c.file+" after the ruleset was in force", func() error {
				b, err := os.ReadFile(filepath.Join(f.PermDir, c.file))
				if err != nil {
					return err
				}
				acked, err := c.acked(b)
				if err != nil {
					return err
				}
				if !acked.After(inForce) {
					return fmt.Errorf("acked %v, the ruleset in force since %v", acked, inForce)
				}
				return nil
			}); err != nil {
				t.Error(err)
			}
		}
	})

	stopRouter(ctx, t, f.RouterProc)
}

// TestFirewallLabFailClosed starts the router with every ruleset failing
// to load (HOMEROUTER_FIREWALL_FAULT) in a namespace where forwarding was
// left on: forwarding goes off, no table of the firewall's is there,
// /health.json says why, and nothing from the LAN gets to the ISP. Then a
// start without the fault forwards, so the silence was the firewall's.
func TestFirewallLabFailClosed(t *testing.T) {
	bin := lab.RouterBinary(t)
	lab.Require(t, "nft", "busybox", "curl", "udhcpc", "dnsmasq", "dhcpd", "radvd", "ss", "sysctl")
	l := lab.NewT(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	f := newFWHome(ctx, t, l, bin, fwForward)
	f.logOnFailure(t)
	// As a previous router (or anything else) may have left it.
	for _, k := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		if err := f.Router.SetSysctl(ctx, k, "1"); err != nil {
			t.Fatal(err)
		}
	}
	const fault = "lab fault: the kernel refuses this ruleset"
	f.startRouter(t, fwFaultEnv+"="+fault)
	f.waitUplink(ctx, t)
	f.setUpClient(ctx, t)

	t.Run("health.json is 503 naming the firewall and the fault", func(t *testing.T) {
		if err := lab.WaitFor(ctx, "the fault on /health.json", func() error {
			code, h, _ := f.health(ctx, t)
			if code != 503 || !strings.Contains(h.FirstError, "homerouter/services/firewall:") || !strings.Contains(h.FirstError, fault) {
				return fmt.Errorf("%d, first_error %q", code, h.FirstError)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("forwarding is off", func(t *testing.T) {
		if v4, v6 := f.forwarding(ctx, t); v4 != "0" || v6 != "0" {
			t.Errorf("forwarding: ipv4 %s, ipv6 %s; want 0 and 0", v4, v6)
		}
	})

	t.Run("no table of the firewall's", func(t *testing.T) {
		rs, err := f.Router.Ruleset(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(rs, fwOwnTable) {
			t.Errorf("%s is there although every apply fails:\n%s", fwOwnTable, rs)
		}
	})

	t.Run("the LAN host cannot reach the ISP", func(t *testing.T) {
		for _, w := range []*lab.WebServer{f.ISPWeb4, f.ISPWeb6} {
			if body, err := f.LAN.HTTPGet(ctx, w.URL("/"), fwNoAnswer); err == nil {
				t.Errorf("GET %s from the LAN: %q, want no connection", w.URL("/"), body)
			}
			if out := w.Output(); strings.Contains(out, "url:") {
				t.Errorf("the ISP's web server on %v got a request:\n%s", w.Addr, out)
			}
		}
	})

	t.Run("later: still reported, still off", func(t *testing.T) {
		// The retries fail as well, and never forward.
		code, h, _ := f.health(ctx, t)
		if code != 503 || !strings.Contains(h.FirstError, fault) {
			t.Errorf("/health.json %d, first_error %q; want 503 with the fault", code, h.FirstError)
		}
		if v4, v6 := f.forwarding(ctx, t); v4 != "0" || v6 != "0" {
			t.Errorf("forwarding: ipv4 %s, ipv6 %s; want 0 and 0", v4, v6)
		}
	})

	t.Run("without the fault the same router forwards", func(t *testing.T) {
		stopRouter(ctx, t, f.RouterProc)
		f.startRouter(t)
		f.waitRuleset(ctx, t)
		if err := settle(ctx, "forwarding on", func(context.Context) error {
			if v4, v6 := f.forwarding(ctx, t); v4 != "1" || v6 != "1" {
				return fmt.Errorf("ipv4 %s, ipv6 %s", v4, v6)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := f.WaitRouterHealthy(ctx, ""); err != nil {
			t.Error(err)
		}
		get(ctx, t, f.LAN, f.ISPWeb4.URL("/"), fwISPBody)
		get(ctx, t, f.LAN, f.ISPWeb6.URL("/"), fwISPBody)
	})
	stopRouter(ctx, t, f.RouterProc)
}
