package netconfig

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/homerouter/homerouter/state"
	"golang.org/x/sys/unix"
)

// This file is the pure half of netconfig: it decides what to change from
// what the kernel has and what the config wants, without talking to the
// kernel, so that every rule here is tested by tables without root.

// kernelLink is a link as the kernel reported it.
type kernelLink struct {
	Index uint32
	Name  string
	// MAC is the current hardware address; PermMAC the one burnt into
	// the NIC (empty for virtual links such as veth), which still
	// identifies the link after a spoof_hardware_addr changed MAC.
	MAC, PermMAC string
	MTU          uint32
	Up           bool
	// Carrier is IFF_LOWER_UP: a cable is in and the other end is up.
	Carrier bool
}

// kernelAddr is an address as found on a link.
type kernelAddr struct {
	Prefix netip.Prefix
	Flags  uint32 // IFA_F_*
	// Broadcast is the IPv4 broadcast address (IFA_BROADCAST); invalid
	// when the address has none.
	Broadcast netip.Addr
}

// wantAddr is an address netconfig wants on a link. Broadcast is the IPv4
// broadcast address to give it, invalid for none (IPv6, /31, /32). NoDAD
// adds an IPv6 address with IFA_F_NODAD: usable at once, never tentative
// (see lanAddr6). It only matters when the address is added; one already
// on the link is the same address whatever its flags.
//
// Origin, Preferred and Valid say where it came from and how long it
// lives, for st.Links (see state.Address); they play no part in the
// diff.
type wantAddr struct {
	Prefix    netip.Prefix
	Broadcast netip.Addr
	NoDAD     bool

	Origin           state.Origin
	Preferred, Valid time.Time
}

// Inputs are what netconfig applies besides interfaces.json: the
// uplink's leases, dhcp6.json, and lan0's unique local prefix.
type Inputs struct {
	Lease  state.DHCPv4Lease
	Lease6 state.DHCPv6Lease
	DHCPv6 state.DHCPv6
	// ULA is the unique local prefix (a /48, usually) and ULALAN lan0's
	// /64 of it (state.LANULA); both invalid for none.
	ULA, ULALAN netip.Prefix
}

// wantedAddrs returns the addresses ifc's link should have: its addr and
// extra_addrs; on uplink0, the address of in.Lease (when it is valid) and
// the IA_NA address of in.Lease6 as a /128; on lan0, lan0's address in
// the delegated prefix of in.Lease6 (lanAddr6) and the ::1 of its unique
// local /64. An IPv4 address gets the
// broadcast address of its subnet, except the lease's, which gets the one
// the server sent (option 28) if it did. The error says why lan0 gets no
// address from a delegated prefix; the other addresses are returned all
// the same.
func wantedAddrs(ifc state.Interface, in Inputs) ([]wantAddr, error) {
	lease, lease6, dhcp6 := in.Lease, in.Lease6, in.DHCPv6
	var out []wantAddr
	add := func(w wantAddr) {
		if slices.ContainsFunc(out, func(o wantAddr) bool { return o.Prefix == w.Prefix }) {
			return
		}
		if !w.Broadcast.IsValid() {
			w.Broadcast = defaultBroadcast(w.Prefix)
		}
		out = append(out, w)
	}
	for _, p := range ifc.Addrs() {
		add(wantAddr{Prefix: p, Origin: state.OriginStatic})
	}
	var err error
	switch ifc.Name {
	case state.Uplink:
		if lease.Valid() && lease.Addr.Addr().Is4() {
			brd := lease.Broadcast
			if !brd.Is4() {
				brd = netip.Addr{}
			}
			add(wantAddr{Prefix: lease.Addr, Broadcast: brd, Origin: state.OriginDHCPv4, Preferred: lease.Expiry, Valid: lease.Expiry})
		}
		if a := lease6.Addr; a != nil && usable6(a.Addr) {
			add(wantAddr{Prefix: netip.PrefixFrom(a.Addr, 128), Origin: state.OriginDHCPv6,
				Preferred: a.Given.Add(time.Duration(a.Preferred)), Valid: a.Given.Add(time.Duration(a.Valid))})
		}
	case state.LAN:
		var p netip.Prefix
		if p, err = lanAddr6(lease6, dhcp6); p.IsValid() {
			dp := lease6.Prefixes[0]
			add(wantAddr{Prefix: p, NoDAD: true, Origin: state.OriginDelegated,
				Preferred: dp.Given.Add(time.Duration(dp.Preferred)), Valid: dp.Given.Add(time.Duration(dp.Valid))})
		}
		// The ULA's, like the delegated one, without DAD: it is the
		// router's own in a prefix no one else uses.
		if in.ULALAN.IsValid() {
			add(wantAddr{Prefix: netip.PrefixFrom(in.ULALAN.Masked().Addr().Next(), 64), NoDAD: true, Origin: state.OriginULA})
		}
	}
	return out, err
}

// inForce returns the wanted addresses that the link has, in the order of
// want (the config's first, then the leases'), as st.Links publishes
// them. An address whose duplicate address detection failed is on the
// link but unusable, so it is not in force; a tentative one is (DAD
// ends within a second or two, and lan0's own addresses skip it).
func inForce(want []wantAddr, have []kernelAddr) []state.Address {
	var out []state.Address
	for _, w := range want {
		if slices.ContainsFunc(have, func(h kernelAddr) bool { return h.Prefix == w.Prefix && h.Flags&unix.IFA_F_DADFAILED == 0 }) {
			out = append(out, state.NewAddress(w.Prefix, w.Origin, w.Preferred, w.Valid))
		}
	}
	return out
}

// usable6 reports whether a is an IPv6 address a lease may give us: not
// IPv4-mapped, unspecified, loopback, link-local or multicast.
func usable6(a netip.Addr) bool {
	return a.Is6() && !a.Is4In6() && a.IsGlobalUnicast()
}

// lanAddr6 returns lan0's address in the first delegated prefix of lease6:
// the ::1 of its /64 number dhcp6.LANSubnet, as a /64, so that the kernel
// adds the prefix route that makes the /64 reachable on lan0. It is
// invalid when there is no delegated prefix, and then also with an error
// when the prefix has no such /64 (lan_subnet too large for the prefix
// length, or a prefix longer than /64).
//
// The address is added with IFA_F_NODAD. It is the router's own address
// in a prefix that was delegated to the router alone, and the router is
// what answers on it (DNS, RAs name it), so it must be usable at once:
// a tentative address cannot be bound to, for the second that DAD takes
// or, on a LAN link without carrier, until a cable is plugged in. And an
// address whose DAD failed would stay on the link, dead, without
// netconfig noticing (to netconfig it is present). The uplink's IA_NA
// address does go through DAD (RFC 8415, section 18.2.10.1): the ISP's
// link is shared, and nothing there waits for the address.
func lanAddr6(lease6 state.DHCPv6Lease, dhcp6 state.DHCPv6) (netip.Prefix, error) {
	if len(lease6.Prefixes) == 0 {
		return netip.Prefix{}, nil
	}
	dp := lease6.Prefixes[0].Prefix
	lan, ok := state.LANPrefix(dp, dhcp6.LANSubnet)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("the delegated prefix %s has no /64 number %d (lan_subnet in dhcp6.json): lan0 gets no address from it", dp, dhcp6.LANSubnet)
	}
	return netip.PrefixFrom(lan.Addr().Next(), 64), nil
}

// prefixes returns the prefixes of ws.
func prefixes(ws []wantAddr) []netip.Prefix {
	ps := make([]netip.Prefix, len(ws))
	for i, w := range ws {
		ps[i] = w.Prefix
	}
	return ps
}

// wrongBroadcasts returns the wanted IPv4 addresses that the link has,
// but with another broadcast address (or none): they are removed and
// added again.
func wrongBroadcasts(want []wantAddr, have []kernelAddr) []wantAddr {
	var out []wantAddr
	for _, w := range want {
		if !w.Prefix.Addr().Is4() {
			continue
		}
		i := slices.IndexFunc(have, func(h kernelAddr) bool { return h.Prefix == w.Prefix })
		if i >= 0 && have[i].Broadcast != w.Broadcast {
			out = append(out, w)
		}
	}
	return out
}

// owned reports whether netconfig owns a, following the rule in the
// package doc: every IPv4 address, and every IPv6 address that is neither
// link-local nor made by the kernel (SLAAC, DHCPv6, temporary: those lack
// IFA_F_PERMANENT).
func owned(a kernelAddr) bool {
	ip := a.Prefix.Addr()
	if ip.Is4() || ip.Is4In6() {
		return true
	}
	if ip.IsLinkLocalUnicast() {
		return false
	}
	return a.Flags&unix.IFA_F_PERMANENT != 0
}

// diffAddrs returns the addresses to add and the owned ones to remove so
// that the owned addresses of a link become exactly want. An address is
// the same only with the same prefix length: 10.0.0.1/16 is replaced by
// 10.0.0.1/24.
func diffAddrs(want []netip.Prefix, have []kernelAddr) (add []netip.Prefix, del []netip.Prefix) {
	for _, h := range have {
		if owned(h) && !slices.Contains(want, h.Prefix) {
			del = append(del, h.Prefix)
		}
	}
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h kernelAddr) bool { return h.Prefix == w }) && !slices.Contains(add, w) {
			add = append(add, w)
		}
	}
	return add, del
}

// splitAdds splits the addresses to add into those that can be added
// before the removals and those whose address (with another prefix
// length) is yet to be removed.
func splitAdds(add, del []netip.Prefix) (first, later []netip.Prefix) {
	for _, p := range add {
		if slices.ContainsFunc(del, func(d netip.Prefix) bool { return d.Addr() == p.Addr() }) {
			later = append(later, p)
		} else {
			first = append(first, p)
		}
	}
	return first, later
}

// route is a route netconfig installs in the main table: a destination
// over a link, with a gateway or (invalid Gateway) on-link, marked with
// Protocol (extra_routes) or LeaseProtocol (from a DHCP lease). Src is
// the preferred source address, invalid for none. An Unreachable route
// (RTN_UNREACHABLE) has no link (Index 0) and no gateway: packets to it
// are dropped with an ICMP error. Priority is what the kernel made of it
// (IPv6 fills in 1024); it is kept for deleting, not compared.
type route struct {
	Dst         netip.Prefix
	Gateway     netip.Addr
	Index       uint32
	Protocol    uint8
	Src         netip.Addr
	Unreachable bool
	Priority    uint32
}

// same reports whether r and o are the same route, ignoring Priority.
func (r route) same(o route) bool {
	return r.Dst == o.Dst && r.Gateway == o.Gateway && r.Index == o.Index &&
		r.Protocol == o.Protocol && r.Src == o.Src && r.Unreachable == o.Unreachable
}

// describe formats r like `ip route` does, with the link named by name.
// Protocol is left out, being netconfig's own; LeaseProtocol is shown.
func (r route) describe(name string) string {
	var b strings.Builder
	if r.Unreachable {
		b.WriteString("unreachable ")
	}
	b.WriteString(r.Dst.String())
	if r.Gateway.IsValid() {
		fmt.Fprintf(&b, " via %s", r.Gateway)
	}
	if !r.Unreachable {
		fmt.Fprintf(&b, " dev %s", name)
	}
	if r.Protocol == LeaseProtocol {
		b.WriteString(" proto dhcp")
	}
	if r.Src.IsValid() {
		fmt.Fprintf(&b, " src %s", r.Src)
	}
	return b.String()
}

// splitRouteAdds splits the routes to add into those that can be added
// before the stale routes are removed and those that must wait: an IPv4
// route with the destination (and metric) of a route still in place is
// refused (EEXIST), as when a new lease moves the default route to
// another router.
func splitRouteAdds(add, del []route) (first, later []route) {
	for _, r := range add {
		if slices.ContainsFunc(del, func(d route) bool { return d.Dst == r.Dst }) {
			later = append(later, r)
		} else {
			first = append(first, r)
		}
	}
	return first, later
}

// leaseRoutes returns the routes lease asks for over the link index (the
// uplink), all with LeaseProtocol and the lease's address as preferred
// source. The classless static routes (option 121), when there are any,
// are the routes, and the router (option 3) is ignored (RFC 3442);
// otherwise the router is the default gateway. A gateway outside the
// lease's subnet (as with a /32 lease) first gets an on-link host route,
// because the kernel refuses a gateway it cannot reach on the link. (The
// alternative, RTNH_F_ONLINK on the route itself, is invisible in a plain
// `ip route` and works only for that one route; a host route also makes
// the router reachable for ARP and for anyone who pings it.) No valid
// lease: no routes.
func leaseRoutes(lease state.DHCPv4Lease, index uint32) []route {
	if !lease.Valid() || !lease.Addr.Addr().Is4() {
		return nil
	}
	src := lease.Addr.Addr()
	subnet := lease.Addr.Masked()
	var out []route
	add := func(dst netip.Prefix, gw netip.Addr) {
		if gw.IsValid() && (!gw.Is4() || gw.IsUnspecified()) {
			gw = netip.Addr{} // on-link
		}
		if gw.IsValid() && !subnet.Contains(gw) {
			host := route{Dst: netip.PrefixFrom(gw, 32), Index: index, Protocol: LeaseProtocol, Src: src}
			if !slices.ContainsFunc(out, host.same) {
				out = append(out, host)
			}
		}
		r := route{Dst: dst.Masked(), Gateway: gw, Index: index, Protocol: LeaseProtocol, Src: src}
		if !slices.ContainsFunc(out, r.same) {
			out = append(out, r)
		}
	}
	if len(lease.Routes) > 0 {
		for _, r := range lease.Routes {
			if r.Destination.IsValid() && r.Destination.Addr().Is4() {
				add(r.Destination, r.Gateway)
			}
		}
		return out
	}
	if lease.Router.Is4() && !lease.Router.IsUnspecified() {
		add(netip.PrefixFrom(netip.IPv4Unspecified(), 0), lease.Router)
	}
	return out
}

// lease6Routes returns the routes lease6 and the unique local prefix ula
// (invalid: none) ask for: an unreachable route with LeaseProtocol for
// each delegated prefix and the ULA, so that packets to the
// parts of it that no link uses are dropped here rather than sent back
// to the ISP, which routes them to us again until their hop limit runs
// out (RFC 7084, WPD-5). The more specific prefix route of lan0's /64
// wins over it. The IA_NA address needs no route: the uplink's IPv6
// default route comes from the ISP's router advertisements.
func lease6Routes(lease6 state.DHCPv6Lease, ula netip.Prefix) []route {
	var out []route
	ps := lease6.Prefixes
	if ula.IsValid() {
		ps = append(slices.Clip(ps), state.DelegatedPrefix{Prefix: ula})
	}
	for _, p := range ps {
		if !p.Prefix.IsValid() || !p.Prefix.Addr().Is6() || p.Prefix.Addr().Is4In6() {
			continue
		}
		r := route{Dst: p.Prefix.Masked(), Protocol: LeaseProtocol, Unreachable: true}
		if !slices.ContainsFunc(out, r.same) {
			out = append(out, r)
		}
	}
	return out
}

// diffRoutes returns which of want to add and which of have (the routes
// with netconfig's protocol) to remove.
func diffRoutes(want, have []route) (add, del []route) {
	for _, h := range have {
		if !slices.ContainsFunc(want, h.same) {
			del = append(del, h)
		}
	}
	for _, w := range want {
		if !slices.ContainsFunc(have, w.same) && !slices.ContainsFunc(add, w.same) {
			add = append(add, w)
		}
	}
	return add, del
}

// wantedRoutes parses ifc's extra_routes as routes over the link index.
// The config is validated before it is published, so a route that does
// not parse is reported rather than expected.
func wantedRoutes(ifc state.Interface, index uint32) ([]route, error) {
	var rs []route
	var errs []string
	for _, r := range ifc.ExtraRoutes {
		dst, err := netip.ParsePrefix(r.Destination)
		if err != nil {
			errs = append(errs, fmt.Sprintf("destination %q", r.Destination))
			continue
		}
		var gw netip.Addr
		if r.Gateway != "" {
			if gw, err = netip.ParseAddr(r.Gateway); err != nil {
				errs = append(errs, fmt.Sprintf("gateway %q", r.Gateway))
				continue
			}
		}
		rs = append(rs, route{Dst: dst.Masked(), Gateway: gw.Unmap(), Index: index, Protocol: Protocol})
	}
	if len(errs) > 0 {
		return rs, fmt.Errorf("invalid extra_routes: %s", strings.Join(errs, ", "))
	}
	return rs, nil
}

// normMAC returns s as net.HardwareAddr.String formats it (lower case,
// colons), or "" when s is empty or not a MAC, so that MACs compare as
// strings.
func normMAC(s string) string {
	mac, err := net.ParseMAC(s)
	if err != nil {
		return ""
	}
	return mac.String()
}

// matchLink finds the link that ifc configures among links, skipping the
// indexes already claimed by earlier entries. In order of preference:
// the burnt-in MAC is hardware_addr; the current MAC is hardware_addr; the
// link already carries the name and the spoofed MAC (we spoofed it
// earlier, and the NIC has no permanent MAC to tell); or, when no
// hardware_addr is configured, the link has the name.
func matchLink(ifc state.Interface, links []kernelLink, claimed map[uint32]bool) (kernelLink, bool) {
	hw := normMAC(ifc.HardwareAddr)
	spoof := normMAC(ifc.SpoofHardwareAddr)
	tests := []func(l kernelLink) bool{
		func(l kernelLink) bool { return hw != "" && l.PermMAC == hw },
		func(l kernelLink) bool { return hw != "" && l.MAC == hw },
		func(l kernelLink) bool { return spoof != "" && l.Name == ifc.Name && l.MAC == spoof },
		func(l kernelLink) bool { return hw == "" && l.Name == ifc.Name },
	}
	for _, test := range tests {
		for _, l := range links {
			if !claimed[l.Index] && test(l) {
				return l, true
			}
		}
	}
	return kernelLink{}, false
}

// sortPrefixes sorts addresses for publishing: IPv4 first, then by address
// and prefix length, so that the Links topic only changes when the
// addresses do.
func sortPrefixes(ps []netip.Prefix) {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
}
