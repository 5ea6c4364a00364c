package dhcp4d

import (
	"container/heap"
	"time"

	"github.com/homerouter/homerouter/state"
)

// Lease is one address the server has handed out, offered, pinned or set
// aside; its schema is state.DHCPv4ServerLease.
type Lease = state.DHCPv4ServerLease

// LeaseFile is /perm/dhcp4d-leases.json (state.DHCPv4ServerLeases).
type LeaseFile = state.DHCPv4ServerLeases

// LeasesFile is the lease table's file name under /perm.
const LeasesFile = "dhcp4d-leases.json"

// record is a Lease in the table.
type record struct {
	Lease
	addr uint32
	// key identifies the owner (clientKey); empty when declined.
	key string
	// idx is the position in the expiry heap; -1 for static leases,
	// which are never reused.
	idx int
	// fixedName is true for a static lease with a configured hostname,
	// which the client's does not replace.
	fixedName bool
	// name is the hostname the lease gets at its ACK: the configured
	// one, else the one the client last sent, else the one it had. It
	// is Hostname while the lease is acknowledged; an offered one shows
	// none (see state.DHCPv4ServerLease).
	name string
}

// show sets what Leases shows of r's name: the name when acknowledged,
// none while offered or declined.
func (r *record) show() {
	if r.Offered || r.Declined {
		r.Hostname = ""
	} else {
		r.Hostname = r.name
	}
}

// byExpiry is a min-heap of the dynamic records by Expiry (then address,
// for a stable order): its top is the longest-expired lease, the one to
// reuse when the pool has no unused address, and if the top has not
// expired, no lease has, and none may be evicted.
type byExpiry []*record

func (h byExpiry) Len() int { return len(h) }
func (h byExpiry) Less(i, j int) bool {
	if !h[i].Expiry.Equal(h[j].Expiry) {
		return h[i].Expiry.Before(h[j].Expiry)
	}
	return h[i].addr < h[j].addr
}
func (h byExpiry) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}
func (h *byExpiry) Push(x any) {
	r := x.(*record)
	r.idx = len(*h)
	*h = append(*h, r)
}
func (h *byExpiry) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.idx = -1
	return r
}

// pool is the table: the records by address and by owner, and the index
// of unused pool addresses. Every operation is O(log n) in the number of
// records, or amortized O(1): nothing scans the pool, so a /16 costs no
// more per request than a /24, and memory grows with the records, not the
// pool.
//
// An unused address is a pool address without a record. They are found
// by a cursor that walks the pool once, from the start, skipping
// addresses that have a record or are excluded (each is skipped at most
// once, hence amortized O(1)), and by a stack of addresses behind the
// cursor that lost their record, checked again when popped.
type pool struct {
	start, end uint32          // the pool, both included
	excluded   map[uint32]bool // the router's and static leases' addresses in the pool
	byAddr     map[uint32]*record
	byKey      map[string]*record // dynamic records by owner
	static     map[string]*record // static records by MAC
	expiry     byExpiry
	cursor     uint64   // pool addresses >= cursor without a record are unused
	returned   []uint32 // addresses < cursor that may be unused
}

func newPool(start, end uint32) *pool {
	return &pool{
		start:    start,
		end:      end,
		excluded: make(map[uint32]bool),
		byAddr:   make(map[uint32]*record),
		byKey:    make(map[string]*record),
		static:   make(map[string]*record),
		cursor:   uint64(start),
	}
}

// inPool reports whether a may be handed out from the pool.
func (p *pool) inPool(a uint32) bool {
	return p.start <= a && a <= p.end && !p.excluded[a]
}

// takeUnused returns an unused pool address, or false when there is none.
// The caller must give it a record before the next call.
func (p *pool) takeUnused() (uint32, bool) {
	for len(p.returned) > 0 {
		a := p.returned[len(p.returned)-1]
		p.returned = p.returned[:len(p.returned)-1]
		if p.inPool(a) && p.byAddr[a] == nil {
			return a, true
		}
	}
	for ; p.cursor <= uint64(p.end); p.cursor++ {
		a := uint32(p.cursor)
		if !p.excluded[a] && p.byAddr[a] == nil {
			p.cursor++
			return a, true
		}
	}
	return 0, false
}

// add puts a new dynamic record into the table.
func (p *pool) add(r *record) {
	p.byAddr[r.addr] = r
	if r.key != "" {
		p.byKey[r.key] = r
	}
	heap.Push(&p.expiry, r)
}

// remove takes a dynamic record out of the table; its address becomes
// unused.
func (p *pool) remove(r *record) {
	if p.byAddr[r.addr] == r {
		delete(p.byAddr, r.addr)
	}
	if r.key != "" && p.byKey[r.key] == r {
		delete(p.byKey, r.key)
	}
	if r.idx >= 0 {
		heap.Remove(&p.expiry, r.idx)
	}
	if uint64(r.addr) < p.cursor {
		p.returned = append(p.returned, r.addr)
	}
}

// setExpiry changes a record's Expiry and keeps the heap in order.
func (p *pool) setExpiry(r *record, t time.Time) {
	r.Expiry = t
	if r.idx >= 0 {
		heap.Fix(&p.expiry, r.idx)
	}
}

// disown makes r nobody's: its owner no longer finds it as its previous
// address.
func (p *pool) disown(r *record) {
	if r.key != "" && p.byKey[r.key] == r {
		delete(p.byKey, r.key)
	}
	r.key = ""
}

// oldestExpired returns the longest-expired dynamic record at now, or nil
// when every one is still live: those are never evicted.
func (p *pool) oldestExpired(now time.Time) *record {
	if len(p.expiry) == 0 || p.expiry[0].Expiry.After(now) {
		return nil
	}
	return p.expiry[0]
}
