package state

import (
	"fmt"
	"net"
	"net/netip"
)

// Well-known link names. The router treats uplink0 as the internet side and
// lan0 as the home side; every other name is configured but otherwise left
// alone.
const (
	Uplink = "uplink0"
	LAN    = "lan0"
)

// Interfaces is /perm/interfaces.json: which network links the router
// configures, what it calls them and which addresses they carry. It keeps
// router7's schema and field names, so an existing router7 file works.
//
//	{
//	  "interfaces": [
//	    {"hardware_addr": "02:77:00:00:00:01", "name": "uplink0"},
//	    {"hardware_addr": "02:77:00:00:00:02", "name": "lan0", "addr": "192.168.42.1/24"}
//	  ]
//	}
//
// Read by netconfig (links, addresses, routes) and the HTTP server (which
// listens on lan0). Written by hand, and once by the boot image on first
// boot.
type Interfaces struct {
	Interfaces []Interface `json:"interfaces"`
}

// Interface configures one link.
type Interface struct {
	// HardwareAddr picks the link by its MAC address, e.g.
	// "02:77:00:00:00:01". This survives the kernel naming NICs differently
	// from one boot to the next. When empty, the link is picked by Name.
	HardwareAddr string `json:"hardware_addr,omitempty"`

	// SpoofHardwareAddr, when set, replaces the link's MAC address, e.g.
	// to keep the MAC your ISP has registered for an older router.
	SpoofHardwareAddr string `json:"spoof_hardware_addr,omitempty"`

	// Name is what the link is renamed to (at most 15 bytes). "uplink0" is
	// the internet side, "lan0" the home side.
	Name string `json:"name"`

	// Addr is the link's static address with its prefix length, e.g.
	// "192.168.42.1/24". Leave it empty on uplink0, which gets its address
	// by DHCP.
	Addr string `json:"addr,omitempty"`

	// ExtraAddrs are further static addresses with prefix length, IPv4 or
	// IPv6, e.g. "fd00:42::1/64".
	ExtraAddrs []string `json:"extra_addrs,omitempty"`

	// ExtraRoutes are static routes over this link.
	ExtraRoutes []Route `json:"extra_routes,omitempty"`

	// MTU of the link in bytes; 0 or absent keeps the driver's default.
	MTU int `json:"mtu,omitempty"`
}

// Route is a static route.
type Route struct {
	// Destination is a network, e.g. "10.10.0.0/16" or "fd00:10::/48".
	Destination string `json:"destination"`
	// Gateway is the next hop's address, of the same family as
	// Destination. Empty means the destination is directly on the link.
	Gateway string `json:"gateway,omitempty"`
}

// Addrs returns Addr and ExtraAddrs, parsed. Call it only on a validated
// Interface.
func (i Interface) Addrs() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range append([]string{i.Addr}, i.ExtraAddrs...) {
		if p, err := netip.ParsePrefix(s); err == nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// ByName returns the interface configured as name.
func (c Interfaces) ByName(name string) (Interface, bool) {
	for _, i := range c.Interfaces {
		if i.Name == name {
			return i, true
		}
	}
	return Interface{}, false
}

func (c *Interfaces) validate(d *decoded) ConfigErrors {
	var errs ConfigErrors
	names := make(map[string]string) // name -> path of first use
	macs := make(map[string]string)
	addrs := make(map[netip.Addr]string)
	for i, ifc := range c.Interfaces {
		p := fmt.Sprintf("interfaces[%d]", i)
		switch {
		case ifc.Name == "":
			errs = append(errs, d.errorf(p, `"name" is missing`))
		case len(ifc.Name) > 15:
			errs = append(errs, d.errorf(p+".name", "%q is longer than 15 bytes", ifc.Name))
		case !validLinkName(ifc.Name):
			errs = append(errs, d.errorf(p+".name", "%q is not a valid link name", ifc.Name))
		case names[ifc.Name] != "":
			errs = append(errs, d.errorf(p+".name", "%q is already used by %s", ifc.Name, names[ifc.Name]))
		default:
			names[ifc.Name] = p
		}
		for _, f := range []struct{ field, val string }{
			{"hardware_addr", ifc.HardwareAddr},
			{"spoof_hardware_addr", ifc.SpoofHardwareAddr},
		} {
			if f.val == "" {
				continue
			}
			mac, err := net.ParseMAC(f.val)
			if err != nil || len(mac) != 6 {
				errs = append(errs, d.errorf(p+"."+f.field, "%q is not a MAC address like 02:00:00:00:00:01", f.val))
				continue
			}
			if f.field == "hardware_addr" {
				if prev := macs[mac.String()]; prev != "" {
					errs = append(errs, d.errorf(p+"."+f.field, "%q is already used by %s", f.val, prev))
				}
				macs[mac.String()] = p
			}
		}
		checkAddr := func(path, s string) {
			pfx, err := netip.ParsePrefix(s)
			if err != nil {
				errs = append(errs, d.errorf(path, "%q is not an address/prefix", s))
				return
			}
			if pfx.Addr().Is4In6() || pfx.Addr().Zone() != "" {
				errs = append(errs, d.errorf(path, "%q is not an address/prefix: write IPv4 as a.b.c.d/n, IPv6 without a zone", s))
				return
			}
			if prev := addrs[pfx.Addr()]; prev != "" {
				errs = append(errs, d.errorf(path, "%s is already used by %s", pfx.Addr(), prev))
			}
			addrs[pfx.Addr()] = path
		}
		if ifc.Addr != "" {
			checkAddr(p+".addr", ifc.Addr)
		}
		for j, a := range ifc.ExtraAddrs {
			checkAddr(fmt.Sprintf("%s.extra_addrs[%d]", p, j), a)
		}
		for j, r := range ifc.ExtraRoutes {
			rp := fmt.Sprintf("%s.extra_routes[%d]", p, j)
			dst, err := netip.ParsePrefix(r.Destination)
			if err != nil {
				errs = append(errs, d.errorf(rp+".destination", "%q is not a network like 10.10.0.0/16", r.Destination))
				continue
			}
			if dst.Masked() != dst {
				errs = append(errs, d.errorf(rp+".destination", "%q has host bits set; the network is %s", r.Destination, dst.Masked()))
			}
			if r.Gateway == "" {
				continue
			}
			gw, err := netip.ParseAddr(r.Gateway)
			if err != nil {
				errs = append(errs, d.errorf(rp+".gateway", "%q is not an address", r.Gateway))
				continue
			}
			if gw.Is4() != dst.Addr().Is4() {
				errs = append(errs, d.errorf(rp+".gateway", "%s is not of the same address family as %s", gw, dst))
			}
		}
		if ifc.MTU != 0 && (ifc.MTU < 68 || ifc.MTU > 65535) {
			errs = append(errs, d.errorf(p+".mtu", "%d is not between 68 and 65535", ifc.MTU))
		}
	}
	return errs
}

// validLinkName reports whether the kernel accepts name for a link: not
// "." or "..", and no '/', ':', whitespace or control characters.
func validLinkName(name string) bool {
	if name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c == 0x7f || c == '/' || c == ':' {
			return false
		}
	}
	return true
}
