package dns

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/homerouter/homerouter/state"
)

// Handler answers the LAN's queries: local names and locally served
// zones itself, everything else from its cache or upstream, with
// rebinding protection and, when the upstreams are gone, stale answers.
type Handler struct {
	local       atomic.Pointer[local]
	rebindAllow atomic.Pointer[[]string] // lowercase FQDNs
	cache       atomic.Pointer[Cache]
	wire        atomic.Pointer[wireCache] // the cache's answers, packed
	fwd         *Forwarder
	now         func() time.Time
	// upstreamWait is how long a query waits for the upstreams before
	// a stale answer is served (RFC 8767 suggests 1.8 s; a home wants
	// less).
	upstreamWait time.Duration

	mu       sync.Mutex // guards the counters below
	byType   map[string]uint64
	bySource map[string]uint64
	rebinds  uint64
}

// newHandler returns a Handler forwarding with fwd.
func newHandler(fwd *Forwarder, cacheSize int) *Handler {
	h := &Handler{fwd: fwd, now: time.Now, upstreamWait: time.Second,
		byType: map[string]uint64{}, bySource: map[string]uint64{}}
	h.local.Store(&local{domain: "lan.", names: map[string][]localAddr{}, ptr: map[netip.Addr]string{}})
	h.rebindAllow.Store(&[]string{})
	h.cache.Store(NewCache(cacheSize, time.Now))
	h.wire.Store(newWireCache(cacheSize, time.Now))
	return h
}

// staleTTL is the TTL of an answer served stale (RFC 8767).
const staleTTL = 30

// ServeDNS implements dns.Handler.
func (h *Handler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := h.answer(context.Background(), r)
	if m == nil {
		return // not a query: no answer
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if o := r.IsEdns0(); o != nil {
			size = max(int(o.UDPSize()), dns.MinMsgSize)
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

// answer returns the reply to r, or nil for a message that gets none.
func (h *Handler) answer(ctx context.Context, r *dns.Msg) *dns.Msg {
	m, _ := h.answerFrom(ctx, r)
	return m
}

// answerFrom returns the reply to r and where it came from (see
// state.DNSStatus), or nil for a message that gets none.
func (h *Handler) answerFrom(ctx context.Context, r *dns.Msg) (*dns.Msg, string) {
	if r.Response {
		return nil, ""
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	if r.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m, ""
	}
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m, ""
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	h.count(dns.TypeToString[q.Qtype], "")
	now := h.now()
	l := h.local.Load()

	switch {
	case name == "localhost." || strings.HasSuffix(name, ".localhost."):
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: localTTL, Rrtype: q.Qtype}
		switch q.Qtype {
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: netip.MustParseAddr("127.0.0.1").AsSlice()})
		case dns.TypeAAAA:
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: netip.IPv6Loopback().AsSlice()})
		}
		h.count("", "local")
		return m, "local"
	case q.Qtype == dns.TypePTR:
		if rr, ok := l.reverse(name, now); ok {
			rr.Header().Name = q.Name
			m.Answer = append(m.Answer, rr)
			h.count("", "local")
			return m, "local"
		}
	}
	// A single label asked for an address is a LAN name ("alpha" as
	// "alpha.lan"), never sent upstream; other single labels (the root,
	// a TLD's NS or DS) go upstream like any name.
	single := name != "." && !strings.Contains(strings.TrimSuffix(name, "."), ".") &&
		(q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA)
	if l.inLAN(name) || single {
		if single && !l.inLAN(name) {
			name += l.domain
		}
		rrs, exists := l.lookup(name, q.Qtype, now)
		for _, rr := range rrs {
			rr.Header().Name = q.Name
		}
		m.Answer = rrs
		if !exists && name != l.domain {
			m.Rcode = dns.RcodeNameError
		}
		m.Authoritative = true
		h.count("", "local")
		return m, "local"
	}
	if servedLocally(name) {
		m.Rcode = dns.RcodeNameError
		h.count("", "local")
		return m, "local"
	}
	return h.forward(ctx, r, q, m)
}

// forward answers from the cache, or upstream, or, when the upstreams do
// not answer in time, from the cache's expired entries.
func (h *Handler) forward(ctx context.Context, r *dns.Msg, q dns.Question, m *dns.Msg) (*dns.Msg, string) {
	do := false
	if o := r.IsEdns0(); o != nil {
		do = o.Do()
	}
	cache := h.cache.Load()
	cached, fresh, ok := cache.Get(q, do)
	if ok && fresh {
		h.count("", "cache")
		return reply(r, cached), "cache"
	}
	// With a stale answer at hand, the upstreams get about a second;
	// without one, time to fail over to the next.
	wait := h.upstreamWait
	if !ok {
		wait *= 4
	}
	fctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	up, err := h.fwd.Exchange(fctx, r)
	if err == nil {
		up = h.unrebind(q, up)
		cache.Put(q, do, up)
		h.count("", "upstream")
		return reply(r, up), "upstream"
	}
	if ok {
		for _, rr := range append(append(cached.Answer, cached.Ns...), cached.Extra...) {
			if rr.Header().Rrtype != dns.TypeOPT {
				rr.Header().Ttl = staleTTL
			}
		}
		h.count("", "stale")
		return reply(r, cached), "stale"
	}
	h.count("", "failed")
	m.Rcode = dns.RcodeServerFailure
	return m, "failed"
}

// serveUDP answers one UDP query in b: from the packed cache when it can,
// else as ServeDNS does (see slowUDP). It returns the reply, or nil for
// none.
func (h *Handler) serveUDP(ctx context.Context, b, out []byte) []byte {
	if reply := h.fastUDP(b, out); reply != nil {
		return reply
	}
	return h.slowUDP(ctx, b)
}

// fastUDP answers a query from the packed cache (counted as a cache
// answer) into out, or returns nil. It never waits.
func (h *Handler) fastUDP(b, out []byte) []byte {
	reply := h.wire.Load().answer(b, out)
	if reply != nil {
		h.count(typeOf(b), "cache")
	}
	return reply
}

// slowUDP answers a query as ServeDNS does, and keeps in the packed cache
// what the cache or the upstreams answered. It may wait for an upstream.
func (h *Handler) slowUDP(ctx context.Context, b []byte) []byte {
	wc := h.wire.Load()
	r := new(dns.Msg)
	if r.Unpack(b) != nil {
		return nil // malformed: dropped
	}
	m, src := h.answerFrom(ctx, r)
	if m == nil {
		return nil
	}
	size := dns.MinMsgSize
	if o := r.IsEdns0(); o != nil {
		size = max(int(o.UDPSize()), dns.MinMsgSize)
	}
	m.Truncate(size)
	packed, err := m.Pack()
	if err != nil {
		return nil
	}
	if (src == "cache" || src == "upstream") && !m.Truncated && (m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError) {
		wc.store(b, packed)
	}
	return packed
}

// typeOf returns the query type of a query that parseWireQuery took.
func typeOf(b []byte) string {
	i := 12
	for i < len(b) && b[i] != 0 {
		i += 1 + int(b[i])
	}
	if i+3 > len(b) {
		return ""
	}
	return dns.TypeToString[uint16(b[i+1])<<8|uint16(b[i+2])]
}

// reply makes m, a message of the caller's own (the cache and the
// forwarder hand out copies), the reply to r: r's ID and question as
// asked.
func reply(r, m *dns.Msg) *dns.Msg {
	m.Id = r.Id
	m.Question = r.Question
	m.Response = true
	m.RecursionDesired = r.RecursionDesired
	m.RecursionAvailable = true
	// The OPT record is hop by hop: the upstream's is not the client's.
	// A client that sent none gets none (RFC 6891); one that did gets
	// ours, with the upstream's DO bit (Pack sets the extended rcode).
	extra := m.Extra[:0:0]
	var upOPT *dns.OPT
	for _, rr := range m.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			upOPT = o
			continue
		}
		extra = append(extra, rr)
	}
	m.Extra = extra
	if ro := r.IsEdns0(); ro != nil {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(dns.DefaultMsgSize)
		if upOPT != nil {
			o.SetDo(upOPT.Do())
		}
		m.Extra = append(m.Extra, o)
	}
	return m
}

// unrebind replaces an upstream answer that points into a private,
// loopback, link-local, ULA or LAN range with an empty one (DNS
// rebinding protection, as OpenWrt's dnsmasq does), unless the name is
// under a domain of rebind_allow.
func (h *Handler) unrebind(q dns.Question, up *dns.Msg) *dns.Msg {
	name := strings.ToLower(q.Name)
	for _, d := range *h.rebindAllow.Load() {
		if name == d || strings.HasSuffix(name, "."+d) {
			return up
		}
	}
	lan := h.local.Load().lan
	for _, rr := range up.Answer {
		var a netip.Addr
		switch rr := rr.(type) {
		case *dns.A:
			a, _ = netip.AddrFromSlice(rr.A)
		case *dns.AAAA:
			a, _ = netip.AddrFromSlice(rr.AAAA)
		default:
			continue
		}
		if inner(a.Unmap(), lan) {
			m := up.Copy()
			m.Answer = nil
			h.mu.Lock()
			h.rebinds++
			h.mu.Unlock()
			return m
		}
	}
	return up
}

// inner reports whether a is an address of the home's side: private,
// loopback, link-local, unspecified, ULA or in a LAN prefix.
func inner(a netip.Addr, lan []netip.Prefix) bool {
	if a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified() || a.IsMulticast() {
		return true
	}
	for _, p := range lan {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (h *Handler) count(qtype, source string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if qtype != "" {
		h.byType[qtype]++
	}
	if source != "" {
		h.bySource[source]++
	}
}

// status returns the counters.
func (h *Handler) status() state.DNSStatus {
	h.mu.Lock()
	st := state.DNSStatus{
		QueriesByType:   make(map[string]uint64, len(h.byType)),
		QueriesBySource: make(map[string]uint64, len(h.bySource)),
		RebindBlocked:   h.rebinds,
		UpstreamRTT:     map[string]state.Duration{},
		CacheSize:       h.cache.Load().Len(),
	}
	for k, v := range h.byType {
		st.QueriesByType[k] = v
	}
	for k, v := range h.bySource {
		st.QueriesBySource[k] = v
	}
	h.mu.Unlock()
	for ap, rtt := range h.fwd.RTTs() {
		st.UpstreamRTT[ap.String()] = state.Duration(rtt)
	}
	return st
}
