package ra

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/ndp"
)

// The timing constants of RFC 4861, section 10.
const (
	maxInitialAdverts  = 3                      // MAX_INITIAL_RTR_ADVERTISEMENTS
	maxInitialInterval = 16 * time.Second       // MAX_INITIAL_RTR_ADVERT_INTERVAL
	minDelayBetweenRAs = 3 * time.Second        // MIN_DELAY_BETWEEN_RAS
	maxRADelay         = 500 * time.Millisecond // MAX_RA_DELAY_TIME
)

// maxUnicastPerSecond bounds the answers sent straight to soliciting
// hosts, so that a flood of solicitations is not answered by a flood.
const maxUnicastPerSecond = 10

// schedule decides when advertisements go out (RFC 4861, section 6.2.4
// to 6.2.6). It holds no clock: every method is told the time.
type schedule struct {
	// interval is MaxRtrAdvInterval; MinRtrAdvInterval is a third of it.
	interval time.Duration
	// randN returns a number in [0, n), n > 0 (rand.Int64N).
	randN func(n int64) int64

	initial int       // fast advertisements still to send
	last    time.Time // the last multicast one; zero: none yet
	next    time.Time // when the next multicast one is due

	window    time.Time // start of the second maxUnicastPerSecond counts in
	unicastIn int       // unicast answers in that second
}

// news starts over with fast advertisements, the first as soon as
// allowed: the service just started, or what it advertises changed.
func (s *schedule) news(now time.Time) {
	s.initial = maxInitialAdverts
	s.next = s.earliest(now)
}

// earliest returns the earliest time a multicast advertisement may go
// out at or after t.
func (s *schedule) earliest(t time.Time) time.Time {
	if !s.last.IsZero() && t.Before(s.last.Add(minDelayBetweenRAs)) {
		return s.last.Add(minDelayBetweenRAs)
	}
	return t
}

// sent records a multicast advertisement at now and picks the next one:
// a uniformly random time between a third of the interval and the
// interval, no more than 16 s for the first few, and no more than a
// third of shortest (0: none), the shortest lifetime it advertised that
// is counting down, so that hosts hear again well before it ends: a
// delegated prefix with a lease shorter than the interval would
// otherwise be deprecated, and then gone, on hosts between two
// advertisements.
func (s *schedule) sent(now time.Time, shortest time.Duration) {
	s.last = now
	lo := s.interval / 3
	gap := lo + time.Duration(s.randN(int64(s.interval-lo)+1))
	if s.initial > 0 {
		s.initial--
		gap = min(gap, maxInitialInterval)
	}
	if shortest > 0 {
		gap = min(gap, max(shortest/3, minDelayBetweenRAs))
	}
	s.next = now.Add(gap)
}

// solicited records a solicitation from an unspecified address, which is
// answered by multicast: after a random delay of up to 500 ms, and no
// sooner than minDelayBetweenRAs after the last, unless one is due
// before anyway.
func (s *schedule) solicited(now time.Time) {
	t := s.earliest(now.Add(s.delay()))
	if t.Before(s.next) {
		s.next = t
	}
}

// delay returns a random delay for an answer to a solicitation.
func (s *schedule) delay() time.Duration {
	return time.Duration(s.randN(int64(maxRADelay) + 1))
}

// allowUnicast reports whether another answer may go straight to a
// host, counting it.
func (s *schedule) allowUnicast(now time.Time) bool {
	if now.Sub(s.window) >= time.Second || now.Before(s.window) {
		s.window, s.unicastIn = now, 0
	}
	if s.unicastIn >= maxUnicastPerSecond {
		return false
	}
	s.unicastIn++
	return true
}

// errNotSolicitation is a message that is not a router solicitation to
// answer; it is dropped.
var errNotSolicitation = errors.New("not a router solicitation")

// solicitation checks a received ICMPv6 message b as RFC 4861, section
// 6.1.1, asks of a router solicitation: hop limit 255 (hopLimit, -1 when
// the kernel did not say), code 0, well-formed options, and no source
// link-layer address from the unspecified address. It never panics on
// what the network sends.
func solicitation(b []byte, hopLimit int, src netip.Addr) error {
	if hopLimit != -1 && hopLimit != ndp.HopLimit {
		return fmt.Errorf("%w: hop limit %d, not %d, so not from the link", errNotSolicitation, hopLimit, ndp.HopLimit)
	}
	if len(b) < 2 || b[1] != 0 {
		return fmt.Errorf("%w: too short or ICMPv6 code not 0", errNotSolicitation)
	}
	m, err := ndp.ParseMessage(b)
	if err != nil {
		return fmt.Errorf("%w: %v", errNotSolicitation, err)
	}
	rs, ok := m.(*ndp.RouterSolicitation)
	if !ok {
		return fmt.Errorf("%w: %v", errNotSolicitation, m.Type())
	}
	if src.IsUnspecified() {
		for _, o := range rs.Options {
			if _, ok := o.(*ndp.LinkLayerAddress); ok {
				return fmt.Errorf("%w: a link-layer address from the unspecified address", errNotSolicitation)
			}
		}
	}
	return nil
}
