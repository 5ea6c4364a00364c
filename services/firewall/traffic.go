package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/homerouter/homerouter/state"
)

// This file counts each LAN device's bytes for st.Traffic.
//
// The counting lives in a table of its own, netdev TrafficTableName,
// rather than in the inet table, for two reasons:
//
//   - A flowtable's fast path takes an offloaded flow's packets at
//     lan0's netdev ingress hook and transmits them itself: they never
//     reach the inet family's forward or postrouting chains, where
//     counters would see only each flow's first packets. A netdev
//     ingress chain at a priority below the flowtable's sees every
//     packet a device sends, and the netdev egress hook (in
//     dev_queue_xmit, which the fast path's transmit goes through too)
//     every packet lan0 delivers to one.
//   - The inet table is deleted and loaded again on every change of the
//     config or the links, and its counters start from zero each time
//     (the firewall carries them over by hand). The per-device counters
//     are the elements of two dynamic sets, as many as there are devices:
//     they must live where nothing replaces them. The table is made
//     when it is missing and left alone otherwise.
//
// A netdev chain is bound to a device. Up to Linux 6.15 the kernel
// deletes the chain when its device goes away; from 6.16 on it keeps
// the chain and binds it again when a device of that name comes back.
// Either way the service puts back a missing chain at its next look
// (every countersEvery, and on every change of st.Links), and the sets,
// which belong to the table and not to the device, keep their counts.

// TrafficTableName is the netdev table that counts each LAN device's
// bytes. The firewall never deletes it, except in the bench mode
// "off" (no ruleset at all).
const TrafficTableName = "homerouter_traffic"

// The counting table's sets and chains.
const (
	upSet        = "up"      // what each device sent, by source MAC
	downSet      = "down"    // what lan0 delivered to each device, by destination MAC
	ingressChain = "ingress" // fills upSet
	egressChain  = "egress"  // fills downSet
)

// trafficSetSize bounds each set: a home LAN has far fewer devices, and a
// host that sends from made-up source MACs cannot make the kernel's
// memory grow. Once a set is full a new MAC is not counted (the packet
// goes through all the same).
const trafficSetSize = 1024

// trafficPriority puts the counting chains before the flowtable's own
// ingress hook (priority filter, 0), which steals the packets of
// offloaded flows: a chain after it would miss them.
const trafficPriority = -500

// ethHeaderLen is the Ethernet header's length. At netdev ingress the
// kernel has already taken it off the packet (the counters count from
// the IP header); at egress it is still on. The service adds it back to
// Up for each packet counted there, so that Up and Down count the same
// thing: frames without their checksum, as `ip -s link` does.
const ethHeaderLen = 14

// trafficTable is the counting table for the LAN link. It is a pure
// description of what add puts into the kernel, and String renders it as
// `nft list table` shows it (without the sets' elements), so that a
// golden file taken from nft in the lab checks the expressions.
type trafficTable struct {
	// lan is the device the chains are bound to (lan0).
	lan string
	// egress adds the egress chain (Down). A kernel before 5.16, or one
	// built without CONFIG_NETFILTER_EGRESS, refuses it.
	egress bool
}

// trafficChain is one of the counting table's base chains: every frame
// through the hook that is not to (egress) or from (ingress) a group
// address (multicast or broadcast) updates its device's element of set.
type trafficChain struct {
	name     string
	hook     *nftables.ChainHook
	hookName string
	set      string
	dst      bool // key on the destination MAC, else the source MAC
}

func (tt trafficTable) sets() []string {
	return []string{upSet, downSet}
}

func (tt trafficTable) chains() []trafficChain {
	cs := []trafficChain{{name: ingressChain, hook: nftables.ChainHookIngress, hookName: "ingress", set: upSet}}
	if tt.egress {
		cs = append(cs, trafficChain{name: egressChain, hook: nftables.ChainHookEgress, hookName: "egress", set: downSet, dst: true})
	}
	return cs
}

// rule is the chain's one rule. A group source address is not valid
// Ethernet, and a group destination is not one device: neither gets an
// element, so that a LAN's multicast cannot fill a set.
func (ch trafficChain) rule() rule {
	return rule{}.ethernet().unicastMAC(ch.dst).updateSet(ch.set, ch.dst)
}

// ethernet matches frames of an Ethernet device, as nft does before any
// "ether" match (meta iiftype ether). lan0 is one, so it matches every
// frame, but without it nft cannot tell that the link-layer header is
// Ethernet and lists the rule as raw offsets (@ll,48,48). It shows no
// text of its own: nft leaves the dependency out. It holds at egress
// too, where the hook has no input device: since Linux 5.16, the
// release with the egress hook, the kernel reads this key from the
// packet's device (NFT_META_IFTYPE).
func (r rule) ethernet() rule {
	r.exprs = append(r.exprs[:len(r.exprs):len(r.exprs)],
		&expr.Meta{Key: expr.MetaKeyIIFTYPE, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint16(nil, unix.ARPHRD_ETHER)})
	return r
}

// macField names a MAC of the Ethernet header as nft does, with its
// offset.
func macField(dst bool) (string, uint32) {
	if dst {
		return "ether daddr", 0
	}
	return "ether saddr", 6
}

// unicastMAC matches frames whose destination (or source) MAC is not a
// group address: the first octet's lowest bit is clear.
func (r rule) unicastMAC(dst bool) rule {
	name, off := macField(dst)
	mask := []byte{0x01, 0, 0, 0, 0, 0}
	return r.with(name+" & 01:00:00:00:00:00 == 00:00:00:00:00:00",
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: off, Len: 6},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 6, Mask: mask, Xor: make([]byte, 6)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 6)})
}

// updateSet adds the frame's destination (or source) MAC to the set, if
// it is not there yet, and counts the frame in that element's counter
// (the set's elements carry one each).
func (r rule) updateSet(set string, dst bool) rule {
	name, off := macField(dst)
	return r.with(fmt.Sprintf("update @%s { %s }", set, name),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: off, Len: 6},
		&expr.Dynset{SrcRegKey: 1, SetName: set, Operation: unix.NFT_DYNSET_OP_UPDATE})
}

// String renders the table as `nft list table netdev homerouter_traffic`
// shows it while its sets are empty.
func (tt trafficTable) String() string {
	var blocks []string
	for _, s := range tt.sets() {
		blocks = append(blocks, fmt.Sprintf("\tset %s {\n\t\ttype ether_addr\n\t\tsize %d\n\t\tflags dynamic\n\t\tcounter\n\t}\n", s, trafficSetSize))
	}
	for _, ch := range tt.chains() {
		blocks = append(blocks, fmt.Sprintf("\tchain %s {\n\t\ttype filter hook %s device %q priority %d; policy accept;\n\t\t%s\n\t}\n",
			ch.name, ch.hookName, tt.lan, trafficPriority, ch.rule()))
	}
	return fmt.Sprintf("table netdev %s {\n%s}\n", TrafficTableName, strings.Join(blocks, "\n"))
}

// setKey and chainKey name the table's parts in the map add takes: "set
// up", "chain ingress" (a set and a chain may share a name).
func setKey(name string) string   { return "set " + name }
func chainKey(name string) string { return "chain " + name }

// add puts what of the table is not in have into c's batch: the table
// (adding one that exists changes nothing), the missing sets, and, with
// chains, the missing chains with their rules. It reports whether it
// added anything, and whether that included a set: new sets count from
// zero.
func (tt trafficTable) add(c *nftables.Conn, have map[string]bool, chains bool) (added, newSets bool, err error) {
	t := &nftables.Table{Name: TrafficTableName, Family: nftables.TableFamilyNetdev}
	c.AddTable(t)
	sets := map[string]*nftables.Set{}
	for _, name := range tt.sets() {
		s := &nftables.Set{Table: t, Name: name, KeyType: nftables.TypeEtherAddr, Dynamic: true, Counter: true, Size: trafficSetSize}
		sets[name] = s
		if have[setKey(name)] {
			continue
		}
		if err := c.AddSet(s, nil); err != nil {
			return false, false, fmt.Errorf("firewall: the set %s: %w", name, err)
		}
		added, newSets = true, true
	}
	if !chains {
		return added, newSets, nil
	}
	policy := nftables.ChainPolicyAccept
	for _, ch := range tt.chains() {
		if have[chainKey(ch.name)] {
			continue
		}
		nc := c.AddChain(&nftables.Chain{Name: ch.name, Table: t, Type: nftables.ChainTypeFilter, Hooknum: ch.hook,
			Priority: nftables.ChainPriorityRef(trafficPriority), Policy: &policy, Device: tt.lan})
		r := ch.rule()
		// A set made in this same batch has no handle yet: the kernel
		// finds it by the ID AddSet gave it.
		r.exprs[len(r.exprs)-1].(*expr.Dynset).SetID = sets[ch.set].ID
		c.AddRule(&nftables.Rule{Table: t, Chain: nc, Exprs: r.exprs})
		added = true
	}
	return added, newSets, nil
}

// trafficCounter keeps the counting table in force and turns its
// counters into st.Traffic. It belongs to the service's Run.
type trafficCounter struct {
	// conn opens a netlink connection (nftables.New; the lab test's opens
	// one into a namespace).
	conn func() (*nftables.Conn, error)
	// egress is whether to have the egress chain: true until the kernel
	// refuses one.
	egress bool
	// egressWhy is the kernel's answer when it refused the egress chain.
	egressWhy string
	// unable, when not empty, is why the kernel cannot count at all (a
	// kernel without netdev chains): nothing is tried again until Run
	// starts over.
	unable  string
	history trafficHistory
}

func newTrafficCounter(conn func() (*nftables.Conn, error)) *trafficCounter {
	return &trafficCounter{conn: conn, egress: true}
}

// notice is what a person should know about the counting: empty while
// it counts both ways.
func (tc *trafficCounter) notice() string {
	switch {
	case tc.unable != "":
		return "no per-device traffic counts: " + tc.unable
	case !tc.egress:
		return fmt.Sprintf("no per-device download counts: the kernel refused a netdev egress chain (%s; it needs Linux 5.16 with CONFIG_NETFILTER_EGRESS)", tc.egressWhy)
	}
	return ""
}

// step makes sure the table is in force (with its chains when the LAN
// link is there), reads the counters, and returns the traffic to
// publish at now. A zero Traffic (with a nil error) means there is
// nothing to publish: the kernel cannot count.
func (tc *trafficCounter) step(lan string, lanUp bool, now time.Time) (state.Traffic, error) {
	if tc.unable != "" {
		return state.Traffic{}, nil
	}
	c, err := tc.conn()
	if err != nil {
		return state.Traffic{}, fmt.Errorf("firewall: netlink: %w", err)
	}
	defer c.CloseLasting()
	newSets, err := tc.ensure(c, lan, lanUp)
	if err != nil {
		return state.Traffic{}, err
	}
	if newSets {
		// The sets were made just now: everything they count is of the
		// time since, the last minute's included.
		tc.history.begin(now)
	}
	up, down, err := tc.read(c)
	if err != nil {
		return state.Traffic{}, err
	}
	return tc.history.add(trafficSample{at: now, up: up, down: down}), nil
}

// ensure adds what the counting table lacks, in one batch. Without the
// LAN link it adds no chain (a netdev chain names its device, which
// must exist). A kernel that refuses the egress chain gets the rest
// without it. It reports whether it made the sets.
func (tc *trafficCounter) ensure(c *nftables.Conn, lan string, lanUp bool) (bool, error) {
	have, err := trafficHave(c)
	if err != nil {
		return false, err
	}
	tt := trafficTable{lan: lan, egress: tc.egress}
	added, newSets, err := tt.add(c, have, lanUp)
	if err != nil || !added {
		return false, err
	}
	err = c.Flush()
	if err != nil && tt.egress && lanUp && !have[chainKey(egressChain)] {
		// The batch failed as a whole: try again without the egress
		// chain. If that goes in, egress was what the kernel refused;
		// if not, the error without it says more.
		tt.egress = false
		_, newSets2, err2 := tt.add(c, have, lanUp)
		if err2 == nil {
			err2 = c.Flush()
		}
		if err2 == nil {
			why, _, _ := strings.Cut(err.Error(), "; ")
			tc.egress, tc.egressWhy = false, why
			return newSets2, nil
		}
		err = err2
	}
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EAFNOSUPPORT) {
			// No netdev family, or no ingress hook: trying again every
			// few seconds would only fail again.
			why, _, _ := strings.Cut(err.Error(), "; ")
			tc.unable = fmt.Sprintf("the kernel refused the table netdev %s (%s)", TrafficTableName, why)
			return false, nil
		}
		return false, fmt.Errorf("firewall: the table netdev %s: %w", TrafficTableName, err)
	}
	return newSets, nil
}

// trafficHave lists what the kernel has of the counting table, keyed
// as add takes it.
func trafficHave(c *nftables.Conn) (map[string]bool, error) {
	have := map[string]bool{}
	t := &nftables.Table{Name: TrafficTableName, Family: nftables.TableFamilyNetdev}
	if _, err := c.ListTableOfFamily(TrafficTableName, nftables.TableFamilyNetdev); errors.Is(err, unix.ENOENT) {
		return have, nil
	} else if err != nil {
		return nil, fmt.Errorf("firewall: list the table netdev %s: %w", TrafficTableName, err)
	}
	sets, err := c.GetSets(t)
	if err != nil {
		return nil, fmt.Errorf("firewall: list the sets of netdev %s: %w", TrafficTableName, err)
	}
	for _, s := range sets {
		have[setKey(s.Name)] = true
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyNetdev)
	if err != nil {
		return nil, fmt.Errorf("firewall: list the netdev chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == TrafficTableName {
			have[chainKey(ch.Name)] = true
		}
	}
	return have, nil
}

// read returns the byte counts of the two sets by MAC.
func (tc *trafficCounter) read(c *nftables.Conn) (up, down map[string]uint64, err error) {
	t := &nftables.Table{Name: TrafficTableName, Family: nftables.TableFamilyNetdev}
	get := func(set string, perPacket uint64) (map[string]uint64, error) {
		elems, err := c.GetSetElements(&nftables.Set{Table: t, Name: set, KeyType: nftables.TypeEtherAddr})
		if err != nil {
			return nil, fmt.Errorf("firewall: read the set %s of netdev %s: %w", set, TrafficTableName, err)
		}
		return macBytes(elems, perPacket)
	}
	if up, err = get(upSet, ethHeaderLen); err != nil {
		return nil, nil, err
	}
	if down, err = get(downSet, 0); err != nil {
		return nil, nil, err
	}
	return up, down, nil
}

// macBytes turns a set's elements into byte counts by MAC (as
// net.HardwareAddr.String writes it), adding perPacket bytes for each
// packet counted. An element without a counter counted nothing.
func macBytes(elems []nftables.SetElement, perPacket uint64) (map[string]uint64, error) {
	m := make(map[string]uint64, len(elems))
	for _, e := range elems {
		if len(e.Key) < 6 {
			return nil, fmt.Errorf("firewall: a set element of %d bytes, not a MAC address", len(e.Key))
		}
		var n uint64
		if e.Counter != nil {
			n = e.Counter.Bytes + perPacket*e.Counter.Packets
		}
		m[net.HardwareAddr(e.Key[:6]).String()] = n
	}
	return m, nil
}
