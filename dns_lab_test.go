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
	"syscall"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
)

// The DNS lab's addresses: lan0 at 192.168.42.1/24 hands out
// .100-.250, the LAN host's own eth0 is at dnsClient4 (outside the pool)
// and asks the router every question; DHCP clients with names of their
// own use links of their own.
const (
	dnsLANNet    = "192.168.42.1/24"
	dnsLANIP     = "192.168.42.1"
	dnsClient4   = "192.168.42.10"
	dnsAlphaMAC  = "02:77:00:00:00:21"
	dnsNASA      = "192.168.42.5" // dns.json's static host
	dnsNASAAAA   = "fd00:42::5"
	dnsStaleTTL  = 30              // the TTL of a stale answer (issue 13)
	dnsStaleWait = 7 * time.Second // how long after the upstream is gone a stale answer must still come
	dnsNoAnswer  = "+time=2"       // how long a probe waits for an answer that must not come
	dnsOneTry    = "+tries=1"
	dnsAnswer    = "+time=3" // how long a query waits for an answer that must come
)

// dnsHome is the home topology as the DNS tests use it: the ISP's
// dnsmasq with the DNS tests' records (lab.StartDnsmasqDNS), the router
// with lan0 at 192.168.42.1/24, and the LAN host at dnsClient4 and
// <prefix>::10.
type dnsHome struct {
	*lab.Home
	l *lab.Lab

	// Found once the router has its leases.
	Uplink4  netip.Addr   // uplink0's DHCPv4 address
	Uplink6  []netip.Addr // uplink0's global IPv6 addresses
	LAN6     netip.Prefix // lan0's address in the delegated prefix
	LANLL    netip.Addr   // lan0's link-local address
	Client6  netip.Addr   // the LAN host's address in lan0's /64
	sentinel int
}

// dnsJSON is the router's dns.json at start: no upstreams (they come
// from the uplink's leases), and the ISP's own names allowed to point
// into its private 10.77.0.0/24 and ULA fd00:77::/64, which rebinding
// protection would drop otherwise.
const dnsJSON = `{"rebind_allow": ["isp.test"]}
`

// newDNSHome builds the topology with the ISP's DNS records, starts the
// router on a /perm with interfaces.json, dhcp4d.json and dnsJSON, waits
// for its leases and for its DNS service on lan0, and addresses the LAN
// host.
func newDNSHome(ctx context.Context, t *testing.T, l *lab.Lab, bin string, peer lab.DNSPeerOptions) *dnsHome {
	t.Helper()
	perm := t.TempDir()
	files := map[string]string{
		"interfaces.json": `{"interfaces": [
  {"hardware_addr": "` + lab.RouterWANMAC + `", "name": "uplink0"},
  {"hardware_addr": "` + lab.RouterLANMAC + `", "name": "lan0", "addr": "` + dnsLANNet + `"}
]}
`,
		"dhcp4d.json": `{"range_start": "192.168.42.100", "range_end": "192.168.42.250"}
`,
		"dns.json": dnsJSON,
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
	d := &dnsHome{Home: h, l: l}
	// The ISP's resolver, again, with the DNS tests' records.
	h.Dnsmasq.Stop(3 * time.Second)
	if err := h.StartDnsmasqDNS(ctx, peer); err != nil {
		t.Fatal(err)
	}
	// The lab's plumbing: the ISP's resolver has the records the tests
	// rely on, asked in its own namespace.
	for _, c := range []struct{ name, qtype, want string }{
		{"www.isp.test", "A", lab.ISPWWWA},
		{"www.isp.test", "AAAA", lab.ISPWWWAAAA},
		{lab.ISPShortName, "A", lab.ISPShortA},
		{lab.ISPRebindName, "A", lab.ISPRebindA},
		{lab.ISPAllowedName, "A", lab.ISPAllowedA},
	} {
		r, err := h.ISP.Dig(ctx, lab.ISPAddr4, c.name, c.qtype, dnsAnswer, dnsOneTry)
		if err != nil || r.Status != "NOERROR" || !slices.Equal(r.Data(c.qtype), []string{c.want}) {
			t.Fatalf("the ISP's dnsmasq: %s %s: %v %v; want %s", c.name, c.qtype, r, err, c.want)
		}
	}
	// Again, so that its log has only the router's questions.
	h.Dnsmasq.Stop(3 * time.Second)
	if err := h.StartDnsmasqDNS(ctx, peer); err != nil {
		t.Fatal(err)
	}
	if h.RouterProc, err = l.Start(h.Router, bin, "run", "-perm", perm); err != nil {
		t.Fatal(err)
	}
	d.waitUplink(ctx, t)
	if err := lab.WaitListening(ctx, h.Router, h.RouterProc, "udp", netip.MustParseAddrPort(dnsLANIP+":53")); err != nil {
		t.Fatal(err)
	}
	b := d.LAN6.Masked().Addr().As16()
	b[15] = 0x10
	d.Client6 = netip.AddrFrom16(b)
	for _, args := range [][]string{
		{"addr", "add", dnsClient4 + "/24", "dev", "eth0"},
		{"-6", "addr", "add", netip.PrefixFrom(d.Client6, 64).String(), "dev", "eth0", "nodad"},
	} {
		if _, err := h.LAN.Run(ctx, "ip", args...); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// waitUplink waits for uplink0's DHCPv4 and DHCPv6 addresses and lan0's
// address in the delegated prefix.
func (d *dnsHome) waitUplink(ctx context.Context, t *testing.T) {
	t.Helper()
	r := waitRouterAddrs(ctx, t, d.Home)
	d.Uplink4, d.Uplink6, d.LAN6, d.LANLL = r.Uplink4, r.Uplink6, r.LAN6, r.LANLL
	t.Logf("uplink0 has %v and %v; lan0 has %v and %v", d.Uplink4, d.Uplink6, d.LAN6, d.LANLL)
}

// ask asks the router (at dnsLANIP) from the LAN host.
func (d *dnsHome) ask(ctx context.Context, name, qtype string, opts ...string) (*lab.DigResult, error) {
	return d.LAN.Dig(ctx, dnsLANIP, name, qtype, append([]string{dnsAnswer, dnsOneTry}, opts...)...)
}

// expect checks that r is status with exactly the records want of type
// rrType in its answer (in any order; nil want: none).
func expect(t *testing.T, what string, r *lab.DigResult, err error, status, rrType string, want ...string) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	got := r.Data(rrType)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if r.Status != status || !slices.Equal(got, want) {
		t.Errorf("%s: got %s; want %s with %s %v", what, r, status, rrType, want)
	}
}

// settleDNS waits (up to fwSettle) until the router answers name with
// status and exactly want, for the first question after something the
// router must learn (a lease, an address, a reload).
func (d *dnsHome) settleDNS(ctx context.Context, t *testing.T, server, name, qtype, status string, want ...string) {
	t.Helper()
	settleDig(ctx, t, d.LAN, server, name, qtype, status, want...)
}

// settleDig waits (up to fwSettle) until server answers name from n with
// status and exactly want.
func settleDig(ctx context.Context, t *testing.T, n *lab.Netns, server, name, qtype, status string, want ...string) {
	t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	if err := settle(ctx, fmt.Sprintf("%s %s @%s from %s to give %s %v", name, qtype, server, n.Role(), status, want), func(ctx context.Context) error {
		r, err := n.Dig(ctx, server, name, qtype, dnsAnswer, dnsOneTry)
		if err != nil {
			return err
		}
		got := r.Data(qtype)
		slices.Sort(got)
		if r.Status != status || !slices.Equal(got, want) {
			return fmt.Errorf("got %s", r)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// syncUpstream asks the router for a name only the ISP has and nobody
// asked for before, and waits until the ISP's dnsmasq has logged the
// question: every question the router sent it before then is in the log.
func (d *dnsHome) syncUpstream(ctx context.Context, t *testing.T) {
	t.Helper()
	d.sentinel++
	name := fmt.Sprintf("sentinel-%d.isp.test", d.sentinel)
	r, err := d.ask(ctx, name, "A")
	expect(t, "the sentinel "+name, r, err, "NOERROR", "A", lab.ISPRecordA)
	wctx, cancel := context.WithTimeout(ctx, fwSettle)
	defer cancel()
	if err := lab.WaitFor(wctx, name+" in the ISP's dnsmasq log", func() error {
		if lab.DnsmasqQueries(d.Dnsmasq, "A", name) == 0 {
			return fmt.Errorf("not logged")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestDNSLab runs the real router between the lab's ISP (dnsmasq as its
// resolver) and a LAN host, and checks issue 13's lab acceptance: the
// upstream learned from the uplink's leases, forwarding of A and AAAA,
// DHCP clients' names with PTR, NXDOMAIN, TCP, the cache, rebinding
// protection, nothing answered from the ISP side, the router's own name,
// and serve-stale after the ISP's resolver is gone; and, on the way,
// IPv6 and loopback, localhost, locally served zones kept local, and
// dns.json's hosts and rebind_allow through a SIGHUP.
func TestDNSLab(t *testing.T) {
	bin := lab.RouterBinary(t)
	lab.Require(t, "dig", "udhcpc", "dnsmasq", "dhcpd", "radvd", "ss", "curl")
	l := lab.NewT(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	d := newDNSHome(ctx, t, l, bin, lab.DNSPeerOptions{})

	t.Run("the upstream is learned from the uplink's DHCP lease", func(t *testing.T) {
		// dns.json has no upstreams, so the leases' are the only ones
		// (10.77.0.1 from DHCPv4, fd00:77::1 from DHCPv6).
		d.settleDNS(ctx, t, dnsLANIP, "www.isp.test", "A", "NOERROR", lab.ISPWWWA)
		d.syncUpstream(ctx, t)
		if n := lab.DnsmasqQueries(d.Dnsmasq, "A", "www.isp.test"); n == 0 {
			t.Errorf("the ISP's dnsmasq was never asked for www.isp.test; it logged %q", lab.DnsmasqQueried(d.Dnsmasq))
		}
		// ... and it was the router that asked, from its uplink.
		out := d.Dnsmasq.Output()
		from := false
		for _, a := range append([]netip.Addr{d.Uplink4}, d.Uplink6...) {
			from = from || strings.Contains(out, "query[A] www.isp.test from "+a.String())
		}
		if !from {
			t.Errorf("no query[A] www.isp.test from the router's uplink (%v, %v) in the ISP's log:\n%s", d.Uplink4, d.Uplink6, out)
		}
	})

	t.Run("www.isp.test A and AAAA are forwarded", func(t *testing.T) {
		r, err := d.ask(ctx, "www.isp.test", "A")
		expect(t, "www.isp.test A", r, err, "NOERROR", "A", lab.ISPWWWA)
		r, err = d.ask(ctx, "www.isp.test", "AAAA")
		expect(t, "www.isp.test AAAA", r, err, "NOERROR", "AAAA", lab.ISPWWWAAAA)
	})

	var alpha string
	t.Run("a DHCP client named alpha resolves as alpha.lan and ALPHA.LAN, with its PTR", func(t *testing.T) {
		for _, args := range [][]string{
			{"link", "add", "link", "eth0", "name", "c1", "address", dnsAlphaMAC, "type", "macvlan", "mode", "bridge"},
			{"link", "set", "c1", "up"},
		} {
			if _, err := d.LAN.Run(ctx, "ip", args...); err != nil {
				t.Fatal(err)
			}
		}
		env, err := l.UDHCPC(ctx, d.LAN, "c1", "-x", "hostname:alpha")
		if err != nil {
			t.Fatal(err)
		}
		acked := time.Now()
		alpha = env["ip"]
		// Within 1 s of the ACK (which udhcpc had before it returned).
		wctx, cancel := context.WithDeadline(ctx, acked.Add(time.Second))
		defer cancel()
		if err := lab.WaitFor(wctx, "alpha.lan A "+alpha, func() error {
			r, err := d.ask(wctx, "alpha.lan", "A")
			if err != nil {
				return err
			}
			if r.Status != "NOERROR" || !slices.Equal(r.Data("A"), []string{alpha}) {
				return fmt.Errorf("got %s", r)
			}
			return nil
		}); err != nil {
			t.Errorf("within 1 s of the ACK: %v", err)
		}
		t.Logf("alpha.lan resolved %v after udhcpc returned", time.Since(acked).Round(time.Millisecond))
		for _, name := range []string{"alpha.lan", "ALPHA.LAN", "Alpha.Lan"} {
			r, err := d.ask(ctx, name, "A")
			expect(t, name+" A", r, err, "NOERROR", "A", alpha)
		}
		r, err := d.ask(ctx, alpha, "PTR")
		expect(t, "PTR "+alpha, r, err, "NOERROR", "PTR", "alpha.lan.")
	})

	t.Run("nosuch.lan is NXDOMAIN, and locally served zones never reach the upstream", func(t *testing.T) {
		r, err := d.ask(ctx, "nosuch.lan", "A")
		expect(t, "nosuch.lan A", r, err, "NXDOMAIN", "A")
		r, err = d.ask(ctx, "NoSuch.LAN", "AAAA")
		expect(t, "NoSuch.LAN AAAA", r, err, "NXDOMAIN", "AAAA")
		local := []struct{ name, qtype string }{
			{"nosuch.lan", "A"},
			{"192.168.42.99", "PTR"}, // 99.42.168.192.in-addr.arpa, nobody's
			{"172.16.0.1", "PTR"},
			{"printer.home.arpa", "A"},
			{"printer.local", "A"},
		}
		for _, q := range local[1:] {
			if _, err := d.ask(ctx, q.name, q.qtype); err != nil {
				t.Errorf("%s %s: %v", q.name, q.qtype, err)
			}
		}
		d.syncUpstream(ctx, t)
		asked := lab.DnsmasqQueried(d.Dnsmasq)
		for _, q := range asked {
			for _, suffix := range []string{".lan", ".42.168.192.in-addr.arpa", ".16.172.in-addr.arpa", ".home.arpa", ".local"} {
				if strings.HasSuffix(q, suffix) {
					t.Errorf("the router asked the ISP %q", q)
				}
			}
		}
	})

	t.Run("TCP queries work", func(t *testing.T) {
		r, err := d.ask(ctx, "www.isp.test", "A", "+tcp")
		expect(t, "www.isp.test A over TCP", r, err, "NOERROR", "A", lab.ISPWWWA)
		r, err = d.ask(ctx, "tcp-only.isp.test", "A", "+tcp") // not cached: forwarded
		expect(t, "tcp-only.isp.test A over TCP", r, err, "NOERROR", "A", lab.ISPRecordA)
		if alpha != "" {
			r, err = d.ask(ctx, "alpha.lan", "A", "+tcp")
			expect(t, "alpha.lan A over TCP", r, err, "NOERROR", "A", alpha)
		}
	})

	t.Run("on lan0's IPv6 addresses and on loopback", func(t *testing.T) {
		d.settleDNS(ctx, t, d.LAN6.Addr().String(), "www.isp.test", "A", "NOERROR", lab.ISPWWWA)
		d.settleDNS(ctx, t, d.LANLL.String()+"%eth0", "www.isp.test", "AAAA", "NOERROR", lab.ISPWWWAAAA)
		for _, server := range []string{"127.0.0.1", "::1"} {
			r, err := d.Router.Dig(ctx, server, "www.isp.test", "A", dnsAnswer, dnsOneTry)
			expect(t, "www.isp.test A @"+server+" in the router", r, err, "NOERROR", "A", lab.ISPWWWA)
		}
	})

	t.Run("localhost", func(t *testing.T) {
		r, err := d.ask(ctx, "localhost", "A")
		expect(t, "localhost A", r, err, "NOERROR", "A", "127.0.0.1")
		r, err = d.ask(ctx, "localhost", "AAAA")
		expect(t, "localhost AAAA", r, err, "NOERROR", "AAAA", "::1")
	})

	t.Run("20 repeats reach the upstream once", func(t *testing.T) {
		const name = "repeat.isp.test"
		for i := range 20 {
			r, err := d.ask(ctx, name, "A")
			expect(t, fmt.Sprintf("%s A, #%d", name, i+1), r, err, "NOERROR", "A", lab.ISPRecordA)
		}
		d.syncUpstream(ctx, t)
		if n := lab.DnsmasqQueries(d.Dnsmasq, "A", name); n != 1 {
			t.Errorf("the ISP's dnsmasq was asked for %s %d times, want 1; it logged %q", name, n, lab.DnsmasqQueried(d.Dnsmasq))
		}
	})

	t.Run("an ISP record pointing at 192.168.42.7 is not passed on", func(t *testing.T) {
		r, err := d.ask(ctx, lab.ISPRebindName, "A")
		expect(t, lab.ISPRebindName+" A", r, err, "NOERROR", "A")
		// ... though the ISP was asked and answered it (the lab's
		// plumbing above): the router dropped the answer.
		d.syncUpstream(ctx, t)
		if n := lab.DnsmasqQueries(d.Dnsmasq, "A", lab.ISPRebindName); n == 0 {
			t.Errorf("the router never asked the ISP for %s, so the empty answer proves nothing", lab.ISPRebindName)
		}
	})

	t.Run("a query from the ISP side to the uplink address gets no answer", func(t *testing.T) {
		servers := []string{d.Uplink4.String()}
		for _, a := range d.Uplink6 {
			servers = append(servers, a.String())
		}
		for _, server := range servers {
			for _, proto := range []string{"+notcp", "+tcp"} {
				t.Run(server+" "+proto, func(t *testing.T) {
					t.Parallel()
					r, err := d.ISP.Dig(ctx, server, "www.isp.test", "A", dnsNoAnswer, dnsOneTry, proto)
					var de *lab.DigError
					if !errors.As(err, &de) || !de.TimedOut() {
						t.Errorf("dig @%s %s from the ISP: %v, %v; want no answer (a timeout)", server, proto, r, err)
					}
				})
			}
		}
	})

	t.Run("it listens on lan0's addresses and loopback only, never on uplink0", func(t *testing.T) {
		lanAddrs := map[netip.Addr]bool{}
		for _, a := range links(ctx, t, d.Router)["lan0"].AddrInfo {
			if addr, err := netip.ParseAddr(a.Local); err == nil {
				lanAddrs[addr] = true
			}
		}
		for _, proto := range []string{"udp", "tcp"} {
			socks := listeners(ctx, t, d.Router, proto, 53)
			t.Logf("%s port 53 in the router namespace: %v", proto, socks)
			seen := map[netip.Addr]bool{}
			for _, a := range socks {
				seen[a] = true
				if !lanAddrs[a] && !a.IsLoopback() {
					t.Errorf("%s port 53 on %v: neither lan0's nor loopback (lan0 has %v)", proto, a, lanAddrs)
				}
			}
			for _, want := range []netip.Addr{netip.MustParseAddr(dnsLANIP), d.LAN6.Addr(), d.LANLL, netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()} {
				if !seen[want] {
					t.Errorf("nothing on %s port 53 at %v; listening on %v", proto, want, socks)
				}
			}
		}
	})

	t.Run("the router's own name has A and AAAA", func(t *testing.T) {
		// The router runs in its own network namespace, which shares
		// the test's UTS namespace: os.Hostname is the router's name.
		host, err := os.Hostname()
		if err != nil {
			t.Fatal(err)
		}
		host, _, _ = strings.Cut(host, ".")
		lanAddrs := map[string]bool{}
		for _, a := range links(ctx, t, d.Router)["lan0"].AddrInfo {
			lanAddrs[a.Local] = true
		}
		for _, name := range []string{host + ".lan", host} {
			r, err := d.ask(ctx, name, "A")
			expect(t, name+" A", r, err, "NOERROR", "A", dnsLANIP)
			r, err = d.ask(ctx, name, "AAAA")
			if err != nil {
				t.Errorf("%s AAAA: %v", name, err)
				continue
			}
			got := r.Data("AAAA")
			if r.Status != "NOERROR" || !slices.Contains(got, d.LAN6.Addr().String()) {
				t.Errorf("%s AAAA: got %s; want NOERROR with lan0's %v among lan0's addresses", name, r, d.LAN6.Addr())
			}
			for _, a := range got {
				if !lanAddrs[a] {
					t.Errorf("%s AAAA: %s is not an address of lan0 (%v)", name, a, lanAddrs)
				}
			}
		}
	})

	t.Run("dns.json: static hosts and rebind_allow, through SIGHUP", func(t *testing.T) {
		conf := `{"hosts": [{"name": "nas", "addrs": ["` + dnsNASA + `", "` + dnsNASAAAA + `"]}], "rebind_allow": ["isp.test", "plex.direct"]}
`
		if err := os.WriteFile(filepath.Join(d.PermDir, "dns.json"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := d.RouterProc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		d.settleDNS(ctx, t, dnsLANIP, "nas.lan", "A", "NOERROR", dnsNASA)
		r, err := d.ask(ctx, "NAS.lan", "AAAA")
		expect(t, "NAS.lan AAAA", r, err, "NOERROR", "AAAA", dnsNASAAAA)
		r, err = d.ask(ctx, lab.ISPAllowedName, "A")
		expect(t, lab.ISPAllowedName+" A (plex.direct is in rebind_allow)", r, err, "NOERROR", "A", lab.ISPAllowedA)
		// The upstream is still the lease's: dns.json has no upstreams.
		r, err = d.ask(ctx, "after-reload.isp.test", "A")
		expect(t, "after-reload.isp.test A", r, err, "NOERROR", "A", lab.ISPRecordA)
	})

	// Last: it takes the ISP's resolver away.
	t.Run("a 5 s-TTL name still answers 7 s after the upstream is killed", func(t *testing.T) {
		r, err := d.ask(ctx, lab.ISPShortName, "A")
		expect(t, lab.ISPShortName+" A", r, err, "NOERROR", "A", lab.ISPShortA)
		if err == nil && len(r.Answer) > 0 && r.Answer[0].TTL > lab.ISPShortTTL {
			t.Errorf("%s: TTL %d, more than the ISP's %d", lab.ISPShortName, r.Answer[0].TTL, lab.ISPShortTTL)
		}
		if err := d.Dnsmasq.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-d.Dnsmasq.Exited()
		killed := time.Now()
		// What is asserted is an answer at a time (7 s after the
		// kill, past the 5 s TTL), not a condition to wait for.
		select {
		case <-time.After(time.Until(killed.Add(dnsStaleWait))):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		r, err = d.LAN.Dig(ctx, dnsLANIP, lab.ISPShortName, "A", "+time=5", dnsOneTry)
		t.Logf("%v after the kill: %v %v", time.Since(killed).Round(time.Millisecond), r, err)
		expect(t, lab.ISPShortName+" A, stale", r, err, "NOERROR", "A", lab.ISPShortA)
		if err == nil && len(r.Answer) > 0 && r.Answer[0].TTL != dnsStaleTTL {
			t.Errorf("%s, stale: TTL %d, want %d", lab.ISPShortName, r.Answer[0].TTL, dnsStaleTTL)
		}
		// The control: the upstream is really gone, so a name never
		// asked for has no answer.
		r, err = d.LAN.Dig(ctx, dnsLANIP, "never-asked.isp.test", "A", "+time=5", dnsOneTry)
		t.Logf("never-asked.isp.test with the ISP's resolver dead: %v %v", r, err)
		if err == nil && len(r.Data("A")) > 0 {
			t.Errorf("never-asked.isp.test A with the ISP's resolver dead: %s", r)
		}
	})
}

// listeners lists the local addresses of n's sockets listening on port
// (proto "udp" or "tcp"), zones dropped.
func listeners(ctx context.Context, t *testing.T, n *lab.Netns, proto string, port uint16) []netip.Addr {
	t.Helper()
	flag := "-Htln"
	if proto == "udp" {
		flag = "-Huln"
	}
	out, err := n.Run(ctx, "ss", flag)
	if err != nil {
		t.Fatal(err)
	}
	var r []netip.Addr
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		i := strings.LastIndex(f[3], ":")
		if i < 0 || f[3][i+1:] != fmt.Sprint(port) {
			continue
		}
		host := strings.Trim(f[3][:i], "[]")
		host, _, _ = strings.Cut(host, "%")
		host = strings.Trim(host, "[]")
		if host == "*" {
			host = "::"
		}
		a, err := netip.ParseAddr(host)
		if err != nil {
			t.Errorf("ss: local address %q: %v", f[3], err)
			continue
		}
		r = append(r, a)
	}
	return r
}
