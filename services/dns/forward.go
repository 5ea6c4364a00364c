package dns

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// Errors of Forwarder.Exchange, to be tested with errors.Is.
var (
	// ErrBusy: the bound on queries in flight upstream was reached.
	ErrBusy = errors.New("too many queries in flight upstream")
	// ErrNoUpstream: there is no upstream resolver to ask.
	ErrNoUpstream = errors.New("no upstream resolver")
)

const (
	// tryTimeout bounds the wait for one upstream before failing over.
	tryTimeout = time.Second
	// defaultUDPSize is the EDNS0 UDP payload size advertised when the
	// client sent no OPT record (DNS flag day 2020).
	defaultUDPSize = 1232
	// rttWeight: each measurement moves the smoothed RTT by 1/rttWeight of
	// the difference, as TCP's SRTT does (RFC 6298).
	rttWeight = 8
)

// Forwarder sends queries to the upstream resolvers.
//
// A Forwarder is safe for concurrent use. It starts no goroutines of its
// own beyond those of the queries in flight, which end within tryTimeout per
// upstream tried.
type Forwarder struct {
	upstreams func() []netip.AddrPort
	sem       chan struct{} // one token per query in flight upstream; nil: no bound
	flights   singleflight.Group

	// tryTimeout is the per-upstream timeout; tests shorten it.
	tryTimeout time.Duration
	// joined, if not nil, is called once a caller of Exchange has started
	// or joined the upstream query for its question (for tests).
	joined func()

	mu   sync.Mutex
	srtt map[netip.AddrPort]time.Duration // smoothed RTT of the upstreams tried
}

// NewForwarder returns a Forwarder. upstreams is called for each query
// (they change with the DHCP leases and dns.json); maxInFlight bounds the
// queries in flight upstream (an extra one fails at once with ErrBusy);
// below 1 it means no bound.
func NewForwarder(upstreams func() []netip.AddrPort, maxInFlight int) *Forwarder {
	f := &Forwarder{
		upstreams:  upstreams,
		tryTimeout: tryTimeout,
		srtt:       make(map[netip.AddrPort]time.Duration),
	}
	if maxInFlight > 0 {
		f.sem = make(chan struct{}, maxInFlight)
	}
	return f
}

// Exchange sends req's question upstream and returns the reply with req's
// ID and question (the case as asked):
//   - upstreams are tried fastest first by measured RTT (smoothed; an
//     untried one counts as fast so it gets measured; a failure penalises),
//     failing over to the next on timeout, error or REFUSED (per-try timeout
//     1 s; total bounded by ctx);
//   - over UDP with a random source port (a new socket per query) and a
//     random ID;
//   - a reply that does not answer the question (ID, name
//     case-insensitively, type, class) is dropped, and the next is waited
//     for;
//   - a truncated reply (TC) is retried over TCP to the same upstream;
//   - EDNS0 and the DO bit of req are passed on (req's OPT record is copied,
//     less any DNS cookie, which belongs to the client and us; without one,
//     an OPT record with a 1232-byte UDP size is added);
//   - identical questions in flight (name lowercased, type, class, DO) are
//     coalesced: one upstream query, every caller gets its own copy. The
//     shared query is bounded by the deadline of the ctx that started it,
//     not cancelled with it; a caller whose ctx ends returns ctx.Err().
//
// The reply may carry any RCODE, SERVFAIL included; the error is non-nil
// only when no upstream answered.
func (f *Forwarder) Exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	if len(req.Question) != 1 {
		return nil, fmt.Errorf("dns: forward: %d questions, want 1", len(req.Question))
	}
	q := req.Question[0]
	opt := req.IsEdns0()
	do := opt != nil && opt.Do()
	key := fmt.Sprintf("%s %d %d %t", strings.ToLower(q.Name), q.Qtype, q.Qclass, do)

	ch := f.flights.DoChan(key, func() (any, error) {
		// Not cancelled when the first caller gives up, as others may
		// wait for it too; still bounded by its deadline and tryTimeout.
		fctx := context.WithoutCancel(ctx)
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			fctx, cancel = context.WithDeadline(fctx, dl)
			defer cancel()
		}
		return f.forward(fctx, req)
	})
	if f.joined != nil {
		f.joined()
	}
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("dns: forward %s %s: %w", q.Name, dns.Type(q.Qtype), ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		r := res.Val.(*dns.Msg).Copy()
		r.Id = req.Id
		r.Question = []dns.Question{q}
		return r, nil
	}
}

// forward sends req's question to the upstreams in turn until one answers.
// The reply it returns is shared by the coalesced callers and must not be
// modified.
func (f *Forwarder) forward(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	q := req.Question[0]
	if f.sem != nil {
		select {
		case f.sem <- struct{}{}:
			defer func() { <-f.sem }()
		default:
			return nil, fmt.Errorf("dns: forward %s %s: %w", q.Name, dns.Type(q.Qtype), ErrBusy)
		}
	}
	ups := f.order(f.upstreams())
	if len(ups) == 0 {
		return nil, fmt.Errorf("dns: forward %s %s: %w", q.Name, dns.Type(q.Qtype), ErrNoUpstream)
	}

	m := new(dns.Msg)
	m.Opcode = dns.OpcodeQuery
	m.RecursionDesired = req.RecursionDesired
	m.CheckingDisabled = req.CheckingDisabled
	m.AuthenticatedData = req.AuthenticatedData
	m.Question = []dns.Question{q}
	m.Extra = []dns.RR{upstreamOPT(req.IsEdns0())}

	var (
		errs    []error
		refused *dns.Msg // a REFUSED reply, returned if no upstream does better
	)
	for _, up := range ups {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		r, err := f.try(ctx, up, m)
		if err != nil {
			errs = append(errs, fmt.Errorf("%v: %w", up, err))
			continue
		}
		if r.Rcode == dns.RcodeRefused {
			refused = r
			errs = append(errs, fmt.Errorf("%v: REFUSED", up))
			continue
		}
		return r, nil
	}
	if refused != nil {
		return refused, nil
	}
	return nil, fmt.Errorf("dns: forward %s %s: %w", q.Name, dns.Type(q.Qtype), errors.Join(errs...))
}

// try asks one upstream, over UDP and then over TCP if the UDP reply is
// truncated, and updates its smoothed RTT.
func (f *Forwarder) try(ctx context.Context, up netip.AddrPort, m *dns.Msg) (*dns.Msg, error) {
	m.Id = dns.Id()
	tctx, cancel := context.WithTimeout(ctx, f.tryTimeout)
	defer cancel()
	start := time.Now()
	r, err := exchangeUDP(tctx, up, m)
	if err != nil || r.Rcode == dns.RcodeRefused {
		f.measure(up, f.tryTimeout)
		return r, err
	}
	f.measure(up, time.Since(start))
	if !r.Truncated {
		return r, nil
	}

	m.Id = dns.Id()
	tctx, cancel = context.WithTimeout(ctx, f.tryTimeout)
	defer cancel()
	c := &dns.Client{Net: "tcp", Timeout: f.tryTimeout}
	r, _, err = c.ExchangeContext(tctx, m, up.String())
	if err != nil {
		return nil, fmt.Errorf("over TCP after a truncated reply: %w", err)
	}
	if !answers(m, r) {
		return nil, errors.New("over TCP after a truncated reply: the reply does not match the query")
	}
	return r, nil
}

// exchangeUDP sends m to up from a new socket (so a random source port) and
// returns the first reply that answers it, dropping others.
func exchangeUDP(ctx context.Context, up netip.AddrPort, m *dns.Msg) (*dns.Msg, error) {
	out, err := m.Pack()
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", up.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := conn.Write(out); err != nil {
		return nil, err
	}
	size := int(m.IsEdns0().UDPSize())
	buf := make([]byte, max(size, 4096))
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		r, err := unpackReply(buf[:n])
		if err != nil || !answers(m, r) {
			continue // spoofed, late or garbled: wait for the right one
		}
		return r, nil
	}
}

// unpackReply parses a reply. A truncated reply that does not parse
// completely still yields its header and question, enough to retry over
// TCP.
func unpackReply(b []byte) (*dns.Msg, error) {
	r := new(dns.Msg)
	err := r.Unpack(b)
	if err == nil {
		return r, nil
	}
	const tc = 0x02 // in the third byte of the header
	if len(b) < 12 || b[2]&tc == 0 {
		return nil, err
	}
	hq := slices.Clone(b)
	clear(hq[6:12]) // no answer, authority or additional records
	r = new(dns.Msg)
	if err := r.Unpack(hq); err != nil {
		return nil, err
	}
	return r, nil
}

// answers reports whether r is a reply to query m: same ID, and the same
// question, the name compared case-insensitively.
func answers(m, r *dns.Msg) bool {
	if !r.Response || r.Id != m.Id || len(r.Question) != 1 {
		return false
	}
	q, rq := m.Question[0], r.Question[0]
	return rq.Qtype == q.Qtype && rq.Qclass == q.Qclass && strings.EqualFold(rq.Name, q.Name)
}

// upstreamOPT returns the OPT record to send upstream for a client's OPT
// record opt (nil if it sent none).
func upstreamOPT(opt *dns.OPT) *dns.OPT {
	if opt == nil {
		o := new(dns.OPT)
		o.Hdr.Name = "."
		o.Hdr.Rrtype = dns.TypeOPT
		o.SetUDPSize(defaultUDPSize)
		return o
	}
	o := dns.Copy(opt).(*dns.OPT)
	o.Option = slices.DeleteFunc(o.Option, func(e dns.EDNS0) bool {
		return e.Option() == dns.EDNS0COOKIE
	})
	if o.UDPSize() < dns.MinMsgSize {
		o.SetUDPSize(dns.MinMsgSize)
	}
	return o
}

// order returns ups sorted fastest first by smoothed RTT, untried ones
// counting as 0, ties in the given order. It forgets the RTTs of upstreams
// no longer listed.
func (f *Forwarder) order(ups []netip.AddrPort) []netip.AddrPort {
	ups = slices.Clone(ups)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.srtt) > len(ups) {
		kept := make(map[netip.AddrPort]time.Duration, len(ups))
		for _, up := range ups {
			if d, ok := f.srtt[up]; ok {
				kept[up] = d
			}
		}
		f.srtt = kept
	}
	slices.SortStableFunc(ups, func(a, b netip.AddrPort) int {
		return cmp.Compare(f.srtt[a], f.srtt[b])
	})
	return ups
}

// measure folds an RTT sample (tryTimeout for a failure) into up's
// smoothed RTT.
func (f *Forwarder) measure(up netip.AddrPort, sample time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.srtt[up]
	if !ok {
		f.srtt[up] = sample
		return
	}
	f.srtt[up] = old + (sample-old)/rttWeight
}

// RTTs returns the smoothed RTT per upstream tried, for the counters.
func (f *Forwarder) RTTs() map[netip.AddrPort]time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[netip.AddrPort]time.Duration, len(f.srtt))
	for up, d := range f.srtt {
		out[up] = d
	}
	return out
}
