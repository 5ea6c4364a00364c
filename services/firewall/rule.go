package firewall

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// rule is one nftables rule twice over: the expressions the kernel runs
// and the line `nft list ruleset` shows for them. Each matcher below
// appends to both, in the encoding nft itself uses, so that the golden
// files in testdata (taken from nft in the lab) check the builder
// without root, and the lab test checks that the kernel reads back the
// same rules.
type rule struct {
	exprs []expr.Any
	text  []string
	// hasFamily and hasProto are what the rule already matched (0: none),
	// so that a second matcher of the same family or protocol does not
	// load and compare it again, as nft does not.
	hasFamily, hasProto byte
}

func (r rule) with(text string, es ...expr.Any) rule {
	r.exprs = append(r.exprs[:len(r.exprs):len(r.exprs)], es...)
	r.text = append(r.text[:len(r.text):len(r.text)], text)
	return r
}

// needFamily returns the expressions that match the family, unless the
// rule already has.
func (r *rule) needFamily(v6 bool) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if v6 {
		p = unix.NFPROTO_IPV6
	}
	if r.hasFamily == p {
		return nil
	}
	r.hasFamily = p
	return nfprotoExprs(v6)
}

// needProto returns the expressions that match the transport protocol,
// unless the rule already has.
func (r *rule) needProto(proto byte) []expr.Any {
	if r.hasProto == proto {
		return nil
	}
	r.hasProto = proto
	return l4protoExprs(proto)
}

// String is the rule as nft prints it.
func (r rule) String() string { return strings.Join(r.text, " ") }

// ifname is an interface name as the kernel compares it: IFNAMSIZ bytes,
// NUL-padded.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func (r rule) iif(name string) rule {
	return r.with(fmt.Sprintf("iifname %q", name),
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(name)})
}

func (r rule) oif(name string) rule {
	return r.with(fmt.Sprintf("oifname %q", name),
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(name)})
}

// nfprotoExprs matches the family, for the matchers that need it; nft
// shows it only when nothing else in the rule implies it (ipv4 alone).
func nfprotoExprs(v6 bool) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if v6 {
		p = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

// family matches IPv4 or IPv6 alone ("meta nfproto ipv4").
func (r rule) family(v6 bool) rule {
	text := "meta nfproto ipv4"
	if v6 {
		text = "meta nfproto ipv6"
	}
	es := r.needFamily(v6)
	return r.with(text, es...)
}

// addr matches the source (or destination) address against p: a prefix,
// or one address when p is a full-length prefix.
func (r rule) addr(src bool, p netip.Prefix) rule {
	v6 := p.Addr().Is6()
	off, size, kw, dir := uint32(16), uint32(4), "ip", "daddr"
	if v6 {
		off, size, kw = 24, 16, "ip6"
	}
	if src {
		off -= size
		dir = "saddr"
	}
	es := r.needFamily(v6)
	es = append(es, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size})
	text := fmt.Sprintf("%s %s %s", kw, dir, p.Addr())
	if p.Bits() < p.Addr().BitLen() {
		p = p.Masked()
		mask := make([]byte, size)
		for i := 0; i < p.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		es = append(es, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: size, Mask: mask, Xor: make([]byte, size)})
		text = fmt.Sprintf("%s %s %s", kw, dir, p)
	}
	es = append(es, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()})
	return r.with(text, es...)
}

func (r rule) saddr(p netip.Prefix) rule { return r.addr(true, p) }
func (r rule) daddr(p netip.Prefix) rule { return r.addr(false, p) }

// IP protocol numbers.
const (
	protoICMP   = unix.IPPROTO_ICMP
	protoTCP    = unix.IPPROTO_TCP
	protoUDP    = unix.IPPROTO_UDP
	protoICMPv6 = unix.IPPROTO_ICMPV6
)

var protoNames = map[byte]string{protoICMP: "icmp", protoTCP: "tcp", protoUDP: "udp", protoICMPv6: "icmpv6"}

func l4protoExprs(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

// l4proto matches the transport protocol alone ("meta l4proto tcp").
func (r rule) l4proto(proto byte) rule {
	es := r.needProto(proto)
	return r.with("meta l4proto "+protoNames[proto], es...)
}

func port16(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }

// port matches the source or destination port of proto (tcp or udp)
// against pr.
func (r rule) port(proto byte, dst bool, pr portRange) rule {
	off, dir := uint32(0), "sport"
	if dst {
		off, dir = 2, "dport"
	}
	es := r.needProto(proto)
	es = append(es, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2})
	if pr.first == pr.last {
		es = append(es, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port16(pr.first)})
	} else {
		es = append(es,
			&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: port16(pr.first)},
			&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: port16(pr.last)})
	}
	return r.with(fmt.Sprintf("%s %s %s", protoNames[proto], dir, pr), es...)
}

func (r rule) dport(proto byte, pr portRange) rule { return r.port(proto, true, pr) }
func (r rule) sport(proto byte, pr portRange) rule { return r.port(proto, false, pr) }

// portRange is an inclusive range of ports.
type portRange struct{ first, last uint16 }

func onePort(p uint16) portRange { return portRange{p, p} }

func (p portRange) String() string {
	if p.first == p.last {
		return fmt.Sprint(p.first)
	}
	return fmt.Sprintf("%d-%d", p.first, p.last)
}

// icmpType matches an ICMP (v6 false) or ICMPv6 type, by nft's name.
func (r rule) icmpType(v6 bool, name string) rule {
	proto, kw, types := byte(protoICMP), "icmp", icmpTypes
	if v6 {
		proto, kw, types = protoICMPv6, "icmpv6", icmpv6Types
	}
	t, ok := types[name]
	if !ok {
		panic("firewall: unknown ICMP type " + name) // a typo in this package
	}
	es := r.needFamily(v6)
	es = append(es, r.needProto(proto)...)
	es = append(es,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{t}})
	return r.with(kw+" type "+name, es...)
}

var icmpTypes = map[string]byte{"echo-request": 8}

// icmpv6Types are the ICMPv6 types RFC 4890 says a router must accept
// (for itself) or forward, by nft's names.
var icmpv6Types = map[string]byte{
	"destination-unreachable": 1,
	"packet-too-big":          2,
	"time-exceeded":           3,
	"parameter-problem":       4,
	"echo-request":            128,
	"mld-listener-query":      130,
	"mld-listener-report":     131,
	"mld-listener-done":       132,
	"nd-router-advert":        134,
	"nd-neighbor-solicit":     135,
	"nd-neighbor-advert":      136,
	"mld2-listener-report":    143,
}

// Conntrack state and status bits.
const (
	ctInvalid     = 1
	ctEstablished = 2
	ctRelated     = 4
	ctStatusDNAT  = 0x20 // IPS_DST_NAT
)

// ct matches any of the bits of the conntrack key (state or status).
func (r rule) ct(key expr.CtKey, bits uint32, text string) rule {
	mask := binary.NativeEndian.AppendUint32(nil, bits)
	return r.with(text,
		&expr.Ct{Key: key, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)})
}

func (r rule) established() rule {
	return r.ct(expr.CtKeySTATE, ctEstablished|ctRelated, "ct state established,related")
}
func (r rule) invalid() rule { return r.ct(expr.CtKeySTATE, ctInvalid, "ct state invalid") }
func (r rule) dnatted() rule { return r.ct(expr.CtKeySTATUS, ctStatusDNAT, "ct status dnat") }

// rpfMissing matches a packet whose source the routing table would not
// send back out of the link it came in on: reverse-path filtering.
func (r rule) rpfMissing() rule {
	return r.with("fib saddr . iif oif missing",
		&expr.Fib{Register: 1, FlagSADDR: true, FlagIIF: true, ResultOIF: true, FlagPRESENT: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 4)})
}

// local matches packets to one of the router's own addresses, whatever
// they are now: an uplink address that changes needs no new rule.
func (r rule) local() rule {
	return r.with("fib daddr type local",
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)})
}

// limit lets through at most perSecond packets a second (burst 5).
func (r rule) limit(perSecond uint64) rule {
	return r.with(fmt.Sprintf("limit rate %d/second", perSecond),
		&expr.Limit{Type: expr.LimitTypePkts, Rate: perSecond, Unit: expr.LimitTimeSecond, Burst: 5})
}

// count adds the packet to the named counter.
func (r rule) count(name string) rule {
	return r.with(fmt.Sprintf("counter name %q", name), &expr.Objref{Type: 1, Name: name}) // NFT_OBJECT_COUNTER
}

// syn matches TCP segments with SYN set.
func (r rule) syn() rule {
	es := r.needProto(protoTCP)
	es = append(es,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x02}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0}})
	return r.with("tcp flags syn", es...)
}

// clampMSS sets the TCP MSS option to what the route's MTU allows.
func (r rule) clampMSS() rule {
	return r.with("tcp option maxseg size set rt mtu",
		&expr.Rt{Register: 1, Key: expr.RtTCPMSS},
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 2, Size: 2},
		&expr.Exthdr{SourceRegister: 1, Type: 2, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt}) // TCPOPT_MAXSEG
}

// offload puts the flow into the flowtable.
func (r rule) offload(flowtable string) rule {
	return r.with("flow add @"+flowtable, &expr.FlowOffload{Name: flowtable})
}

func (r rule) accept() rule {
	return r.with("accept", &expr.Verdict{Kind: expr.VerdictAccept})
}

func (r rule) drop() rule {
	return r.with("drop", &expr.Verdict{Kind: expr.VerdictDrop})
}

func (r rule) masquerade() rule { return r.with("masquerade", &expr.Masq{}) }

// dnat4 rewrites the destination to addr and dports (IPv4) for a
// packet to ports. A range forwarded to the same range keeps each
// packet's port, as the kernel does when NAT names no port; naming the
// range would let it pick another one on a clash.
func (r rule) dnat4(addr netip.Addr, ports, dports portRange) rule {
	es := []expr.Any{&expr.Immediate{Register: 1, Data: addr.AsSlice()}}
	nat := &expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1}
	text := fmt.Sprintf("dnat ip to %s", addr)
	if dports.first == dports.last || dports != ports {
		es = append(es, &expr.Immediate{Register: 2, Data: port16(dports.first)})
		nat.RegProtoMin, nat.RegProtoMax, nat.Specified = 2, 2, true
		if dports.first != dports.last {
			es = append(es, &expr.Immediate{Register: 3, Data: port16(dports.last)})
			nat.RegProtoMax = 3
		}
		text += ":" + dports.String()
	}
	es = append(es, nat)
	return r.with(text, es...)
}
