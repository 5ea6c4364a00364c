package dns

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/homerouter/homerouter/state"
)

// fakeUpstream is an in-process resolver on loopback: it answers from
// records, counts the queries it gets, and can be stopped.
type fakeUpstream struct {
	addr    netip.AddrPort
	queries atomic.Int64
	srv     *dns.Server
	mu      sync.Mutex
	records map[string][]dns.RR // by lowercase "name type"
}

func newFakeUpstream(t *testing.T, records ...string) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{records: map[string][]dns.RR{}}
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatal(err)
		}
		k := strings.ToLower(rr.Header().Name) + " " + dns.TypeToString[rr.Header().Rrtype]
		f.records[k] = append(f.records[k], rr)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = netip.MustParseAddrPort(pc.LocalAddr().String())
	started := make(chan struct{})
	f.srv = &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) }, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		f.queries.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		f.mu.Lock()
		m.Answer = f.records[strings.ToLower(q.Name)+" "+dns.TypeToString[q.Qtype]]
		f.mu.Unlock()
		if len(m.Answer) == 0 {
			m.Rcode = dns.RcodeNameError
			soa, _ := dns.NewRR(". 60 IN SOA a. b. 1 2 3 4 60")
			m.Ns = []dns.RR{soa}
		}
		w.WriteMsg(m)
	})}
	go f.srv.ActivateAndServe()
	<-started
	t.Cleanup(f.stop)
	return f
}

func (f *fakeUpstream) stop() { f.srv.Shutdown() }

// testHandler returns a handler forwarding to up, with a LAN of one
// acknowledged lease (alpha), one offered (beta), a host from dns.json
// and the router's own name, as the service builds it from the store.
func testHandler(t *testing.T, up *fakeUpstream, now func() time.Time) (*Handler, *state.Store) {
	t.Helper()
	st := state.NewStore(t.TempDir())
	st.Links.Publish([]state.Link{{Name: state.LAN, InForce: []state.Address{
		state.NewAddress(netip.MustParsePrefix("192.168.42.1/24"), state.OriginStatic, time.Time{}, time.Time{}),
		state.NewAddress(netip.MustParsePrefix("fd00:78:0:ff00::1/64"), state.OriginDelegated, time.Time{}, time.Time{}),
	}}})
	st.DHCPv4ServerLeases.Publish(state.DHCPv4ServerLeases{Leases: []state.DHCPv4ServerLease{
		{Addr: netip.MustParseAddr("192.168.42.100"), Hostname: "alpha", Expiry: now().Add(time.Hour)},
		{Addr: netip.MustParseAddr("192.168.42.101"), Offered: true, Expiry: now().Add(time.Minute)},
		{Addr: netip.MustParseAddr("192.168.42.102"), Hostname: "gone", Expiry: now().Add(-time.Minute)},
	}})
	st.DNS.Publish(state.DNS{
		Hosts:       []state.DNSHost{{Name: "nas", Addrs: []netip.Addr{netip.MustParseAddr("192.168.42.5")}}},
		RebindAllow: []string{"plex.direct"},
	})
	ups := func() []netip.AddrPort { return nil }
	if up != nil {
		ups = func() []netip.AddrPort { return []netip.AddrPort{up.addr} }
	}
	h := newHandler(NewForwarder(ups, 16), 100)
	h.now = now
	h.cache.Store(NewCache(100, now))
	h.wire.Store(newWireCache(100, now))
	h.upstreamWait = 300 * time.Millisecond
	h.local.Store(buildLocal(st, "router"))
	allow := []string{"plex.direct."}
	h.rebindAllow.Store(&allow)
	return h, st
}

func ask(t *testing.T, h *Handler, name string, qtype uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	m := h.answer(context.Background(), q)
	if m == nil || m.Id != q.Id || len(m.Question) != 1 || m.Question[0].Name != name {
		t.Fatalf("%s %s: reply %v does not answer the query", name, dns.TypeToString[qtype], m)
	}
	return m
}

func answerText(m *dns.Msg) string {
	var s []string
	for _, rr := range m.Answer {
		f := strings.Fields(rr.String())
		s = append(s, f[len(f)-1])
	}
	return dns.RcodeToString[m.Rcode] + " " + strings.Join(s, ",")
}

// TestLocal: the LAN's names, with case, PTR and NXDOMAIN; none of them
// reaches the upstream.
func TestLocal(t *testing.T) {
	up := newFakeUpstream(t)
	now := time.Now()
	h, _ := testHandler(t, up, func() time.Time { return now })
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  string
	}{
		{"alpha.lan.", dns.TypeA, "NOERROR 192.168.42.100"},
		{"ALPHA.LAN.", dns.TypeA, "NOERROR 192.168.42.100"},
		{"alpha.", dns.TypeA, "NOERROR 192.168.42.100"},
		{"alpha.lan.", dns.TypeAAAA, "NOERROR "},
		{"nas.lan.", dns.TypeA, "NOERROR 192.168.42.5"},
		{"router.lan.", dns.TypeA, "NOERROR 192.168.42.1"},
		{"router.lan.", dns.TypeAAAA, "NOERROR fd00:78:0:ff00::1"},
		{"router.", dns.TypeAAAA, "NOERROR fd00:78:0:ff00::1"},
		{"gone.lan.", dns.TypeA, "NXDOMAIN "}, // expired lease
		{"nosuch.lan.", dns.TypeA, "NXDOMAIN "},
		{"100.42.168.192.in-addr.arpa.", dns.TypePTR, "NOERROR alpha.lan."},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.f.f.0.0.0.0.8.7.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR, "NOERROR router.lan."},
		{"101.42.168.192.in-addr.arpa.", dns.TypePTR, "NXDOMAIN "}, // only offered
		{"localhost.", dns.TypeA, "NOERROR 127.0.0.1"},
		{"x.home.arpa.", dns.TypeA, "NXDOMAIN "},
		{"printer.local.", dns.TypeA, "NXDOMAIN "},
		{"5.0.0.10.in-addr.arpa.", dns.TypePTR, "NXDOMAIN "},
		{"7.1.16.172.in-addr.arpa.", dns.TypePTR, "NXDOMAIN "},
	} {
		if got := answerText(ask(t, h, tc.name, tc.qtype)); got != tc.want {
			t.Errorf("%s %s = %q, want %q", tc.name, dns.TypeToString[tc.qtype], got, tc.want)
		}
	}
	if n := up.queries.Load(); n != 0 {
		t.Errorf("the upstream got %d queries for local names, want 0", n)
	}
	// The root and a TLD's records are not LAN names: they go upstream.
	ask(t, h, ".", dns.TypeNS)
	ask(t, h, "com.", dns.TypeDS)
	if n := up.queries.Load(); n != 2 {
		t.Errorf("the upstream got %d queries for . NS and com. DS, want 2", n)
	}
}

// TestForwardCacheStale: forwarded once, then from the cache with its
// TTL counting down, negative answers cached; when the upstream is gone,
// expired entries answer with TTL 30, and a name never seen fails.
func TestForwardCacheStale(t *testing.T) {
	up := newFakeUpstream(t, "www.isp.test. 5 IN A 203.0.113.80")
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	h, _ := testHandler(t, up, clock)

	for i := range 20 {
		m := ask(t, h, "www.isp.test.", dns.TypeA)
		if got := answerText(m); got != "NOERROR 203.0.113.80" {
			t.Fatalf("query %d: %q", i, got)
		}
	}
	if n := up.queries.Load(); n != 1 {
		t.Errorf("20 queries reached the upstream %d times, want 1", n)
	}
	advance(2 * time.Second)
	if ttl := ask(t, h, "www.isp.test.", dns.TypeA).Answer[0].Header().Ttl; ttl != 3 {
		t.Errorf("TTL after 2 s = %d, want 3", ttl)
	}
	ask(t, h, "nosuch.isp.test.", dns.TypeA)
	if m := ask(t, h, "nosuch.isp.test.", dns.TypeA); m.Rcode != dns.RcodeNameError || up.queries.Load() != 2 {
		t.Errorf("negative answer: %v after %d upstream queries, want NXDOMAIN from the cache", dns.RcodeToString[m.Rcode], up.queries.Load())
	}

	up.stop()
	advance(7 * time.Second)
	m := ask(t, h, "www.isp.test.", dns.TypeA)
	if answerText(m) != "NOERROR 203.0.113.80" || m.Answer[0].Header().Ttl != staleTTL {
		t.Errorf("with the upstream gone: %v, want the stale answer with TTL %d", m, staleTTL)
	}
	if m := ask(t, h, "new.isp.test.", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("a name never seen, upstream gone: %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	st := h.status()
	if st.QueriesBySource["stale"] != 1 || st.QueriesBySource["cache"] < 19 || st.QueriesByType["A"] == 0 {
		t.Errorf("counters %+v", st)
	}
}

// TestOPT: a client without EDNS0 gets no OPT record back, even though
// the query upstream had one; a client with EDNS0 gets the router's.
func TestOPT(t *testing.T) {
	up := newFakeUpstream(t, "www.isp.test. 300 IN A 203.0.113.80")
	h, _ := testHandler(t, up, time.Now)
	for i := range 2 { // upstream, then the cache
		if m := ask(t, h, "www.isp.test.", dns.TypeA); m.IsEdns0() != nil {
			t.Errorf("query %d without EDNS0: the reply has %v", i, m.IsEdns0())
		}
		q := new(dns.Msg)
		q.SetQuestion("www.isp.test.", dns.TypeA)
		q.SetEdns0(1232, false)
		m := h.answer(context.Background(), q)
		if o := m.IsEdns0(); o == nil || o.UDPSize() != dns.DefaultMsgSize {
			t.Errorf("query %d with EDNS0: OPT %v, want one of %d bytes", i, o, dns.DefaultMsgSize)
		}
	}
}

// TestWire: a UDP query the cache answered once is answered again from
// the packed cache, byte for byte as the slow path would (the query's ID,
// case and RD bit, the TTLs counted down), without the upstream; a query
// of another kind (EDNS or not), a local name and an expired entry take
// the slow path.
func TestWire(t *testing.T) {
	up := newFakeUpstream(t, "www.isp.test. 300 IN A 203.0.113.80")
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h, _ := testHandler(t, up, clock)
	pack := func(name string, id uint16, rd, edns bool, qtype uint16) []byte {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.Id, m.RecursionDesired = id, rd
		if edns {
			m.SetEdns0(1232, false)
		}
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := h.serveUDP(context.Background(), pack("www.isp.test.", 1, true, false, dns.TypeA), nil)
	if first == nil {
		t.Fatal("no reply")
	}
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	b := h.wire.Load().answer(pack("WWW.Isp.TEST.", 77, false, false, dns.TypeA), nil)
	if b == nil {
		t.Fatal("the second query was not answered from the packed cache")
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	if m.Id != 77 || m.RecursionDesired || m.Question[0].Name != "WWW.Isp.TEST." || answerText(m) != "NOERROR 203.0.113.80" || m.Answer[0].Header().Ttl != 298 || m.IsEdns0() != nil {
		t.Errorf("from the packed cache: %v", m)
	}
	if n := up.queries.Load(); n != 1 {
		t.Errorf("%d upstream queries, want 1", n)
	}
	for _, tc := range []struct {
		what string
		q    []byte
	}{
		{"with EDNS", pack("www.isp.test.", 2, true, true, dns.TypeA)},
		{"another type", pack("www.isp.test.", 3, true, false, dns.TypeAAAA)},
		{"a local name", pack("alpha.lan.", 4, true, false, dns.TypeA)},
		{"not a query", []byte{0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"cut short", pack("www.isp.test.", 5, true, false, dns.TypeA)[:20]},
	} {
		if b := h.wire.Load().answer(tc.q, nil); b != nil {
			t.Errorf("%s: answered from the packed cache", tc.what)
		}
	}
	h.serveUDP(context.Background(), pack("alpha.lan.", 6, true, false, dns.TypeA), nil)
	if b := h.wire.Load().answer(pack("alpha.lan.", 7, true, false, dns.TypeA), nil); b != nil {
		t.Error("a local answer was kept in the packed cache")
	}
	mu.Lock()
	now = now.Add(300 * time.Second)
	mu.Unlock()
	if b := h.wire.Load().answer(pack("www.isp.test.", 8, true, false, dns.TypeA), nil); b != nil {
		t.Error("an expired entry was answered from the packed cache")
	}
}

// TestRebinding: an upstream answer into the home's ranges is replaced
// by an empty one, except under rebind_allow.
func TestRebinding(t *testing.T) {
	up := newFakeUpstream(t,
		"evil.example. 60 IN A 192.168.42.7",
		"evil6.example. 60 IN AAAA fd00:78:0:ff00::7",
		"local.example. 60 IN A 127.0.0.1",
		"x.plex.direct. 60 IN A 192.168.42.7",
		"ok.example. 60 IN A 203.0.113.7")
	h, _ := testHandler(t, up, time.Now)
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  string
	}{
		{"evil.example.", dns.TypeA, "NOERROR "},
		{"evil6.example.", dns.TypeAAAA, "NOERROR "},
		{"local.example.", dns.TypeA, "NOERROR "},
		{"x.plex.direct.", dns.TypeA, "NOERROR 192.168.42.7"},
		{"ok.example.", dns.TypeA, "NOERROR 203.0.113.7"},
	} {
		if got := answerText(ask(t, h, tc.name, tc.qtype)); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, got, tc.want)
		}
	}
	if b := h.status().RebindBlocked; b != 3 {
		t.Errorf("%d blocked, want 3", b)
	}
}

// TestMalformed: what is not one query gets an error or nothing, never a
// panic.
func TestMalformed(t *testing.T) {
	h, _ := testHandler(t, nil, time.Now)
	m := new(dns.Msg)
	if r := h.answer(context.Background(), m); r == nil || r.Rcode != dns.RcodeFormatError {
		t.Errorf("no question: %v", r)
	}
	m.SetQuestion("a.example.", dns.TypeA)
	m.Response = true
	if r := h.answer(context.Background(), m); r != nil {
		t.Errorf("a response was answered: %v", r)
	}
	m.Response = false
	m.Opcode = dns.OpcodeUpdate
	if r := h.answer(context.Background(), m); r == nil || r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("an update: %v", r)
	}
	m.Opcode = dns.OpcodeQuery
	if r := h.answer(context.Background(), m); r == nil || r.Rcode != dns.RcodeServerFailure {
		t.Errorf("no upstream: %v, want SERVFAIL", r)
	}
}

// FuzzHandler: random messages never panic the handler.
func FuzzHandler(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"alpha.lan.", dns.TypeA}, {"100.42.168.192.in-addr.arpa.", dns.TypePTR}, {"x.local.", dns.TypeAAAA}, {"localhost.", dns.TypeA}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(1232, true)
		b, _ := m.Pack()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, _ := testHandler(t, nil, time.Now)
		h.upstreamWait = time.Millisecond
		h.serveUDP(context.Background(), data, nil) // the packed path first
		m := new(dns.Msg)
		if m.Unpack(data) != nil {
			return
		}
		h.answer(context.Background(), m)
	})
}
