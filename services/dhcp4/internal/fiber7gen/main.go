// Command fiber7gen writes testdata/fiber7.pcap: a synthetic capture shaped
// like the DHCPv4 exchange of the Swiss ISP Fiber7 (init7), whose servers
// behave in ways a naive client gets wrong:
//
//   - replies come through a relay (giaddr and IP source 212.51.156.1), not
//     from the server that the server identifier names;
//   - the ACK names a different server identifier (213.144.129.5) and lease
//     (1608 s) than the OFFER (77.109.140.123, 1800 s);
//   - neither carries T1 or T2, so the client must derive them from the lease
//     (T1 = 804 s);
//   - the renewal goes by unicast to the ACK's server identifier, which
//     answers directly.
//
// The packets are built, not recorded, so the file is the same bytes on every
// run and holds no one's real address. Regenerate it from the repository root
// with
//
//	go run ./services/dhcp4/internal/fiber7gen -o services/dhcp4/testdata/fiber7.pcap
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

func main() {
	if err := run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "fiber7gen: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	out := fs.String("o", "", "write the capture to this `file`")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return errors.New("usage: fiber7gen -o FILE")
	}
	b, err := capture()
	if err != nil {
		return err
	}
	return os.WriteFile(*out, b, 0o644)
}

// The exchange's parameters. The test in services/dhcp4/capture_test.go
// asserts the same values, so the two check each other.
var (
	start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	xid   = dhcpv4.TransactionID{0x0c, 0x1a, 0x1d, 0x4e}

	clientMAC = net.HardwareAddr{0x02, 0x77, 0x00, 0x00, 0x00, 0x01}
	// gatewayMAC is the ISP's first hop, which relays DHCP and routes the
	// unicast renewal (a VRRP virtual MAC, as access routers often use).
	gatewayMAC   = net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, 0x01}
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

	zero        = net.IPv4zero.To4()
	broadcastIP = net.IPv4bcast.To4()
	yiaddr      = net.IPv4(85, 195, 207, 62).To4()
	mask        = net.CIDRMask(26, 32)
	router      = net.IPv4(85, 195, 207, 1).To4()
	dns1        = net.IPv4(77, 109, 128, 2).To4()
	dns2        = net.IPv4(213, 144, 129, 20).To4()
	relay       = net.IPv4(212, 51, 156, 1).To4()
	offerServer = net.IPv4(77, 109, 140, 123).To4()
	ackServer   = net.IPv4(213, 144, 129, 5).To4()

	offerLease = 1800 * time.Second
	ackLease   = 1608 * time.Second
	// renewAfter is T1 as a client computes it without option 58: half the
	// lease, counted from the ACK.
	renewAfter = ackLease / 2
)

// frame is one packet of the capture.
type frame struct {
	at               time.Duration // since start
	srcMAC, dstMAC   net.HardwareAddr
	srcIP, dstIP     net.IP
	srcPort, dstPort layers.UDPPort
	ttl              uint8
	msg              *dhcpv4.DHCPv4
}

func frames() []frame {
	clientOpts := func(t dhcpv4.MessageType, extra ...dhcpv4.Option) dhcpv4.Options {
		o := dhcpv4.Options{}
		o.Update(dhcpv4.OptMessageType(t))
		o.Update(dhcpv4.OptClientIdentifier(append([]byte{byte(iana.HWTypeEthernet)}, clientMAC...)))
		o.Update(dhcpv4.OptHostName("homerouter"))
		o.Update(dhcpv4.OptParameterRequestList(
			dhcpv4.OptionSubnetMask,
			dhcpv4.OptionRouter,
			dhcpv4.OptionDomainNameServer,
			dhcpv4.OptionDomainName,
			dhcpv4.OptionBroadcastAddress,
			dhcpv4.OptionInterfaceMTU,
			dhcpv4.OptionIPAddressLeaseTime,
			dhcpv4.OptionServerIdentifier,
			dhcpv4.OptionRenewTimeValue,
			dhcpv4.OptionRebindingTimeValue,
			dhcpv4.OptionClasslessStaticRoute,
		))
		for _, e := range extra {
			o.Update(e)
		}
		return o
	}
	// serverOpts deliberately has no T1 (58) or T2 (59).
	serverOpts := func(t dhcpv4.MessageType, server net.IP, lease time.Duration) dhcpv4.Options {
		o := dhcpv4.Options{}
		o.Update(dhcpv4.OptMessageType(t))
		o.Update(dhcpv4.OptSubnetMask(mask))
		o.Update(dhcpv4.OptRouter(router))
		o.Update(dhcpv4.OptDNS(dns1, dns2))
		o.Update(dhcpv4.OptIPAddressLeaseTime(lease))
		o.Update(dhcpv4.OptServerIdentifier(server))
		return o
	}
	msg := func(op dhcpv4.OpcodeType, flags uint16, ciaddr, yiaddr, giaddr net.IP, opts dhcpv4.Options) *dhcpv4.DHCPv4 {
		return &dhcpv4.DHCPv4{
			OpCode:        op,
			HWType:        iana.HWTypeEthernet,
			TransactionID: xid,
			Flags:         flags,
			ClientIPAddr:  ciaddr,
			YourIPAddr:    yiaddr,
			ServerIPAddr:  zero,
			GatewayIPAddr: giaddr,
			ClientHWAddr:  clientMAC,
			Options:       opts,
		}
	}
	const (
		broadcastFlag = 0x8000
		unicastFlag   = 0
	)
	// The client sets the broadcast flag until it has its address, so the
	// relay broadcasts the OFFER and ACK.
	ackAt := 27 * time.Millisecond
	renewAt := ackAt + renewAfter
	return []frame{
		{
			at:     0,
			srcMAC: clientMAC, dstMAC: broadcastMAC,
			srcIP: zero, dstIP: broadcastIP, srcPort: 68, dstPort: 67, ttl: 64,
			msg: msg(dhcpv4.OpcodeBootRequest, broadcastFlag, zero, zero, zero,
				clientOpts(dhcpv4.MessageTypeDiscover)),
		},
		{
			at:     12 * time.Millisecond,
			srcMAC: gatewayMAC, dstMAC: broadcastMAC,
			srcIP: relay, dstIP: broadcastIP, srcPort: 67, dstPort: 68, ttl: 255,
			msg: msg(dhcpv4.OpcodeBootReply, broadcastFlag, zero, yiaddr, relay,
				serverOpts(dhcpv4.MessageTypeOffer, offerServer, offerLease)),
		},
		{
			at:     13 * time.Millisecond,
			srcMAC: clientMAC, dstMAC: broadcastMAC,
			srcIP: zero, dstIP: broadcastIP, srcPort: 68, dstPort: 67, ttl: 64,
			msg: msg(dhcpv4.OpcodeBootRequest, broadcastFlag, zero, zero, zero,
				clientOpts(dhcpv4.MessageTypeRequest,
					dhcpv4.OptRequestedIPAddress(yiaddr),
					dhcpv4.OptServerIdentifier(offerServer))),
		},
		{
			at:     ackAt,
			srcMAC: gatewayMAC, dstMAC: broadcastMAC,
			srcIP: relay, dstIP: broadcastIP, srcPort: 67, dstPort: 68, ttl: 255,
			msg: msg(dhcpv4.OpcodeBootReply, broadcastFlag, zero, yiaddr, relay,
				serverOpts(dhcpv4.MessageTypeAck, ackServer, ackLease)),
		},
		{
			// RENEWING (RFC 2131 4.4.5): unicast to the server identifier,
			// ciaddr set, no requested IP or server identifier option.
			at:     renewAt,
			srcMAC: clientMAC, dstMAC: gatewayMAC,
			srcIP: yiaddr, dstIP: ackServer, srcPort: 68, dstPort: 67, ttl: 64,
			msg: msg(dhcpv4.OpcodeBootRequest, unicastFlag, yiaddr, zero, zero,
				clientOpts(dhcpv4.MessageTypeRequest)),
		},
		{
			// The server answers directly, a few hops away.
			at:     renewAt + 9*time.Millisecond,
			srcMAC: gatewayMAC, dstMAC: clientMAC,
			srcIP: ackServer, dstIP: yiaddr, srcPort: 67, dstPort: 68, ttl: 61,
			msg: msg(dhcpv4.OpcodeBootReply, unicastFlag, yiaddr, yiaddr, zero,
				serverOpts(dhcpv4.MessageTypeAck, ackServer, ackLease)),
		},
	}
}

// capture returns the pcap file's bytes.
func capture() ([]byte, error) {
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return nil, err
	}
	for i, f := range frames() {
		data, err := f.serialize(uint16(0x4d00 + i))
		if err != nil {
			return nil, fmt.Errorf("packet %d: %w", i+1, err)
		}
		ci := gopacket.CaptureInfo{
			Timestamp:     start.Add(f.at),
			CaptureLength: len(data),
			Length:        len(data),
		}
		if err := w.WritePacket(ci, data); err != nil {
			return nil, fmt.Errorf("packet %d: %w", i+1, err)
		}
	}
	return buf.Bytes(), nil
}

func (f frame) serialize(ipID uint16) ([]byte, error) {
	eth := &layers.Ethernet{
		SrcMAC:       f.srcMAC,
		DstMAC:       f.dstMAC,
		EthernetType: layers.EthernetTypeIPv4,
	}
	ip := &layers.IPv4{
		Version:  4,
		Id:       ipID,
		TTL:      f.ttl,
		Protocol: layers.IPProtocolUDP,
		SrcIP:    f.srcIP,
		DstIP:    f.dstIP,
	}
	udp := &layers.UDP{SrcPort: f.srcPort, DstPort: f.dstPort}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		return nil, err
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload(f.msg.ToBytes())); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
