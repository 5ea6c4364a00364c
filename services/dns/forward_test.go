package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fwdUpstream is an in-process upstream resolver on 127.0.0.1, over UDP
// and, if asked for, TCP on the same port. Each query it receives is sent
// on queries before handle answers it.
type fwdUpstream struct {
	addr    netip.AddrPort
	queries chan fwdQuery
	udp     atomic.Int32
	tcp     atomic.Int32
}

type fwdQuery struct {
	msg  *dns.Msg
	tcp  bool
	from netip.AddrPort
}

// startUpstream starts an upstream whose handler is handle.
func startUpstream(t *testing.T, withTCP bool, handle func(w dns.ResponseWriter, r *dns.Msg, tcp bool)) *fwdUpstream {
	t.Helper()
	u := &fwdUpstream{queries: make(chan fwdQuery, 1000)}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		var from netip.AddrPort
		tcp := false
		switch a := w.RemoteAddr().(type) {
		case *net.TCPAddr:
			from, tcp = a.AddrPort(), true
			u.tcp.Add(1)
		case *net.UDPAddr:
			from = a.AddrPort()
			u.udp.Add(1)
		}
		u.queries <- fwdQuery{r.Copy(), tcp, from}
		handle(w, r, tcp)
	})

	var pc net.PacketConn
	var l net.Listener
	for range 20 { // the TCP port of a random UDP port may be taken
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if !withTCP {
			break
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free over both UDP and TCP")
	}
	u.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	serve := func(srv *dns.Server) {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	serve(&dns.Server{PacketConn: pc, Handler: h})
	if l != nil {
		serve(&dns.Server{Listener: l, Handler: h})
	}
	return u
}

// answerA answers with an A record for the question name, 192.0.2.n.
func answerA(n byte) func(w dns.ResponseWriter, r *dns.Msg, tcp bool) {
	return func(w dns.ResponseWriter, r *dns.Msg, tcp bool) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A:   net.IPv4(192, 0, 2, n),
		})
		w.WriteMsg(m)
	}
}

// silent never answers.
func silent(dns.ResponseWriter, *dns.Msg, bool) {}

// closedPort returns a UDP address on which nothing listens, so that
// queries to it fail with ICMP port unreachable.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func newTestForwarder(ups []netip.AddrPort, maxInFlight int, try time.Duration) *Forwarder {
	f := NewForwarder(func() []netip.AddrPort { return ups }, maxInFlight)
	f.tryTimeout = try
	return f
}

// answerIP returns the address of the first A record of m.
func answerIP(m *dns.Msg) string {
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return ""
}

func TestForwardFailover(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first func(t *testing.T) netip.AddrPort
	}{
		{"silent", func(t *testing.T) netip.AddrPort { return startUpstream(t, false, silent).addr }},
		{"port closed", closedPort},
		{"REFUSED", func(t *testing.T) netip.AddrPort {
			return startUpstream(t, false, func(w dns.ResponseWriter, r *dns.Msg, _ bool) {
				m := new(dns.Msg)
				w.WriteMsg(m.SetRcode(r, dns.RcodeRefused))
			}).addr
		}},
		{"wrong question only", func(t *testing.T) netip.AddrPort {
			return startUpstream(t, false, func(w dns.ResponseWriter, r *dns.Msg, _ bool) {
				m := new(dns.Msg)
				m.SetReply(r)
				m.Question[0].Name = "other.example."
				w.WriteMsg(m)
			}).addr
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			first := tc.first(t)
			good := startUpstream(t, false, answerA(2))
			f := newTestForwarder([]netip.AddrPort{first, good.addr}, 10, time.Second)

			r, err := f.Exchange(context.Background(), query("www.example.com.", dns.TypeA))
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if got := answerIP(r); got != "192.0.2.2" {
				t.Errorf("answer %q, want 192.0.2.2 from the second upstream", got)
			}
			rtts := f.RTTs()
			if rtts[first] < rtts[good.addr] {
				t.Errorf("RTTs %v: the failed upstream is not penalised", rtts)
			}

			// The next query goes to the good upstream first.
			if _, err := f.Exchange(context.Background(), query("www2.example.com.", dns.TypeA)); err != nil {
				t.Fatalf("second Exchange: %v", err)
			}
			if n := good.udp.Load(); n != 2 {
				t.Errorf("the good upstream got %d queries, want 2", n)
			}
		})
	}

	t.Run("all fail", func(t *testing.T) {
		t.Parallel()
		f := newTestForwarder([]netip.AddrPort{startUpstream(t, false, silent).addr, closedPort(t)}, 10, 100*time.Millisecond)
		r, err := f.Exchange(context.Background(), query("www.example.com.", dns.TypeA))
		if err == nil || errors.Is(err, ErrNoUpstream) || errors.Is(err, ErrBusy) {
			t.Errorf("Exchange = %v, %v; want a timeout/refused error", r, err)
		}
	})

	t.Run("ctx ends", func(t *testing.T) {
		t.Parallel()
		f := newTestForwarder([]netip.AddrPort{startUpstream(t, false, silent).addr}, 10, 2*time.Second)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error)
		go func() {
			_, err := f.Exchange(ctx, query("www.example.com.", dns.TypeA))
			errc <- err
		}()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Exchange after cancel: %v, want context.Canceled", err)
		}
	})
}

func TestForwardRTTPreference(t *testing.T) {
	slow := startUpstream(t, false, func(w dns.ResponseWriter, r *dns.Msg, tcp bool) {
		time.Sleep(50 * time.Millisecond) // the upstream is slow, not the test waiting
		answerA(1)(w, r, tcp)
	})
	fast := startUpstream(t, false, answerA(2))
	// The slow one is listed first, so it is tried first.
	f := newTestForwarder([]netip.AddrPort{slow.addr, fast.addr}, 10, time.Second)
	const n = 20
	for i := range n {
		if _, err := f.Exchange(context.Background(), query(fmt.Sprintf("q%d.example.com.", i), dns.TypeA)); err != nil {
			t.Fatalf("Exchange %d: %v", i, err)
		}
	}
	if s, f := slow.udp.Load(), fast.udp.Load(); s != 1 || f != n-1 {
		t.Errorf("slow upstream got %d queries, fast %d; want 1 (to measure it) and %d", s, f, n-1)
	}
	rtts := f.RTTs()
	if rtts[slow.addr] < 50*time.Millisecond || rtts[fast.addr] >= rtts[slow.addr] {
		t.Errorf("RTTs %v: want slow ≥ 50ms > fast", rtts)
	}
}

func TestForwardTCPOnTruncation(t *testing.T) {
	full := func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for i := range 3 {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.IPv4(192, 0, 2, byte(i+1)),
			})
		}
		w.WriteMsg(m)
	}
	for _, tc := range []struct {
		name string
		udp  func(w dns.ResponseWriter, r *dns.Msg)
	}{
		{"TC with no records", func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(r)
			m.Truncated = true
			w.WriteMsg(m)
		}},
		{"TC cut mid-record", func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(r)
			m.Truncated = true
			m.Answer = append(m.Answer, &dns.TXT{
				Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
				Txt: []string{"a long string cut in the middle"},
			})
			b, err := m.Pack()
			if err != nil {
				panic(err)
			}
			w.Write(b[:len(b)-10])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := startUpstream(t, true, func(w dns.ResponseWriter, r *dns.Msg, tcp bool) {
				if tcp {
					full(w, r)
				} else {
					tc.udp(w, r)
				}
			})
			f := newTestForwarder([]netip.AddrPort{up.addr}, 10, time.Second)
			r, err := f.Exchange(context.Background(), query("big.example.com.", dns.TypeA))
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if r.Truncated || len(r.Answer) != 3 {
				t.Errorf("reply truncated %t with %d answers, want the full TCP reply with 3", r.Truncated, len(r.Answer))
			}
			if u, tcp := up.udp.Load(), up.tcp.Load(); u != 1 || tcp != 1 {
				t.Errorf("upstream got %d UDP and %d TCP queries, want 1 and 1", u, tcp)
			}
		})
	}
}

func TestForwardCoalescing(t *testing.T) {
	release := make(chan struct{})
	up := startUpstream(t, false, func(w dns.ResponseWriter, r *dns.Msg, tcp bool) {
		<-release
		answerA(1)(w, r, tcp)
	})
	f := newTestForwarder([]netip.AddrPort{up.addr}, 10, 10*time.Second)
	joined := make(chan struct{}, 100)
	f.joined = func() { joined <- struct{}{} }

	// Identical questions, in any case, are coalesced; another DO bit is
	// another question.
	names := []string{"www.example.com.", "WWW.example.com.", "www.EXAMPLE.com.", "www.example.COM."}
	const perName = 5
	type result struct {
		req, r *dns.Msg
		err    error
	}
	results := make(chan result)
	var wg sync.WaitGroup
	ask := func(req *dns.Msg) {
		wg.Go(func() {
			r, err := f.Exchange(context.Background(), req)
			results <- result{req, r, err}
		})
	}
	id := uint16(1000)
	for range perName {
		for _, name := range names {
			req := query(name, dns.TypeA)
			req.Id = id
			id++
			ask(req)
		}
	}
	withDO := query("www.example.com.", dns.TypeA)
	withDO.SetEdns0(1232, true)
	ask(withDO)

	for range perName*len(names) + 1 {
		<-joined
	}
	close(release)
	go func() { wg.Wait(); close(results) }()

	seen := make(map[*dns.Msg]bool)
	for res := range results {
		if res.err != nil {
			t.Errorf("Exchange(%v): %v", res.req.Question[0], res.err)
			continue
		}
		if res.r.Id != res.req.Id || res.r.Question[0] != res.req.Question[0] {
			t.Errorf("reply ID %d question %v, want %d and %v", res.r.Id, res.r.Question[0], res.req.Id, res.req.Question[0])
		}
		if seen[res.r] {
			t.Errorf("two callers got the same *dns.Msg")
		}
		seen[res.r] = true
	}
	if n := up.udp.Load(); n != 2 {
		t.Errorf("upstream got %d queries, want 2 (one without DO, one with)", n)
	}
}

func TestForwardMismatch(t *testing.T) {
	// wrong returns a reply to r spoiled by spoil.
	wrong := func(r *dns.Msg, spoil func(m *dns.Msg)) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A:   net.IPv4(192, 0, 2, 66),
		})
		spoil(m)
		return m
	}
	spoils := map[string]func(m *dns.Msg){
		"wrong name":     func(m *dns.Msg) { m.Question[0].Name = "evil.example." },
		"wrong ID":       func(m *dns.Msg) { m.Id++ },
		"wrong type":     func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA },
		"wrong class":    func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS },
		"no question":    func(m *dns.Msg) { m.Question = nil },
		"not a response": func(m *dns.Msg) { m.Response = false },
		"two questions":  func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) },
		"garbage":        nil, // not a DNS message at all
	}
	for name, spoil := range spoils {
		t.Run(name+" then right", func(t *testing.T) {
			t.Parallel()
			up := startUpstream(t, false, func(w dns.ResponseWriter, r *dns.Msg, tcp bool) {
				if spoil == nil {
					w.Write([]byte("\x12\x34garbage"))
				} else {
					w.WriteMsg(wrong(r, spoil))
				}
				answerA(1)(w, r, tcp)
			})
			f := newTestForwarder([]netip.AddrPort{up.addr}, 10, time.Second)
			r, err := f.Exchange(context.Background(), query("www.example.com.", dns.TypeA))
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if got := answerIP(r); got != "192.0.2.1" {
				t.Errorf("answer %s, want the right one, 192.0.2.1", got)
			}
		})
	}

	t.Run("upper-case name accepted", func(t *testing.T) {
		t.Parallel()
		up := startUpstream(t, false, func(w dns.ResponseWriter, r *dns.Msg, _ bool) {
			w.WriteMsg(wrong(r, func(m *dns.Msg) { m.Question[0].Name = "WWW.EXAMPLE.COM." }))
		})
		f := newTestForwarder([]netip.AddrPort{up.addr}, 10, time.Second)
		r, err := f.Exchange(context.Background(), query("www.example.com.", dns.TypeA))
		if err != nil || answerIP(r) != "192.0.2.66" {
			t.Fatalf("Exchange = %v, %v; want the reply", r, err)
		}
		if r.Question[0].Name != "www.example.com." {
			t.Errorf("question %v, want the name as asked", r.Question[0])
		}
	})

	t.Run("wrong only, one upstream", func(t *testing.T) {
		t.Parallel()
		up := startUpstream(t, false, func(w dns.ResponseWriter, r *dns.Msg, _ bool) {
			w.WriteMsg(wrong(r, func(m *dns.Msg) { m.Question[0].Name = "evil.example." }))
		})
		f := newTestForwarder([]netip.AddrPort{up.addr}, 10, 100*time.Millisecond)
		if r, err := f.Exchange(context.Background(), query("www.example.com.", dns.TypeA)); err == nil {
			t.Errorf("Exchange = %v, want an error", r)
		}
	})
}

func TestForwardBusy(t *testing.T) {
	release := make(chan struct{})
	up := startUpstream(t, false, func(w dns.ResponseWriter, r *dns.Msg, tcp bool) {
		if r.Question[0].Name == "slow.example.com." {
			<-release
		}
		answerA(1)(w, r, tcp)
	})
	f := newTestForwarder([]netip.AddrPort{up.addr}, 1, 10*time.Second)

	errc := make(chan error)
	go func() {
		_, err := f.Exchange(context.Background(), query("slow.example.com.", dns.TypeA))
		errc <- err
	}()
	<-up.queries // the first query is in flight upstream

	if _, err := f.Exchange(context.Background(), query("other.example.com.", dns.TypeA)); !errors.Is(err, ErrBusy) {
		t.Errorf("second Exchange: %v, want ErrBusy", err)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Errorf("first Exchange: %v", err)
	}
	if _, err := f.Exchange(context.Background(), query("other.example.com.", dns.TypeA)); err != nil {
		t.Errorf("Exchange after the first one ended: %v", err)
	}
}

func TestForwardNoUpstream(t *testing.T) {
	for _, ups := range [][]netip.AddrPort{nil, {}} {
		f := newTestForwarder(ups, 10, time.Second)
		if _, err := f.Exchange(context.Background(), query("www.example.com.", dns.TypeA)); !errors.Is(err, ErrNoUpstream) {
			t.Errorf("Exchange with upstreams %v: %v, want ErrNoUpstream", ups, err)
		}
	}
	f := newTestForwarder(nil, 10, time.Second)
	if _, err := f.Exchange(context.Background(), new(dns.Msg)); err == nil {
		t.Errorf("Exchange without a question: no error")
	}
}

func TestForwardHeaderAndEDNS(t *testing.T) {
	up := startUpstream(t, false, answerA(1))
	f := newTestForwarder([]netip.AddrPort{up.addr}, 10, time.Second)
	for i, tc := range []struct {
		name     string
		edns     func(m *dns.Msg)
		wantSize uint16
		wantDO   bool
	}{
		{"no OPT", func(m *dns.Msg) {}, 1232, false},
		{"OPT 4096 with DO", func(m *dns.Msg) { m.SetEdns0(4096, true) }, 4096, true},
		{"OPT 1400 without DO", func(m *dns.Msg) { m.SetEdns0(1400, false) }, 1400, false},
		{"OPT 100, raised to 512", func(m *dns.Msg) { m.SetEdns0(100, false) }, 512, false},
		{"OPT with a cookie, dropped", func(m *dns.Msg) {
			m.SetEdns0(1232, true)
			opt := m.IsEdns0()
			opt.Option = append(opt.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"})
		}, 1232, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := query(fmt.Sprintf("q%d.example.com.", i), dns.TypeA)
			req.Id = 4242
			req.CheckingDisabled = true
			tc.edns(req)
			r, err := f.Exchange(context.Background(), req)
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if r.Id != req.Id {
				t.Errorf("reply ID %d, want the query's %d", r.Id, req.Id)
			}
			got := (<-up.queries).msg
			if got.Id == req.Id {
				t.Logf("upstream query ID %d equals the client's (1 in 65536 by chance)", got.Id)
			}
			if !got.RecursionDesired || !got.CheckingDisabled {
				t.Errorf("upstream query RD %t CD %t, want both", got.RecursionDesired, got.CheckingDisabled)
			}
			opt := got.IsEdns0()
			if opt == nil {
				t.Fatal("upstream query without OPT record")
			}
			if opt.UDPSize() != tc.wantSize || opt.Do() != tc.wantDO {
				t.Errorf("upstream OPT size %d DO %t, want %d %t", opt.UDPSize(), opt.Do(), tc.wantSize, tc.wantDO)
			}
			for _, o := range opt.Option {
				if o.Option() == dns.EDNS0COOKIE {
					t.Errorf("the client's cookie went upstream")
				}
			}
		})
	}
}

func TestForwardRandomIDsAndPorts(t *testing.T) {
	up := startUpstream(t, false, answerA(1))
	f := newTestForwarder([]netip.AddrPort{up.addr}, 10, time.Second)
	ids := make(map[uint16]bool)
	ports := make(map[uint16]bool)
	for i := range 10 {
		req := query(fmt.Sprintf("q%d.example.com.", i), dns.TypeA)
		req.Id = 7
		if _, err := f.Exchange(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		q := <-up.queries
		ids[q.msg.Id] = true
		ports[q.from.Port()] = true
	}
	// By chance, a few may repeat.
	if len(ids) < 8 || len(ports) < 8 {
		t.Errorf("10 upstream queries used %d distinct IDs and %d distinct source ports", len(ids), len(ports))
	}
}
