package netconfig

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Protocol is the routing protocol number (rtm_protocol) netconfig installs
// its extra_routes with. It marks them as ours, so that after a config
// change or a restart the stale ones can be found and removed without
// touching the kernel's routes or anyone else's. 0x48 (72) is in neither
// the kernel's RTPROT_* list nor iproute2's rt_protos; `ip route show
// proto 72` lists them.
const Protocol = 0x48

// LeaseProtocol is the routing protocol number of the routes netconfig
// installs from the DHCP leases: RTPROT_DHCP (16), which is what `ip
// route` shows as "proto dhcp". netconfig owns every route with it on
// uplink0, and every IPv6 unreachable route with it, in the main table.
const LeaseProtocol = unix.RTPROT_DHCP

// kernel is the rtnetlink connection of one Apply.
type kernel struct {
	rt *rtnetlink.Conn
	// raw dumps links: rtnetlink's LinkAttributes does not decode
	// IFLA_PERM_ADDRESS, which identifies a NIC whose MAC was spoofed.
	raw *netlink.Conn
}

func dialKernel() (*kernel, error) {
	rt, err := rtnetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("dial rtnetlink: %w", err)
	}
	raw, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		rt.Close()
		return nil, fmt.Errorf("dial rtnetlink: %w", err)
	}
	return &kernel{rt: rt, raw: raw}, nil
}

func (k *kernel) close() {
	k.rt.Close()
	k.raw.Close()
}

// links lists every link in the network namespace.
func (k *kernel) links() ([]kernelLink, error) {
	req, err := (&rtnetlink.LinkMessage{}).MarshalBinary()
	if err != nil {
		return nil, err
	}
	msgs, err := k.raw.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request | netlink.Dump},
		Data:   req,
	})
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var links []kernelLink
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWLINK {
			continue
		}
		var lm rtnetlink.LinkMessage
		if err := lm.UnmarshalBinary(m.Data); err != nil {
			return nil, fmt.Errorf("list links: %w", err)
		}
		l := kernelLink{Index: lm.Index, Up: lm.Flags&unix.IFF_UP != 0, Carrier: lm.Flags&unix.IFF_LOWER_UP != 0, PermMAC: permAddr(m.Data)}
		if a := lm.Attributes; a != nil {
			l.Name, l.MTU = a.Name, a.MTU
			l.MAC = a.Address.String()
		}
		links = append(links, l)
	}
	return links, nil
}

// permAddr returns IFLA_PERM_ADDRESS of a RTM_NEWLINK payload as a
// string, or "" when the link has none.
func permAddr(data []byte) string {
	if len(data) < unix.SizeofIfInfomsg {
		return ""
	}
	ad, err := netlink.NewAttributeDecoder(data[unix.SizeofIfInfomsg:])
	if err != nil {
		return ""
	}
	var perm string
	for ad.Next() {
		if ad.Type() == unix.IFLA_PERM_ADDRESS {
			perm = net.HardwareAddr(ad.Bytes()).String()
		}
	}
	return perm
}

// setLink changes the link's flags (those in change) and attributes.
func (k *kernel) setLink(index, flags, change uint32, attrs *rtnetlink.LinkAttributes) error {
	return k.rt.Link.Set(&rtnetlink.LinkMessage{
		Family:     unix.AF_UNSPEC,
		Index:      index,
		Flags:      flags,
		Change:     change,
		Attributes: attrs,
	})
}

// addrs returns the addresses of every link, by link index.
func (k *kernel) addrs() (map[uint32][]kernelAddr, error) {
	msgs, err := k.rt.Address.List()
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	out := make(map[uint32][]kernelAddr)
	for _, m := range msgs {
		if a, ok := parseAddr(m); ok {
			out[m.Index] = append(out[m.Index], a)
		}
	}
	return out, nil
}

// parseAddr converts an address message. IPv4's own address is IFA_LOCAL
// (IFA_ADDRESS is the peer on point-to-point links).
func parseAddr(m rtnetlink.AddressMessage) (kernelAddr, bool) {
	if m.Attributes == nil {
		return kernelAddr{}, false
	}
	ip := m.Attributes.Address
	if m.Family == unix.AF_INET && m.Attributes.Local != nil {
		ip = m.Attributes.Local
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return kernelAddr{}, false
	}
	flags := m.Attributes.Flags
	if flags == 0 {
		flags = uint32(m.Flags)
	}
	brd, _ := netip.AddrFromSlice(m.Attributes.Broadcast)
	return kernelAddr{Prefix: netip.PrefixFrom(addr.Unmap(), int(m.PrefixLength)), Flags: flags, Broadcast: brd.Unmap()}, true
}

// addrMessage is the request that adds or removes p on link index, with
// the IPv4 broadcast address brd (invalid: none) and the flags IFA_F_*.
func addrMessage(index uint32, p netip.Prefix, brd netip.Addr, flags uint32) *rtnetlink.AddressMessage {
	ip := net.IP(p.Addr().AsSlice())
	m := &rtnetlink.AddressMessage{
		Family:       unix.AF_INET6,
		PrefixLength: uint8(p.Bits()),
		Index:        index,
		Attributes:   &rtnetlink.AddressAttributes{Address: ip, Flags: flags},
	}
	if p.Addr().Is4() {
		m.Family = unix.AF_INET
		m.Attributes.Local = ip
		if brd.Is4() {
			m.Attributes.Broadcast = net.IP(brd.AsSlice())
		}
	}
	return m
}

// broadcast returns the highest address of IPv4 network p.
func broadcast(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom4(b)
}

// defaultBroadcast is the broadcast address an IPv4 address p gets when
// nobody says otherwise: the subnet's highest address, or none for IPv6
// and for /31 and /32, which have no broadcast address.
func defaultBroadcast(p netip.Prefix) netip.Addr {
	if !p.Addr().Is4() || p.Bits() >= 31 {
		return netip.Addr{}
	}
	return broadcast(p)
}

func (k *kernel) addAddr(index uint32, w wantAddr) error {
	var flags uint32
	if w.NoDAD && w.Prefix.Addr().Is6() {
		flags = unix.IFA_F_NODAD
	}
	return k.rt.Address.New(addrMessage(index, w.Prefix, w.Broadcast, flags))
}

func (k *kernel) delAddr(index uint32, p netip.Prefix) error {
	return k.rt.Address.Delete(addrMessage(index, p, netip.Addr{}, 0))
}

// ourRoutes lists the routes netconfig owns, all in the main table: those
// with its Protocol on any link, those with LeaseProtocol on the link
// uplink (0: uplink0 is not configured or absent, so none), and the IPv6
// unreachable routes with LeaseProtocol.
func (k *kernel) ourRoutes(uplink uint32) ([]route, error) {
	msgs, err := k.rt.Route.List()
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var rs []route
	for _, m := range msgs {
		ours := m.Protocol == Protocol ||
			m.Protocol == LeaseProtocol && uplink != 0 && m.Attributes.OutIface == uplink ||
			m.Protocol == LeaseProtocol && m.Family == unix.AF_INET6 && m.Type == unix.RTN_UNREACHABLE
		if !ours || !inMainTable(m) {
			continue
		}
		if r, ok := parseRoute(m); ok {
			rs = append(rs, r)
		}
	}
	return rs, nil
}

// defaultRoutes returns, by link index, the gateways of the main table's
// default routes (the unspecified address for an on-link one).
func (k *kernel) defaultRoutes() (map[uint32][]netip.Addr, error) {
	msgs, err := k.rt.Route.List()
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	out := make(map[uint32][]netip.Addr)
	for _, m := range msgs {
		if !isDefaultRoute(m) {
			continue
		}
		r, ok := parseRoute(m)
		if !ok || r.Index == 0 {
			continue
		}
		gw := r.Gateway
		if !gw.IsValid() {
			gw = r.Dst.Addr()
		}
		out[r.Index] = append(out[r.Index], gw)
	}
	for _, gws := range out {
		slices.SortFunc(gws, netip.Addr.Compare) // the dump's order is not news
	}
	return out, nil
}

// inMainTable reports whether m is a route of the main table (the
// table's number is in the header, or in RTA_TABLE when above 255).
func inMainTable(m rtnetlink.RouteMessage) bool {
	table := uint32(m.Table)
	if m.Attributes.Table != 0 {
		table = m.Attributes.Table
	}
	return table == unix.RT_TABLE_MAIN
}

// isDefaultRoute reports whether m is a default route of the main table
// that forwards (not an unreachable or blackhole one).
func isDefaultRoute(m rtnetlink.RouteMessage) bool {
	return m.DstLength == 0 && m.Type == unix.RTN_UNICAST && inMainTable(m)
}

func parseRoute(m rtnetlink.RouteMessage) (route, bool) {
	var dst netip.Addr
	switch {
	case m.Attributes.Dst != nil:
		var ok bool
		if dst, ok = netip.AddrFromSlice(m.Attributes.Dst); !ok {
			return route{}, false
		}
	case m.Family == unix.AF_INET:
		dst = netip.IPv4Unspecified()
	case m.Family == unix.AF_INET6:
		dst = netip.IPv6Unspecified()
	default:
		return route{}, false
	}
	gw, _ := netip.AddrFromSlice(m.Attributes.Gateway)
	src, _ := netip.AddrFromSlice(m.Attributes.Src)
	if m.Type == unix.RTN_UNREACHABLE {
		// The kernel shows IPv6 reject routes on lo; they have no link.
		return route{
			Dst:         netip.PrefixFrom(dst.Unmap(), int(m.DstLength)),
			Protocol:    m.Protocol,
			Src:         src.Unmap(),
			Unreachable: true,
			Priority:    m.Attributes.Priority,
		}, true
	}
	return route{
		Dst:      netip.PrefixFrom(dst.Unmap(), int(m.DstLength)),
		Gateway:  gw.Unmap(),
		Index:    m.Attributes.OutIface,
		Protocol: m.Protocol,
		Src:      src.Unmap(),
		Priority: m.Attributes.Priority,
	}, true
}

// routeMessage is the request for r; add selects the scope and type of a
// new route, otherwise the wildcards `ip route del` uses.
func routeMessage(r route, add bool) *rtnetlink.RouteMessage {
	m := &rtnetlink.RouteMessage{
		Family:    unix.AF_INET6,
		DstLength: uint8(r.Dst.Bits()),
		Table:     unix.RT_TABLE_MAIN,
		Protocol:  r.Protocol,
		Scope:     unix.RT_SCOPE_NOWHERE,
		Attributes: rtnetlink.RouteAttributes{
			Dst:      net.IP(r.Dst.Addr().AsSlice()),
			OutIface: r.Index,
			Priority: r.Priority,
		},
	}
	if r.Dst.Addr().Is4() {
		m.Family = unix.AF_INET
	}
	if r.Gateway.IsValid() {
		m.Attributes.Gateway = net.IP(r.Gateway.AsSlice())
	}
	if r.Src.IsValid() {
		m.Attributes.Src = net.IP(r.Src.AsSlice())
	}
	switch {
	case add && r.Unreachable:
		m.Type = unix.RTN_UNREACHABLE
		m.Scope = unix.RT_SCOPE_UNIVERSE
	case add:
		m.Type = unix.RTN_UNICAST
		m.Scope = unix.RT_SCOPE_UNIVERSE
		if m.Family == unix.AF_INET && !r.Gateway.IsValid() {
			m.Scope = unix.RT_SCOPE_LINK
		}
	}
	return m
}

func (k *kernel) addRoute(r route) error { return k.rt.Route.Add(routeMessage(r, true)) }

func (k *kernel) delRoute(r route) error { return k.rt.Route.Delete(routeMessage(r, false)) }
