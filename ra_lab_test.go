package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
)

// raSettle bounds the waits for what the router advertises: its first
// advertisements go out within 16 s of each other, and rdisc6 asks
// for one besides.
const raSettle = 40 * time.Second

// slaac waits until the LAN host has a usable address in p it made
// itself from the router's advertisements, and returns it.
func slaac(ctx context.Context, t *testing.T, n *lab.Netns, p netip.Prefix) lab.HostAddr6 {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, fwSettle)
	defer cancel()
	a, err := n.WaitSLAAC(sctx, "eth0", p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// advertised waits until rdisc6 on the LAN host sees an advertisement
// for which cond holds, and returns it.
func advertised(ctx context.Context, t *testing.T, n *lab.Netns, what string, cond func(lab.RouterAdvert) error) lab.RouterAdvert {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, raSettle)
	defer cancel()
	ra, err := n.WaitAdvert(sctx, "eth0", what, cond)
	if err != nil {
		t.Fatal(err)
	}
	return ra
}

// labRanges are the lab's own fd00:: ranges: the ISP's and the one the
// tests give lan0 in interfaces.json. A random ULA falls into one of
// them once in 2^32 runs.
var labRanges = []netip.Prefix{
	netip.MustParsePrefix("fd00:42::/48"),
	netip.MustParsePrefix("fd00:77::/48"),
	netip.MustParsePrefix(lab.ISPPDPool),
}

// isRouterULA reports whether a is in fd00::/8 but in none of the lab's
// ranges: in the unique local prefix netconfig made for lan0.
func isRouterULA(a netip.Addr) bool {
	if !a.Is6() || a.As16()[0] != 0xfd {
		return false
	}
	for _, r := range labRanges {
		if r.Contains(a) {
			return false
		}
	}
	return true
}

// ulaOf returns the advertised prefix that is lan0's unique local /64.
func ulaOf(ra lab.RouterAdvert) (netip.Prefix, bool) {
	for _, p := range ra.Prefixes {
		if isRouterULA(p.Prefix.Addr()) {
			return p.Prefix, true
		}
	}
	return netip.Prefix{}, false
}

// defaultRoute6 returns the LAN host's IPv6 default routes.
func defaultRoute6(ctx context.Context, n *lab.Netns) (string, error) {
	out, err := n.Run(ctx, "ip", "-6", "route", "show", "default")
	return strings.TrimSpace(out), err
}

// waitDefaultRoute6 waits until the LAN host n has an IPv6 default route
// via the router's link-local address ll on eth0, which only the
// router's advertisements give it.
func waitDefaultRoute6(ctx context.Context, t *testing.T, n *lab.Netns, ll netip.Addr) {
	t.Helper()
	if err := settle(ctx, "the LAN host's IPv6 default route via lan0's link-local address", func(ctx context.Context) error {
		out, err := defaultRoute6(ctx, n)
		if err != nil || !strings.Contains(out, "via "+ll.WithZone("").String()+" dev eth0") {
			return fmt.Errorf("ip -6 route show default: %q %v", out, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestRALab: the router's advertisements, seen by rdisc6 and by the LAN
// host's kernel, with ISC dhcpd -6 delegating a /56 and radvd giving the
// uplink its default route; then the router stops (its goodbye), the
// ISP renumbers and the router starts again on its /perm.
func TestRALab(t *testing.T) {
	bin := lab.RouterBinary(t)
	lab.Require(t, "rdisc6", "dig", "dnsmasq", "dhcpd", "radvd", "ping")
	l := lab.NewT(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	perm := t.TempDir()
	for name, content := range map[string]string{
		"interfaces.json": lab.DefaultInterfacesJSON(),
		"dns.json":        dnsJSON, // the ISP's names may point into its fd00:77::/64
	} {
		if err := os.WriteFile(filepath.Join(perm, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	started := time.Now()
	h, err := lab.NewHome(l, lab.HomeOptions{RouterBinary: bin, PermDir: perm})
	if err != nil {
		t.Fatal(err)
	}
	r := waitRouterAddrs(ctx, t, h)
	lan64 := r.LAN6.Masked()
	t.Logf("lan0 has %v and %v", r.LAN6, r.LANLL)

	// The router is a default router once netconfig has seen the ISP's
	// advertisements give uplink0 its default route.
	ra := advertised(ctx, t, h.LAN, "an advertisement of "+lan64.String()+" with a router lifetime", func(ra lab.RouterAdvert) error {
		if _, ok := ra.Prefix(lan64); !ok || ra.RouterLifetime == 0 {
			return fmt.Errorf("got %+v", ra)
		}
		return nil
	})
	ula, ok := ulaOf(ra)
	t.Logf("advertisement: %+v", ra)

	t.Run("rdisc6 sees the delegated /64, the ULA, RDNSS, DNSSL, MTU and the router", func(t *testing.T) {
		p, _ := ra.Prefix(lan64)
		if !p.OnLink || !p.Autonomous || p.Valid == 0 || p.Preferred == 0 || p.Preferred > p.Valid {
			t.Errorf("delegated prefix %+v: want on-link, autonomous, with lifetimes", p)
		}
		// dhcpd's lease is 60 s valid, 40 s preferred: no more.
		if p.Valid > 60 || p.Preferred > 40 {
			t.Errorf("delegated prefix lifetimes %d/%d s, longer than the lease's 60/40 s", p.Valid, p.Preferred)
		}
		if !ok {
			t.Errorf("no unique local /64 among %v", ra.Prefixes)
		} else if u, _ := ra.Prefix(ula); !u.OnLink || !u.Autonomous || u.Preferred == 0 {
			t.Errorf("ULA prefix %+v: want on-link, autonomous, preferred", u)
		}
		if len(ra.RDNSS) != 1 || !ula.Contains(ra.RDNSS[0]) || ra.RDNSSLifetime == 0 {
			t.Errorf("RDNSS %v (lifetime %d s), want the router's address in %v", ra.RDNSS, ra.RDNSSLifetime, ula)
		}
		if len(ra.DNSSL) != 1 || strings.TrimSuffix(ra.DNSSL[0], ".") != "lan" {
			t.Errorf("DNSSL %q, want lan", ra.DNSSL)
		}
		if ra.MTU != 1500 {
			t.Errorf("MTU %d, want 1500", ra.MTU)
		}
		if ra.SourceLLA != strings.ToLower(lab.RouterLANMAC) || ra.From != r.LANLL.WithZone("") {
			t.Errorf("from %v (%s), want lan0's %v (%s)", ra.From, ra.SourceLLA, r.LANLL, lab.RouterLANMAC)
		}
		if ra.HopLimit != 64 {
			t.Errorf("hop limit %d, want 64", ra.HopLimit)
		}
	})

	var client netip.Addr
	t.Run("the LAN host takes an address and routes through the router", func(t *testing.T) {
		client = slaac(ctx, t, h.LAN, lan64).Prefix.Addr()
		if ok {
			slaac(ctx, t, h.LAN, ula)
		}
		waitDefaultRoute6(ctx, t, h.LAN, r.LANLL)
	})

	t.Run("the advertised resolver answers", func(t *testing.T) {
		if len(ra.RDNSS) == 0 {
			t.Skip("no RDNSS: reported above")
		}
		settleDig(ctx, t, h.LAN, ra.RDNSS[0].String(), "www.isp.test", "AAAA", "NOERROR", lab.ISPWWWAAAA)
	})

	t.Run("the LAN host reaches the ISP's IPv6 host through the firewall", func(t *testing.T) {
		// The ISP routes the delegated /56 to the router, as a real one
		// does.
		delegated := netip.PrefixFrom(lan64.Addr(), lab.ISPPDLen).Masked()
		if err := h.ISP.RouteVia(ctx, delegated, r.UplinkLL, "isp0"); err != nil {
			t.Fatal(err)
		}
		if err := settle(ctx, "ping from the LAN host's SLAAC address to the ISP", func(ctx context.Context) error {
			_, err := h.LAN.Run(ctx, "ping", "-6", "-c", "1", "-W", "2", "-I", client.String(), lab.ISPAddr6)
			return err
		}); err != nil {
			t.Error(err)
		}
	})

	t.Run("the ULA stays in the home", func(t *testing.T) {
		if !ok {
			t.Skip("no ULA: reported above")
		}
		// Even when the ISP would route it back, nothing from the ULA
		// leaves through the uplink (RFC 4193, section 4.3).
		from := slaac(ctx, t, h.LAN, ula).Prefix.Addr()
		if err := h.ISP.RouteVia(ctx, netip.PrefixFrom(ula.Addr(), 48).Masked(), r.UplinkLL, "isp0"); err != nil {
			t.Fatal(err)
		}
		if out, err := h.LAN.Run(ctx, "ping", "-6", "-c", "2", "-W", "2", "-I", from.String(), lab.ISPAddr6); err == nil {
			t.Errorf("ping from the ULA address %v to the ISP got through:\n%s", from, out)
		}
	})

	t.Run("the LAN host keeps its address preferred past the lease's lifetimes", func(t *testing.T) {
		// dhcpd's lease is 40 s preferred, 60 s valid; the router renews
		// it every 20 s, and must tell the LAN often enough that hosts
		// never see the prefix's lifetimes run out. The first four
		// advertisements come within 48 s of the start, so hosts would
		// see the preferred lifetime run out 88 s after it at the
		// latest if nothing came after them. Watched, not slept on: a
		// check every second until well past that.
		if !client.IsValid() {
			t.Skip("no SLAAC address: reported above")
		}
		end := started.Add(100 * time.Second)
		if atLeast := time.Now().Add(45 * time.Second); end.Before(atLeast) {
			end = atLeast // slow earlier steps: still watch longer than a preferred lifetime
		}
		for time.Now().Before(end) {
			as, err := h.LAN.Addrs6(ctx, "eth0")
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(as, func(a lab.HostAddr6) bool { return a.Prefix.Addr() == client })
			if i < 0 || as[i].Deprecated() {
				t.Fatalf("the LAN host's %v is deprecated or gone: %v", client, as)
			}
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(time.Second):
			}
		}
		// ... and its own source address selection picks it for the ISP.
		out, err := h.LAN.Run(ctx, "ip", "-6", "route", "get", lab.ISPAddr6)
		if err != nil || !strings.Contains(out, "src "+client.String()) {
			t.Errorf("ip -6 route get %s: %q %v; want src %v", lab.ISPAddr6, out, err, client)
		}
	})

	t.Run("a router that stops says goodbye", func(t *testing.T) {
		h.RouterProc.Stop(10 * time.Second)
		if err := settle(ctx, "the LAN host's IPv6 default route to go with the router's last advertisement", func(ctx context.Context) error {
			out, err := defaultRoute6(ctx, h.LAN)
			if err != nil || strings.Contains(out, "via "+r.LANLL.WithZone("").String()) {
				return fmt.Errorf("ip -6 route show default: %q %v", out, err)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	})

	var new64 netip.Prefix
	// The old prefix is deprecated until its lease's end: dhcpd's
	// leases are valid for 60 s, renewed every 20 s, so the restart has
	// at least 40 s; it takes a few.
	t.Run("a new prefix deprecates the old one, across a restart", func(t *testing.T) {
		// The ISP delegates from the other half of its pool, and has
		// forgotten the router; so has the router.
		first, last := "fd00:78:0:8000::", "fd00:78:0:ff00::"
		if lan64.Addr().As16()[6] >= 0x80 {
			first, last = "fd00:78:0:100::", "fd00:78:0:7f00::"
		}
		if err := h.RenumberDHCPD6(ctx, first, last); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(perm, "dhcp6-lease.json")); err != nil {
			t.Fatal(err)
		}
		if h.RouterProc, err = l.Start(h.Router, bin, "run", "-perm", perm, "-http", ":80"); err != nil {
			t.Fatal(err)
		}
		var r2 routerAddrs
		if err := lab.WaitFor(ctx, "lan0's address in a new delegated prefix", func() error {
			r2 = waitRouterAddrs(ctx, t, h)
			if r2.LAN6.Masked() == lan64 {
				return fmt.Errorf("still %v", r2.LAN6)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		new64 = r2.LAN6.Masked()
		t.Logf("renumbered: %v -> %v", lan64, new64)
		if _, rest := splitULA(links(ctx, t, h.Router)["lan0"].addrs()); slices.Contains(rest, r.LAN6.String()) {
			t.Errorf("lan0 still has %v: %v", r.LAN6, rest)
		}
		ra2 := advertised(ctx, t, h.LAN, fmt.Sprintf("%v advertised, %v deprecated", new64, lan64), func(ra lab.RouterAdvert) error {
			n, okNew := ra.Prefix(new64)
			o, okOld := ra.Prefix(lan64)
			if !okNew || n.Preferred == 0 || !okOld || o.Preferred != 0 || o.Valid == 0 || o.Valid > 60 {
				return fmt.Errorf("got %+v", ra.Prefixes)
			}
			return nil
		})
		t.Logf("advertisement: %+v", ra2)
		if u, _ := ulaOf(ra2); u != ula {
			t.Errorf("ULA %v after the restart, %v before", u, ula)
		}
		slaac(ctx, t, h.LAN, new64)
		if err := settle(ctx, "the LAN host's address "+client.String()+" deprecated", func(ctx context.Context) error {
			as, err := h.LAN.Addrs6(ctx, "eth0")
			if err != nil {
				return err
			}
			for _, a := range as {
				if a.Prefix.Addr() == client && a.Deprecated() {
					return nil
				}
			}
			return fmt.Errorf("addresses %v", as)
		}); err != nil {
			t.Error(err)
		}
	})

	t.Run("a new prefix while the router runs deprecates the old one", func(t *testing.T) {
		if !new64.IsValid() {
			t.Skip("no prefix after the restart: reported above")
		}
		renumberedWhileRunning(ctx, t, h, new64)
	})
}

// renumberedWhileRunning is the last step of TestRALab: the ISP hands
// out prefixes from elsewhere while the router runs, and the router's
// next renewal (every 20 s) brings it a new one.
func renumberedWhileRunning(ctx context.Context, t *testing.T, h *lab.Home, old netip.Prefix) {
	first, last := "fd00:78:0:8000::", "fd00:78:0:ff00::"
	if old.Addr().As16()[6] >= 0x80 {
		first, last = "fd00:78:0:100::", "fd00:78:0:7f00::"
	}
	if err := h.RenumberDHCPD6(ctx, first, last); err != nil {
		t.Fatal(err)
	}
	var now netip.Prefix
	if err := lab.WaitFor(ctx, "lan0's address in a prefix other than "+old.String(), func() error {
		now = waitRouterAddrs(ctx, t, h).LAN6.Masked()
		if now == old {
			return fmt.Errorf("still %v", now)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("renumbered while running: %v -> %v", old, now)
	advertised(ctx, t, h.LAN, fmt.Sprintf("%v advertised, %v deprecated", now, old), func(ra lab.RouterAdvert) error {
		n, okNew := ra.Prefix(now)
		o, okOld := ra.Prefix(old)
		if !okNew || n.Preferred == 0 || !okOld || o.Preferred != 0 || o.Valid == 0 || o.Valid > 60 {
			return fmt.Errorf("got %+v", ra.Prefixes)
		}
		return nil
	})
}

// TestRALabULAOnly: without any DHCPv6 server, nor IPv6 on the uplink,
// the LAN still gets IPv6 from the unique local /64, with no default
// router, and the same one after a restart.
func TestRALabULAOnly(t *testing.T) {
	bin := lab.RouterBinary(t)
	lab.Require(t, "rdisc6")
	l := lab.NewT(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	h, err := lab.NewHome(l, lab.HomeOptions{RouterBinary: bin, NoPeers: true})
	if err != nil {
		t.Fatal(err)
	}
	only := func(ra lab.RouterAdvert) error {
		if _, ok := ulaOf(ra); !ok || len(ra.Prefixes) != 1 {
			return fmt.Errorf("got %+v", ra)
		}
		return nil
	}
	ra := advertised(ctx, t, h.LAN, "an advertisement of a unique local /64 alone", only)
	ula, _ := ulaOf(ra)
	t.Logf("advertisement: %+v", ra)
	if ra.RouterLifetime != 0 {
		t.Errorf("router lifetime %d s with no IPv6 on the uplink, want 0", ra.RouterLifetime)
	}
	if len(ra.RDNSS) != 1 || !ula.Contains(ra.RDNSS[0]) {
		t.Errorf("RDNSS %v, want the router's address in %v", ra.RDNSS, ula)
	}
	slaac(ctx, t, h.LAN, ula)
	if out, err := defaultRoute6(ctx, h.LAN); err != nil || out != "" {
		t.Errorf("the LAN host's IPv6 default routes: %q %v; want none", out, err)
	}
	data, err := os.ReadFile(filepath.Join(h.PermDir, "ula.json"))
	if err != nil || !strings.Contains(string(data), netip.PrefixFrom(ula.Addr(), 48).Masked().String()) {
		t.Errorf("ula.json: %q %v; want the /48 of %v", data, err, ula)
	}

	h.RouterProc.Stop(10 * time.Second)
	if h.RouterProc, err = l.Start(h.Router, bin, "run", "-perm", h.PermDir, "-http", ":80"); err != nil {
		t.Fatal(err)
	}
	// The first advertisement after the restart, by the Process's
	// start: rdisc6 asks the new one.
	ra2 := advertised(ctx, t, h.LAN, "an advertisement from the restarted router", func(ra lab.RouterAdvert) error {
		select {
		case <-h.RouterProc.Exited():
			return lab.Abort(fmt.Errorf("router exited: %v", h.RouterProc.Err()))
		default:
		}
		return only(ra)
	})
	if u, _ := ulaOf(ra2); u != ula {
		t.Errorf("ULA %v after the restart, %v before", u, ula)
	}
}
