package diagnostics

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/homerouter/homerouter/state"
)

// inputs are the topics the tree is built from, read at one instant.
type inputs struct {
	now     time.Time
	links   []state.Link
	lease4  state.DHCPv4Lease
	status4 state.DHCPv4Status
	lease6  state.DHCPv6Lease
	status6 state.DHCPv6Status
	dns     state.DNS
}

// prober asks the network: the real one sends packets (probe.go), the
// tests' answers as told.
type prober interface {
	// ping sends an ICMP echo request to dst out of link ifname and
	// returns the round trip time of the reply.
	ping(ctx context.Context, ifname string, dst netip.Addr) (time.Duration, error)
	// query asks the DNS server at server for the root's NS records and
	// returns the round trip time of any answer, whatever its rcode.
	query(ctx context.Context, server netip.AddrPort) (time.Duration, error)
}

// probeFailAfter is how many rounds in a row a probe across the network
// must fail before its check does: with rounds every ten seconds, a
// gateway that stops answering shows within about 20 s, and one lost
// ping shows as a notice only.
const probeFailAfter = 2

// tree is the check tree from in:
//
//	link/uplink0         carrier
//	  dhcp4              a lease, current or kept past its end
//	    gateway          the IPv4 default gateway answers a ping
//	    dns              an upstream DNS server answers
//	  dhcp6              a delegated prefix (none: a notice, and no children)
//	    route6           an IPv6 default route
//	      gateway        the IPv6 default gateway answers a ping
//	link/lan0            carrier
//
// An ISP that gives no IPv6 prefix is not a failure: dhcp6 passes with a
// notice and its children are left out. Many ISPs offer IPv4 only, and a
// router that called itself unhealthy there would refuse every update,
// and roll back every one that was forced. Once the ISP has delegated a
// prefix, the lease is kept (past its end too), and the IPv6 route and
// gateway are checked.
func tree(in inputs, p prober) []node {
	v6 := node{name: "dhcp6", failAfter: 1, test: func(context.Context) result { return dhcp6(in) }}
	if len(in.lease6.Prefixes) > 0 {
		v6.children = []node{{name: "route6", failAfter: 1, test: func(context.Context) result { return route6(in) },
			children: []node{{name: "gateway", failAfter: probeFailAfter, probe: true, target: fmt.Sprint(gateway6Addr(in)), test: func(ctx context.Context) result { return gateway6(ctx, in, p) }}},
		}}
	}
	return []node{
		linkNode("uplink0", in.links,
			node{name: "dhcp4", failAfter: 1, test: func(context.Context) result { return dhcp4(in) },
				children: []node{
					{name: "gateway", failAfter: probeFailAfter, probe: true, target: gateway4Addr(in).String(), test: func(ctx context.Context) result { return gateway4(ctx, in, p) }},
					{name: "dns", failAfter: probeFailAfter, probe: true, target: fmt.Sprint(upstreams(in)), test: func(ctx context.Context) result { return upstreamDNS(ctx, in, p) }},
				}},
			v6,
		),
		linkNode("lan0", in.links),
	}
}

// linkNode checks that the link named name is there, up and has a
// carrier.
func linkNode(name string, links []state.Link, children ...node) node {
	return node{name: "link/" + name, failAfter: 1, children: children, test: func(context.Context) result {
		l, ok := state.FindLink(links, name)
		switch {
		case !ok:
			return fail("no link %s (is interfaces.json's hardware_addr right?)", name)
		case !l.Up:
			return fail("%s is down", name)
		case !l.Carrier:
			return fail("no carrier on %s: is the cable in, and the other end on?", name)
		}
		return pass("%s up, carrier", l.HardwareAddr)
	}}
}

func dhcp4(in inputs) result {
	l := in.lease4
	if !l.Valid() {
		doing := in.status4.State
		if doing == "" {
			doing = "not running"
		}
		return fail("no lease (the DHCPv4 client is %s)", doing)
	}
	r := pass("%s from %s, ends %s", l.Addr, l.ServerID, when(in.now, l.Expiry))
	if in.status4.Retained || !in.now.Before(l.Expiry) {
		r.notice = fmt.Sprintf("kept past its end (%s): the ISP's DHCP server does not answer, and the address most likely still works", when(in.now, l.Expiry))
	}
	return r
}

// gateway4 pings the IPv4 default gateway that is in force on uplink0,
// which is the lease's router unless classless routes say otherwise.
func gateway4(ctx context.Context, in inputs, p prober) result {
	gw := gateway4Addr(in)
	switch {
	case !gw.IsValid():
		return fail("uplink0 has no IPv4 default route")
	case gw.IsUnspecified():
		return pass("the default route is on-link: no gateway to ping")
	}
	rtt, err := p.ping(ctx, "uplink0", gw)
	if err != nil {
		return fail("no answer to a ping of %s: %v", gw, err)
	}
	return pass("%s answered in %s", gw, round(rtt))
}

// gateway4Addr is the gateway of uplink0's IPv4 default route; invalid
// when it has none.
func gateway4Addr(in inputs) netip.Addr {
	if l, ok := state.FindLink(in.links, "uplink0"); ok {
		for _, a := range l.DefaultRoutes {
			if a.Is4() {
				return a
			}
		}
	}
	return netip.Addr{}
}

// upstreams are the DNS servers the resolver forwards to.
func upstreams(in inputs) []netip.AddrPort {
	return state.Upstreams(in.dns, in.lease4, in.lease6)
}

// upstreamDNS asks the DNS servers the resolver forwards to (dns.json's
// upstreams, else the lease's) until one answers.
func upstreamDNS(ctx context.Context, in inputs, p prober) result {
	servers := upstreams(in)
	if len(servers) == 0 {
		return fail("no upstream DNS server: the leases name none, and dns.json sets none that parses")
	}
	var errs []string
	for _, s := range servers {
		rtt, err := p.query(ctx, s)
		if err == nil {
			return pass("%s answered in %s", s, round(rtt))
		}
		errs = append(errs, fmt.Sprintf("%s: %v", s, err))
	}
	return fail("no upstream DNS server answers: %v", errs)
}

func dhcp6(in inputs) result {
	l := in.lease6
	if len(l.Prefixes) == 0 {
		doing := in.status6.State
		if doing == "" {
			doing = "not running"
		}
		r := pass("no delegated prefix")
		r.notice = fmt.Sprintf("no IPv6 from the ISP: no delegated prefix (the DHCPv6 client is %s); the home has IPv4 and its own unique local IPv6", doing)
		return r
	}
	p := l.Prefixes[0]
	end := p.Given.Add(time.Duration(p.Valid))
	r := pass("%s, valid: ends %s", p.Prefix, when(in.now, end))
	if in.status6.Retained || !in.now.Before(end) {
		r.notice = fmt.Sprintf("kept past its end (%s): the ISP's DHCPv6 server does not answer, and the prefix most likely still works", when(in.now, end))
	}
	return r
}

func route6(in inputs) result {
	if gw, ok := gateway6Addr(in); ok {
		return pass("via %s", gw)
	}
	return fail("uplink0 has no IPv6 default route: the ISP's router advertisements gave none")
}

func gateway6Addr(in inputs) (netip.Addr, bool) {
	if l, ok := state.FindLink(in.links, "uplink0"); ok {
		for _, a := range l.DefaultRoutes {
			if a.Is6() {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

func gateway6(ctx context.Context, in inputs, p prober) result {
	gw, _ := gateway6Addr(in)
	if gw.IsUnspecified() {
		return pass("the default route is on-link: no gateway to ping")
	}
	rtt, err := p.ping(ctx, "uplink0", gw)
	if err != nil {
		return fail("no answer to a ping of %s: %v", gw, err)
	}
	return pass("%s answered in %s", gw, round(rtt))
}

// when says when t is relative to now, for a person: "in 1m30s", "1m30s
// ago".
func when(now, t time.Time) string {
	d := t.Sub(now).Round(time.Second)
	if d >= 0 {
		return "in " + d.String()
	}
	return (-d).String() + " ago"
}

func round(d time.Duration) time.Duration {
	if d > time.Millisecond {
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
