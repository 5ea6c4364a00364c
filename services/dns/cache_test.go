package dns

import (
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// cacheClock is a clock that moves only when told.
type cacheClock struct{ t time.Time }

func (c *cacheClock) now() time.Time          { return c.t }
func (c *cacheClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newCacheClock() *cacheClock {
	return &cacheClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func cacheRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("dns.NewRR(%q): %v", s, err)
	}
	return rr
}

func cacheQ(name string, qtype uint16) dns.Question {
	return dns.Question{Name: name, Qtype: qtype, Qclass: dns.ClassINET}
}

// cacheReply returns a reply to q with rcode and the records given in
// presentation format.
func cacheReply(t *testing.T, q dns.Question, rcode int, answer, ns []string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(q.Name, q.Qtype)
	m.Response = true
	m.Rcode = rcode
	for _, s := range answer {
		m.Answer = append(m.Answer, cacheRR(t, s))
	}
	for _, s := range ns {
		m.Ns = append(m.Ns, cacheRR(t, s))
	}
	return m
}

// cacheTTLs returns the TTLs of the records of m other than OPT, section by
// section.
func cacheTTLs(m *dns.Msg) []uint32 {
	var out []uint32
	for _, rrs := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range rrs {
			if rr.Header().Rrtype != dns.TypeOPT {
				out = append(out, rr.Header().Ttl)
			}
		}
	}
	return out
}

func TestCacheCountdown(t *testing.T) {
	// Each step advances the clock from the previous one and expects Get's
	// result. The entry is fresh for 300 s (the answer section's minimum),
	// then stale for a day, then gone.
	type step struct {
		after     time.Duration
		wantOK    bool
		wantFresh bool
		wantTTLs  []uint32 // answer, authority, additional
	}
	steps := []step{
		{0, true, true, []uint32{600, 300, 3600, 900}},
		{100 * time.Second, true, true, []uint32{500, 200, 3500, 800}},
		{199*time.Second + 900*time.Millisecond, true, true, []uint32{301, 1, 3301, 601}},
		{100 * time.Millisecond, true, false, []uint32{0, 0, 0, 0}}, // 300 s
		{time.Hour, true, false, []uint32{0, 0, 0, 0}},
		{staleFor - time.Hour - time.Second, true, false, []uint32{0, 0, 0, 0}},
		{time.Second, false, false, nil}, // 300 s + staleFor: dropped
	}
	clock := newCacheClock()
	c := NewCache(10, clock.now)
	q := cacheQ("www.example.com.", dns.TypeA)
	m := cacheReply(t, q, dns.RcodeSuccess,
		[]string{"www.example.com. 600 IN CNAME web.example.com.", "web.example.com. 300 IN A 192.0.2.1"},
		[]string{"example.com. 3600 IN NS ns.example.com."})
	m.Extra = append(m.Extra, cacheRR(t, "ns.example.com. 900 IN A 192.0.2.53"))
	m.SetEdns0(1232, true)
	c.Put(q, true, m)

	var total time.Duration
	for _, s := range steps {
		clock.advance(s.after)
		total += s.after
		got, fresh, ok := c.Get(q, true)
		if ok != s.wantOK || fresh != s.wantFresh {
			t.Fatalf("after %v: Get: fresh %t, ok %t; want %t, %t", total, fresh, ok, s.wantFresh, s.wantOK)
		}
		if !ok {
			if c.Len() != 0 {
				t.Errorf("after %v: Len() = %d, want 0", total, c.Len())
			}
			continue
		}
		if g := fmt.Sprint(cacheTTLs(got)); g != fmt.Sprint(s.wantTTLs) {
			t.Errorf("after %v: TTLs %s, want %v", total, g, s.wantTTLs)
		}
		if opt := got.IsEdns0(); opt == nil || !opt.Do() || opt.UDPSize() != 1232 {
			t.Errorf("after %v: OPT record %v, want it untouched (DO, 1232)", total, opt)
		}
	}
}

func TestCacheNegative(t *testing.T) {
	q := cacheQ("nosuch.example.com.", dns.TypeA)
	for _, tc := range []struct {
		name     string
		rcode    int
		answer   []string
		ns       []string
		wantTTL  uint32 // 0: not stored
		wantCode int
	}{
		{
			name:    "NXDOMAIN, SOA MINIMUM below SOA TTL",
			rcode:   dns.RcodeNameError,
			ns:      []string{"example.com. 3600 IN SOA ns.example.com. host.example.com. 1 7200 900 1209600 60"},
			wantTTL: 60,
		},
		{
			name:    "NXDOMAIN, SOA TTL below SOA MINIMUM",
			rcode:   dns.RcodeNameError,
			ns:      []string{"example.com. 30 IN SOA ns.example.com. host.example.com. 1 7200 900 1209600 300"},
			wantTTL: 30,
		},
		{
			name:    "NODATA",
			rcode:   dns.RcodeSuccess,
			ns:      []string{"example.com. 3600 IN SOA ns.example.com. host.example.com. 1 7200 900 1209600 120"},
			wantTTL: 120,
		},
		{
			name:    "NXDOMAIN after a CNAME with a shorter TTL",
			rcode:   dns.RcodeNameError,
			answer:  []string{"nosuch.example.com. 20 IN CNAME gone.example.com."},
			ns:      []string{"example.com. 3600 IN SOA ns.example.com. host.example.com. 1 7200 900 1209600 120"},
			wantTTL: 20,
		},
		{
			name:  "NXDOMAIN without SOA",
			rcode: dns.RcodeNameError,
		},
		{
			name:  "NODATA without SOA",
			rcode: dns.RcodeSuccess,
			ns:    []string{"example.com. 3600 IN NS ns.example.com."},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newCacheClock()
			c := NewCache(10, clock.now)
			c.Put(q, false, cacheReply(t, q, tc.rcode, tc.answer, tc.ns))
			got, fresh, ok := c.Get(q, false)
			if tc.wantTTL == 0 {
				if ok || c.Len() != 0 {
					t.Fatalf("Get: ok %t, Len %d; want not stored", ok, c.Len())
				}
				return
			}
			if !ok || !fresh {
				t.Fatalf("Get: fresh %t, ok %t; want a fresh entry", fresh, ok)
			}
			if got.Rcode != tc.rcode {
				t.Errorf("Rcode %s, want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[tc.rcode])
			}
			soa := got.Ns[0].(*dns.SOA)
			if soa.Hdr.Ttl != tc.wantTTL {
				t.Errorf("SOA TTL %d, want the negative TTL %d", soa.Hdr.Ttl, tc.wantTTL)
			}

			clock.advance(time.Duration(tc.wantTTL-1) * time.Second)
			if got, fresh, ok := c.Get(q, false); !ok || !fresh || got.Ns[0].Header().Ttl != 1 {
				t.Errorf("1 s before expiry: fresh %t, ok %t, SOA %v; want fresh with TTL 1", fresh, ok, got.Ns[0])
			}
			clock.advance(time.Second)
			if got, fresh, ok := c.Get(q, false); !ok || fresh || got.Ns[0].Header().Ttl != 0 {
				t.Errorf("at expiry: fresh %t, ok %t; want stale with TTL 0", fresh, ok)
			}
		})
	}
}

func TestCacheNotStored(t *testing.T) {
	q := cacheQ("www.example.com.", dns.TypeA)
	a := []string{"www.example.com. 300 IN A 192.0.2.1"}
	soa := []string{"example.com. 3600 IN SOA ns.example.com. host.example.com. 1 7200 900 1209600 60"}
	for _, tc := range []struct {
		name string
		m    func() *dns.Msg
	}{
		{"truncated", func() *dns.Msg {
			m := cacheReply(t, q, dns.RcodeSuccess, a, nil)
			m.Truncated = true
			return m
		}},
		{"SERVFAIL", func() *dns.Msg { return cacheReply(t, q, dns.RcodeServerFailure, nil, soa) }},
		{"REFUSED", func() *dns.Msg { return cacheReply(t, q, dns.RcodeRefused, nil, soa) }},
		{"FORMERR", func() *dns.Msg { return cacheReply(t, q, dns.RcodeFormatError, nil, nil) }},
		{"TTL 0", func() *dns.Msg {
			return cacheReply(t, q, dns.RcodeSuccess, []string{"www.example.com. 0 IN A 192.0.2.1", "www.example.com. 300 IN A 192.0.2.2"}, nil)
		}},
		{"TTL with the top bit set (RFC 2181)", func() *dns.Msg {
			return cacheReply(t, q, dns.RcodeSuccess, []string{"www.example.com. 2147483648 IN A 192.0.2.1"}, nil)
		}},
		{"nil", func() *dns.Msg { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCache(10, newCacheClock().now)
			c.Put(q, false, tc.m())
			if _, _, ok := c.Get(q, false); ok || c.Len() != 0 {
				t.Errorf("Get: ok %t, Len %d; want not stored", ok, c.Len())
			}
		})
	}

	t.Run("size 0", func(t *testing.T) {
		c := NewCache(0, nil)
		c.Put(q, false, cacheReply(t, q, dns.RcodeSuccess, a, nil))
		if c.Len() != 0 {
			t.Errorf("Len() = %d, want 0", c.Len())
		}
	})
}

func TestCacheEviction(t *testing.T) {
	clock := newCacheClock()
	c := NewCache(3, clock.now)
	put := func(name string) {
		q := cacheQ(name, dns.TypeA)
		c.Put(q, false, cacheReply(t, q, dns.RcodeSuccess, []string{name + " 300 IN A 192.0.2.1"}, nil))
	}
	has := func(name string) bool {
		_, _, ok := c.Get(cacheQ(name, dns.TypeA), false)
		return ok
	}
	put("a.example.")
	put("b.example.")
	put("c.example.")
	has("a.example.") // a is now the most recently used, b the least
	put("d.example.") // evicts b
	put("c.example.") // replaces c, which becomes the most recently used
	put("e.example.") // evicts a
	for name, want := range map[string]bool{
		"a.example.": false,
		"b.example.": false,
		"c.example.": true,
		"d.example.": true,
		"e.example.": true,
	} {
		if got := has(name); got != want {
			t.Errorf("%s cached: %t, want %t", name, got, want)
		}
	}
	if c.Len() != 3 {
		t.Errorf("Len() = %d, want 3", c.Len())
	}
}

func TestCacheKeys(t *testing.T) {
	stored := cacheQ("WWW.Example.COM.", dns.TypeA)
	for _, tc := range []struct {
		name   string
		q      dns.Question
		do     bool
		wantOK bool
	}{
		{"same", stored, false, true},
		{"lower case", cacheQ("www.example.com.", dns.TypeA), false, true},
		{"mixed case", cacheQ("wWw.eXaMpLe.CoM.", dns.TypeA), false, true},
		{"DO bit set", stored, true, false},
		{"other type", cacheQ("www.example.com.", dns.TypeAAAA), false, false},
		{"other class", dns.Question{Name: "www.example.com.", Qtype: dns.TypeA, Qclass: dns.ClassCHAOS}, false, false},
		{"other name", cacheQ("ww.example.com.", dns.TypeA), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCache(10, newCacheClock().now)
			c.Put(stored, false, cacheReply(t, stored, dns.RcodeSuccess, []string{"www.example.com. 300 IN A 192.0.2.1"}, nil))
			got, _, ok := c.Get(tc.q, tc.do)
			if ok != tc.wantOK {
				t.Fatalf("Get(%v, %t): ok %t, want %t", tc.q, tc.do, ok, tc.wantOK)
			}
			if ok && got.Question[0] != tc.q {
				t.Errorf("question %v, want %v as asked", got.Question[0], tc.q)
			}
		})
	}
}

func TestCacheCopies(t *testing.T) {
	c := NewCache(10, newCacheClock().now)
	q := cacheQ("www.example.com.", dns.TypeA)
	m := cacheReply(t, q, dns.RcodeSuccess, []string{"www.example.com. 300 IN A 192.0.2.1"}, nil)
	c.Put(q, false, m)
	m.Answer[0].Header().Ttl = 5 // the caller's message is not the stored one

	got, _, _ := c.Get(q, false)
	got.Answer[0].(*dns.A).A[3] = 99
	got.Answer[0].Header().Ttl = 7
	got.Id = 1

	again, _, _ := c.Get(q, false)
	if s := again.Answer[0].String(); s != "www.example.com.\t300\tIN\tA\t192.0.2.1" {
		t.Errorf("after changing the copies: %s", s)
	}
}
