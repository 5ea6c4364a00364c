package diagnostics

import (
	"bytes"
	"context"
	"errors"
	"log"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/homerouter/homerouter/state"
	"github.com/miekg/dns"
)

// fakeProber answers pings and DNS queries from maps; an address not in
// them does not answer.
type fakeProber struct {
	pings   map[netip.Addr]bool
	queries map[netip.AddrPort]bool
	asked   []string
}

func (f *fakeProber) ping(_ context.Context, ifname string, dst netip.Addr) (time.Duration, error) {
	f.asked = append(f.asked, "ping "+ifname+" "+dst.String())
	if f.pings[dst] {
		return 1500 * time.Microsecond, nil
	}
	return 0, errors.New("no reply within 2s")
}

func (f *fakeProber) query(_ context.Context, server netip.AddrPort) (time.Duration, error) {
	f.asked = append(f.asked, "query "+server.String())
	if f.queries[server] {
		return 3 * time.Millisecond, nil
	}
	return 0, errors.New("i/o timeout")
}

var (
	now   = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	gw4   = netip.MustParseAddr("10.77.0.1")
	gw6   = netip.MustParseAddr("fe80::1")
	dns4  = netip.MustParseAddrPort("10.77.0.53:53")
	quad9 = netip.MustParseAddrPort("9.9.9.9:53")
)

// working is a home whose internet works.
func working() inputs {
	return inputs{
		now: now,
		links: []state.Link{
			{Name: "uplink0", HardwareAddr: "02:77:00:00:00:01", Up: true, Carrier: true,
				DefaultRoutes: []netip.Addr{gw4, gw6}},
			{Name: "lan0", HardwareAddr: "02:77:00:00:00:02", Up: true, Carrier: true},
		},
		lease4: state.DHCPv4Lease{Addr: netip.MustParsePrefix("10.77.0.150/24"), Router: gw4, ServerID: gw4,
			DNS: []netip.Addr{dns4.Addr()}, Expiry: now.Add(time.Hour)},
		status4: state.DHCPv4Status{State: "bound"},
		lease6: state.DHCPv6Lease{Prefixes: []state.DelegatedPrefix{{Prefix: netip.MustParsePrefix("2001:db8:1200::/56"),
			Valid: state.Duration(time.Hour), Preferred: state.Duration(time.Hour), Given: now}}},
		status6: state.DHCPv6Status{State: "bound"},
	}
}

func answering() *fakeProber {
	return &fakeProber{pings: map[netip.Addr]bool{gw4: true, gw6: true}, queries: map[netip.AddrPort]bool{dns4: true, quad9: true}}
}

// flat renders a tree as "path: verdict" lines, for comparing.
func flat(checks []state.HealthCheck) string {
	var b strings.Builder
	var walk func(c state.HealthCheck, parent string)
	walk = func(c state.HealthCheck, parent string) {
		path := c.Name
		if parent != "" {
			path = parent + "/" + c.Name
		}
		switch {
		case c.Error != "":
			b.WriteString(path + ": ✘ " + c.Error + "\n")
		case c.Notice != "":
			b.WriteString(path + ": ✔ " + c.Summary + " [" + c.Notice + "]\n")
		default:
			b.WriteString(path + ": ✔ " + c.Summary + "\n")
		}
		for _, child := range c.Children {
			walk(child, path)
		}
	}
	for _, c := range checks {
		walk(c, "")
	}
	return b.String()
}

func TestTree(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(in *inputs, p *fakeProber)
		want   string
	}{
		{
			name: "all well",
			want: `link/uplink0: ✔ 02:77:00:00:00:01 up, carrier
link/uplink0/dhcp4: ✔ 10.77.0.150/24 from 10.77.0.1, ends in 1h0m0s
link/uplink0/dhcp4/gateway: ✔ 10.77.0.1 answered in 1.5ms
link/uplink0/dhcp4/dns: ✔ 10.77.0.53:53 answered in 3ms
link/uplink0/dhcp6: ✔ 2001:db8:1200::/56, valid: ends in 1h0m0s
link/uplink0/dhcp6/route6: ✔ via fe80::1
link/uplink0/dhcp6/route6/gateway: ✔ fe80::1 answered in 1.5ms
link/lan0: ✔ 02:77:00:00:00:02 up, carrier
`,
		},
		{
			name:   "the cable pulled: everything on uplink0 fails because of it",
			change: func(in *inputs, p *fakeProber) { in.links[0].Carrier = false },
			want: `link/uplink0: ✘ no carrier on uplink0: is the cable in, and the other end on?
link/uplink0/dhcp4: ✘ dependency link/uplink0 failed
link/uplink0/dhcp4/gateway: ✘ dependency link/uplink0 failed
link/uplink0/dhcp4/dns: ✘ dependency link/uplink0 failed
link/uplink0/dhcp6: ✘ dependency link/uplink0 failed
link/uplink0/dhcp6/route6: ✘ dependency link/uplink0 failed
link/uplink0/dhcp6/route6/gateway: ✘ dependency link/uplink0 failed
link/lan0: ✔ 02:77:00:00:00:02 up, carrier
`,
		},
		{
			name: "no lease yet, no IPv6, lan0 gone",
			change: func(in *inputs, p *fakeProber) {
				in.lease4, in.lease6 = state.DHCPv4Lease{}, state.DHCPv6Lease{}
				in.status4.State, in.status6.State = "selecting", "soliciting"
				in.links = in.links[:1]
			},
			want: `link/uplink0: ✔ 02:77:00:00:00:01 up, carrier
link/uplink0/dhcp4: ✘ no lease (the DHCPv4 client is selecting)
link/uplink0/dhcp4/gateway: ✘ dependency link/uplink0/dhcp4 failed
link/uplink0/dhcp4/dns: ✘ dependency link/uplink0/dhcp4 failed
link/uplink0/dhcp6: ✔ no delegated prefix [no IPv6 from the ISP: no delegated prefix (the DHCPv6 client is soliciting); the home has IPv4 and its own unique local IPv6]
link/lan0: ✘ no link lan0 (is interfaces.json's hardware_addr right?)
`,
		},
		{
			name: "a lease kept past its end is reported as such, and passes",
			change: func(in *inputs, p *fakeProber) {
				in.lease4.Expiry = now.Add(-90 * time.Second)
				in.status4.Retained = true
			},
			want: `link/uplink0: ✔ 02:77:00:00:00:01 up, carrier
link/uplink0/dhcp4: ✔ 10.77.0.150/24 from 10.77.0.1, ends 1m30s ago [kept past its end (1m30s ago): the ISP's DHCP server does not answer, and the address most likely still works]
link/uplink0/dhcp4/gateway: ✔ 10.77.0.1 answered in 1.5ms
link/uplink0/dhcp4/dns: ✔ 10.77.0.53:53 answered in 3ms
link/uplink0/dhcp6: ✔ 2001:db8:1200::/56, valid: ends in 1h0m0s
link/uplink0/dhcp6/route6: ✔ via fe80::1
link/uplink0/dhcp6/route6/gateway: ✔ fe80::1 answered in 1.5ms
link/lan0: ✔ 02:77:00:00:00:02 up, carrier
`,
		},
		{
			name: "dns.json's upstreams are asked, in order, rather than the lease's; no IPv6 route",
			change: func(in *inputs, p *fakeProber) {
				in.dns.Upstreams = []string{"10.99.0.1", "9.9.9.9"}
				in.links[0].DefaultRoutes = []netip.Addr{gw4}
			},
			want: `link/uplink0: ✔ 02:77:00:00:00:01 up, carrier
link/uplink0/dhcp4: ✔ 10.77.0.150/24 from 10.77.0.1, ends in 1h0m0s
link/uplink0/dhcp4/gateway: ✔ 10.77.0.1 answered in 1.5ms
link/uplink0/dhcp4/dns: ✔ 9.9.9.9:53 answered in 3ms
link/uplink0/dhcp6: ✔ 2001:db8:1200::/56, valid: ends in 1h0m0s
link/uplink0/dhcp6/route6: ✘ uplink0 has no IPv6 default route: the ISP's router advertisements gave none
link/uplink0/dhcp6/route6/gateway: ✘ dependency link/uplink0/dhcp6/route6 failed
link/lan0: ✔ 02:77:00:00:00:02 up, carrier
`,
		},
		{
			name: "nobody answers, at the first look: no hysteresis before a first pass",
			change: func(in *inputs, p *fakeProber) {
				p.pings, p.queries = nil, nil
				in.links[1].Up = false
			},
			want: `link/uplink0: ✔ 02:77:00:00:00:01 up, carrier
link/uplink0/dhcp4: ✔ 10.77.0.150/24 from 10.77.0.1, ends in 1h0m0s
link/uplink0/dhcp4/gateway: ✘ no answer to a ping of 10.77.0.1: no reply within 2s
link/uplink0/dhcp4/dns: ✘ no upstream DNS server answers: [10.77.0.53:53: i/o timeout]
link/uplink0/dhcp6: ✔ 2001:db8:1200::/56, valid: ends in 1h0m0s
link/uplink0/dhcp6/route6: ✔ via fe80::1
link/uplink0/dhcp6/route6/gateway: ✘ no answer to a ping of fe80::1: no reply within 2s
link/lan0: ✘ lan0 is down
`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, p := working(), answering()
			if tc.change != nil {
				tc.change(&in, p)
			}
			var e evaluator
			if got := flat(e.run(context.Background(), tree(in, p), true)); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestDependencyNotRun: the children of a failed check send nothing.
func TestDependencyNotRun(t *testing.T) {
	in, p := working(), answering()
	in.links[0].Carrier = false
	var e evaluator
	e.run(context.Background(), tree(in, p), true)
	if len(p.asked) != 0 {
		t.Errorf("with no carrier, the probes still asked %v", p.asked)
	}
}

// TestHysteresis steps the gateway's ping through losses: one lost ping
// is a notice, two in a row a failure, one answer a pass again; a check
// that has not passed since its dependency came back fails at once.
func TestHysteresis(t *testing.T) {
	in, p := working(), answering()
	var e evaluator
	gateway := func() state.HealthCheck {
		t.Helper()
		return e.run(context.Background(), tree(in, p), true)[0].Children[0].Children[0]
	}
	for i, step := range []struct {
		answers    bool
		carrier    bool
		wantOK     bool
		wantNotice string
		wantError  string
	}{
		{answers: true, carrier: true, wantOK: true},
		{answers: false, carrier: true, wantOK: true, wantNotice: "no answer to a ping of 10.77.0.1: no reply within 2s (failed 1 time(s) in a row; it fails after 2)"},
		{answers: true, carrier: true, wantOK: true},
		{answers: false, carrier: true, wantOK: true, wantNotice: "failed 1 time(s)"},
		{answers: false, carrier: true, wantError: "no answer to a ping of 10.77.0.1"},
		{answers: false, carrier: true, wantError: "no answer to a ping of 10.77.0.1"},
		{answers: true, carrier: true, wantOK: true},
		{answers: true, carrier: false, wantError: "dependency link/uplink0 failed"},
		// Back from a failed dependency, the check has to pass again
		// before a loss is tolerated.
		{answers: false, carrier: true, wantError: "no answer to a ping of 10.77.0.1"},
		{answers: true, carrier: true, wantOK: true},
	} {
		p.pings[gw4] = step.answers
		in.links[0].Carrier = step.carrier
		c := gateway()
		if c.OK != step.wantOK || !strings.Contains(c.Notice, step.wantNotice) || !strings.Contains(c.Error, step.wantError) ||
			(step.wantNotice == "" && c.Notice != "") || (step.wantError == "" && c.Error != "") {
			t.Errorf("step %d (answers %v, carrier %v): got %+v, want ok %v, notice %q, error %q", i, step.answers, step.carrier, c, step.wantOK, step.wantNotice, step.wantError)
		}
	}
}

// TestLogChanges: the log says when a check fails and passes again, once,
// and leaves out the failures of its dependents.
func TestLogChanges(t *testing.T) {
	var buf bytes.Buffer
	s := &Service{logger: log.New(&buf, "", 0)}
	in, p := working(), answering()
	var e evaluator
	was := map[string]string{}
	for _, carrier := range []bool{true, false, false, true} {
		in.links[0].Carrier = carrier
		s.logChanges(e.run(context.Background(), tree(in, p), true), was)
	}
	want := "link/uplink0: no carrier on uplink0: is the cable in, and the other end on?\nlink/uplink0: ok again (02:77:00:00:00:01 up, carrier)\n"
	if buf.String() != want {
		t.Errorf("log:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// TestNetwork sends real packets on loopback: a ping to 127.0.0.1 and
// ::1, and a question to a DNS server that refuses everything (an answer
// all the same) and to a port where nobody listens.
func TestNetwork(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("raw ICMP sockets need root")
	}
	ctx := context.Background()
	for _, a := range []string{"127.0.0.1", "::1"} {
		if rtt, err := (network{}).ping(ctx, "lo", netip.MustParseAddr(a)); err != nil || rtt <= 0 {
			t.Errorf("ping %s: %v, %v", a, rtt, err)
		}
	}
	// Out of lo, to an address nobody has: only the timeout ends it,
	// or the router stopping, at once.
	start := time.Now()
	if _, err := (network{}).ping(ctx, "lo", netip.MustParseAddr("10.255.255.1")); err == nil || !strings.Contains(err.Error(), "no reply within") || time.Since(start) < probeTimeout {
		t.Errorf("ping of an address nobody has: %v after %v", err, time.Since(start))
	}
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	if _, err := (network{}).ping(cctx, "lo", netip.MustParseAddr("10.255.255.1")); !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Errorf("ping cancelled after 100ms: %v after %v", err, time.Since(start))
	}

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeRefused)
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	defer srv.Shutdown()
	if _, err := (network{}).query(ctx, netip.MustParseAddrPort(pc.LocalAddr().String())); err != nil {
		t.Errorf("a refusing server: %v, want an answer", err)
	}
	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	if _, err := (network{}).query(ctx, netip.MustParseAddrPort(closed.LocalAddr().String())); err == nil {
		t.Errorf("nobody listening: no error")
	}
}

// TestQuickRounds: between fresh rounds a change shows at once and the
// probes repeat their verdicts without asking the network, except one
// that has not run since its dependency came back.
func TestQuickRounds(t *testing.T) {
	in, p := working(), answering()
	var e evaluator
	ctx := context.Background()
	e.run(ctx, tree(in, p), true)
	if len(p.asked) != 3 {
		t.Fatalf("a fresh round asked %v, want the 3 probes", p.asked)
	}
	p.pings[gw4] = false // a failure only a fresh round sees
	if got := e.run(ctx, tree(in, p), false); !got[0].OK || len(p.asked) != 3 {
		t.Errorf("a quick round asked %v or failed: %s", p.asked, flat(got))
	}
	in.links[0].Carrier = false
	if got := e.run(ctx, tree(in, p), false); got[0].Error == "" || len(p.asked) != 3 {
		t.Errorf("carrier lost: asked %v, tree:\n%s", p.asked, flat(got))
	}
	in.links[0].Carrier = true
	got := e.run(ctx, tree(in, p), false)
	if len(p.asked) != 6 {
		t.Errorf("back from a failed dependency the probes asked %v, want 3 more", p.asked)
	}
	if c := got[0].Children[0].Children[0]; c.Error == "" {
		t.Errorf("the gateway, asked again: %+v, want its failure", c)
	}
	// Another gateway (a new lease): asked at once, not judged by the
	// old one's verdict.
	other := netip.MustParseAddr("10.77.0.2")
	p.pings[other] = true
	in.links[0].DefaultRoutes = []netip.Addr{other, gw6}
	got = e.run(ctx, tree(in, p), false)
	if c := got[0].Children[0].Children[0]; !c.OK || p.asked[len(p.asked)-1] != "ping uplink0 10.77.0.2" {
		t.Errorf("a new gateway: %+v, asked %v", c, p.asked)
	}
}
