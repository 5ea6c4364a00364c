package dhcp4d

import (
	"container/heap"
	"net/netip"
	"time"
)

// Lease is one address the server has handed out, offered, pinned or set
// aside. The lease table is persisted as /perm/dhcp4d-leases.json (see
// LeaseFile) so that clients keep their addresses, and their names keep
// resolving, across restarts; the DNS server reads hostnames from it.
//
// Expired leases are kept: a returning client gets its previous address
// back, and an address is reused only when the pool has no never-used
// address left (then the longest-expired first).
type Lease struct {
	Addr netip.Addr `json:"addr"`
	// HardwareAddr is the client's chaddr, e.g. "02:77:00:00:00:12".
	HardwareAddr string `json:"hardware_addr,omitempty"`
	// ClientID is the client identifier (option 61) in hex, when the
	// client sent one: it identifies the client rather than
	// HardwareAddr.
	ClientID string `json:"client_id,omitempty"`
	// Hostname is the static lease's, or what the client sent (option
	// 12) made into a DNS label.
	Hostname string `json:"hostname,omitempty"`
	// Expiry is when the lease ends; zero for a static lease not yet
	// asked for.
	Expiry time.Time `json:"expiry,omitzero"`
	// LastSeen is when the client last sent a message for this lease.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Static is true for the static leases of dhcp4d.json. The table
	// keeps them only for their Expiry and LastSeen: the config file
	// decides their address and hostname.
	Static bool `json:"static,omitempty"`
	// Declined is true when a client reported the address in use by
	// someone else (DHCPDECLINE): it is not handed out before Expiry.
	Declined bool `json:"declined,omitempty"`
}

// LeaseFile is /perm/dhcp4d-leases.json, written by the server. It
// belongs in package state once the service is wired.
//
//	{
//	  "leases": [
//	    {
//	      "addr": "192.168.42.100",
//	      "hardware_addr": "02:77:00:00:00:21",
//	      "client_id": "01027700000021",
//	      "hostname": "laptop",
//	      "expiry": "2026-11-25T14:00:00Z",
//	      "last_seen": "2026-11-25T13:00:00Z"
//	    }
//	  ]
//	}
type LeaseFile struct {
	Leases []Lease `json:"leases"`
}

// LeasesFile is the lease table's file name under /perm.
const LeasesFile = "dhcp4d-leases.json"

// Active reports whether l is held by a client at now.
func (l Lease) Active(now time.Time) bool {
	return !l.Declined && l.Expiry.After(now)
}

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
	// offered is true while the record is only an OFFER's reservation,
	// not a lease the client was ACKed.
	offered bool
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
