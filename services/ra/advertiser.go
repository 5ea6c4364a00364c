package ra

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"

	"github.com/homerouter/homerouter/state"
)

// sender sends NDP messages on the link: an *ndp.Conn.
type sender interface {
	WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error
}

// finalAdverts is how many advertisements with router lifetime 0 say
// goodbye (RFC 4861 allows up to three), finalGap apart: one may be lost.
const (
	finalAdverts = 2
	finalGap     = 100 * time.Millisecond
)

// advertiser is the service on one link, without its goroutines: it
// decides what to send and when, sends it with conn and keeps the
// counters. The service's loop calls it when due() has come, when a
// solicitation arrives and when a topic changed; tests call it with a
// fake clock and sender.
type advertiser struct {
	conn sender
	now  func() time.Time
	// inputs reads what an advertisement is made from at now; false
	// when lan0 is gone from st.Links (or is another link by now): the
	// service is about to start over, and nothing is sent or
	// remembered meanwhile.
	inputs func(now time.Time) (inputs, bool)
	// remember publishes the prefixes to remember (ra-prefixes.json);
	// status the counters.
	remember func(state.AdvertisedPrefixes)
	status   func(state.RAStatus)
	logf     func(format string, args ...any)

	sch     schedule
	pending []unicast // answers due to hosts, by due time
	last    advert    // the last multicast advertisement
	sent    bool      // whether there was one
	counts  state.RAStatus
	lastErr string // the last send error logged, so that a repeat is not
}

// unicast is an answer due to a host.
type unicast struct {
	dst netip.Addr
	due time.Time
}

// start begins with fast advertisements, the first at once.
func (ad *advertiser) start(interval time.Duration) {
	ad.sch.interval = interval
	ad.sch.news(ad.now())
}

// due returns when the advertiser wants to be called next (tick).
func (ad *advertiser) due() time.Time {
	if len(ad.pending) > 0 && ad.pending[0].due.Before(ad.sch.next) {
		return ad.pending[0].due
	}
	return ad.sch.next
}

// tick sends what is due: the multicast advertisement, answers to hosts.
func (ad *advertiser) tick() {
	now := ad.now()
	if !now.Before(ad.sch.next) {
		if a, ok := ad.send(now, allNodes, false); ok {
			ad.last, ad.sent = a, true
			ad.sch.sent(now, a.shortest())
		} else {
			ad.sch.sent(now, 0)
		}
	}
	for len(ad.pending) > 0 && !now.Before(ad.pending[0].due) {
		ad.send(now, ad.pending[0].dst, true)
		ad.pending = ad.pending[1:]
	}
}

// solicited takes a router solicitation from src: answered straight to
// the host after a short random delay, or, from a host without an
// address or beyond the rate limit, by the next multicast
// advertisement, brought forward.
func (ad *advertiser) solicited(src netip.Addr) {
	now := ad.now()
	ad.counts.Solicitations++
	if src.IsUnspecified() || !ad.sch.allowUnicast(now) {
		ad.sch.solicited(now)
		return
	}
	u := unicast{dst: src, due: now.Add(ad.sch.delay())}
	i := len(ad.pending)
	for i > 0 && ad.pending[i-1].due.After(u.due) {
		i--
	}
	ad.pending = append(ad.pending, unicast{})
	copy(ad.pending[i+1:], ad.pending[i:])
	ad.pending[i] = u
}

// changed takes a change of the topics: a new interval or news for hosts
// (advert.differs) starts fast advertisements over.
func (ad *advertiser) changed(interval time.Duration) {
	now := ad.now()
	if interval != ad.sch.interval {
		ad.sch.interval = interval
		ad.sch.news(now)
		return
	}
	in, ok := ad.inputs(now)
	if !ok {
		return
	}
	if a, _ := plan(in); !ad.sent || a.differs(ad.last) {
		ad.sch.news(now)
	}
}

// goodbye says the router is no longer a default router: the last
// advertisement again with router lifetime 0, so that hosts stop
// sending through it now rather than in 30 minutes, and keep their
// addresses for when it is back. It is made from what was last said,
// not from the Store: when lan0 left st.Links, the Store no longer
// says what this link had.
func (ad *advertiser) goodbye(wait func(time.Duration)) {
	if !ad.sent {
		return
	}
	a := ad.last
	a.RouterLifetime = 0
	for i := range finalAdverts {
		if i > 0 {
			wait(finalGap)
		}
		ad.write(a, allNodes)
	}
	ad.status(ad.counts)
}

// send makes the advertisement at now and sends it to dst, remembering
// its prefixes, counting it as an answer to a solicitation when
// solicited; false when there is nothing to send or it failed.
func (ad *advertiser) send(now time.Time, dst netip.Addr, solicited bool) (advert, bool) {
	in, ok := ad.inputs(now)
	if !ok {
		return advert{}, false
	}
	a, tracked := plan(in)
	ad.remember(tracked)
	ok = ad.write(a, dst)
	if ok {
		if solicited {
			ad.counts.Solicited++
		}
		ad.counts.Last = now
		ad.counts.RouterLifetime = state.Duration(a.RouterLifetime)
		ad.counts.Prefixes = make([]string, 0, len(a.Prefixes))
		for _, p := range a.Prefixes {
			ad.counts.Prefixes = append(ad.counts.Prefixes, fmt.Sprintf("%s preferred %v valid %v", p.Prefix, p.Preferred, p.Valid))
		}
		ad.counts.DNS = ""
		if a.DNS.IsValid() {
			ad.counts.DNS = a.DNS.String()
		}
	}
	ad.status(ad.counts)
	return a, ok
}

// write sends a to dst, counting it, and logs a failure once until it
// changes or sending works again (a link without carrier refuses every
// advertisement).
func (ad *advertiser) write(a advert, dst netip.Addr) bool {
	err := ad.conn.WriteTo(a.message(), nil, dst)
	if err != nil {
		ad.counts.Failed++
		if msg := err.Error(); msg != ad.lastErr {
			ad.logf("send router advertisement to %s: %v (logged once while it repeats)", dst, err)
			ad.lastErr = msg
		}
		return false
	}
	if ad.lastErr != "" {
		ad.logf("sending router advertisements again")
		ad.lastErr = ""
	}
	ad.counts.Sent++
	return true
}
