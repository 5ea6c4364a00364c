package capture

import (
	"sync"
	"time"
)

// Packet is one captured frame.
type Packet struct {
	Time time.Time
	// Link is the index of the link in Links (uplink0 or lan0).
	Link int
	// Outbound is set for a frame the router sent.
	Outbound bool
	// Data is the frame as the kernel handed it over, Ethernet header
	// first; it is never changed once in the ring.
	Data []byte
}

// packetOverhead is what the ring counts for a packet besides its bytes:
// the Packet itself in the queue, so that a flood of tiny frames is
// bounded too.
const packetOverhead = 64

func (p Packet) size() int { return len(p.Data) + packetOverhead }

// Ring holds the last packets captured, within a packet count and a
// memory bound, and lets readers follow it: each packet gets a sequence
// number, and a reader asks for what came after the last one it saw.
// Add never blocks on a reader: one that falls behind by more than the
// ring holds has missed packets, and is told how many.
type Ring struct {
	mu       sync.Mutex
	max      int // packets
	maxBytes int
	queue    []Packet // queue[head:] are held, oldest first
	head     int
	bytes    int
	next     uint64        // sequence number of the next packet added
	wake     chan struct{} // closed, and replaced, at each Add
}

// NewRing returns a ring that holds at most max packets and maxBytes
// bytes (Data plus a small overhead per packet).
func NewRing(max, maxBytes int) *Ring {
	return &Ring{max: max, maxBytes: maxBytes, wake: make(chan struct{})}
}

// SetLimits changes the bounds, dropping the oldest packets to fit.
func (r *Ring) SetLimits(max, maxBytes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.max, r.maxBytes = max, maxBytes
	r.evict()
}

// Add appends p, dropping the oldest packets to make room. A packet
// larger than the whole memory bound is not held, and Add returns false.
func (r *Ring) Add(p Packet) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.size() > r.maxBytes || r.max <= 0 {
		return false
	}
	r.queue = append(r.queue, p)
	r.bytes += p.size()
	r.next++
	r.evict()
	close(r.wake)
	r.wake = make(chan struct{})
	return true
}

// evict drops the oldest packets while the ring is over a bound, and
// compacts the queue when most of it is dropped packets, so that its
// memory is that of what it holds (amortized: each packet is copied at
// most once per compaction that it survives, and a compaction halves the
// queue at least).
func (r *Ring) evict() {
	for len(r.queue)-r.head > r.max || (r.bytes > r.maxBytes && r.head < len(r.queue)) {
		r.bytes -= r.queue[r.head].size()
		r.queue[r.head] = Packet{} // let its Data go
		r.head++
	}
	if r.head > 0 && r.head >= len(r.queue)/2 {
		held := copy(r.queue, r.queue[r.head:])
		clear(r.queue[held:])
		r.queue = r.queue[:held]
		r.head = 0
		if cap(r.queue) > 2*r.max+16 {
			r.queue = append([]Packet(nil), r.queue...)
		}
	}
}

// Since returns at most max of the packets held with sequence numbers
// from seq on, oldest first, the sequence number to ask for next, how
// many packets from seq on were dropped before the reader got them, and
// a channel that is closed when a packet is added after those held now.
// Sequence numbers start at 0.
//
// A reader that takes the ring in batches holds only a batch's packets:
// the rest can leave the ring, and its memory, while it writes.
func (r *Ring) Since(seq uint64, max int) (pkts []Packet, next, missed uint64, wake <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	held := uint64(len(r.queue) - r.head)
	oldest := r.next - held
	switch {
	case seq < oldest:
		missed = oldest - seq
		seq = oldest
	case seq > r.next: // never handed out: start from now
		seq = r.next
	}
	from := r.head + int(seq-oldest)
	to := min(len(r.queue), from+max)
	pkts = append(pkts, r.queue[from:to]...)
	return pkts, seq + uint64(len(pkts)), missed, r.wake
}

// Len returns how many packets the ring holds, and their bytes (with
// the overhead).
func (r *Ring) Len() (packets, bytes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue) - r.head, r.bytes
}
