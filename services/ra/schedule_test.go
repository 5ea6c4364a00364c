package ra

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
)

// TestSchedule: fast advertisements after a start or a change, then the
// random interval; solicitations answered soon, but multicast at most
// every 3 s.
func TestSchedule(t *testing.T) {
	for _, tc := range []struct {
		name  string
		randN func(int64) int64
		// wantGaps are the gaps between the advertisements after news.
		wantGaps []time.Duration
	}{
		{"longest", func(n int64) int64 { return n - 1 }, []time.Duration{16 * time.Second, 16 * time.Second, 16 * time.Second, 10 * time.Minute, 10 * time.Minute}},
		{"shortest", func(int64) int64 { return 0 }, []time.Duration{16 * time.Second, 16 * time.Second, 16 * time.Second, 200 * time.Second, 200 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := schedule{interval: 10 * time.Minute, randN: tc.randN}
			now := t0
			s.news(now)
			if !s.next.Equal(now) {
				t.Fatalf("first advertisement at %v, want at once", s.next.Sub(t0))
			}
			for i, want := range tc.wantGaps {
				s.sent(now, 0)
				if gap := s.next.Sub(now); gap != want {
					t.Errorf("gap %d: %v, want %v", i, gap, want)
				}
				now = s.next
			}
		})
	}

	t.Run("short lifetimes bring advertisements closer", func(t *testing.T) {
		s := schedule{interval: 10 * time.Minute, randN: func(n int64) int64 { return n - 1 }}
		for _, tc := range []struct{ shortest, want time.Duration }{
			{40 * time.Second, 40 * time.Second / 3},
			{time.Second, minDelayBetweenRAs},
			{time.Hour, 10 * time.Minute},
		} {
			s.sent(t0, tc.shortest)
			if got := s.next.Sub(t0); got != tc.want {
				t.Errorf("shortest lifetime %v: next in %v, want %v", tc.shortest, got, tc.want)
			}
		}
	})

	t.Run("news soon after an advertisement waits 3 s", func(t *testing.T) {
		s := schedule{interval: 10 * time.Minute, randN: func(n int64) int64 { return n - 1 }}
		s.news(t0)
		s.sent(t0, 0)
		s.news(t0.Add(time.Second))
		if got := s.next.Sub(t0); got != minDelayBetweenRAs {
			t.Errorf("next at %v, want %v", got, minDelayBetweenRAs)
		}
	})

	t.Run("a solicitation from :: brings the next one forward, not closer than 3 s", func(t *testing.T) {
		s := schedule{interval: 10 * time.Minute, randN: func(n int64) int64 { return n - 1 }}
		s.news(t0)
		s.sent(t0, 0)
		s.initial = 0
		s.sent(t0, 0) // next in 10 minutes
		s.solicited(t0.Add(time.Second))
		if got := s.next.Sub(t0); got != minDelayBetweenRAs {
			t.Errorf("answer at %v, want %v", got, minDelayBetweenRAs)
		}
		s.sent(s.next, 0)
		s.solicited(t0.Add(time.Minute))
		if got := s.next.Sub(t0.Add(time.Minute)); got != maxRADelay {
			t.Errorf("answer %v after the solicitation, want %v (the random delay)", got, maxRADelay)
		}
	})

	t.Run("unicast answers are limited", func(t *testing.T) {
		s := schedule{interval: 10 * time.Minute, randN: func(int64) int64 { return 0 }}
		n := 0
		for i := range 100 {
			if s.allowUnicast(t0.Add(time.Duration(i) * time.Millisecond)) {
				n++
			}
		}
		if n != maxUnicastPerSecond {
			t.Errorf("%d answers in 100 ms, want %d", n, maxUnicastPerSecond)
		}
		if !s.allowUnicast(t0.Add(time.Second)) {
			t.Errorf("no answer a second later")
		}
	})
}

func rs(t *testing.T, src bool) []byte {
	t.Helper()
	m := &ndp.RouterSolicitation{}
	if src {
		m.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: net.HardwareAddr{2, 0x77, 0, 0, 2, 1}}}
	}
	b, err := ndp.MarshalMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSolicitation: what RFC 4861 asks a router to check of a
// solicitation before it answers.
func TestSolicitation(t *testing.T) {
	host := netip.MustParseAddr("fe80::77:ff:fe00:201")
	withLLA, without := rs(t, true), rs(t, false)
	badCode := append([]byte(nil), without...)
	badCode[1] = 1
	ra, err := ndp.MarshalMessage(&ndp.RouterAdvertisement{CurrentHopLimit: 64})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		hop  int
		src  netip.Addr
		ok   bool
	}{
		{"from a host, with its link-layer address", withLLA, 255, host, true},
		{"from a host, without", without, 255, host, true},
		{"hop limit unknown", withLLA, -1, host, true},
		{"from ::, without a link-layer address", without, 255, netip.IPv6Unspecified(), true},
		{"from ::, with a link-layer address", withLLA, 255, netip.IPv6Unspecified(), false},
		{"routed here (hop limit 64)", withLLA, 64, host, false},
		{"code 1", badCode, 255, host, false},
		{"an advertisement", ra, 255, host, false},
		{"truncated option", withLLA[:len(withLLA)-3], 255, host, false},
		{"empty", nil, 255, host, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := solicitation(tc.b, tc.hop, tc.src)
			if (err == nil) != tc.ok {
				t.Errorf("solicitation: %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// FuzzSolicitation: no message from the LAN panics the check.
func FuzzSolicitation(f *testing.F) {
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 0x77, 0, 0, 2, 1}, 255, true)
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0}, 255, false)
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 255, true)
	f.Add([]byte{134, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 64, true)
	f.Fuzz(func(t *testing.T, b []byte, hop int, fromHost bool) {
		src := netip.IPv6Unspecified()
		if fromHost {
			src = netip.MustParseAddr("fe80::1")
		}
		solicitation(b, hop, src)
	})
}
