package firewall

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
)

// TableName is the one nftables table the firewall owns, in the inet
// family (both IPv4 and IPv6). It replaces it whole on every change and
// never touches any other table: container engines and people add their
// own.
const TableName = "homerouter"

// flowtableName is the flowtable's name in the table.
const flowtableName = "ft"

// Inputs are what the ruleset is built from: the config and what
// netconfig has in force.
type Inputs struct {
	// LAN and Uplink are the links' names (lan0, uplink0).
	LAN, Uplink string
	// LAN4 are lan0's IPv4 subnets and LAN6 its IPv6 prefixes
	// (delegated, static; not link-local): the only sources forwarded
	// from lan0, and never accepted from the uplink.
	LAN4, LAN6 []netip.Prefix
	// ULA is lan0's unique local /64: the LAN's, but never forwarded to
	// or from the uplink (RFC 4193, section 4.3: it does not leave the
	// site), and never accepted from it.
	ULA []netip.Prefix
	// Uplink4 are the uplink's IPv4 addresses, which LAN hosts may use
	// to reach a forwarded port (hairpin NAT).
	Uplink4 []netip.Addr
	// Forwards are the port forwards (IPv4) and pinholes (IPv6).
	Forwards []Forward
	// Flowtable adds a flowtable for established flows.
	Flowtable bool
}

// Forward is one forwarded port range of one protocol: to Dest's
// DestPorts with destination NAT when Dest is IPv4, or a pinhole to
// Dest's Ports when it is IPv6.
type Forward struct {
	Proto     byte // protoTCP or protoUDP
	Ports     portRange
	Dest      netip.Addr
	DestPorts portRange
}

// chain is a base chain of the table.
type chain struct {
	name         string
	typ          nftables.ChainType
	hook         *nftables.ChainHook
	hookName     string
	priority     *nftables.ChainPriority
	priorityName string
	drop         bool // policy drop, else accept
	rules        []rule
}

// Ruleset is the table the firewall puts in force.
type Ruleset struct {
	counters  []string
	flowtable []string // devices; nil: no flowtable
	chains    []chain
	// Skipped are the forwards left out: their destination is not a
	// LAN host's address (see lanForwards).
	Skipped []Forward
}

// icmpv6Errors are the ICMPv6 errors RFC 4890 says to accept and to
// forward.
var icmpv6Errors = []string{"destination-unreachable", "packet-too-big", "time-exceeded", "parameter-problem"}

// lanForwards returns the forwards whose destination is a host of the
// LAN's: inside lan0's subnets and prefixes, neither the subnet's
// network nor its broadcast address. The rest go in rs.Skipped: a
// forward must never make the router a relay to the internet (or to the
// ISP's modem), whatever portforwardings.json says.
func (rs *Ruleset) lanForwards(in Inputs) []Forward {
	var out []Forward
	for _, f := range in.Forwards {
		if lanHost(f.Dest, in.LAN4, in.LAN6) {
			out = append(out, f)
		} else {
			rs.Skipped = append(rs.Skipped, f)
		}
	}
	return out
}

func lanHost(a netip.Addr, lan4, lan6 []netip.Prefix) bool {
	ps := lan6
	if a.Is4() {
		ps = lan4
	}
	for _, p := range ps {
		if !p.Contains(a) || a == p.Addr() {
			continue
		}
		if a.Is4() && p.Bits() < 31 {
			last := p.Addr().As4()
			for i := p.Bits(); i < 32; i++ {
				last[i/8] |= 0x80 >> (i % 8)
			}
			if a == netip.AddrFrom4(last) {
				continue
			}
		}
		return true
	}
	return false
}

func (f Forward) String() string {
	return fmt.Sprintf("%s %s to %s port %s", protoNames[f.Proto], f.Ports, f.Dest, f.DestPorts)
}

// counterNames are the table's counters, in the order of the table.
var counterNames = []string{
	forwardedOut4, forwardedIn4, forwardedOut6, forwardedIn6,
	droppedForward4, droppedForward6, droppedInput4, droppedInput6,
}

// The counters of the table, published in state.FirewallCounters.
const (
	forwardedOut4   = "forwarded_out_ipv4"
	forwardedIn4    = "forwarded_in_ipv4"
	forwardedOut6   = "forwarded_out_ipv6"
	forwardedIn6    = "forwarded_in_ipv6"
	droppedForward4 = "dropped_forward_ipv4"
	droppedForward6 = "dropped_forward_ipv6"
	droppedInput4   = "dropped_input_ipv4"
	droppedInput6   = "dropped_input_ipv6"
)

// countPriority runs the counting chain after NAT, so that it counts what
// really left.
var countPriority = nftables.ChainPriorityRef(300)

// Build returns the ruleset for in. It is a pure function of in, so the
// same inputs give the same table, and tests compare it with golden
// files.
func Build(in Inputs) *Ruleset {
	rs := &Ruleset{counters: counterNames}
	if in.Flowtable {
		rs.flowtable = []string{in.LAN, in.Uplink}
	}
	r := rule{}

	// Destination NAT: port forwards to the router's own addresses from
	// the uplink, and from the LAN to the uplink's address (hairpin; not
	// to the router's LAN address, whose ports are the router's own).
	forwards := rs.lanForwards(in)
	pre := chain{name: "prerouting", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPrerouting, hookName: "prerouting",
		priority: nftables.ChainPriorityNATDest, priorityName: "dstnat"}
	for _, f := range forwards {
		if !f.Dest.Is4() {
			continue
		}
		pre.rules = append(pre.rules, r.iif(in.Uplink).local().dport(f.Proto, f.Ports).dnat4(f.Dest, f.Ports, f.DestPorts))
		for _, a := range in.Uplink4 {
			pre.rules = append(pre.rules, r.iif(in.LAN).daddr(netip.PrefixFrom(a, 32)).dport(f.Proto, f.Ports).dnat4(f.Dest, f.Ports, f.DestPorts))
		}
	}

	// Source NAT: IPv4 out of the uplink, and hairpinned connections,
	// whose replies must come back through the router.
	post := chain{name: "postrouting", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPostrouting, hookName: "postrouting",
		priority: nftables.ChainPriorityNATSource, priorityName: "srcnat"}
	post.rules = append(post.rules,
		r.family(false).oif(in.Uplink).masquerade(),
		r.iif(in.LAN).oif(in.LAN).dnatted().masquerade())

	lan := append(append([]netip.Prefix{}, in.LAN4...), in.LAN6...)
	local := append(append([]netip.Prefix{}, lan...), in.ULA...) // spoofed when from the uplink
	linkLocal := netip.MustParsePrefix("fe80::/10")

	// The router itself: open to the LAN, closed to the internet but for
	// what keeps the uplink working. The ICMPv6 errors come before the
	// invalid drop: one that belongs to no connection has no conntrack
	// state at all.
	input := chain{name: "input", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookInput, hookName: "input",
		priority: nftables.ChainPriorityFilter, priorityName: "filter", drop: true}
	input.rules = append(input.rules,
		r.established().accept(),
		r.iif("lo").accept())
	for _, t := range icmpv6Errors {
		input.rules = append(input.rules, r.iif(in.Uplink).icmpType(true, t).accept())
	}
	input.rules = append(input.rules,
		r.invalid().drop(),
		r.iif(in.LAN).accept())
	for _, p := range local {
		input.rules = append(input.rules, r.iif(in.Uplink).saddr(p).drop())
	}
	input.rules = append(input.rules,
		r.iif(in.Uplink).family(false).sport(protoUDP, onePort(67)).dport(protoUDP, onePort(68)).accept(),
		r.iif(in.Uplink).saddr(linkLocal).sport(protoUDP, onePort(547)).dport(protoUDP, onePort(546)).accept())
	for _, t := range []string{"nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert"} {
		input.rules = append(input.rules, r.iif(in.Uplink).icmpType(true, t).accept())
	}
	input.rules = append(input.rules,
		r.iif(in.Uplink).saddr(linkLocal).icmpType(true, "mld-listener-query").accept(),
		r.iif(in.Uplink).icmpType(false, "echo-request").limit(10).accept(),
		r.iif(in.Uplink).icmpType(true, "echo-request").limit(10).accept(),
		r.iif(in.Uplink).family(false).count(droppedInput4),
		r.iif(in.Uplink).family(true).count(droppedInput6),
	)

	// Forwarding: out from the LAN's own addresses, in only what
	// belongs to a connection, a port forward or a pinhole.
	fwd := chain{name: "forward", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward, hookName: "forward",
		priority: nftables.ChainPriorityFilter, priorityName: "filter", drop: true}
	fwd.rules = append(fwd.rules, r.oif(in.Uplink).syn().clampMSS())
	if in.Flowtable {
		fwd.rules = append(fwd.rules,
			r.l4proto(protoTCP).offload(flowtableName),
			r.l4proto(protoUDP).offload(flowtableName))
	}
	fwd.rules = append(fwd.rules, r.established().accept())
	for _, t := range icmpv6Errors {
		fwd.rules = append(fwd.rules, r.icmpType(true, t).accept())
	}
	fwd.rules = append(fwd.rules,
		r.invalid().drop(),
		r.rpfMissing().drop())
	for _, p := range lan {
		fwd.rules = append(fwd.rules, r.iif(in.LAN).oif(in.Uplink).saddr(p).accept())
	}
	for _, p := range local {
		fwd.rules = append(fwd.rules, r.iif(in.Uplink).saddr(p).drop())
	}
	fwd.rules = append(fwd.rules, r.dnatted().accept())
	for _, f := range forwards {
		if f.Dest.Is6() {
			fwd.rules = append(fwd.rules, r.iif(in.Uplink).oif(in.LAN).daddr(netip.PrefixFrom(f.Dest, 128)).dport(f.Proto, f.Ports).accept())
		}
	}
	fwd.rules = append(fwd.rules,
		r.family(false).count(droppedForward4),
		r.family(true).count(droppedForward6))

	// What was forwarded, counted once it leaves.
	count := chain{name: "count", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookPostrouting, hookName: "postrouting",
		priority: countPriority, priorityName: "300"}
	count.rules = append(count.rules,
		r.iif(in.LAN).oif(in.Uplink).family(false).count(forwardedOut4),
		r.iif(in.Uplink).oif(in.LAN).family(false).count(forwardedIn4),
		r.iif(in.LAN).oif(in.Uplink).family(true).count(forwardedOut6),
		r.iif(in.Uplink).oif(in.LAN).family(true).count(forwardedIn6))

	rs.chains = []chain{pre, post, input, fwd, count}
	return rs
}

// String renders the ruleset as `nft list ruleset` shows it.
func (rs *Ruleset) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	var blocks []string
	for _, c := range rs.counters {
		blocks = append(blocks, fmt.Sprintf("\tcounter %s {\n\t\tpackets 0 bytes 0\n\t}\n", c))
	}
	if rs.flowtable != nil {
		blocks = append(blocks, fmt.Sprintf("\tflowtable %s {\n\t\thook ingress priority filter\n\t\tdevices = { %s }\n\t}\n",
			flowtableName, strings.Join(rs.flowtable, ", ")))
	}
	for _, c := range rs.chains {
		policy := "accept"
		if c.drop {
			policy = "drop"
		}
		s := fmt.Sprintf("\tchain %s {\n\t\ttype %s hook %s priority %s; policy %s;\n", c.name, c.typ, c.hookName, c.priorityName, policy)
		for _, r := range c.rules {
			s += "\t\t" + r.String() + "\n"
		}
		blocks = append(blocks, s+"\t}\n")
	}
	b.WriteString(strings.Join(blocks, "\n"))
	b.WriteString("}\n")
	return b.String()
}

// add puts the ruleset into c's batch, replacing the table whole: added
// (so that deleting it cannot fail), deleted and added again, in one
// netlink transaction that the kernel applies atomically or not at all.
func (rs *Ruleset) add(c *nftables.Conn) {
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	for _, name := range rs.counters {
		c.AddObj(&nftables.CounterObj{Table: t, Name: name})
	}
	if rs.flowtable != nil {
		c.AddFlowtable(&nftables.Flowtable{Table: t, Name: flowtableName, Hooknum: nftables.FlowtableHookIngress,
			Priority: nftables.FlowtablePriorityFilter, Devices: rs.flowtable})
	}
	for _, ch := range rs.chains {
		policy := nftables.ChainPolicyAccept
		if ch.drop {
			policy = nftables.ChainPolicyDrop
		}
		nc := c.AddChain(&nftables.Chain{Name: ch.name, Table: t, Type: ch.typ, Hooknum: ch.hook, Priority: ch.priority, Policy: &policy})
		for _, r := range ch.rules {
			c.AddRule(&nftables.Rule{Table: t, Chain: nc, Exprs: r.exprs})
		}
	}
}
