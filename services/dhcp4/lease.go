package dhcp4

import (
	"errors"
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

// maxLeaseTime caps the lease time, an "infinite" lease (RFC 2131's
// 0xffffffff) included: the client still renews now and then, and times
// stay far from overflowing.
const maxLeaseTime = 365 * 24 * time.Hour

// leaseFromAck turns an ACK received at now into a lease. The ACK's
// values win over the OFFER's: some ISPs (fiber7) name a different server
// and lease time in each.
func leaseFromAck(ack *dhcpv4.DHCPv4, now time.Time) (state.DHCPv4Lease, error) {
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || ip.IsUnspecified() {
		return state.DHCPv4Lease{}, errors.New("no address (yiaddr) in ACK")
	}
	bits := 32
	if mask := ack.SubnetMask(); mask != nil {
		if ones, size := mask.Size(); size == 32 {
			bits = ones
		}
	}
	l := state.DHCPv4Lease{Addr: netip.PrefixFrom(ip, bits), Acked: now}
	if rs := ack.Router(); len(rs) > 0 {
		l.Router = addr4(rs[0])
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
		if a := addr4(d); a.IsValid() {
			l.DNS = append(l.DNS, a)
		}
	}
	l.Domain = ack.DomainName()
	if mtu, err := dhcpv4.GetUint16(dhcpv4.OptionInterfaceMTU, ack.Options); err == nil && mtu >= 576 {
		l.MTU = int(mtu)
	}
	l.ServerID = addr4(ack.ServerIdentifier())
	if !l.ServerID.IsValid() {
		l.ServerID = addr4(ack.ServerIPAddr)
	}
	if !l.ServerID.IsValid() {
		return state.DHCPv4Lease{}, fmt.Errorf("ACK for %v names no server", ip)
	}

	dur := ack.IPAddressLeaseTime(defaultLeaseTime)
	switch {
	case dur <= 0:
		dur = defaultLeaseTime
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

// addr4 converts an IPv4 net.IP; invalid for nil or IPv6.
func addr4(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok {
		return netip.Addr{}
	}
	return a
}
