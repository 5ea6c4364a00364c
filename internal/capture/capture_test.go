package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// t0 is when the test captures start.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// The ports the tests ask for: DHCPv4 and DHCPv6.
var ports = []uint16{67, 68, 546, 547}

var cmpOpts = []cmp.Option{cmpopts.EquateComparable(netip.AddrPort{}), cmpopts.EquateEmpty()}

// ipPacket is an IPv4 or IPv6 packet (as src is) of protocol proto from
// src to dst, holding ls with lengths and checksums filled in.
func ipPacket(t testing.TB, src, dst netip.Addr, proto layers.IPProtocol, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	var ip interface {
		gopacket.NetworkLayer
		gopacket.SerializableLayer
	}
	if src.Is4() {
		ip = &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	} else {
		ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	}
	for _, l := range ls {
		if c, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok {
			if err := c.SetNetworkLayerForChecksum(ip); err != nil {
				t.Fatal(err)
			}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, append([]gopacket.SerializableLayer{ip}, ls...)...); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// datagram is the Datagram from src to dst ("addr:port") at ts.
func datagram(src, dst string, ts time.Time, payload string) Datagram {
	return Datagram{
		Src:     netip.MustParseAddrPort(src),
		Dst:     netip.MustParseAddrPort(dst),
		Time:    ts,
		Payload: []byte(payload),
	}
}

// ipUDP is d as an IPv4 or IPv6 packet.
func ipUDP(t testing.TB, d Datagram) []byte {
	udp := &layers.UDP{SrcPort: layers.UDPPort(d.Src.Port()), DstPort: layers.UDPPort(d.Dst.Port())}
	return ipPacket(t, d.Src.Addr(), d.Dst.Addr(), layers.IPProtocolUDP, udp, gopacket.Payload(d.Payload))
}

// etherType is the EtherType of an IP packet.
func etherType(ip []byte) layers.EthernetType {
	if len(ip) > 0 && ip[0]>>4 == 6 {
		return layers.EthernetTypeIPv6
	}
	return layers.EthernetTypeIPv4
}

// The framers put a payload of EtherType typ into a frame of their link
// type.
var (
	mac = net.HardwareAddr{0x02, 0x77, 0, 0, 0, 1}

	ethernet = func(typ layers.EthernetType, payload []byte) []byte {
		h := make([]byte, 14, 14+len(payload))
		copy(h[0:], layers.EthernetBroadcast)
		copy(h[6:], mac)
		binary.BigEndian.PutUint16(h[12:], uint16(typ))
		return append(h, payload...)
	}
	linuxSLL = func(typ layers.EthernetType, payload []byte) []byte {
		// Packet type (to us), ARPHRD_ETHER, address length, 8 bytes of
		// address, protocol.
		h := make([]byte, 16, 16+len(payload))
		binary.BigEndian.PutUint16(h[2:], 1)
		binary.BigEndian.PutUint16(h[4:], uint16(len(mac)))
		copy(h[6:], mac)
		binary.BigEndian.PutUint16(h[14:], uint16(typ))
		return append(h, payload...)
	}
	linuxSLL2 = func(typ layers.EthernetType, payload []byte) []byte {
		// Protocol, reserved, ifindex, ARPHRD_ETHER, packet type (to us),
		// address length, 8 bytes of address.
		h := make([]byte, 20, 20+len(payload))
		binary.BigEndian.PutUint16(h[0:], uint16(typ))
		binary.BigEndian.PutUint32(h[4:], 2)
		binary.BigEndian.PutUint16(h[8:], 1)
		h[11] = byte(len(mac))
		copy(h[12:], mac)
		return append(h, payload...)
	}
	rawIP = func(_ layers.EthernetType, ip []byte) []byte { return bytes.Clone(ip) }
)

// linkTypes are the link types UDP reads, with what they carry.
var linkTypes = []struct {
	name   string
	lt     layers.LinkType
	frame  func(layers.EthernetType, []byte) []byte
	v4, v6 bool
}{
	{"Ethernet", layers.LinkTypeEthernet, ethernet, true, true},
	{"Linux SLL", layers.LinkTypeLinuxSLL, linuxSLL, true, true},
	{"Linux SLL2", layers.LinkTypeLinuxSLL2, linuxSLL2, true, true},
	{"raw", layers.LinkTypeRaw, rawIP, true, true},
	{"IPv4", layers.LinkTypeIPv4, rawIP, true, false},
	{"IPv6", layers.LinkTypeIPv6, rawIP, false, true},
}

// record is one packet of a capture file.
type record struct {
	ts    time.Time
	data  []byte
	orig  int // its length on the wire if more than len(data): cut by the snap length
	iface int // its pcapng interface
}

func (r record) captureInfo() gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: r.ts, CaptureLength: len(r.data), Length: max(r.orig, len(r.data)), InterfaceIndex: r.iface}
}

// format writes records as a capture file whose interfaces have the link
// types ifaces (pcap has one).
type format struct {
	name  string
	res   time.Duration // the resolution of its timestamps
	write func(t testing.TB, ifaces []layers.LinkType, rs []record) []byte
}

var (
	pcapMicros = format{"pcap", time.Microsecond, func(t testing.TB, ifaces []layers.LinkType, rs []record) []byte {
		var buf bytes.Buffer
		writePcap(t, pcapgo.NewWriter(&buf), ifaces, rs)
		return buf.Bytes()
	}}
	pcapNanos = format{"pcap ns", time.Nanosecond, func(t testing.TB, ifaces []layers.LinkType, rs []record) []byte {
		var buf bytes.Buffer
		writePcap(t, pcapgo.NewWriterNanos(&buf), ifaces, rs)
		return buf.Bytes()
	}}
	pcapBigEndian = format{"pcap big-endian", time.Microsecond, writePcapBigEndian}
	pcapng        = format{"pcapng", time.Nanosecond, writePcapng}
	pcapngBig     = format{"pcapng big-endian", time.Microsecond, writePcapngBigEndian}

	formats = []format{pcapMicros, pcapNanos, pcapBigEndian, pcapng, pcapngBig}
)

func writePcap(t testing.TB, w *pcapgo.Writer, ifaces []layers.LinkType, rs []record) {
	t.Helper()
	if len(ifaces) != 1 {
		t.Fatalf("pcap with %d link types", len(ifaces))
	}
	if err := w.WriteFileHeader(65535, ifaces[0]); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if err := w.WritePacket(r.captureInfo(), r.data); err != nil {
			t.Fatal(err)
		}
	}
}

func writePcapng(t testing.TB, ifaces []layers.LinkType, rs []record) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapgo.NewNgWriter(&buf, ifaces[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, lt := range ifaces[1:] {
		if _, err := w.AddInterface(pcapgo.NgInterface{LinkType: lt, TimestampResolution: 9}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rs {
		if err := w.WritePacket(r.captureInfo(), r.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writePcapBigEndian writes a pcap file as a big-endian machine does
// (pcapgo writes little-endian only).
func writePcapBigEndian(t testing.TB, ifaces []layers.LinkType, rs []record) []byte {
	t.Helper()
	if len(ifaces) != 1 {
		t.Fatalf("pcap with %d link types", len(ifaces))
	}
	be := binary.BigEndian
	// Magic, version 2.4, time zone, accuracy, snap length, link type.
	b := be.AppendUint32(nil, 0xa1b2c3d4)
	b = be.AppendUint16(b, 2)
	b = be.AppendUint16(b, 4)
	b = be.AppendUint64(b, 0)
	b = be.AppendUint32(b, 65535)
	b = be.AppendUint32(b, uint32(ifaces[0]))
	for _, r := range rs {
		ci := r.captureInfo()
		b = be.AppendUint32(b, uint32(r.ts.Unix()))
		b = be.AppendUint32(b, uint32(r.ts.Nanosecond()/1000))
		b = be.AppendUint32(b, uint32(ci.CaptureLength))
		b = be.AppendUint32(b, uint32(ci.Length))
		b = append(b, r.data...)
	}
	return b
}

// writePcapngBigEndian writes a pcapng file as a big-endian machine does:
// a section header, an interface description block per link type (with
// the default resolution, microseconds) and an enhanced packet block per
// record, none with options.
func writePcapngBigEndian(t testing.TB, ifaces []layers.LinkType, rs []record) []byte {
	t.Helper()
	be := binary.BigEndian
	var b []byte
	block := func(typ uint32, body []byte) {
		for len(body)%4 != 0 {
			body = append(body, 0)
		}
		n := uint32(12 + len(body))
		b = be.AppendUint32(b, typ)
		b = be.AppendUint32(b, n)
		b = append(b, body...)
		b = be.AppendUint32(b, n)
	}
	// Byte-order magic, version 1.0, section length unknown.
	shb := be.AppendUint32(nil, 0x1a2b3c4d)
	shb = be.AppendUint16(shb, 1)
	shb = be.AppendUint16(shb, 0)
	shb = be.AppendUint64(shb, ^uint64(0))
	block(pcapngMagic, shb)
	for _, lt := range ifaces {
		// Link type, reserved, snap length.
		idb := be.AppendUint16(nil, uint16(lt))
		idb = be.AppendUint16(idb, 0)
		idb = be.AppendUint32(idb, 0)
		block(1, idb)
	}
	for _, r := range rs {
		ci := r.captureInfo()
		us := uint64(r.ts.UnixMicro())
		// Interface, timestamp (high, low), captured and original length.
		epb := be.AppendUint32(nil, uint32(r.iface))
		epb = be.AppendUint32(epb, uint32(us>>32))
		epb = be.AppendUint32(epb, uint32(us))
		epb = be.AppendUint32(epb, uint32(ci.CaptureLength))
		epb = be.AppendUint32(epb, uint32(ci.Length))
		block(6, append(epb, r.data...))
	}
	return b
}

// TestUDPLinkTypes reads an IPv4 and an IPv6 datagram in every link type
// and file format UDP reads.
func TestUDPLinkTypes(t *testing.T) {
	v4 := datagram("0.0.0.0:68", "255.255.255.255:67", t0, "DHCPDISCOVER")
	v6 := datagram("[fe80::77:ff:fe00:1]:546", "[ff02::1:2]:547", t0.Add(12*time.Millisecond+345*time.Microsecond), "SOLICIT")
	for _, lt := range linkTypes {
		for _, f := range formats {
			t.Run(lt.name+"/"+f.name, func(t *testing.T) {
				var want []Datagram
				var rs []record
				for _, d := range []struct {
					Datagram
					ok bool
				}{{v4, lt.v4}, {v6, lt.v6}} {
					if d.ok {
						ip := ipUDP(t, d.Datagram)
						rs = append(rs, record{ts: d.Time, data: lt.frame(etherType(ip), ip)})
						want = append(want, d.Datagram)
					}
				}
				got, err := UDP(bytes.NewReader(f.write(t, []layers.LinkType{lt.lt}, rs)), ports...)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
					t.Errorf("datagrams differ (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestUDPMixedLinkTypes reads a pcapng file whose interfaces have
// different link types, as "tshark -i eth0 -i any" writes.
func TestUDPMixedLinkTypes(t *testing.T) {
	var (
		ifaces []layers.LinkType
		rs     []record
		want   []Datagram
	)
	for i, lt := range linkTypes {
		ifaces = append(ifaces, lt.lt)
		d := datagram("192.168.42.1:67", "192.168.42.100:68", t0.Add(time.Duration(i)*time.Second), lt.name)
		if !lt.v4 {
			d = datagram("[fe80::1]:547", "[fe80::77:ff:fe00:1]:546", d.Time, lt.name)
		}
		ip := ipUDP(t, d)
		rs = append(rs, record{ts: d.Time, data: lt.frame(etherType(ip), ip), iface: i})
		want = append(want, d)
	}
	for _, f := range []format{pcapng, pcapngBig} {
		t.Run(f.name, func(t *testing.T) {
			got, err := UDP(bytes.NewReader(f.write(t, ifaces, rs)), ports...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
				t.Errorf("datagrams differ (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUDPTimestamps checks that a datagram's time is its record's, in
// UTC, to the resolution of the format.
func TestUDPTimestamps(t *testing.T) {
	ts := time.Date(2026, 3, 29, 1, 30, 15, 123456789, time.FixedZone("CEST", 2*60*60))
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			ip := ipUDP(t, datagram("0.0.0.0:68", "255.255.255.255:67", ts, "x"))
			data := f.write(t, []layers.LinkType{layers.LinkTypeRaw}, []record{{ts: ts, data: ip}})
			got, err := UDP(bytes.NewReader(data), ports...)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("%d datagrams, want 1", len(got))
			}
			if want := ts.Truncate(f.res); !got[0].Time.Equal(want) || got[0].Time.Location() != time.UTC {
				t.Errorf("time %v, want %v in UTC", got[0].Time, want.UTC())
			}
		})
	}
}

// TestUDPFrames checks which frames hold a datagram for ports and which
// UDP skips, one frame at a time and all in one capture.
func TestUDPFrames(t *testing.T) {
	v4 := func(src, dst, payload string) Datagram { return datagram(src, dst, t0, payload) }
	udp := func(d Datagram) []byte { return ethernet(etherType(ipUDP(t, d)), ipUDP(t, d)) }
	ip := func(src, dst string, proto layers.IPProtocol, ls ...gopacket.SerializableLayer) []byte {
		p := ipPacket(t, netip.MustParseAddr(src), netip.MustParseAddr(dst), proto, ls...)
		return ethernet(etherType(p), p)
	}
	tcp := &layers.TCP{SrcPort: 68, DstPort: 67, SYN: true, Window: 1024}

	discover := v4("0.0.0.0:68", "255.255.255.255:67", "DHCPDISCOVER")
	offer := v4("192.168.42.1:67", "255.255.255.255:68", "DHCPOFFER")
	relayed := v4("192.168.42.1:67", "203.0.113.1:67", "relayed")
	solicit := v4("[fe80::77:ff:fe00:1]:546", "[ff02::1:2]:547", "SOLICIT")
	relayForward := v4("[2001:db8::1]:547", "[2001:db8::2]:547", "RELAY-FORW")
	empty := v4("0.0.0.0:68", "255.255.255.255:67", "")
	short := v4("0.0.0.0:68", "255.255.255.255:67", "hi")

	// padded is short in a frame padded to Ethernet's minimum of 60
	// bytes.
	padded := udp(short)
	padded = append(padded, make([]byte, 60-len(padded))...)

	// tagged is discover on VLAN 7.
	tagged := func() []byte {
		p := ipUDP(t, discover)
		tag := binary.BigEndian.AppendUint16(nil, 7)
		tag = binary.BigEndian.AppendUint16(tag, uint16(layers.EthernetTypeIPv4))
		return ethernet(layers.EthernetTypeDot1Q, append(tag, p...))
	}()

	// fragment is the second fragment of a long datagram from 68 to 67.
	fragment := func() []byte {
		p := ipUDP(t, v4("0.0.0.0:68", "255.255.255.255:67", strings.Repeat("x", 1600)))
		// Move on 1480 bytes (185 units of 8) past the IP header, and
		// put the header's fragment offset there. The checksum is
		// not checked.
		f := append(bytes.Clone(p[:20]), p[20+1480:]...)
		binary.BigEndian.PutUint16(f[2:], uint16(len(f)))
		binary.BigEndian.PutUint16(f[6:], 185)
		return ethernet(layers.EthernetTypeIPv4, f)
	}()

	arp := func() []byte {
		buf := gopacket.NewSerializeBuffer()
		a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
			SourceHwAddress: mac, SourceProtAddress: []byte{192, 168, 42, 100},
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{192, 168, 42, 1}}
		if err := a.SerializeTo(buf, gopacket.SerializeOptions{}); err != nil {
			t.Fatal(err)
		}
		return ethernet(layers.EthernetTypeARP, buf.Bytes())
	}()

	rows := []struct {
		name  string
		frame []byte
		want  *Datagram // nil: skipped
	}{
		{"DHCPv4 client to server", udp(discover), &discover},
		{"DHCPv4 server to client", udp(offer), &offer},
		{"DHCPv4 relay to server", udp(relayed), &relayed},
		{"DHCPv6 client to server", udp(solicit), &solicit},
		{"DHCPv6 relay to server", udp(relayForward), &relayForward},
		{"no payload", udp(empty), &empty},
		{"Ethernet padding", padded, &short},
		{"VLAN tag", tagged, &discover},
		{"source port not asked for", udp(v4("192.168.42.100:5353", "192.168.42.1:67", "x")), nil},
		{"destination port not asked for", udp(v4("192.168.42.100:68", "192.168.42.1:53", "x")), nil},
		{"neither port asked for", udp(v4("[2001:db8::1]:53", "[2001:db8::2]:53", "x")), nil},
		{"ARP", arp, nil},
		{"TCP over IPv4", ip("192.168.42.100", "192.168.42.1", layers.IPProtocolTCP, tcp), nil},
		{"TCP over IPv6", ip("2001:db8::1", "2001:db8::2", layers.IPProtocolTCP, tcp), nil},
		{"ICMPv4", ip("192.168.42.100", "192.168.42.1", layers.IPProtocolICMPv4,
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0)}), nil},
		{"ICMPv6 router solicitation", ip("fe80::77:ff:fe00:1", "ff02::2", layers.IPProtocolICMPv6,
			&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeRouterSolicitation, 0)},
			&layers.ICMPv6RouterSolicitation{}), nil},
		{"later IPv4 fragment", fragment, nil},
	}
	// check reads the frames as an Ethernet capture, a second apart from
	// t0, and compares its datagrams with want (whose times are set).
	check := func(t *testing.T, frames [][]byte, want []Datagram) {
		t.Helper()
		var rs []record
		for i, f := range frames {
			rs = append(rs, record{ts: t0.Add(time.Duration(i) * time.Second), data: f})
		}
		got, err := UDP(bytes.NewReader(pcapMicros.write(t, []layers.LinkType{layers.LinkTypeEthernet}, rs)), ports...)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("datagrams differ (-want +got):\n%s", diff)
		}
	}
	var (
		all     [][]byte
		allWant []Datagram
	)
	for i, tt := range rows {
		t.Run(tt.name, func(t *testing.T) {
			var want []Datagram
			if tt.want != nil {
				want = []Datagram{*tt.want}
			}
			check(t, [][]byte{tt.frame}, want)
		})
		all = append(all, tt.frame)
		if tt.want != nil {
			d := *tt.want
			d.Time = t0.Add(time.Duration(i) * time.Second)
			allWant = append(allWant, d)
		}
	}
	t.Run("all in one capture", func(t *testing.T) { check(t, all, allWant) })
}

// TestUDPErrors checks that a damaged capture, or a packet UDP cannot
// read all of, is an error rather than fewer datagrams.
func TestUDPErrors(t *testing.T) {
	eth := []layers.LinkType{layers.LinkTypeEthernet}
	frame := func(d Datagram) []byte { return ethernet(etherType(ipUDP(t, d)), ipUDP(t, d)) }
	first := record{ts: t0, data: frame(datagram("0.0.0.0:68", "255.255.255.255:67", t0, "DHCPDISCOVER"))}
	second := record{ts: t0.Add(time.Second), data: frame(datagram("192.168.42.1:67", "255.255.255.255:68", t0, "DHCPOFFER"))}
	raw := pcapMicros.write(t, eth, []record{first, second})
	ng := pcapng.write(t, eth, []record{first, second})
	const (
		fileHeaderLen   = 24
		recordHeaderLen = 16
		shbLen          = 28 // pcapgo's section header block, without options
	)
	firstEnd := fileHeaderLen + recordHeaderLen + len(first.data)

	// snapped is first as tcpdump -s 42 records it: its headers, and none
	// of its payload.
	snapped := record{ts: t0, data: first.data[:42], orig: len(first.data)}

	// ip6Cut is an IPv6 packet cut after 20 bytes, in a frame that is
	// whole.
	ip6 := ipUDP(t, datagram("[fe80::77:ff:fe00:1]:546", "[ff02::1:2]:547", t0, "SOLICIT"))
	ip6Cut := record{ts: t0, data: ethernet(layers.EthernetTypeIPv6, ip6[:20])}

	// user0 is link type 147, for private use.
	const user0 = layers.LinkType(147)

	for _, tt := range []struct {
		name string
		data []byte
		n    int    // datagrams, if no error is wanted
		err  string // a part of the error wanted, or "" for none
		eof  bool   // whether the error wraps io.ErrUnexpectedEOF
	}{
		{name: "complete", data: raw, n: 2},
		{name: "file header only", data: raw[:fileHeaderLen], n: 0},
		{name: "first packet only", data: raw[:firstEnd], n: 1},
		{name: "empty", data: nil, err: "capture header", eof: true},
		{name: "half magic", data: raw[:2], err: "capture header", eof: true},
		{name: "half file header", data: raw[:fileHeaderLen/2], err: "pcap header", eof: true},
		{name: "half record header", data: raw[:fileHeaderLen+recordHeaderLen/2], err: "packet 1", eof: true},
		{name: "record header only", data: raw[:fileHeaderLen+recordHeaderLen], err: "packet 1", eof: true},
		{name: "half first packet", data: raw[:firstEnd-10], err: "packet 1", eof: true},
		{name: "last byte missing", data: raw[:len(raw)-1], err: "packet 2", eof: true},
		{name: "not a capture", data: []byte("this is not a pcap file at all"), err: "pcap header"},
		{name: "pcapng complete", data: ng, n: 2},
		{name: "pcapng half section header", data: ng[:shbLen/2], err: "pcapng header", eof: true},
		{name: "pcapng section header only", data: ng[:shbLen], err: "pcapng header", eof: true},
		{name: "pcapng half", data: ng[:len(ng)/2], err: "packet", eof: true},
		{name: "pcapng last byte missing", data: ng[:len(ng)-1], err: "packet 2", eof: true},
		{name: "snap length", data: pcapMicros.write(t, eth, []record{second, snapped}), err: "packet 2: cut to 42 of"},
		{name: "pcapng snap length", data: pcapng.write(t, eth, []record{snapped}), err: "packet 1: cut to 42 of"},
		{name: "unsupported link type", data: pcapMicros.write(t, []layers.LinkType{user0}, []record{first}), err: "packet 1: unsupported link type"},
		{name: "pcapng unsupported link type", data: pcapng.write(t, []layers.LinkType{layers.LinkTypeEthernet, user0},
			[]record{first, {ts: t0, data: first.data, iface: 1}}), err: "packet 2: unsupported link type"},
		{name: "IPv6 header cut short", data: pcapMicros.write(t, eth, []record{first, ip6Cut}), err: "packet 2: Invalid ip6 header"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := UDP(bytes.NewReader(tt.data), ports...)
			if tt.err == "" {
				if err != nil || len(ds) != tt.n {
					t.Fatalf("UDP = %d datagrams, %v; want %d datagrams, no error", len(ds), err, tt.n)
				}
				return
			}
			if err == nil {
				t.Fatalf("UDP = %d datagrams, no error; want an error", len(ds))
			}
			if ds != nil {
				t.Errorf("UDP = %d datagrams and an error; want none", len(ds))
			}
			if !strings.Contains(err.Error(), tt.err) {
				t.Errorf("UDP error %q, want one with %q", err, tt.err)
			}
			if got := errors.Is(err, io.ErrUnexpectedEOF); got != tt.eof {
				t.Errorf("UDP error %q wraps io.ErrUnexpectedEOF: %v, want %v", err, got, tt.eof)
			}
		})
	}
}
