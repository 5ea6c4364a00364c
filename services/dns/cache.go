package dns

import (
	"container/list"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// staleFor is how long an entry is kept after it expires, to be served stale
// when the upstreams do not answer (RFC 8767 suggests 1 to 3 days).
const staleFor = 24 * time.Hour

// maxTTL is the largest TTL honoured; RFC 2181 section 8 says a TTL with the
// most significant bit set is to be treated as zero.
const maxTTL = 1<<31 - 1

// cacheKey identifies a cached reply: the question (name lowercased) and
// whether the DNSSEC records were asked for.
type cacheKey struct {
	name   string
	qtype  uint16
	qclass uint16
	do     bool
}

type cacheEntry struct {
	key    cacheKey
	msg    *dns.Msg  // private copy, never handed out
	stored time.Time // when Put stored it
	ttl    uint32    // seconds the entry is fresh
}

// Cache holds upstream answers by question (name lowercased, type, class)
// and the DO bit, positive and negative (RFC 2308: negative TTL =
// min(SOA TTL, SOA MINIMUM) from the authority section), bounded to size
// entries with LRU eviction. Entries are kept past expiry for serve-stale
// (RFC 8767) up to staleFor (1 day).
//
// A Cache is safe for concurrent use.
type Cache struct {
	size int
	now  func() time.Time

	mu      sync.Mutex
	entries map[cacheKey]*list.Element // values are *cacheEntry
	lru     list.List                  // most recently used at the front
}

// NewCache returns an empty cache of at most size entries (a size below 1
// stores nothing). now is the clock; nil means time.Now.
func NewCache(size int, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{
		size:    size,
		now:     now,
		entries: make(map[cacheKey]*list.Element),
	}
}

func keyOf(q dns.Question, do bool) cacheKey {
	return cacheKey{
		name:   strings.ToLower(q.Name),
		qtype:  q.Qtype,
		qclass: q.Qclass,
		do:     do,
	}
}

// Get returns a copy of the cached reply for q, its TTLs counted down by the
// time since it was stored (never below 0). fresh is false when it has
// expired (then the TTLs of the copy are 0; the caller sets them to 30 for
// serve-stale). ok is false when there is no entry. The copy's question is
// q, as asked; its ID is that of the stored reply, for the caller to set.
func (c *Cache) Get(q dns.Question, do bool) (m *dns.Msg, fresh, ok bool) {
	k := keyOf(q, do)
	now := c.now()

	c.mu.Lock()
	el, ok := c.entries[k]
	if !ok {
		c.mu.Unlock()
		return nil, false, false
	}
	e := el.Value.(*cacheEntry)
	age := now.Sub(e.stored)
	if age < 0 {
		age = 0 // the clock went backwards
	}
	if age >= time.Duration(e.ttl)*time.Second+staleFor {
		c.lru.Remove(el)
		delete(c.entries, k)
		c.mu.Unlock()
		return nil, false, false
	}
	c.lru.MoveToFront(el)
	c.mu.Unlock()

	m = e.msg.Copy() // e.msg is never modified once stored, so no lock is needed

	elapsed := uint64(age / time.Second)
	fresh = elapsed < uint64(e.ttl)
	for _, rrs := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range rrs {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue // its TTL field holds EDNS flags
			}
			if !fresh || uint64(h.Ttl) <= elapsed {
				h.Ttl = 0
			} else {
				h.Ttl -= uint32(elapsed)
			}
		}
	}
	m.Question = []dns.Question{q}
	return m, fresh, true
}

// Put stores a reply (only NOERROR and NXDOMAIN; a reply with TC set or
// SERVFAIL/REFUSED is not stored). The entry's TTL is the minimum TTL of its
// answer section (or the negative TTL); 0 means not stored. A reply to the
// same question replaces the entry.
func (c *Cache) Put(q dns.Question, do bool, m *dns.Msg) {
	if m == nil || c.size < 1 || m.Truncated {
		return
	}
	if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
		return
	}
	m = m.Copy()
	ttl, ok := entryTTL(m)
	if !ok || ttl == 0 {
		return
	}
	k := keyOf(q, do)
	e := &cacheEntry{key: k, msg: m, stored: c.now(), ttl: ttl}

	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[k]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.entries[k] = c.lru.PushFront(e)
	for c.lru.Len() > c.size {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
}

// entryTTL returns how long m may be cached, in seconds. For a negative
// answer (NXDOMAIN, or NOERROR with an empty answer section) that is the
// negative TTL of RFC 2308 section 5, and the SOA records of m are lowered to
// it. ok is false when m cannot be cached: a negative answer without SOA.
func entryTTL(m *dns.Msg) (ttl uint32, ok bool) {
	least := uint32(maxTTL)
	lower := func(t uint32) {
		if t > maxTTL {
			t = 0
		}
		if t < least {
			least = t
		}
	}
	for _, rr := range m.Answer {
		lower(rr.Header().Ttl)
	}
	if m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0 {
		return least, true
	}
	var soa *dns.SOA
	for _, rr := range m.Ns {
		if s, isSOA := rr.(*dns.SOA); isSOA {
			soa = s
			break
		}
	}
	if soa == nil {
		return 0, false
	}
	neg := soa.Hdr.Ttl
	if soa.Minttl < neg {
		neg = soa.Minttl
	}
	lower(neg)
	soa.Hdr.Ttl = least
	return least, true
}

// Len returns the number of entries, stale ones included.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
