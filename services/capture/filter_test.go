package capture

import (
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// frame serializes an Ethernet frame of the given layers above Ethernet,
// with lengths and checksums filled in.
func frame(t testing.TB, l ...gopacket.SerializableLayer) []byte {
	t.Helper()
	eth := &layers.Ethernet{
		SrcMAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 1},
		DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	var nl gopacket.NetworkLayer
	switch ip := l[0].(type) {
	case *layers.IPv4:
		eth.EthernetType = layers.EthernetTypeIPv4
		ip.Version, ip.IHL, ip.TTL = 4, 5, 64
		ip.SrcIP, ip.DstIP = net.IPv4(10, 0, 0, 1), net.IPv4(10, 0, 0, 2)
		nl = ip
	case *layers.IPv6:
		eth.EthernetType = layers.EthernetTypeIPv6
		ip.Version, ip.HopLimit = 6, 255
		ip.SrcIP, ip.DstIP = net.ParseIP("fe80::1"), net.ParseIP("ff02::1")
		nl = ip
	case *layers.ARP:
		eth.EthernetType = layers.EthernetTypeARP
	}
	for _, x := range l[1:] {
		switch x := x.(type) {
		case *layers.UDP:
			x.SetNetworkLayerForChecksum(nl)
		case *layers.TCP:
			x.SetNetworkLayerForChecksum(nl)
		case *layers.ICMPv6:
			x.SetNetworkLayerForChecksum(nl)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, append([]gopacket.SerializableLayer{eth}, l...)...); err != nil {
		t.Fatalf("serializing: %v", err)
	}
	return buf.Bytes()
}

func udp4(src, dst layers.UDPPort) []gopacket.SerializableLayer {
	return []gopacket.SerializableLayer{&layers.IPv4{Protocol: layers.IPProtocolUDP}, &layers.UDP{SrcPort: src, DstPort: dst}, gopacket.Payload(make([]byte, 300))}
}

func udp6(src, dst layers.UDPPort) []gopacket.SerializableLayer {
	return []gopacket.SerializableLayer{&layers.IPv6{NextHeader: layers.IPProtocolUDP}, &layers.UDP{SrcPort: src, DstPort: dst}, gopacket.Payload(make([]byte, 60))}
}

func icmp6(typ uint8) []gopacket.SerializableLayer {
	return []gopacket.SerializableLayer{&layers.IPv6{NextHeader: layers.IPProtocolICMPv6}, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}, gopacket.Payload(make([]byte, 20))}
}

func TestFilter(t *testing.T) {
	fragment := udp4(68, 67)
	fragment[0].(*layers.IPv4).FragOffset = 100
	options := udp4(68, 67)
	options[0].(*layers.IPv4).IHL = 6
	options[0].(*layers.IPv4).Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	for _, tc := range []struct {
		name   string
		layers []gopacket.SerializableLayer
		keep   bool
	}{
		{"DHCPv4 DISCOVER", udp4(68, 67), true},
		{"DHCPv4 OFFER", udp4(67, 68), true},
		{"DHCPv4 relay to server", udp4(67, 67), true},
		{"DHCPv4 with IP options", options, true},
		{"DHCPv6 SOLICIT", udp6(546, 547), true},
		{"DHCPv6 REPLY", udp6(547, 546), true},
		{"router solicitation", icmp6(133), true},
		{"router advertisement", icmp6(134), true},
		{"neighbour solicitation", icmp6(135), true},
		{"neighbour advertisement", icmp6(136), true},
		{"DNS over IPv4", udp4(40000, 53), false},
		{"DNS over IPv6", udp6(40000, 53), false},
		{"a later fragment on port 67", fragment, false},
		{"NTP", udp4(123, 123), false},
		{"DHCPv6 ports over IPv4", udp4(546, 547), false},
		{"DHCPv4 ports over IPv6", udp6(68, 67), false},
		{"TCP to port 67", []gopacket.SerializableLayer{&layers.IPv4{Protocol: layers.IPProtocolTCP}, &layers.TCP{SrcPort: 67, DstPort: 68, Window: 1}}, false},
		{"ICMP echo", []gopacket.SerializableLayer{&layers.IPv4{Protocol: layers.IPProtocolICMPv4}, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}}, false},
		{"ICMPv6 echo", icmp6(128), false},
		{"ICMPv6 redirect", icmp6(137), false},
		{"MLD report", icmp6(143), false},
		{"ARP", []gopacket.SerializableLayer{&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			SourceHwAddress: make([]byte, 6), SourceProtAddress: make([]byte, 4), DstHwAddress: make([]byte, 6), DstProtAddress: make([]byte, 4)}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := frame(t, tc.layers...)
			if got := runFilter(t, b); got != tc.keep {
				t.Errorf("kept = %v, want %v", got, tc.keep)
			}
		})
	}
}

// TestFilterShortFrames: a frame cut short before the port the filter
// reads is dropped, not kept (the kernel's BPF drops a packet when a load
// is out of bounds; the VM emulates that).
func TestFilterShortFrames(t *testing.T) {
	b := frame(t, udp6(546, 547)...)
	for n := range offIPv6Data + 2 {
		if runFilter(t, b[:n]) {
			t.Errorf("a %d-byte start of a DHCPv6 frame is kept", n)
		}
	}
}

func runFilter(t *testing.T, b []byte) bool {
	t.Helper()
	raw := Filter()
	prog := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		prog[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("the filter does not load: %v", err)
	}
	n, err := vm.Run(b)
	if err != nil {
		t.Fatalf("running the filter: %v", err)
	}
	if n != 0 && n < len(b) {
		t.Errorf("the filter keeps %d of %d bytes, want all", n, len(b))
	}
	return n != 0
}
