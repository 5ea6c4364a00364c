package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// RouterAdvert is one router advertisement as rdisc6 (ndisc6's router
// solicitation tool) printed it.
type RouterAdvert struct {
	HopLimit       int
	RouterLifetime int // seconds
	MTU            int // 0: no MTU option
	SourceLLA      string
	Prefixes       []AdvertPrefix
	RDNSS          []netip.Addr
	RDNSSLifetime  int
	DNSSL          []string
	From           netip.Addr
}

// AdvertPrefix is a prefix information option.
type AdvertPrefix struct {
	Prefix             netip.Prefix
	OnLink, Autonomous bool
	Valid, Preferred   int // seconds
}

// Prefix returns the option for p, if the advertisement has one.
func (ra RouterAdvert) Prefix(p netip.Prefix) (AdvertPrefix, bool) {
	for _, ap := range ra.Prefixes {
		if ap.Prefix == p {
			return ap, true
		}
	}
	return AdvertPrefix{}, false
}

// Delegated returns the advertised prefix, still preferred, that lies in
// the ISP's pool of delegated prefixes (ISPPDPool).
func (ra RouterAdvert) Delegated() (netip.Prefix, bool) {
	pool := netip.MustParsePrefix(ISPPDPool)
	for _, p := range ra.Prefixes {
		if pool.Contains(p.Prefix.Addr()) && p.Preferred > 0 {
			return p.Prefix, true
		}
	}
	return netip.Prefix{}, false
}

// Rdisc6 solicits a router advertisement on iface in n and returns the
// first one that comes (rdisc6 -1: one solicitation after another, a
// second apart, three in all).
func (n *Netns) Rdisc6(ctx context.Context, iface string) (RouterAdvert, error) {
	out, err := n.Run(ctx, "rdisc6", "-1", iface)
	if err != nil {
		return RouterAdvert{}, err
	}
	ras, err := ParseRdisc6(out)
	if err != nil {
		return RouterAdvert{}, err
	}
	if len(ras) == 0 {
		return RouterAdvert{}, fmt.Errorf("lab: rdisc6 on %s in %s: no advertisement in %q", iface, n.name, out)
	}
	return ras[0], nil
}

// ParseRdisc6 parses rdisc6's output: each advertisement's fields, ended
// by its "from" line.
func ParseRdisc6(out string) ([]RouterAdvert, error) {
	var ras []RouterAdvert
	var cur RouterAdvert
	var pfx *AdvertPrefix
	seconds := func(v string) (int, error) {
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0, fmt.Errorf("no number in %q", v)
		}
		if f[0] == "infinite" {
			return 0xffffffff, nil
		}
		return strconv.Atoi(f[0])
	}
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "from "); ok {
			a, err := netip.ParseAddr(strings.TrimSpace(rest))
			if err != nil {
				return nil, fmt.Errorf("lab: rdisc6: %q: %w", line, err)
			}
			cur.From = a
			ras = append(ras, cur)
			cur, pfx = RouterAdvert{}, nil
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		var err error
		switch key {
		case "Hop limit":
			cur.HopLimit, err = seconds(val)
		case "Router lifetime":
			cur.RouterLifetime, err = seconds(val)
		case "MTU":
			cur.MTU, err = seconds(val)
		case "Source link-layer address":
			cur.SourceLLA = strings.ToLower(val)
		case "Prefix":
			var p netip.Prefix
			if p, err = netip.ParsePrefix(val); err == nil {
				cur.Prefixes = append(cur.Prefixes, AdvertPrefix{Prefix: p})
				pfx = &cur.Prefixes[len(cur.Prefixes)-1]
			}
		case "On-link":
			if pfx != nil {
				pfx.OnLink = val == "Yes"
			}
		case "Autonomous address conf.":
			if pfx != nil {
				pfx.Autonomous = val == "Yes"
			}
		case "Valid time":
			if pfx != nil {
				pfx.Valid, err = seconds(val)
			}
		case "Pref. time":
			if pfx != nil {
				pfx.Preferred, err = seconds(val)
			}
		case "Recursive DNS server":
			var a netip.Addr
			if a, err = netip.ParseAddr(val); err == nil {
				cur.RDNSS = append(cur.RDNSS, a)
			}
		case "DNS server lifetime":
			cur.RDNSSLifetime, err = seconds(val)
		case "DNS search list":
			cur.DNSSL = append(cur.DNSSL, strings.Fields(val)...)
		}
		if err != nil {
			return nil, fmt.Errorf("lab: rdisc6: %q: %w", line, err)
		}
	}
	return ras, nil
}

// LinkLocal returns the IPv6 link-local address the kernel gives a link
// with hardware address mac (modified EUI-64, RFC 4291 appendix A), for
// routes to a router the lab cannot ask, such as one under QEMU.
func LinkLocal(mac string) (netip.Addr, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return netip.Addr{}, fmt.Errorf("lab: %q is not an Ethernet MAC", mac)
	}
	return netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 8: hw[0] ^ 2, 9: hw[1], 10: hw[2], 11: 0xff, 12: 0xfe, 13: hw[3], 14: hw[4], 15: hw[5]}), nil
}

// HostAddr6 is an IPv6 address of a host as `ip -6 -o addr` shows it,
// with its flags.
type HostAddr6 struct {
	Prefix netip.Prefix
	Line   string
}

// Deprecated, Tentative and Dynamic report the address's flags: no
// longer preferred; in duplicate address detection (unusable yet); made
// by the kernel from a router advertisement (or with a lifetime).
func (a HostAddr6) Deprecated() bool { return strings.Contains(a.Line, " deprecated") }
func (a HostAddr6) Tentative() bool  { return strings.Contains(a.Line, " tentative") }
func (a HostAddr6) Dynamic() bool    { return strings.Contains(a.Line, " dynamic") }

// Addrs6 returns iface's global IPv6 addresses in n.
func (n *Netns) Addrs6(ctx context.Context, iface string) ([]HostAddr6, error) {
	out, err := n.Run(ctx, "ip", "-6", "-o", "addr", "show", "dev", iface, "scope", "global")
	if err != nil {
		return nil, err
	}
	var as []HostAddr6
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet6" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					as = append(as, HostAddr6{Prefix: p, Line: line})
				}
			}
		}
	}
	return as, nil
}

// WaitSLAAC waits until iface in n has a usable (not tentative) address
// in the /64 p that its kernel made from router advertisements, and
// returns it.
func (n *Netns) WaitSLAAC(ctx context.Context, iface string, p netip.Prefix) (HostAddr6, error) {
	var got HostAddr6
	err := WaitFor(ctx, fmt.Sprintf("a SLAAC address in %s on %s in %s", p, iface, n.name), func() error {
		as, err := n.Addrs6(ctx, iface)
		if err != nil {
			return err
		}
		for _, a := range as {
			if p.Contains(a.Prefix.Addr()) && a.Prefix.Bits() == 64 && !a.Tentative() && a.Dynamic() {
				got = a
				return nil
			}
		}
		return fmt.Errorf("addresses %v", as)
	})
	return got, err
}

// WaitAdvert has rdisc6 solicit on iface in n until an advertisement
// comes for which cond holds (what says what that is), and returns it.
func (n *Netns) WaitAdvert(ctx context.Context, iface, what string, cond func(RouterAdvert) error) (RouterAdvert, error) {
	var ra RouterAdvert
	err := WaitFor(ctx, what, func() error {
		var err error
		if ra, err = n.Rdisc6(ctx, iface); err != nil {
			return err
		}
		return cond(ra)
	})
	return ra, err
}

// RouteVia routes dst via the router's address via on dev in n, as an ISP
// routes a delegated prefix to the router it delegated it to.
func (n *Netns) RouteVia(ctx context.Context, dst netip.Prefix, via netip.Addr, dev string) error {
	_, err := n.Run(ctx, "ip", "-6", "route", "replace", dst.String(), "via", via.WithZone("").String(), "dev", dev)
	return err
}
