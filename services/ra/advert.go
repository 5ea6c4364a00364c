package ra

import (
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/homerouter/homerouter/state"
	"github.com/mdlayher/ndp"
)

// This file is the pure half of the service: what an advertisement says,
// from what the Store holds at one instant, without a socket or a clock,
// so that every rule here is tested by tables.

// The lifetimes of RFC 9096, section 3.2 (ND_PREFERRED_LIMIT and
// ND_VALID_LIMIT): no prefix is advertised for longer, so that hosts drop
// one the ISP took away within hours rather than the days of RFC 4861's
// defaults, even when nobody tells them.
const (
	ndPreferredLimit = 2700 * time.Second
	ndValidLimit     = 5400 * time.Second
)

// maxRouterLifetime is the longest router lifetime RFC 4861 allows.
const maxRouterLifetime = 9000 * time.Second

// curHopLimit is the hop limit hosts are told to use: Linux's default.
const curHopLimit = 64

// inputs is what one advertisement is made from.
type inputs struct {
	Now time.Time
	// LAN is lan0 as netconfig published it; its in-force IPv6 /64s are
	// advertised.
	LAN state.Link
	// DefaultRoute says whether uplink0 has an IPv6 default route.
	DefaultRoute bool
	// Tracked are the prefixes advertised before (ra-prefixes.json).
	Tracked state.AdvertisedPrefixes
	// Interval is the longest time between unsolicited advertisements.
	Interval time.Duration
	Domain   string
	MTU      int
}

// advert is what one router advertisement says. Its lifetimes are
// rounded down to whole seconds, as they go on the wire.
type advert struct {
	RouterLifetime time.Duration
	Prefixes       []prefixInfo
	DNS            netip.Addr // invalid: none
	Domain         string
	// DNSLifetime is RDNSS's and DNSSL's lifetime.
	DNSLifetime time.Duration
	MTU         int
	MAC         net.HardwareAddr
}

// prefixInfo is one prefix information option (on-link, autonomous).
type prefixInfo struct {
	Prefix           netip.Prefix
	Preferred, Valid time.Duration
}

// plan returns the advertisement for in and the prefixes to remember
// (to publish on st.AdvertisedPrefixes).
func plan(in inputs) (advert, state.AdvertisedPrefixes) {
	current := advertisable(in.LAN)
	a := advert{Domain: in.Domain, MTU: in.MTU, DNSLifetime: dnsLifetime(in.Interval)}
	a.MAC, _ = net.ParseMAC(in.LAN.HardwareAddr)
	global := false
	for _, c := range current {
		valid := remaining(c.Valid, in.Now, ndValidLimit)
		pi := prefixInfo{
			Prefix:    c.Prefix.Masked(),
			Preferred: min(remaining(c.Preferred, in.Now, ndPreferredLimit), valid),
			Valid:     valid,
		}
		a.Prefixes = append(a.Prefixes, pi)
		global = global || pi.Preferred > 0 && reachesInternet(c)
	}
	tracked := track(in.Tracked, current, a.Prefixes, in.Now)
	for _, t := range tracked.Prefixes {
		if t.Withdrawn.IsZero() {
			continue
		}
		a.Prefixes = append(a.Prefixes, prefixInfo{Prefix: t.Prefix, Valid: remaining(t.Until, in.Now, ndValidLimit)})
	}
	// A default router only with a way out to the internet and an
	// address to go there from: uplink0's IPv6 default route, and a
	// preferred prefix that is not unique local (RFC 7084, G-4 and
	// ULA-5). Hosts with ULA addresses only would send into a dead end.
	if in.DefaultRoute && global {
		a.RouterLifetime = min(3*in.Interval, maxRouterLifetime)
	}
	a.DNS = dnsServer(in.LAN)
	return a, tracked
}

// uniqueLocal is RFC 4193's fc00::/7.
var uniqueLocal = netip.MustParsePrefix("fc00::/7")

// reachesInternet reports whether hosts can reach the internet from
// addresses in a's prefix: the delegated prefix's (whatever its range:
// the ISP routes it), or a static one outside fc00::/7.
func reachesInternet(a state.Address) bool {
	switch a.Origin {
	case state.OriginDelegated:
		return true
	case state.OriginStatic:
		return !uniqueLocal.Contains(a.Prefix.Addr())
	}
	return false
}

// advertisable returns lan0's addresses in force whose /64 hosts may
// take addresses in: the delegated prefix's, the ULA's and a static IPv6
// /64 of interfaces.json, in that order.
func advertisable(lan state.Link) []state.Address {
	var out []state.Address
	for _, o := range []state.Origin{state.OriginDelegated, state.OriginULA, state.OriginStatic} {
		for _, a := range lan.InForceOf(o) {
			p := a.Prefix
			if !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() != 64 || p.Addr().IsLinkLocalUnicast() {
				continue
			}
			if slices.ContainsFunc(out, func(b state.Address) bool { return b.Prefix.Masked() == p.Masked() }) {
				continue
			}
			out = append(out, a)
		}
	}
	return out
}

// toldSlack is how far AdvertisedPrefix.Told runs ahead of what hosts
// were last told, so that it is rewritten (to /perm) about every half
// hour rather than with every advertisement.
const toldSlack = 30 * time.Minute

// track returns the prefixes to remember after advertising current, with
// the options sent (sent[i] is current[i]'s), at now: current ones with
// their lease's end and how long hosts may hold them; those of prev that
// are no longer current, withdrawn at now (or earlier) and kept until
// their valid lifetime has counted down to 0 (Until). That is no later
// than their lease's end and than hosts were told to hold them, and at
// most ndValidLimit after they were withdrawn (RFC 9096, L-13: the lower
// of the remaining valid lifetime and two hours, counting down).
func track(prev state.AdvertisedPrefixes, current []state.Address, sent []prefixInfo, now time.Time) state.AdvertisedPrefixes {
	out := state.AdvertisedPrefixes{Prefixes: []state.AdvertisedPrefix{}}
	find := func(p netip.Prefix) (state.AdvertisedPrefix, bool) {
		i := slices.IndexFunc(prev.Prefixes, func(q state.AdvertisedPrefix) bool { return q.Prefix == p })
		if i < 0 {
			return state.AdvertisedPrefix{}, false
		}
		return prev.Prefixes[i], true
	}
	for i, c := range current {
		p := c.Prefix.Masked()
		before, _ := find(p)
		told := before.Told
		if until := now.Add(sent[i].Valid); until.After(told) {
			told = until.Add(toldSlack)
		}
		out.Prefixes = append(out.Prefixes, state.AdvertisedPrefix{Prefix: p, Valid: c.Valid, Told: told})
	}
	for _, p := range prev.Prefixes {
		// Only what advertisable returns is ever remembered; anything
		// else in the file was put there by hand, and is dropped.
		if !p.Prefix.Addr().Is6() || p.Prefix.Addr().Is4In6() || p.Prefix.Bits() != 64 || p.Prefix != p.Prefix.Masked() {
			continue
		}
		if slices.ContainsFunc(out.Prefixes, func(o state.AdvertisedPrefix) bool { return o.Prefix == p.Prefix }) {
			continue
		}
		if p.Withdrawn.IsZero() {
			p.Withdrawn = now
			p.Until = now.Add(ndValidLimit)
			for _, t := range []time.Time{p.Told, p.Valid} {
				if !t.IsZero() && t.Before(p.Until) {
					p.Until = t
				}
			}
		}
		// A hand edit (or a clock that went back) must not keep a prefix
		// advertised for longer than any host was ever told.
		if limit := p.Withdrawn.Add(ndValidLimit); p.Until.After(limit) {
			p.Until = limit
		}
		if !p.Until.After(now) {
			continue // counted down to 0: forgotten
		}
		out.Prefixes = append(out.Prefixes, p)
	}
	return out
}

// remaining returns how long until t, in whole seconds, between 0 and
// limit; limit for the zero t (an address without a lease).
func remaining(t, now time.Time, limit time.Duration) time.Duration {
	if t.IsZero() {
		return limit
	}
	return min(max(t.Sub(now), 0), limit).Truncate(time.Second)
}

// dnsLifetime is RDNSS's and DNSSL's lifetime: three times the longest
// interval, as RFC 8106 (section 5.1) suggests, so that two lost
// advertisements in a row do not make hosts forget the resolver.
func dnsLifetime(interval time.Duration) time.Duration {
	return 3 * interval
}

// dnsServer returns the address of the router that RDNSS names: the ULA
// one, which the ISP cannot take away, else the delegated prefix's, else
// lan0's link-local one; the DNS service listens on all of them.
func dnsServer(lan state.Link) netip.Addr {
	for _, o := range []state.Origin{state.OriginULA, state.OriginDelegated, state.OriginStatic} {
		for _, a := range lan.InForceOf(o) {
			if ip := a.Prefix.Addr(); ip.Is6() && !ip.Is4In6() && !ip.IsLinkLocalUnicast() {
				return ip
			}
		}
	}
	for _, p := range lan.Addrs {
		if p.Addr().IsLinkLocalUnicast() {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// shortest returns the shortest non-zero lifetime of the prefixes a
// offers for use (preferred ones), 0 when there is none: the next
// advertisement must come well before it runs out (schedule.sent).
// Deprecated prefixes are left out: they are meant to run out.
func (a advert) shortest() time.Duration {
	var d time.Duration
	for _, p := range a.Prefixes {
		if p.Preferred == 0 {
			continue
		}
		for _, l := range []time.Duration{p.Preferred, p.Valid} {
			if l > 0 && (d == 0 || l < d) {
				d = l
			}
		}
	}
	return d
}

// message returns a as an NDP message.
func (a advert) message() *ndp.RouterAdvertisement {
	m := &ndp.RouterAdvertisement{
		CurrentHopLimit: curHopLimit,
		RouterLifetime:  a.RouterLifetime,
	}
	if len(a.MAC) == 6 {
		m.Options = append(m.Options, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: a.MAC})
	}
	if a.MTU >= 1280 {
		m.Options = append(m.Options, ndp.NewMTU(uint32(a.MTU)))
	}
	for _, p := range a.Prefixes {
		m.Options = append(m.Options, &ndp.PrefixInformation{
			PrefixLength:                   uint8(p.Prefix.Bits()),
			OnLink:                         true,
			AutonomousAddressConfiguration: true,
			PreferredLifetime:              p.Preferred,
			ValidLifetime:                  p.Valid,
			Prefix:                         p.Prefix.Addr(),
		})
	}
	if a.DNS.IsValid() {
		m.Options = append(m.Options, &ndp.RecursiveDNSServer{Lifetime: a.DNSLifetime, Servers: []netip.Addr{a.DNS.WithZone("")}})
	}
	if a.Domain != "" {
		m.Options = append(m.Options, &ndp.DNSSearchList{Lifetime: a.DNSLifetime, DomainNames: []string{a.Domain}})
	}
	return m
}

// differs reports whether b says something hosts should hear about
// soon, rather than at the next unsolicited advertisement: another set
// of prefixes (a new one, one withdrawn), the router starting or ceasing
// to be a default router, another resolver, domain or MTU. Lifetimes that
// merely count down or grow with a renewed lease are not news.
func (a advert) differs(b advert) bool {
	if (a.RouterLifetime == 0) != (b.RouterLifetime == 0) || a.DNS != b.DNS || a.Domain != b.Domain || a.MTU != b.MTU || len(a.Prefixes) != len(b.Prefixes) {
		return true
	}
	for i := range a.Prefixes {
		if a.Prefixes[i].Prefix != b.Prefixes[i].Prefix || (a.Prefixes[i].Preferred == 0) != (b.Prefixes[i].Preferred == 0) {
			return true
		}
	}
	return false
}
