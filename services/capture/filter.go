package capture

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Filter returns the classic BPF program the capture attaches to its
// packet sockets: it keeps the Ethernet frames of the router's
// configuration traffic and nothing else, so that the kernel, not the
// router, discards the rest (a LAN busy with video costs no copies):
//
//   - DHCPv4: UDP over IPv4 from or to port 67 or 68 (first fragments
//     only: later ones have no UDP header to read);
//   - DHCPv6: UDP over IPv6 from or to port 546 or 547;
//   - ICMPv6 router and neighbour solicitations and advertisements
//     (types 133 to 136).
//
// IPv6 is matched only when UDP or ICMPv6 is the first next header:
// DHCPv6 and neighbour discovery never carry extension headers (a
// hop-by-hop header would be an MLD report, which this does not want).
// A kept frame is kept whole.
func Filter() []bpf.RawInstruction {
	prog, err := bpf.Assemble(assemble(filterProgram))
	if err != nil {
		// The program is a constant: this is a bug, caught by the tests.
		panic(fmt.Sprintf("capture: assembling the filter: %v", err))
	}
	return prog
}

// Offsets in an Ethernet frame without a VLAN tag (uplink0 on a VLAN is
// a link of its own, whose frames come untagged).
const (
	offEtherType = 12
	offIP        = 14
	offIPv4Proto = offIP + 9
	offIPv4Frag  = offIP + 6
	offIPv6Next  = offIP + 6
	offIPv6Data  = offIP + 40
)

// keepWhole is the length a kept frame is cut to: more than any frame.
const keepWhole = 1 << 18

// filterProgram is the filter with named jump targets: step.jump names
// a label, and assemble turns it into the skips classic BPF wants.
var filterProgram = []step{
	{ins: bpf.LoadAbsolute{Off: offEtherType, Size: 2}},
	{jump: jumpEq(0x0800, "ipv4", "")},
	{jump: jumpEq(0x86dd, "ipv6", "drop")},

	{label: "ipv4", ins: bpf.LoadAbsolute{Off: offIPv4Proto, Size: 1}},
	{jump: jumpEq(17, "", "drop")},
	{ins: bpf.LoadAbsolute{Off: offIPv4Frag, Size: 2}},
	{jump: &jump{cond: bpf.JumpBitsSet, val: 0x1fff, yes: "drop"}},
	{ins: bpf.LoadMemShift{Off: offIP}}, // X = the IPv4 header's length
	{ins: bpf.LoadIndirect{Off: offIP, Size: 2}},
	{jump: jumpEq(67, "keep", "")},
	{jump: jumpEq(68, "keep", "")},
	{ins: bpf.LoadIndirect{Off: offIP + 2, Size: 2}},
	{jump: jumpEq(67, "keep", "")},
	{jump: jumpEq(68, "keep", "drop")},

	{label: "ipv6", ins: bpf.LoadAbsolute{Off: offIPv6Next, Size: 1}},
	{jump: jumpEq(58, "icmp6", "")},
	{jump: jumpEq(17, "", "drop")},
	{ins: bpf.LoadAbsolute{Off: offIPv6Data, Size: 2}},
	{jump: jumpEq(546, "keep", "")},
	{jump: jumpEq(547, "keep", "")},
	{ins: bpf.LoadAbsolute{Off: offIPv6Data + 2, Size: 2}},
	{jump: jumpEq(546, "keep", "")},
	{jump: jumpEq(547, "keep", "drop")},

	{label: "icmp6", ins: bpf.LoadAbsolute{Off: offIPv6Data, Size: 1}},
	{jump: &jump{cond: bpf.JumpLessThan, val: 133, yes: "drop"}},
	{jump: &jump{cond: bpf.JumpGreaterThan, val: 136, yes: "drop", no: "keep"}},

	{label: "keep", ins: bpf.RetConstant{Val: keepWhole}},
	{label: "drop", ins: bpf.RetConstant{Val: 0}},
}

// step is one instruction of a program with labels: either ins, or a
// conditional jump to labels.
type step struct {
	label string
	ins   bpf.Instruction
	jump  *jump
}

// jump is a conditional jump; an empty label means the next step.
type jump struct {
	cond    bpf.JumpTest
	val     uint32
	yes, no string
}

func jumpEq(val uint32, yes, no string) *jump {
	return &jump{cond: bpf.JumpEqual, val: val, yes: yes, no: no}
}

// assemble resolves the labels of steps into classic BPF's forward
// skips. A label that is missing or behind the jump panics: the
// programs are constants.
func assemble(steps []step) []bpf.Instruction {
	at := map[string]int{}
	for i, s := range steps {
		if s.label != "" {
			at[s.label] = i
		}
	}
	skip := func(from int, label string) uint8 {
		if label == "" {
			return 0
		}
		to, ok := at[label]
		if !ok || to <= from || to-from-1 > 255 {
			panic(fmt.Sprintf("capture: filter step %d jumps to %q, which is not ahead of it", from, label))
		}
		return uint8(to - from - 1)
	}
	out := make([]bpf.Instruction, len(steps))
	for i, s := range steps {
		if s.jump == nil {
			out[i] = s.ins
			continue
		}
		out[i] = bpf.JumpIf{Cond: s.jump.cond, Val: s.jump.val, SkipTrue: skip(i, s.jump.yes), SkipFalse: skip(i, s.jump.no)}
	}
	return out
}
