package netconfig

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
	"github.com/homerouter/homerouter/state"
)

// This file is the lab test: it runs netconfig against a real kernel, in a
// network namespace of its own. The test process never switches
// namespaces; it runs itself again under `ip netns exec`, and the child
// (TestInNamespace) does the work.

// insideEnv tells the re-executed test binary that it runs inside the
// namespace the parent made; its value is the namespace's name.
const insideEnv = "HOMEROUTER_NETCONFIG_NETNS"

func TestMain(m *testing.M) {
	// TestInNamespace is the child half of TestNetconfigLab; outside the
	// namespace it has nothing to do, so it is not run (rather than
	// reported as skipped).
	flag.Parse()
	if os.Getenv(insideEnv) == "" {
		skip := "^TestInNamespace$"
		if given := flag.Lookup("test.skip").Value.String(); given != "" {
			skip = given + "|" + skip
		}
		flag.Set("test.skip", skip)
	}
	os.Exit(m.Run())
}

// TestNetconfigLab runs TestInNamespace in a fresh network namespace.
func TestNetconfigLab(t *testing.T) {
	const test = "TestInNamespace"
	l := lab.NewT(t)
	ns, err := l.Netns("nc")
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := ns.Command(ctx, exe, "-test.run", "^"+test+"$", "-test.v", "-test.count=1", "-test.timeout=90s")
	cmd.Env = append(os.Environ(), insideEnv+"="+ns.Name())
	out, err := cmd.CombinedOutput()
	t.Logf("output of %s in namespace %s:\n%s", test, ns.Name(), out)
	if err != nil {
		t.Fatalf("%s in namespace %s: %v", test, ns.Name(), err)
	}
	if !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("%s did not pass in namespace %s", test, ns.Name())
	}
}

// child holds helpers for the child, which runs inside the namespace.
type child struct{ t *testing.T }

func (l child) ip(args ...string) string {
	l.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (l child) ipJSON(v any, args ...string) {
	l.t.Helper()
	if err := json.Unmarshal([]byte(l.ip(append([]string{"-j"}, args...)...)), v); err != nil {
		l.t.Fatalf("ip -j %s: %v", strings.Join(args, " "), err)
	}
}

// ipLink is what the tests read of `ip -j link`.
type ipLink struct {
	Name    string   `json:"ifname"`
	Address string   `json:"address"`
	MTU     int      `json:"mtu"`
	Flags   []string `json:"flags"`
}

func (l ipLink) up() bool { return slices.Contains(l.Flags, "UP") }

// link returns the link called name, if there is one.
func (l child) link(name string) (ipLink, bool) {
	l.t.Helper()
	var links []ipLink
	l.ipJSON(&links, "link", "show")
	for _, k := range links {
		if k.Name == name {
			return k, true
		}
	}
	return ipLink{}, false
}

func (l child) mustLink(name string) ipLink {
	l.t.Helper()
	k, ok := l.link(name)
	if !ok {
		l.t.Fatalf("no link %s", name)
	}
	return k
}

// addrs returns the addresses of the link as "addr/len".
func (l child) addrs(name string) []string {
	l.t.Helper()
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	l.ipJSON(&links, "addr", "show", "dev", name)
	var out []string
	for _, k := range links {
		for _, a := range k.AddrInfo {
			out = append(out, fmt.Sprintf("%s/%d", a.Local, a.PrefixLen))
		}
	}
	return out
}

// routes returns the routes with netconfig's protocol, like `ip route`
// prints them: "DST [via GW] dev DEV".
func (l child) routes() []string {
	l.t.Helper()
	var out []string
	for _, family := range []string{"-4", "-6"} {
		var rs []struct {
			Dst     string `json:"dst"`
			Gateway string `json:"gateway"`
			Dev     string `json:"dev"`
		}
		l.ipJSON(&rs, family, "route", "show", "table", "main", "proto", fmt.Sprint(Protocol))
		for _, r := range rs {
			s := r.Dst
			if r.Gateway != "" {
				s += " via " + r.Gateway
			}
			out = append(out, s+" dev "+r.Dev)
		}
	}
	slices.Sort(out)
	return out
}

// dhcpRoutes returns uplink0's IPv4 routes in the main table with
// LeaseProtocol, as "DST [via GW] dev DEV [scope link] [src SRC]".
func (l child) dhcpRoutes() []string {
	l.t.Helper()
	var rs []struct {
		Dst     string `json:"dst"`
		Gateway string `json:"gateway"`
		Dev     string `json:"dev"`
		Scope   string `json:"scope"`
		Src     string `json:"prefsrc"`
	}
	l.ipJSON(&rs, "-4", "route", "show", "table", "main", "proto", fmt.Sprint(LeaseProtocol))
	var out []string
	for _, r := range rs {
		if r.Dev != state.Uplink {
			continue
		}
		s := r.Dst
		if r.Gateway != "" {
			s += " via " + r.Gateway
		}
		s += " dev " + r.Dev
		if r.Scope != "" && r.Scope != "global" {
			s += " scope " + r.Scope
		}
		if r.Src != "" {
			s += " src " + r.Src
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func (l child) wantDHCPRoutes(want ...string) {
	l.t.Helper()
	slices.Sort(want)
	if got := l.dhcpRoutes(); !slices.Equal(got, want) {
		l.t.Errorf("routes with protocol dhcp:\n got %q\nwant %q", got, want)
	}
}

// addrs6 returns the IPv6 addresses of the link that are not link-local,
// sorted, as "addr/len", followed by " nodad" when the address has that
// flag. (Whether DAD is still running on the others depends on timing.)
func (l child) addrs6(name string) []string {
	l.t.Helper()
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
			Scope     string `json:"scope"`
			NoDAD     bool   `json:"nodad"`
		} `json:"addr_info"`
	}
	l.ipJSON(&links, "-6", "addr", "show", "dev", name)
	out := []string{}
	for _, k := range links {
		for _, a := range k.AddrInfo {
			if a.Scope == "link" {
				continue
			}
			s := fmt.Sprintf("%s/%d", a.Local, a.PrefixLen)
			if a.NoDAD {
				s += " nodad"
			}
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func (l child) wantAddrs6(name string, want ...string) {
	l.t.Helper()
	slices.Sort(want)
	if got := l.addrs6(name); !slices.Equal(got, want) {
		l.t.Errorf("IPv6 addresses of %s:\n got %q\nwant %q", name, got, want)
	}
}

// routes6 returns the IPv6 routes in the main table that `ip -6 route
// show` selects with filter, sorted, as "[TYPE ]DST [via GW] dev DEV
// [proto P]" (the type when it is not unicast, the protocol when the
// filter does not name it).
func (l child) routes6(filter ...string) []string {
	l.t.Helper()
	var rs []struct {
		Type     string `json:"type"`
		Dst      string `json:"dst"`
		Gateway  string `json:"gateway"`
		Dev      string `json:"dev"`
		Protocol string `json:"protocol"`
	}
	l.ipJSON(&rs, append([]string{"-6", "route", "show", "table", "main"}, filter...)...)
	out := []string{}
	for _, r := range rs {
		s := r.Dst
		if r.Type != "" && r.Type != "unicast" {
			s = r.Type + " " + s
		}
		if r.Gateway != "" {
			s += " via " + r.Gateway
		}
		s += " dev " + r.Dev
		if r.Protocol != "" {
			s += " proto " + r.Protocol
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func (l child) wantRoutes6(filter []string, want ...string) {
	l.t.Helper()
	if want == nil {
		want = []string{}
	}
	slices.Sort(want)
	if got := l.routes6(filter...); !slices.Equal(got, want) {
		l.t.Errorf("ip -6 route show %s:\n got %q\nwant %q", strings.Join(filter, " "), got, want)
	}
}

// broadcasts returns the IPv4 addresses of the link as "addr/len brd B"
// (or "addr/len" without a broadcast address).
func (l child) broadcasts(name string) []string {
	l.t.Helper()
	var links []struct {
		AddrInfo []struct {
			Family    string `json:"family"`
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
			Broadcast string `json:"broadcast"`
		} `json:"addr_info"`
	}
	l.ipJSON(&links, "addr", "show", "dev", name)
	var out []string
	for _, k := range links {
		for _, a := range k.AddrInfo {
			if a.Family != "inet" {
				continue
			}
			s := fmt.Sprintf("%s/%d", a.Local, a.PrefixLen)
			if a.Broadcast != "" {
				s += " brd " + a.Broadcast
			}
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func (l child) wantBroadcasts(name string, want ...string) {
	l.t.Helper()
	slices.Sort(want)
	if got := l.broadcasts(name); !slices.Equal(got, want) {
		l.t.Errorf("IPv4 addresses of %s:\n got %q\nwant %q", name, got, want)
	}
}

func (l child) sysctl(key string) string {
	l.t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/")))
	if err != nil {
		l.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// waitFor polls cond, which reads the kernel's state, until it holds.
func (l child) waitFor(what string, cond func() bool) {
	l.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			l.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l child) wantAddrs(name string, present, absent []string) {
	l.t.Helper()
	got := l.addrs(name)
	for _, a := range present {
		if !slices.Contains(got, a) {
			l.t.Errorf("%s lacks %s; has %v", name, a, got)
		}
	}
	for _, a := range absent {
		if slices.Contains(got, a) {
			l.t.Errorf("%s still has %s; has %v", name, a, got)
		}
	}
}

func (l child) wantRoutes(want ...string) {
	l.t.Helper()
	slices.Sort(want)
	if got := l.routes(); !slices.Equal(got, want) {
		l.t.Errorf("routes with protocol %d:\n got %q\nwant %q", Protocol, got, want)
	}
}

// applyOK applies cfg with the leases and dhcp6.json published on n's
// Store, as Run does, and fails the test on an error; wantChange says whether the apply
// is expected to change something.
func applyOK(t *testing.T, n *Netconfig, cfg state.Interfaces, wantChange bool) []state.Link {
	t.Helper()
	changes, links, err := n.Apply(context.Background(), cfg, n.Inputs())
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	t.Logf("Apply changes: %q", changes)
	if wantChange && len(changes) == 0 {
		t.Errorf("Apply changed nothing")
	}
	if !wantChange && len(changes) > 0 {
		t.Errorf("Apply of an applied config changed %q, want nothing", changes)
	}
	return links
}

func baseConfig() state.Interfaces {
	return state.Interfaces{Interfaces: []state.Interface{
		{HardwareAddr: "02:77:00:00:00:01", SpoofHardwareAddr: "02:77:00:00:01:01", Name: state.Uplink, MTU: 1400},
		{
			HardwareAddr: "02:77:00:00:00:02",
			Name:         state.LAN,
			Addr:         "10.42.0.1/24",
			ExtraAddrs:   []string{"fd00:42::1/64"},
			ExtraRoutes: []state.Route{
				{Destination: "10.10.0.0/16", Gateway: "10.42.0.254"},
				{Destination: "10.11.0.0/16"},
				{Destination: "fd00:10::/48", Gateway: "fd00:42::fe"},
			},
		},
	}}
}

// TestInNamespace is the body of TestNetconfigLab. It runs only inside
// the namespace that test makes, because it renames links.
func TestInNamespace(t *testing.T) {
	ns := os.Getenv(insideEnv)
	l := child{t}
	// Guard: a fresh namespace has only lo. Never touch another's links.
	var links []ipLink
	l.ipJSON(&links, "link", "show")
	if len(links) != 1 || links[0].Name != "lo" {
		t.Fatalf("%s=%s but this namespace has links %v; refusing to run", insideEnv, ns, links)
	}
	l.ip("link", "set", "lo", "up")
	l.ip("link", "add", "wan", "address", "02:77:00:00:00:01", "type", "veth", "peer", "name", "wanpeer")
	l.ip("link", "add", "lan", "address", "02:77:00:00:00:02", "type", "veth", "peer", "name", "lanpeer")
	l.ip("link", "set", "wanpeer", "up")
	l.ip("link", "set", "lanpeer", "up")
	// Left over from an earlier run of the router: an address the
	// config does not list, and a route with our protocol.
	l.ip("addr", "add", "10.99.0.1/24", "dev", "lan")
	l.ip("route", "add", "10.88.0.0/16", "dev", "wanpeer", "proto", fmt.Sprint(Protocol))
	// Not ours: a link-local and an address with a lifetime, as SLAAC
	// or a DHCPv6 client would make.
	l.ip("addr", "add", "fe80::42/64", "dev", "lan")
	l.ip("addr", "add", "fd00:99::5/64", "dev", "lan", "valid_lft", "3600", "preferred_lft", "3600")

	st := state.NewStore(t.TempDir())
	n := New(st, log.New(testWriter{t}, "netconfig: ", 0))
	cfg := baseConfig()

	t.Run("first apply", func(t *testing.T) {
		l := child{t}
		got := applyOK(t, n, cfg, true)
		up := l.mustLink(state.Uplink)
		if up.Address != "02:77:00:00:01:01" || up.MTU != 1400 || !up.up() {
			t.Errorf("uplink0 = %+v, want MAC 02:77:00:00:01:01, MTU 1400, up", up)
		}
		if lan := l.mustLink(state.LAN); !lan.up() {
			t.Errorf("lan0 is not up: %+v", lan)
		}
		for _, old := range []string{"wan", "lan"} {
			if _, ok := l.link(old); ok {
				t.Errorf("link %s was not renamed", old)
			}
		}
		l.wantAddrs(state.LAN, []string{"10.42.0.1/24", "fd00:42::1/64", "fe80::42/64", "fd00:99::5/64"}, []string{"10.99.0.1/24"})
		l.wantRoutes("10.10.0.0/16 via 10.42.0.254 dev lan0", "10.11.0.0/16 dev lan0", "fd00:10::/48 via fd00:42::fe dev lan0")
		// Forwarding is the firewall's: netconfig leaves it alone.
		for key, want := range map[string]string{
			"net.ipv4.ip_forward":             "0",
			"net.ipv6.conf.all.forwarding":    "0",
			"net.ipv6.conf.uplink0.accept_ra": "2",
		} {
			if got := l.sysctl(key); got != want {
				t.Errorf("%s = %s, want %s", key, got, want)
			}
		}
		if len(got) != 2 || got[0].Name != state.Uplink || got[1].Name != state.LAN {
			t.Fatalf("Apply returned links %+v, want uplink0 and lan0", got)
		}
		if !slices.Contains(got[1].Addrs, pfx("10.42.0.1/24")) {
			t.Errorf("lan0 as returned has %v, want 10.42.0.1/24 among them", got[1].Addrs)
		}
		if pub := st.Links.Value(); len(pub) != 2 || pub[1].Name != state.LAN {
			t.Errorf("st.Links = %+v, want uplink0 and lan0", pub)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("second apply changes nothing", func(t *testing.T) {
		applyOK(t, n, cfg, false)
		// Nor does a restarted router, which starts with no memory.
		applyOK(t, New(st, log.New(testWriter{t}, "netconfig: ", 0)), cfg, false)
	})

	t.Run("config change", func(t *testing.T) {
		l := child{t}
		l.ip("route", "add", "10.77.0.0/16", "dev", state.LAN) // someone else's
		cfg.Interfaces[1].Addr = "10.43.0.1/24"
		cfg.Interfaces[1].ExtraRoutes = cfg.Interfaces[1].ExtraRoutes[1:]
		applyOK(t, n, cfg, true)
		l.wantAddrs(state.LAN, []string{"10.43.0.1/24", "fd00:42::1/64", "fe80::42/64", "fd00:99::5/64"}, []string{"10.42.0.1/24"})
		l.wantRoutes("10.11.0.0/16 dev lan0", "fd00:10::/48 via fd00:42::fe dev lan0")
		if !strings.Contains(l.ip("route", "show", "10.77.0.0/16"), "dev lan0") {
			t.Error("the route 10.77.0.0/16 that netconfig did not make is gone")
		}
		applyOK(t, n, cfg, false)
	})

	t.Run("DHCPv4 lease", func(t *testing.T) {
		l := child{t}
		// Not ours: a dhcp route on another link (we own proto dhcp on
		// uplink0 only), and a static route on uplink0.
		l.ip("route", "add", "10.67.0.0/16", "dev", state.LAN, "proto", "dhcp")
		t.Cleanup(func() { exec.Command("ip", "route", "del", "10.67.0.0/16", "dev", state.LAN).Run() })
		lcfg := cfg
		lcfg.Interfaces = slices.Clone(cfg.Interfaces)
		lcfg.Interfaces[0].ExtraRoutes = []state.Route{{Destination: "10.12.0.0/16"}}
		extra := []string{"10.11.0.0/16 dev lan0", "fd00:10::/48 via fd00:42::fe dev lan0", "10.12.0.0/16 dev uplink0"}
		// survivors checks what netconfig must leave or keep whatever
		// the lease: its extra_routes and the routes of others.
		survivors := func(t *testing.T) {
			t.Helper()
			l := child{t}
			l.wantRoutes(extra...)
			for _, r := range [][]string{{"10.77.0.0/16", "dev lan0"}, {"10.67.0.0/16", "dev lan0 proto dhcp"}} {
				if got := l.ip("route", "show", r[0]); !strings.Contains(got, r[1]) {
					t.Errorf("foreign route %s %s is gone: %q", r[0], r[1], got)
				}
			}
		}
		ip := netip.MustParseAddr
		step := func(name string, lease state.DHCPv4Lease, check func(t *testing.T, l child)) {
			t.Run(name, func(t *testing.T) {
				st.DHCPv4Lease.Publish(lease)
				applyOK(t, n, lcfg, true)
				check(t, child{t})
				survivors(t)
				applyOK(t, n, lcfg, false)
			})
		}

		applyOK(t, n, lcfg, true) // the uplink's extra route
		step("first lease", state.DHCPv4Lease{Addr: pfx("10.77.0.150/24"), Router: ip("10.77.0.1")}, func(t *testing.T, l child) {
			l.wantBroadcasts(state.Uplink, "10.77.0.150/24 brd 10.77.0.255")
			l.wantDHCPRoutes("default via 10.77.0.1 dev uplink0 src 10.77.0.150")
		})
		step("the server's broadcast address", state.DHCPv4Lease{Addr: pfx("10.77.0.150/24"), Router: ip("10.77.0.1"), Broadcast: ip("10.77.0.127")}, func(t *testing.T, l child) {
			l.wantBroadcasts(state.Uplink, "10.77.0.150/24 brd 10.77.0.127")
			l.wantDHCPRoutes("default via 10.77.0.1 dev uplink0 src 10.77.0.150")
			// Added only now: changing the broadcast address removes
			// the only address for a moment, and with it every route
			// of uplink0 (netconfig puts back its own).
			l.ip("route", "add", "10.66.0.0/16", "dev", state.Uplink, "proto", "static")
		})
		step("new address and router", state.DHCPv4Lease{Addr: pfx("10.77.1.50/24"), Router: ip("10.77.1.1")}, func(t *testing.T, l child) {
			l.wantBroadcasts(state.Uplink, "10.77.1.50/24 brd 10.77.1.255")
			l.wantDHCPRoutes("default via 10.77.1.1 dev uplink0 src 10.77.1.50")
			if got := l.ip("route", "show", "10.66.0.0/16"); !strings.Contains(got, "dev uplink0 proto static") {
				t.Errorf("foreign route 10.66.0.0/16 on uplink0 is gone: %q", got)
			}
		})
		step("router off the subnet", state.DHCPv4Lease{Addr: pfx("10.77.0.150/32"), Router: ip("10.77.0.1")}, func(t *testing.T, l child) {
			l.wantBroadcasts(state.Uplink, "10.77.0.150/32")
			l.wantDHCPRoutes("10.77.0.1 dev uplink0 scope link src 10.77.0.150", "default via 10.77.0.1 dev uplink0 src 10.77.0.150")
			if got := l.ip("route", "get", "10.200.0.1"); !strings.Contains(got, "via 10.77.0.1 dev uplink0 src 10.77.0.150") {
				t.Errorf("ip route get 10.200.0.1 = %q, want via 10.77.0.1 dev uplink0 src 10.77.0.150", got)
			}
		})
		step("classless static routes", state.DHCPv4Lease{
			Addr:   pfx("10.77.0.150/24"),
			Router: ip("10.77.0.1"),
			Routes: []state.DHCPv4Route{
				{Destination: pfx("10.60.0.0/16"), Gateway: ip("10.77.0.2")},
				{Destination: pfx("10.61.0.0/16"), Gateway: ip("0.0.0.0")},
				{Destination: pfx("10.62.0.0/16"), Gateway: ip("10.78.0.1")},
			},
		}, func(t *testing.T, l child) {
			l.wantBroadcasts(state.Uplink, "10.77.0.150/24 brd 10.77.0.255")
			l.wantDHCPRoutes(
				"10.60.0.0/16 via 10.77.0.2 dev uplink0 src 10.77.0.150",
				"10.61.0.0/16 dev uplink0 scope link src 10.77.0.150",
				"10.78.0.1 dev uplink0 scope link src 10.77.0.150",
				"10.62.0.0/16 via 10.78.0.1 dev uplink0 src 10.77.0.150",
			)
		})
		step("no lease", state.DHCPv4Lease{}, func(t *testing.T, l child) {
			// The kernel flushed uplink0's routes with its last IPv4
			// address (the foreign 10.66.0.0/16 too); netconfig put
			// its extra route back.
			l.wantBroadcasts(state.Uplink)
			l.wantDHCPRoutes()
		})
		applyOK(t, n, cfg, true) // without the uplink's extra route again
	})
	if t.Failed() {
		return
	}

	t.Run("DHCPv6 lease", func(t *testing.T) {
		l := child{t}
		ip := netip.MustParseAddr
		// A DHCPv4 lease and extra_routes, which the DHCPv6 lease must
		// leave as they are.
		st.DHCPv4Lease.Publish(state.DHCPv4Lease{Addr: pfx("10.77.0.150/24"), Router: ip("10.77.0.1")})
		t.Cleanup(func() { st.DHCPv4Lease.Publish(state.DHCPv4Lease{}) })
		applyOK(t, n, cfg, true)
		// Not ours: the uplink's default route from the ISP's RAs, an
		// unreachable route of another protocol, and an IPv6 dhcp
		// route on lan0.
		l.ip("-6", "route", "add", "default", "via", "fe80::1", "dev", state.Uplink, "proto", "ra")
		l.ip("-6", "route", "add", "unreachable", "fd00:79::/48", "proto", "static")
		l.ip("-6", "route", "add", "fd00:66::/48", "dev", state.LAN, "proto", "dhcp")
		t.Cleanup(func() {
			exec.Command("ip", "-6", "route", "del", "default", "via", "fe80::1", "dev", state.Uplink).Run()
			exec.Command("ip", "-6", "route", "del", "unreachable", "fd00:79::/48").Run()
			exec.Command("ip", "-6", "route", "del", "fd00:66::/48", "dev", state.LAN).Run()
		})
		// survivors checks what no DHCPv6 lease changes.
		survivors := func(t *testing.T) {
			t.Helper()
			l := child{t}
			l.wantRoutes("10.11.0.0/16 dev lan0", "fd00:10::/48 via fd00:42::fe dev lan0")
			l.wantDHCPRoutes("default via 10.77.0.1 dev uplink0 src 10.77.0.150")
			l.wantBroadcasts(state.Uplink, "10.77.0.150/24 brd 10.77.0.255")
			l.wantRoutes6([]string{"default"}, "default via fe80::1 dev uplink0 proto ra")
			l.wantAddrs(state.LAN, []string{"10.43.0.1/24", "fd00:42::1/64", "fd00:99::5/64"}, nil)
		}
		step := func(name string, lease6 state.DHCPv6Lease, dhcp6 state.DHCPv6, check func(t *testing.T, l child)) {
			t.Run(name, func(t *testing.T) {
				st.DHCPv6Lease.Publish(lease6)
				st.DHCPv6.Publish(dhcp6)
				applyOK(t, n, cfg, true)
				check(t, child{t})
				survivors(t)
				applyOK(t, n, cfg, false)
				// Nor does a restarted router change anything.
				applyOK(t, New(st, log.New(testWriter{t}, "netconfig: ", 0)), cfg, false)
			})
		}
		lease6 := func(prefix, addr string) state.DHCPv6Lease {
			l := state.DHCPv6Lease{Prefixes: []state.DelegatedPrefix{{Prefix: pfx(prefix), Preferred: state.Duration(time.Hour), Valid: state.Duration(24 * time.Hour), Given: time.Now()}}}
			if addr != "" {
				l.Addr = &state.LeasedAddr{Addr: ip(addr), Preferred: state.Duration(time.Hour), Valid: state.Duration(24 * time.Hour), Given: time.Now()}
			}
			return l
		}

		step("prefix and IA_NA", lease6("fd00:78:0:100::/56", "fd00:77::1234"), state.DHCPv6{}, func(t *testing.T, l child) {
			// nodad: usable at once, never tentative.
			l.wantAddrs6(state.LAN, "fd00:42::1/64", "fd00:78:0:100::1/64 nodad", "fd00:99::5/64")
			if got := l.ip("-6", "addr", "show", "dev", state.LAN, "tentative"); strings.Contains(got, "fd00:78:") {
				t.Errorf("lan0's address from the prefix is tentative:\n%s", got)
			}
			l.wantAddrs6(state.Uplink, "fd00:77::1234/128")
			l.wantRoutes6([]string{"proto", "dhcp"}, "unreachable fd00:78:0:100::/56 dev lo", "fd00:66::/48 dev lan0")
			l.wantRoutes6([]string{"type", "unreachable"}, "unreachable fd00:78:0:100::/56 dev lo proto dhcp", "unreachable fd00:79::/48 dev lo proto static")
			// lan0's /64 wins over the unreachable /56.
			if got := l.ip("-6", "route", "get", "fd00:78:0:100::5"); !strings.Contains(got, "dev lan0") {
				t.Errorf("ip route get fd00:78:0:100::5 = %q, want dev lan0", got)
			}
			if got, err := exec.Command("ip", "-6", "route", "get", "fd00:78:0:1ff::5").CombinedOutput(); err == nil || !strings.Contains(string(got), "No route to host") {
				t.Errorf("ip route get fd00:78:0:1ff::5 = %q, %v; want No route to host (unreachable)", got, err)
			}
		})
		step("new prefix", lease6("fd00:78:0:200::/56", "fd00:77::1234"), state.DHCPv6{}, func(t *testing.T, l child) {
			l.wantAddrs6(state.LAN, "fd00:42::1/64", "fd00:78:0:200::1/64 nodad", "fd00:99::5/64")
			l.wantRoutes6([]string{"type", "unreachable"}, "unreachable fd00:78:0:200::/56 dev lo proto dhcp", "unreachable fd00:79::/48 dev lo proto static")
		})
		step("lan_subnet 3", lease6("fd00:78:0:200::/56", "fd00:77::1234"), state.DHCPv6{LANSubnet: 3}, func(t *testing.T, l child) {
			l.wantAddrs6(state.LAN, "fd00:42::1/64", "fd00:78:0:203::1/64 nodad", "fd00:99::5/64")
			l.wantRoutes6([]string{"fd00:78:0:200::/56", "proto", "dhcp"}, "unreachable fd00:78:0:200::/56 dev lo")
			l.wantRoutes6([]string{"fd00:78:0:203::/64"}, "fd00:78:0:203::/64 dev lan0 proto kernel")
		})
		step("new IA_NA, prefix unchanged", lease6("fd00:78:0:200::/56", "fd00:77::1235"), state.DHCPv6{LANSubnet: 3}, func(t *testing.T, l child) {
			l.wantAddrs6(state.Uplink, "fd00:77::1235/128")
			l.wantAddrs6(state.LAN, "fd00:42::1/64", "fd00:78:0:203::1/64 nodad", "fd00:99::5/64")
		})
		step("no lease", state.DHCPv6Lease{}, state.DHCPv6{LANSubnet: 3}, func(t *testing.T, l child) {
			l.wantAddrs6(state.LAN, "fd00:42::1/64", "fd00:99::5/64")
			l.wantAddrs6(state.Uplink)
			l.wantRoutes6([]string{"proto", "dhcp"}, "fd00:66::/48 dev lan0")
			l.wantRoutes6([]string{"type", "unreachable"}, "unreachable fd00:79::/48 dev lo proto static")
		})

		t.Run("lan_subnet outside the prefix", func(t *testing.T) {
			st.DHCPv6Lease.Publish(lease6("fd00:78:0:200::/64", "fd00:77::1234"))
			st.DHCPv6.Publish(state.DHCPv6{LANSubnet: 3})
			for range 2 {
				_, _, err := n.Apply(context.Background(), cfg, n.Inputs())
				if err == nil || !strings.Contains(err.Error(), "lan_subnet") {
					t.Errorf("Apply error = %v, want one about lan_subnet", err)
				}
			}
			// The rest of the lease is applied all the same.
			l := child{t}
			l.wantAddrs6(state.LAN, "fd00:42::1/64", "fd00:99::5/64")
			l.wantRoutes6([]string{"type", "unreachable", "proto", "dhcp"}, "unreachable fd00:78:0:200::/64 dev lo")
			l.wantAddrs6(state.Uplink, "fd00:77::1234/128")
			st.DHCPv6Lease.Publish(state.DHCPv6Lease{})
			st.DHCPv6.Publish(state.DHCPv6{})
			applyOK(t, n, cfg, true)
			l.wantAddrs6(state.Uplink)
		})

		st.DHCPv4Lease.Publish(state.DHCPv4Lease{})
		applyOK(t, n, cfg, true)
	})
	if t.Failed() {
		return
	}

	t.Run("name held by an unconfigured link", func(t *testing.T) {
		l := child{t}
		l.ip("link", "add", "blocker", "address", "02:77:00:00:00:aa", "type", "veth", "peer", "name", "blockerpeer")
		l.ip("link", "add", "d3", "address", "02:77:00:00:00:03", "type", "veth", "peer", "name", "d3peer")
		t.Cleanup(func() {
			exec.Command("ip", "link", "del", "blocker").Run()
			exec.Command("ip", "link", "del", "d3").Run()
		})
		blocked := cfg
		blocked.Interfaces = append(slices.Clone(cfg.Interfaces), state.Interface{HardwareAddr: "02:77:00:00:00:03", Name: "blocker", Addr: "10.45.0.1/24"})
		for range 2 {
			changes, _, err := n.Apply(context.Background(), blocked, n.Inputs())
			if err == nil || !strings.Contains(err.Error(), "rename d3 to blocker") {
				t.Errorf("Apply error = %v, want one about renaming d3 to blocker", err)
			}
			if len(changes) > 0 {
				t.Errorf("Apply changed %q, want nothing", changes)
			}
		}
		if b := l.mustLink("blocker"); b.Address != "02:77:00:00:00:aa" {
			t.Errorf("the unconfigured link blocker was changed: %+v", b)
		}
		l.wantAddrs("d3", nil, []string{"10.45.0.1/24"})
		l.wantAddrs(state.LAN, []string{"10.43.0.1/24"}, nil)
	})

	t.Run("Run configures a link that appears later", func(t *testing.T) {
		l := child{t}
		later := cfg
		later.Interfaces = append(slices.Clone(cfg.Interfaces), state.Interface{HardwareAddr: "02:77:00:00:00:04", Name: "usb0", Addr: "10.44.0.1/24"})
		st.Interfaces.Publish(later)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
		}()
		// Run applies first; only then plug in the NIC.
		l.waitFor("Run's first apply", func() bool { return n.absentLogged("usb0") })
		l.ip("link", "add", "eth9", "address", "02:77:00:00:00:04", "type", "veth", "peer", "name", "eth9peer")
		l.waitFor("eth9 to become usb0 with 10.44.0.1/24, up", func() bool {
			k, ok := l.link("usb0")
			return ok && k.up() && slices.Contains(l.addrs("usb0"), "10.44.0.1/24")
		})
		l.waitFor("st.Links to list usb0", func() bool {
			return slices.ContainsFunc(st.Links.Value(), func(k state.Link) bool { return k.Name == "usb0" })
		})
		// A config change reaches Run through the topic.
		changed := later
		changed.Interfaces = slices.Clone(later.Interfaces)
		changed.Interfaces[len(changed.Interfaces)-1].MTU = 1280
		st.Interfaces.Publish(changed)
		l.waitFor("usb0 MTU 1280", func() bool { return l.mustLink("usb0").MTU == 1280 })
		// And a link taken down by hand comes back up.
		l.ip("link", "set", state.LAN, "down")
		l.waitFor("lan0 back up with 10.43.0.1/24 and fd00:42::1/64", func() bool {
			a := l.addrs(state.LAN)
			return l.mustLink(state.LAN).up() && slices.Contains(a, "10.43.0.1/24") && slices.Contains(a, "fd00:42::1/64")
		})
		// A new lease reaches Run through its topic, and so does its end.
		lease := state.DHCPv4Lease{Addr: pfx("10.77.2.20/24"), Router: netip.MustParseAddr("10.77.2.1")}
		st.DHCPv4Lease.Publish(lease)
		l.waitFor("uplink0 with 10.77.2.20/24 and a default route via 10.77.2.1", func() bool {
			return slices.Contains(l.addrs(state.Uplink), "10.77.2.20/24") &&
				slices.Equal(l.dhcpRoutes(), []string{"default via 10.77.2.1 dev uplink0 src 10.77.2.20"})
		})
		st.DHCPv4Lease.Publish(state.DHCPv4Lease{})
		l.waitFor("the lease's address and routes to go", func() bool {
			return !slices.Contains(l.addrs(state.Uplink), "10.77.2.20/24") && len(l.dhcpRoutes()) == 0
		})
		// So does a DHCPv6 lease, and dhcp6.json.
		lease6 := state.DHCPv6Lease{
			Prefixes: []state.DelegatedPrefix{{Prefix: pfx("fd00:78:0:300::/56")}},
			Addr:     &state.LeasedAddr{Addr: netip.MustParseAddr("fd00:77::99")},
		}
		st.DHCPv6Lease.Publish(lease6)
		l.waitFor("lan0 with fd00:78:0:300::1/64, uplink0 with fd00:77::99/128 and the unreachable /56", func() bool {
			return slices.Contains(l.addrs(state.LAN), "fd00:78:0:300::1/64") &&
				slices.Contains(l.addrs(state.Uplink), "fd00:77::99/128") &&
				slices.Contains(l.routes6("proto", "dhcp"), "unreachable fd00:78:0:300::/56 dev lo")
		})
		st.DHCPv6.Publish(state.DHCPv6{LANSubnet: 5})
		l.waitFor("lan0 to move to fd00:78:0:305::1/64", func() bool {
			a := l.addrs(state.LAN)
			return slices.Contains(a, "fd00:78:0:305::1/64") && !slices.Contains(a, "fd00:78:0:300::1/64")
		})
		st.DHCPv6Lease.Publish(state.DHCPv6Lease{})
		l.waitFor("the DHCPv6 lease's addresses and route to go", func() bool {
			return !slices.Contains(l.addrs(state.LAN), "fd00:78:0:305::1/64") &&
				!slices.Contains(l.addrs(state.Uplink), "fd00:77::99/128") &&
				!slices.Contains(l.routes6("proto", "dhcp"), "unreachable fd00:78:0:300::/56 dev lo")
		})
		// Run made lan0 a unique local prefix, once: its ::1/64 is on
		// lan0, in force with origin ula, and the rest of the /48 is
		// unreachable. ra.json's own replaces it.
		ula := st.ULA.Value().Prefix
		if !state.IsULA(ula) || ula.Bits() != 48 {
			t.Fatalf("st.ULA = %v, want a /48 in fd00::/8", st.ULA.Value())
		}
		ulaAddr := netip.PrefixFrom(ula.Addr().Next(), 64).String()
		l.waitFor("lan0 with "+ulaAddr+" in force and the unreachable "+ula.String(), func() bool {
			lan, _ := state.FindLink(st.Links.Value(), state.LAN)
			u := lan.InForceOf(state.OriginULA)
			return slices.Contains(l.addrs(state.LAN), ulaAddr) && len(u) == 1 && u[0].Prefix.String() == ulaAddr &&
				slices.Contains(l.routes6("proto", "dhcp"), "unreachable "+ula.String()+" dev lo")
		})
		st.RA.Publish(state.RA{ULA: pfx("fd00:42:99::/48"), ULASubnet: 2})
		l.waitFor("lan0 to move to fd00:42:99:2::1/64", func() bool {
			a := l.addrs(state.LAN)
			return slices.Contains(a, "fd00:42:99:2::1/64") && !slices.Contains(a, ulaAddr) &&
				slices.Contains(l.routes6("proto", "dhcp"), "unreachable fd00:42:99::/48 dev lo")
		})
		if st.ULA.Value().Prefix != ula {
			t.Errorf("ula.json changed to %v; the generated one stays for when ra.json's goes", st.ULA.Value())
		}
	})

}

// absentLogged reports whether n has logged name as absent, which it does
// once its apply ran without the link.
func (n *Netconfig) absentLogged(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.absent[name]
}

// testWriter sends a logger's lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testWriter{}
