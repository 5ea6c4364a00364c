package dns

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// wireCache keeps the replies the cache answered, packed, so that a cache
// hit over UDP is answered without unpacking the query or packing the
// reply (that, not the lookup, is most of a hit's time): the query's
// question is matched byte for byte (the name lowercased), and the
// stored reply is copied with the query's ID, question and RD bit and
// its TTLs counted down. Anything else (a miss, an expired entry, a
// local name, an odd query) takes the slow path, which fills this cache.
type wireCache struct {
	now func() time.Time
	max int

	mu sync.RWMutex
	m  map[string]*wireEntry
}

type wireEntry struct {
	packed []byte   // the reply as first sent, question included
	ttls   []int    // offsets of the TTLs to count down (not the OPT's)
	orig   []uint32 // the TTLs at stored
	stored time.Time
	fresh  uint32 // seconds the reply is fresh from stored
}

func newWireCache(max int, now func() time.Time) *wireCache {
	return &wireCache{now: now, max: max, m: make(map[string]*wireEntry)}
}

// wireQuery is what the fast path needs of a query.
type wireQuery struct {
	key     []byte // the lowercased name, type, class, DO and EDNS bits
	qend    int    // end of the question section
	udpSize int
}

// parseWireQuery reads a plain query: one question, nothing else but an
// optional OPT record of EDNS version 0. ok is false for anything else.
func parseWireQuery(b []byte, key []byte) (q wireQuery, ok bool) {
	if len(b) < 12 || b[2]&0x80 != 0 || b[2]&0x78 != 0 {
		return q, false // a response, or not a standard query
	}
	if binary.BigEndian.Uint16(b[4:]) != 1 || binary.BigEndian.Uint16(b[6:]) != 0 || binary.BigEndian.Uint16(b[8:]) != 0 {
		return q, false
	}
	ar := binary.BigEndian.Uint16(b[10:])
	if ar > 1 {
		return q, false
	}
	i := 12
	for {
		if i >= len(b) {
			return q, false
		}
		l := int(b[i])
		if l == 0 {
			i++
			break
		}
		if l&0xC0 != 0 || i+1+l > len(b) || len(key) > 255 {
			return q, false
		}
		// The name as on the wire, lowercased: length-prefixed labels
		// cannot be confused, whatever bytes the labels hold.
		key = append(key, byte(l))
		for _, c := range b[i+1 : i+1+l] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			key = append(key, c)
		}
		i += 1 + l
	}
	if i+4 > len(b) {
		return q, false
	}
	key = append(key, 0, b[i], b[i+1], b[i+2], b[i+3]) // 0: the root label ends the name
	i += 4
	q.qend = i
	q.udpSize = dns.MinMsgSize
	edns, do := byte(0), byte(0)
	if ar == 1 {
		// The OPT record: root name, type 41, class = UDP size, TTL =
		// extended rcode, version, flags (DO is the top bit), rdata.
		if i+11 > len(b) || b[i] != 0 || binary.BigEndian.Uint16(b[i+1:]) != dns.TypeOPT || b[i+6] != 0 {
			return q, false
		}
		q.udpSize = max(int(binary.BigEndian.Uint16(b[i+3:])), dns.MinMsgSize)
		edns, do = 1, b[i+7]>>7
		rdlen := int(binary.BigEndian.Uint16(b[i+9:]))
		if i+11+rdlen != len(b) {
			return q, false
		}
	} else if i != len(b) {
		return q, false
	}
	q.key = append(key, edns, do)
	return q, true
}

// answer writes the reply to the query in b to out and returns it, or
// nil when the fast path does not have it.
func (c *wireCache) answer(b, out []byte) []byte {
	var keyBuf [300]byte
	q, ok := parseWireQuery(b, keyBuf[:0])
	if !ok {
		return nil
	}
	c.mu.RLock()
	e := c.m[string(q.key)]
	c.mu.RUnlock()
	if e == nil || len(e.packed) > q.udpSize {
		return nil
	}
	age := c.now().Sub(e.stored)
	if age < 0 || age >= time.Duration(e.fresh)*time.Second {
		return nil // the slow path refreshes it, or serves it stale
	}
	elapsed := uint32(age / time.Second)
	out = append(out[:0], e.packed...)
	copy(out[0:2], b[0:2])             // the query's ID
	out[2] = out[2]&^0x01 | b[2]&0x01  // its RD bit
	copy(out[12:q.qend], b[12:q.qend]) // its question, with its case
	for i, off := range e.ttls {
		binary.BigEndian.PutUint32(out[off:], e.orig[i]-elapsed)
	}
	return out
}

// store keeps the packed reply to the query in b, fresh for the
// smallest TTL in it.
func (c *wireCache) store(b, packed []byte) {
	q, ok := parseWireQuery(b, nil)
	if !ok {
		return
	}
	ttls, ok := ttlOffsets(packed)
	if !ok {
		return
	}
	e := &wireEntry{packed: packed, ttls: ttls, stored: c.now(), fresh: 1<<32 - 1}
	for _, off := range ttls {
		t := binary.BigEndian.Uint32(packed[off:])
		e.orig = append(e.orig, t)
		e.fresh = min(e.fresh, t)
	}
	if len(ttls) == 0 || e.fresh == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k := range c.m { // drop one at random: the slow path's cache keeps the LRU order
			delete(c.m, k)
			break
		}
	}
	c.m[string(q.key)] = e
}

// ttlOffsets returns the offsets of the TTLs of every record in a
// packed message but the OPT's.
func ttlOffsets(b []byte) ([]int, bool) {
	if len(b) < 12 {
		return nil, false
	}
	qd := int(binary.BigEndian.Uint16(b[4:]))
	rrs := int(binary.BigEndian.Uint16(b[6:])) + int(binary.BigEndian.Uint16(b[8:])) + int(binary.BigEndian.Uint16(b[10:]))
	i := 12
	skipName := func() bool {
		for {
			if i >= len(b) {
				return false
			}
			l := int(b[i])
			switch {
			case l == 0:
				i++
				return true
			case l&0xC0 == 0xC0:
				i += 2
				return i <= len(b)
			case l&0xC0 != 0:
				return false
			}
			i += 1 + l
		}
	}
	for range qd {
		if !skipName() {
			return nil, false
		}
		i += 4
	}
	var offs []int
	for range rrs {
		if !skipName() || i+10 > len(b) {
			return nil, false
		}
		if binary.BigEndian.Uint16(b[i:]) != dns.TypeOPT {
			offs = append(offs, i+4)
		}
		i += 10 + int(binary.BigEndian.Uint16(b[i+8:]))
	}
	return offs, i == len(b)
}
