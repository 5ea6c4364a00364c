package capture

import (
	"bytes"
	"testing"
	"time"
)

func pkt(i int, size int) Packet {
	return Packet{Time: time.Unix(int64(i), 0), Data: bytes.Repeat([]byte{byte(i)}, size)}
}

// firsts returns each packet's first byte: which packet it is.
func firsts(pkts []Packet) []int {
	var out []int
	for _, p := range pkts {
		out = append(out, int(p.Data[0]))
	}
	return out
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRing(t *testing.T) {
	for _, tc := range []struct {
		name          string
		max, maxBytes int
		sizes         []int // of packets 1, 2, ...
		since         uint64
		want          []int
		wantMissed    uint64
		rejected      int // packets Add refused
	}{
		{name: "empty", max: 3, maxBytes: 1 << 20},
		{name: "under the bounds", max: 3, maxBytes: 1 << 20, sizes: []int{10, 10}, want: []int{1, 2}},
		{name: "wraps at the count", max: 3, maxBytes: 1 << 20, sizes: []int{10, 10, 10, 10, 10}, want: []int{3, 4, 5}, wantMissed: 2},
		{name: "wraps at the memory bound", max: 100, maxBytes: 3 * (100 + packetOverhead), sizes: []int{100, 100, 100, 100}, want: []int{2, 3, 4}, wantMissed: 1},
		{name: "a large packet pushes out several", max: 100, maxBytes: 3 * (100 + packetOverhead), sizes: []int{100, 100, 100, 250}, want: []int{3, 4}, wantMissed: 2},
		{name: "a packet over the whole bound is not held", max: 100, maxBytes: 200, sizes: []int{100, 500}, want: []int{1}, rejected: 1},
		{name: "since the middle", max: 10, maxBytes: 1 << 20, sizes: []int{1, 1, 1, 1}, since: 2, want: []int{3, 4}},
		{name: "since the end", max: 10, maxBytes: 1 << 20, sizes: []int{1, 1}, since: 2},
		{name: "many wraps", max: 7, maxBytes: 1 << 20, sizes: make([]int, 200), want: []int{194, 195, 196, 197, 198, 199, 200}, wantMissed: 193},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRing(tc.max, tc.maxBytes)
			for i, size := range tc.sizes {
				r.Add(pkt(i+1, max(size, 1)))
			}
			got, next, missed, _ := r.Since(tc.since, 1000)
			if g := firsts(got); !equal(g, tc.want) {
				t.Errorf("packets = %v, want %v", g, tc.want)
			}
			if want := uint64(len(tc.sizes) - tc.rejected); next != want {
				t.Errorf("next = %d, want %d", next, want)
			}
			if missed != tc.wantMissed {
				t.Errorf("missed = %d, want %d", missed, tc.wantMissed)
			}
			all, _, _, _ := r.Since(0, 1000)
			n, b := r.Len()
			if n != len(all) || n > tc.max || b > tc.maxBytes {
				t.Errorf("Len = %d packets, %d bytes; want %d packets within %d, %d", n, b, len(all), tc.max, tc.maxBytes)
			}
			// The queue's memory stays that of what is held.
			if cap(r.queue) > 2*tc.max+16 && cap(r.queue) > 2*len(tc.sizes) {
				t.Errorf("queue capacity %d for %d packets held", cap(r.queue), n)
			}
		})
	}
}

func TestRingSetLimits(t *testing.T) {
	r := NewRing(10, 1<<20)
	for i := range 10 {
		r.Add(pkt(i+1, 10))
	}
	r.SetLimits(4, 1<<20)
	if got, _, _, _ := r.Since(0, 1000); !equal(firsts(got), []int{7, 8, 9, 10}) {
		t.Errorf("after shrinking to 4: %v", firsts(got))
	}
	r.SetLimits(4, 2*(10+packetOverhead))
	if got, _, _, _ := r.Since(0, 1000); !equal(firsts(got), []int{9, 10}) {
		t.Errorf("after shrinking to 2 packets' bytes: %v", firsts(got))
	}
}

// TestRingFollow: a reader that waits on the channel sees each new
// packet once, in order.
func TestRingFollow(t *testing.T) {
	r := NewRing(100, 1<<20)
	_, next, _, wake := r.Since(0, 1000)
	done := make(chan []int)
	go func() {
		var seen []int
		for len(seen) < 50 {
			<-wake
			var pkts []Packet
			pkts, next, _, wake = r.Since(next, 1000)
			seen = append(seen, firsts(pkts)...)
		}
		done <- seen
	}()
	for i := range 50 {
		r.Add(pkt(i+1, 1))
	}
	seen := <-done
	for i, v := range seen {
		if v != i+1 {
			t.Fatalf("the reader saw %v, want 1 to 50 in order", seen)
		}
	}
}

// TestRingBatches: a reader that takes the ring a few packets at a time
// gets each once, in order, and is told of the packets that left the
// ring between its batches.
func TestRingBatches(t *testing.T) {
	r := NewRing(10, 1<<20)
	for i := range 10 {
		r.Add(pkt(i+1, 1))
	}
	got, next, missed, _ := r.Since(0, 4)
	if !equal(firsts(got), []int{1, 2, 3, 4}) || next != 4 || missed != 0 {
		t.Errorf("first batch %v, next %d, missed %d", firsts(got), next, missed)
	}
	for i := range 6 { // pushes out 1 to 6
		r.Add(pkt(11+i, 1))
	}
	got, next, missed, _ = r.Since(next, 4)
	if !equal(firsts(got), []int{7, 8, 9, 10}) || next != 10 || missed != 2 {
		t.Errorf("after the ring moved on: %v, next %d, missed %d; want 7 to 10, 10, 2", firsts(got), next, missed)
	}
	got, next, _, _ = r.Since(next, 4)
	got2, next2, _, _ := r.Since(next, 4)
	if !equal(firsts(got), []int{11, 12, 13, 14}) || !equal(firsts(got2), []int{15, 16}) || next2 != 16 {
		t.Errorf("the last batches: %v then %v (next %d)", firsts(got), firsts(got2), next2)
	}
	if got, next, _, _ := r.Since(100, 4); len(got) != 0 || next != 16 {
		t.Errorf("asked past the end: %v, next %d", firsts(got), next)
	}
}
