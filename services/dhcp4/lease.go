package dhcp4

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/homerouter/homerouter/state"
)

// defaultLeaseTime is assumed when an ACK names no lease time, which RFC
// 2131 does not allow but which a broken server could send: short enough
// that the client asks again soon.
const defaultLeaseTime = 10 * time.Minute

// minLeaseTime is the least lease time the client believes: shorter ones
// would have it rewrite the lease file and reconfigure the link every
// few seconds.
const minLeaseTime = 20 * time.Second

// maxLeaseTime caps the lease time, an "infinite" lease (RFC 2131's
// 0xffffffff) included: the client still renews now and then, and times
// stay far from overflowing.
const maxLeaseTime = 365 * 24 * time.Hour

// leaseFromAck turns an ACK received at now into a lease. The ACK's
// values win over the OFFER's: some ISPs (fiber7) name a different server
// and lease time in each.
func leaseFromAck(ack *dhcpv4.DHCPv4, now time.Time) (state.DHCPv4Lease, error) {
	ip := addr4(ack.YourIPAddr)
	if !usable(ip) {
		return state.DHCPv4Lease{}, fmt.Errorf("ACK gives no usable address (yiaddr %v)", ack.YourIPAddr)
	}
	// Without a plausible subnet mask the address stands alone (/32) and
	// the router gets a host route.
	bits := 32
	if mask := ack.SubnetMask(); mask != nil {
		if ones, size := mask.Size(); size == 32 && ones >= 8 {
			bits = ones
		}
	}
	l := state.DHCPv4Lease{Addr: netip.PrefixFrom(ip, bits), Acked: now}
	for _, r := range ack.Router() {
		if a := addr4(r); usable(a) && a != ip {
			l.Router = a
			break
		}
	}
	for _, r := range ack.ClasslessStaticRoute() {
		if r == nil || r.Dest == nil {
			continue
		}
		dst, ok := netip.AddrFromSlice(r.Dest.IP.To4())
		ones, size := r.Dest.Mask.Size()
		if !ok || size != 32 {
			continue
		}
		gw := addr4(r.Router)
		if !gw.IsValid() {
			gw = netip.IPv4Unspecified()
		}
		l.Routes = append(l.Routes, state.DHCPv4Route{Destination: netip.PrefixFrom(dst, ones).Masked(), Gateway: gw})
	}
	if b := addr4(ack.BroadcastAddress()); b.IsValid() && l.Addr.Contains(b) {
		l.Broadcast = b
	}
	for _, d := range ack.DNS() {
		if a := addr4(d); usable(a) || a.IsLoopback() {
			l.DNS = append(l.DNS, a)
		}
	}
	l.Domain = ack.DomainName()
	if mtu, err := dhcpv4.GetUint16(dhcpv4.OptionInterfaceMTU, ack.Options); err == nil && mtu >= 576 {
		l.MTU = int(mtu)
	}
	// Renewals go to the server identifier (option 54), which RFC 2131
	// requires in an ACK. (siaddr is the boot server, not this one.)
	l.ServerID = addr4(ack.ServerIdentifier())
	if !usable(l.ServerID) {
		return state.DHCPv4Lease{}, fmt.Errorf("ACK for %v has no usable server identifier (%v)", ip, ack.ServerIdentifier())
	}

	dur := ack.IPAddressLeaseTime(defaultLeaseTime)
	switch {
	case dur <= 0:
		dur = defaultLeaseTime
	case dur < minLeaseTime:
		dur = minLeaseTime
	case dur > maxLeaseTime:
		dur = maxLeaseTime // "infinite" (0xffffffff) included
	}
	t1 := ack.IPAddressRenewalTime(dur / 2)
	t2 := ack.IPAddressRebindingTime(dur * 7 / 8)
	if t1 <= 0 || t2 <= t1 || t2 >= dur {
		// Inconsistent timers: use RFC 2131's defaults.
		t1, t2 = dur/2, dur*7/8
	}
	l.Duration, l.T1, l.T2 = state.Duration(dur), state.Duration(t1), state.Duration(t2)
	l.Expiry = now.Add(dur)
	return l, nil
}

// usable reports whether a is an IPv4 unicast address a host can have or
// talk to: not 0.0.0.0, loopback, multicast, broadcast or link-local.
func usable(a netip.Addr) bool {
	return a.Is4() && a.IsGlobalUnicast()
}

// leaseUsable reports whether a persisted lease can be run as it is: a
// file edited by hand, or damaged, may not be. An unusable lease keeps its
// address in use, but the client starts over in INIT.
func leaseUsable(l state.DHCPv4Lease) bool {
	return usable(l.Addr.Addr()) && usable(l.ServerID) &&
		0 < l.T1 && l.T1 < l.T2 && l.T2 < l.Duration &&
		l.Expiry.Equal(l.Acked.Add(time.Duration(l.Duration)))
}

// addr4 converts an IPv4 net.IP; invalid for nil or IPv6.
func addr4(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok {
		return netip.Addr{}
	}
	return a
}
