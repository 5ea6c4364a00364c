// Package capture reads the UDP datagrams out of packet captures (pcap
// and pcapng, as tcpdump and tshark write them), for the replay tests of
// the DHCP clients: each test turns the datagrams of its ports into
// messages of its protocol.
package capture

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Datagram is one UDP datagram of a capture, with its IP endpoints.
type Datagram struct {
	Src, Dst netip.AddrPort
	Time     time.Time
	Payload  []byte
}

// pcapngMagic is the block type of a pcapng Section Header Block, the same
// in either byte order.
const pcapngMagic = 0x0a0d0d0a

// UDP reads a pcap or pcapng capture with Ethernet, Linux cooked (SLL,
// SLL2, as on "tcpdump -i any") or raw IP link types, and returns in order
// the datagrams over IPv4 or IPv6 whose source and destination ports are
// both among ports. Other packets (ARP, DNS, ...) are skipped.
//
// A truncated file, a packet cut short by the snap length, an unsupported
// link type or a packet that does not decode is an error, so that a replay
// test never silently sees fewer messages than were recorded. A truncated
// file's error wraps io.ErrUnexpectedEOF.
func UDP(r io.Reader, ports ...uint16) ([]Datagram, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("capture header: %w", noEOF(err))
	}
	type source interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var (
		src      source
		linkType func(gopacket.CaptureInfo) layers.LinkType
	)
	if binary.LittleEndian.Uint32(magic) == pcapngMagic {
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, fmt.Errorf("pcapng header: %w", noEOF(err))
		}
		src = ng
		linkType = func(ci gopacket.CaptureInfo) layers.LinkType {
			lt, _ := ci.AncillaryData[0].(layers.LinkType)
			return lt
		}
	} else {
		p, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("pcap header: %w", noEOF(err))
		}
		src = p
		linkType = func(gopacket.CaptureInfo) layers.LinkType { return p.LinkType() }
	}

	var out []Datagram
	for n := 1; ; n++ {
		data, ci, err := src.ReadPacketData()
		// pcapgo.Reader returns io.EOF also for a record header with no
		// data.
		if err == io.EOF && ci.CaptureLength == 0 {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("packet %d: %w", n, noEOF(err))
		}
		d, ok, err := decode(data, ci, linkType(ci), ports)
		if err != nil {
			return nil, fmt.Errorf("packet %d: %w", n, err)
		}
		if ok {
			out = append(out, d)
		}
	}
}

// noEOF turns an io.EOF in the middle of a file into io.ErrUnexpectedEOF:
// only the end of the packet records is a clean end.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decode returns the UDP datagram in one link-layer frame, and false if
// the frame holds none for ports.
func decode(data []byte, ci gopacket.CaptureInfo, lt layers.LinkType, ports []uint16) (Datagram, bool, error) {
	var dec gopacket.Decoder
	switch lt {
	case layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2, layers.LinkTypeRaw:
		dec = lt
	case layers.LinkTypeIPv4:
		dec = layers.LayerTypeIPv4 // gopacket has no decoder for this link type
	case layers.LinkTypeIPv6:
		dec = layers.LayerTypeIPv6
	default:
		return Datagram{}, false, fmt.Errorf("unsupported link type %v (%d)", lt, lt)
	}
	if ci.CaptureLength < ci.Length {
		return Datagram{}, false, fmt.Errorf("cut to %d of %d bytes by the snap length", ci.CaptureLength, ci.Length)
	}
	p := gopacket.NewPacket(data, dec, gopacket.DecodeOptions{NoCopy: true})
	var srcIP, dstIP []byte
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		if ip.Protocol != layers.IPProtocolUDP {
			return Datagram{}, false, nil
		}
		srcIP, dstIP = ip.SrcIP, ip.DstIP
	case *layers.IPv6:
		srcIP, dstIP = ip.SrcIP, ip.DstIP
	default:
		return Datagram{}, false, nil
	}
	udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if udp == nil {
		if e := p.ErrorLayer(); e != nil {
			return Datagram{}, false, e.Error()
		}
		return Datagram{}, false, nil // not UDP, or a later IP fragment
	}
	if !slices.Contains(ports, uint16(udp.SrcPort)) || !slices.Contains(ports, uint16(udp.DstPort)) {
		return Datagram{}, false, nil
	}
	src, _ := netip.AddrFromSlice(srcIP)
	dst, _ := netip.AddrFromSlice(dstIP)
	return Datagram{
		Src:     netip.AddrPortFrom(src.Unmap(), uint16(udp.SrcPort)),
		Dst:     netip.AddrPortFrom(dst.Unmap(), uint16(udp.DstPort)),
		Time:    ci.Timestamp.UTC(),
		Payload: udp.Payload,
	}, true, nil
}
