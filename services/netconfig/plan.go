package netconfig

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

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
}

// kernelAddr is an address as found on a link.
type kernelAddr struct {
	Prefix netip.Prefix
	Flags  uint32 // IFA_F_*
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

// route is a route netconfig installs: a destination over a link, with a
// gateway or (invalid Gateway) on-link. Priority is what the kernel made
// of it (IPv6 fills in 1024); it is kept for deleting, not compared.
type route struct {
	Dst      netip.Prefix
	Gateway  netip.Addr
	Index    uint32
	Priority uint32
}

// same reports whether r and o are the same route, ignoring Priority.
func (r route) same(o route) bool {
	return r.Dst == o.Dst && r.Gateway == o.Gateway && r.Index == o.Index
}

// String formats r like `ip route` does, with the link named by name.
func (r route) describe(name string) string {
	if r.Gateway.IsValid() {
		return fmt.Sprintf("%s via %s dev %s", r.Dst, r.Gateway, name)
	}
	return fmt.Sprintf("%s dev %s", r.Dst, name)
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
		rs = append(rs, route{Dst: dst.Masked(), Gateway: gw.Unmap(), Index: index})
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
