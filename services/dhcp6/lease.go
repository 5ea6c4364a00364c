package dhcp6

import (
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/homerouter/homerouter/state"
)

// leaseFromReply takes the lease out of an ADVERTISE or REPLY received at
// now. It keeps prefixes and addresses with a non-zero valid lifetime,
// whatever their IAID (some ISPs answer with another IAID than asked),
// and tolerates options it does not use (status texts, preference,
// authentication). T1 and T2 are the smallest the IAs give, within the
// lifetimes; 0 when the server left them to the client.
func leaseFromReply(m *dhcpv6.Message, now time.Time) state.DHCPv6Lease {
	var l state.DHCPv6Lease
	timers := func(t1, t2 time.Duration) {
		if t1 > 0 && (l.T1 == 0 || state.Duration(t1) < l.T1) {
			l.T1, l.T2 = state.Duration(t1), state.Duration(t2)
		}
	}
	for _, pd := range m.Options.IAPD() {
		for _, p := range pd.Options.Prefixes() {
			pfx, ok := prefix(p.Prefix)
			if !ok || p.ValidLifetime <= 0 || pfx.Bits() > 64 || !pfx.Addr().IsGlobalUnicast() {
				continue
			}
			l.Prefixes = append(l.Prefixes, state.DelegatedPrefix{
				Prefix:    pfx,
				Preferred: state.Duration(min(p.PreferredLifetime, p.ValidLifetime)),
				Valid:     state.Duration(p.ValidLifetime),
				Given:     now,
			})
		}
		if len(l.Prefixes) > 0 {
			timers(pd.T1, pd.T2)
		}
	}
	for _, na := range m.Options.IANA() {
		for _, a := range na.Options.Addresses() {
			addr, ok := netip.AddrFromSlice(a.IPv6Addr)
			if !ok || a.ValidLifetime <= 0 || !addr.Is6() || addr.Is4In6() || !addr.IsGlobalUnicast() || l.Addr != nil {
				continue
			}
			l.Addr = &state.LeasedAddr{
				IAID:      uint32(na.IaId[0])<<24 | uint32(na.IaId[1])<<16 | uint32(na.IaId[2])<<8 | uint32(na.IaId[3]),
				Addr:      addr,
				Preferred: state.Duration(min(a.PreferredLifetime, a.ValidLifetime)),
				Valid:     state.Duration(a.ValidLifetime),
				Given:     now,
			}
			timers(na.T1, na.T2)
		}
	}
	for _, d := range m.Options.DNS() {
		if a, ok := netip.AddrFromSlice(d); ok && a.Is6() && !a.IsUnspecified() {
			l.DNS = append(l.DNS, a)
		}
	}
	if dl := m.Options.DomainSearchList(); dl != nil {
		l.Domains = dl.Labels
	}
	if sid := m.Options.ServerID(); sid != nil {
		l.ServerDUID = hex.EncodeToString(sid.ToBytes())
	}
	if o := m.Options.GetOne(dhcpv6.OptionUnicast); o != nil {
		if a, ok := netip.AddrFromSlice(o.ToBytes()); ok && a.Is6() && a.IsGlobalUnicast() {
			l.ServerUnicast = a
		}
	}
	l.Acked = now
	return l
}

// merge returns old with what got carries: each IA that got has (a
// prefix, an address) replaces old's, and one it lacks (missing, or an
// error status such as NoPrefixAvail) keeps old's. A server can thus
// only take a prefix away by delegating another: connectivity first.
func merge(old, got state.DHCPv6Lease) state.DHCPv6Lease {
	l := got
	if len(l.Prefixes) == 0 {
		l.Prefixes = old.Prefixes
	}
	if l.Addr == nil {
		l.Addr = old.Addr
	}
	if len(l.DNS) == 0 {
		l.DNS = old.DNS
	}
	if len(l.Domains) == 0 {
		l.Domains = old.Domains
	}
	// Timers from the server stand only if they fit the lifetimes now
	// in use; otherwise the client picks them.
	if t1, t2 := defaultTimers(l); l.T1 <= 0 || l.T2 <= l.T1 || l.T1 > t1*2 || l.T2 > t2*5/4 {
		l.T1, l.T2 = t1, t2
	}
	return l
}

// defaultTimers picks T1 and T2 when the server left them to the client
// (RFC 8415 section 21.21): 0.5 and 0.8 of the shortest preferred
// lifetime.
func defaultTimers(l state.DHCPv6Lease) (t1, t2 state.Duration) {
	shortest := state.Duration(0)
	for _, p := range l.Prefixes {
		if shortest == 0 || p.Preferred < shortest {
			shortest = p.Preferred
		}
	}
	if a := l.Addr; a != nil && (shortest == 0 || a.Preferred < shortest) {
		shortest = a.Preferred
	}
	if shortest <= 0 {
		shortest = state.Duration(time.Hour)
	}
	return shortest / 2, shortest / 5 * 4
}

// replyStatus describes the status codes of a message, for logs.
func replyStatus(m *dhcpv6.Message) string {
	var parts []string
	if s := m.Options.Status(); s != nil {
		parts = append(parts, s.String())
	}
	for _, pd := range m.Options.IAPD() {
		if s := pd.Options.Status(); s != nil {
			parts = append(parts, "IA_PD: "+s.String())
		}
	}
	for _, na := range m.Options.IANA() {
		if s := na.Options.Status(); s != nil {
			parts = append(parts, "IA_NA: "+s.String())
		}
	}
	if len(parts) == 0 {
		return "no status"
	}
	return strings.Join(parts, "; ")
}

func prefixOf(l state.DHCPv6Lease) netip.Prefix {
	if len(l.Prefixes) == 0 {
		return netip.Prefix{}
	}
	return l.Prefixes[0].Prefix
}

func addrOf(l state.DHCPv6Lease) netip.Addr {
	if l.Addr == nil {
		return netip.Addr{}
	}
	return l.Addr.Addr
}

func prefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	ones, bits := n.Mask.Size()
	if !ok || bits != 128 || !a.Is6() || a.Is4In6() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones).Masked(), true
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}
}
