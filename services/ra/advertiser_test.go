package ra

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"

	"github.com/homerouter/homerouter/state"
)

// sent is one message the fake sender took.
type sentMsg struct {
	at  time.Duration // after t0
	dst netip.Addr
	ra  *ndp.RouterAdvertisement
}

// fakeLink is the advertiser's world in a test: a clock, a sender that
// records (or refuses), and the Store's inputs.
type fakeLink struct {
	now     time.Time
	msgs    []sentMsg
	fail    error
	in      inputs
	present bool
	tracked state.AdvertisedPrefixes
	status  state.RAStatus
	logs    []string
}

func (f *fakeLink) WriteTo(m ndp.Message, _ *ipv6.ControlMessage, dst netip.Addr) error {
	if f.fail != nil {
		return f.fail
	}
	// The wire format, as a host reads it.
	b, err := ndp.MarshalMessage(m)
	if err != nil {
		return err
	}
	back, err := ndp.ParseMessage(b)
	if err != nil {
		return err
	}
	f.msgs = append(f.msgs, sentMsg{at: f.now.Sub(t0), dst: dst, ra: back.(*ndp.RouterAdvertisement)})
	return nil
}

func newFake(t *testing.T) (*fakeLink, *advertiser) {
	f := &fakeLink{now: t0, in: base(), present: true}
	ad := &advertiser{
		conn: f,
		now:  func() time.Time { return f.now },
		inputs: func(now time.Time) (inputs, bool) {
			in := f.in
			in.Now, in.Tracked = now, f.tracked
			return in, f.present
		},
		remember: func(p state.AdvertisedPrefixes) { f.tracked = p },
		status:   func(s state.RAStatus) { f.status = s },
		logf:     func(format string, args ...any) { f.logs = append(f.logs, format) },
		// The longest delays and intervals the RFC allows.
		sch: schedule{randN: func(n int64) int64 { return n - 1 }},
	}
	ad.start(10 * time.Minute)
	return f, ad
}

// run calls the advertiser as the service's loop does until d has
// passed: at every due time.
func (f *fakeLink) run(ad *advertiser, d time.Duration) {
	end := f.now.Add(d)
	for {
		ad.tick()
		next := ad.due()
		if next.After(end) {
			f.now = end
			return
		}
		f.now = next
	}
}

func host(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestAdvertiser steps the service's logic with a fake clock.
func TestAdvertiser(t *testing.T) {
	t.Run("fast at first, then every interval", func(t *testing.T) {
		f, ad := newFake(t)
		f.run(ad, 20*time.Minute)
		var at []time.Duration
		for _, m := range f.msgs {
			at = append(at, m.at)
			if m.dst != allNodes || m.ra.RouterLifetime != 30*time.Minute {
				t.Errorf("at %v: to %v, router lifetime %v", m.at, m.dst, m.ra.RouterLifetime)
			}
		}
		want := []time.Duration{0, 16 * time.Second, 32 * time.Second, 48 * time.Second, 48*time.Second + 10*time.Minute}
		if len(at) != len(want) {
			t.Fatalf("sent at %v, want %v", at, want)
		}
		for i := range want {
			if at[i] != want[i] {
				t.Errorf("sent at %v, want %v", at, want)
				break
			}
		}
		if f.status.Sent != uint64(len(want)) || len(f.tracked.Prefixes) != 2 {
			t.Errorf("status %+v, remembered %v", f.status, f.tracked)
		}
	})

	t.Run("solicitations: answered straight, or by multicast", func(t *testing.T) {
		f, ad := newFake(t)
		f.run(ad, time.Hour)
		f.msgs = nil
		ad.solicited(host("fe80::77:ff:fe00:201"))
		f.run(ad, time.Second)
		if len(f.msgs) != 1 || f.msgs[0].dst != host("fe80::77:ff:fe00:201") || f.msgs[0].at != time.Hour+maxRADelay {
			t.Fatalf("answer %+v, want one to the host after %v", f.msgs, maxRADelay)
		}
		f.msgs = nil
		ad.solicited(netip.IPv6Unspecified())
		f.run(ad, 5*time.Second)
		if len(f.msgs) != 1 || f.msgs[0].dst != allNodes {
			t.Fatalf("answer to ::: %+v, want one multicast", f.msgs)
		}
		// A flood: ten answered straight, the rest by one multicast.
		f.msgs = nil
		for range 100 {
			ad.solicited(host("fe80::77:ff:fe00:201"))
		}
		f.run(ad, 5*time.Second)
		unicast, multicast := 0, 0
		for _, m := range f.msgs {
			if m.dst == allNodes {
				multicast++
			} else {
				unicast++
			}
		}
		if unicast != maxUnicastPerSecond || multicast != 1 {
			t.Errorf("a flood of 100 solicitations: %d unicast, %d multicast answers; want %d and 1", unicast, multicast, maxUnicastPerSecond)
		}
		if f.status.Solicitations != 102 || f.status.Solicited != 1+maxUnicastPerSecond {
			t.Errorf("status %+v", f.status)
		}
	})

	t.Run("news comes fast, a lifetime counting down does not", func(t *testing.T) {
		f, ad := newFake(t)
		f.run(ad, time.Hour+time.Minute) // the next is due at 1h10m48s
		f.msgs = nil
		ad.changed(10 * time.Minute) // nothing new
		f.run(ad, time.Minute)
		if len(f.msgs) != 0 {
			t.Errorf("sent %d without news", len(f.msgs))
		}
		f.in.DefaultRoute = false
		ad.changed(10 * time.Minute)
		f.run(ad, time.Minute)
		if len(f.msgs) != 4 || f.msgs[0].ra.RouterLifetime != 0 {
			t.Errorf("after the uplink lost IPv6: %d advertisements in a minute (want 4), first router lifetime %v", len(f.msgs), f.msgs[0].ra.RouterLifetime)
		}
	})

	t.Run("goodbye: what was said, with router lifetime 0", func(t *testing.T) {
		f, ad := newFake(t)
		f.run(ad, time.Minute)
		remembered := f.tracked
		f.msgs = nil
		f.present = false // lan0 left st.Links: that is why the service stops
		var waited time.Duration
		ad.goodbye(func(d time.Duration) { waited += d; f.now = f.now.Add(d) })
		if len(f.msgs) != finalAdverts || waited != finalGap*(finalAdverts-1) {
			t.Fatalf("goodbye: %d advertisements, %v apart; want %d", len(f.msgs), waited, finalAdverts)
		}
		for _, m := range f.msgs {
			if m.ra.RouterLifetime != 0 || len(m.ra.Options) != len(ad.last.message().Options) {
				t.Errorf("goodbye %+v: want router lifetime 0 and the last advertisement's options", m.ra)
			}
		}
		if len(f.tracked.Prefixes) != len(remembered.Prefixes) || !f.tracked.Prefixes[0].Withdrawn.IsZero() {
			t.Errorf("goodbye withdrew prefixes: %+v", f.tracked)
		}
	})

	t.Run("lan0 gone: nothing sent, nothing withdrawn", func(t *testing.T) {
		f, ad := newFake(t)
		f.run(ad, time.Minute)
		f.msgs, f.present = nil, false
		remembered := f.tracked
		ad.solicited(host("fe80::1"))
		f.run(ad, time.Hour)
		if len(f.msgs) != 0 || len(f.tracked.Prefixes) != len(remembered.Prefixes) {
			t.Errorf("sent %d, remembered %+v", len(f.msgs), f.tracked)
		}
	})

	t.Run("a link that refuses: logged once, counted", func(t *testing.T) {
		f, ad := newFake(t)
		f.fail = errors.New("network is down")
		f.run(ad, time.Hour)
		if len(f.logs) != 1 || f.status.Failed < 4 || f.status.Sent != 0 {
			t.Errorf("logs %q, status %+v; want one line, every failure counted", f.logs, f.status)
		}
		f.fail = nil
		ad.changed(time.Minute)
		f.run(ad, time.Minute)
		if len(f.logs) != 2 || f.status.Sent == 0 {
			t.Errorf("logs %q, status %+v; want the recovery logged", f.logs, f.status)
		}
	})
}
