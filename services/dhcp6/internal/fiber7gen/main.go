// Command fiber7gen writes testdata/fiber7-a.pcap and testdata/fiber7-b.pcap:
// two synthetic captures shaped like the DHCPv6 exchanges of the Swiss ISP
// Fiber7 (init7), for the client tests in services/dhcp6.
//
// Both are SOLICIT, ADVERTISE (preference 255, so the client requests at
// once), REQUEST, REPLY, and at T1 after the REPLY a RENEW and its REPLY. They
// differ in what a client has to cope with:
//
//   - fiber7-a: status codes at the top level and inside IA_NA and IA_PD, a
//     server-unicast option (so the client renews by unicast from its new
//     global address), and an authentication option (a reconfigure key) in
//     the REPLY to the REQUEST.
//   - fiber7-b: the IA_NA answers with an IAID the client did not ask for
//     (0xdeadbeef), no status codes anywhere, no server-unicast option (so the
//     client renews by multicast from its link-local address), and IA_PD
//     lifetimes unlike IA_NA's.
//
// The packets are built, not recorded, so the files are the same bytes on
// every run and hold no one's real address. Regenerate them from the
// repository root with
//
//	go run ./services/dhcp6/internal/fiber7gen -dir services/dhcp6/testdata
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/insomniacslk/dhcp/dhcpv6"
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
	dir := fs.String("dir", "", "write fiber7-a.pcap and fiber7-b.pcap to this `directory`")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() != 0 {
		return errors.New("usage: fiber7gen -dir DIR")
	}
	for _, c := range []struct {
		name string
		sc   scenario
	}{
		{"fiber7-a.pcap", scenarioA},
		{"fiber7-b.pcap", scenarioB},
	} {
		b, err := capture(c.sc.frames())
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if err := os.WriteFile(filepath.Join(*dir, c.name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// The exchanges' parameters. TestFiber7Captures in
// services/dhcp6/capture_test.go asserts the same values, so the two check
// each other.
var (
	start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// xid is the transaction ID of every message in both captures.
	xid = dhcpv6.TransactionID{0x4a, 0x7b, 0x1c}

	clientMAC = net.HardwareAddr{0x02, 0x77, 0x00, 0x00, 0x00, 0x01}
	// serverMAC is the ISP's first hop, which answers DHCPv6 on the link
	// and routes the unicast renewal (a VRRPv3 IPv6 virtual MAC).
	serverMAC = net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x02, 0x01}
	// allServersMAC is the Ethernet multicast address of ff02::1:2.
	allServersMAC = net.HardwareAddr{0x33, 0x33, 0x00, 0x01, 0x00, 0x02}

	clientLL   = net.ParseIP("fe80::77:ff:fe00:1")
	serverLL   = net.ParseIP("fe80::1")
	allServers = net.ParseIP("ff02::1:2")
	unicastIP  = net.ParseIP("2001:1620:2777::1") // server-unicast option (fiber7-a)
	clientIP   = net.ParseIP("2a02:168:4a00:1::2")
	dns1       = net.ParseIP("2001:1620:2777:1::10")
	dns2       = net.ParseIP("2001:1620:2777:2::20")

	clientDUID = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: clientMAC}
	serverDUID = &dhcpv6.DUIDLLT{HWType: iana.HWTypeEthernet, Time: 0x2f1a2b3c, LinkLayerAddr: serverMAC}

	clientIAID = [4]byte{0, 0, 0, 1}

	// reconfigureKey is the authentication option of fiber7-a's first
	// REPLY (RFC 8415 20.4): protocol 3 (reconfigure key), algorithm 1
	// (HMAC-MD5), RDM 0, an 8-byte replay detection counter, then type 1
	// (the key) and a 16-byte key.
	reconfigureKey = append([]byte{3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}, "fiber7-reconfkey"...)
)

// scenario describes what the server of one capture answers.
type scenario struct {
	naIAID         [4]byte
	naT1, naT2     time.Duration
	addrPreferred  time.Duration
	addrValid      time.Duration
	pdT1, pdT2     time.Duration
	prefix         *net.IPNet
	prefPreferred  time.Duration
	prefValid      time.Duration
	statusCodes    bool
	serverUnicast  net.IP // nil: no server-unicast option
	auth           []byte // nil: no authentication option
	renewAfter     time.Duration
	renewSrc       net.IP
	renewDst       net.IP
	renewServerSrc net.IP // source of the REPLY to the RENEW
}

var scenarioA = scenario{
	naIAID: clientIAID, naT1: 1200 * time.Second, naT2: 1800 * time.Second,
	addrPreferred: 3600 * time.Second, addrValid: 86400 * time.Second,
	pdT1: 1200 * time.Second, pdT2: 1800 * time.Second,
	prefix:        mustCIDR("2a02:168:4a00::/48"),
	prefPreferred: 3600 * time.Second, prefValid: 86400 * time.Second,
	statusCodes:   true,
	serverUnicast: unicastIP,
	auth:          reconfigureKey,
	renewAfter:    1200 * time.Second,
	renewSrc:      clientIP, renewDst: unicastIP, renewServerSrc: unicastIP,
}

var scenarioB = scenario{
	naIAID: [4]byte{0xde, 0xad, 0xbe, 0xef}, naT1: 1200 * time.Second, naT2: 1800 * time.Second,
	addrPreferred: 3600 * time.Second, addrValid: 86400 * time.Second,
	pdT1: 1000 * time.Second, pdT2: 2000 * time.Second,
	prefix:        mustCIDR("2a02:168:4bf3::/48"),
	prefPreferred: 3000 * time.Second, prefValid: 4000 * time.Second,
	renewAfter: 1000 * time.Second,
	renewSrc:   clientLL, renewDst: allServers, renewServerSrc: serverLL,
}

func mustCIDR(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// frame is one packet of a capture.
type frame struct {
	at             time.Duration // since start
	srcMAC, dstMAC net.HardwareAddr
	srcIP, dstIP   net.IP
	hopLimit       uint8
	msg            *dhcpv6.Message
}

func (sc scenario) frames() []frame {
	// The client asks for IA_NA and IA_PD with IAID 1 (in a SOLICIT with a
	// /56 hint), and then for what it was offered under its own IAID.
	clientMsg := func(t dhcpv6.MessageType, withServerID, bound bool) *dhcpv6.Message {
		m := &dhcpv6.Message{MessageType: t, TransactionID: xid}
		m.AddOption(dhcpv6.OptClientID(clientDUID))
		if withServerID {
			m.AddOption(dhcpv6.OptServerID(serverDUID))
		}
		na := &dhcpv6.OptIANA{IaId: clientIAID}
		if bound && sc.naIAID == clientIAID {
			na.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: clientIP})
		}
		m.AddOption(na)
		hint := mustCIDR("::/56")
		if bound {
			hint = sc.prefix
		}
		pd := &dhcpv6.OptIAPD{IaId: clientIAID}
		pd.Options.Add(&dhcpv6.OptIAPrefix{Prefix: hint})
		m.AddOption(pd)
		m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionDomainSearchList))
		m.AddOption(dhcpv6.OptElapsedTime(0))
		return m
	}
	status := func(opts *dhcpv6.Options, text string) {
		if sc.statusCodes {
			opts.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess, StatusMessage: text})
		}
	}
	serverMsg := func(t dhcpv6.MessageType, auth bool) *dhcpv6.Message {
		m := &dhcpv6.Message{MessageType: t, TransactionID: xid}
		m.AddOption(dhcpv6.OptClientID(clientDUID))
		m.AddOption(dhcpv6.OptServerID(serverDUID))

		na := &dhcpv6.OptIANA{IaId: sc.naIAID, T1: sc.naT1, T2: sc.naT2}
		addr := &dhcpv6.OptIAAddress{IPv6Addr: clientIP, PreferredLifetime: sc.addrPreferred, ValidLifetime: sc.addrValid}
		status(&addr.Options.Options, "Assigned address")
		na.Options.Add(addr)
		m.AddOption(na)

		pd := &dhcpv6.OptIAPD{IaId: clientIAID, T1: sc.pdT1, T2: sc.pdT2}
		prefix := &dhcpv6.OptIAPrefix{Prefix: sc.prefix, PreferredLifetime: sc.prefPreferred, ValidLifetime: sc.prefValid}
		status(&prefix.Options.Options, "Assigned prefix")
		pd.Options.Add(prefix)
		m.AddOption(pd)

		status(&m.Options.Options, "All good")
		m.AddOption(dhcpv6.OptPreference(255))
		if sc.serverUnicast != nil {
			m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionUnicast, OptionData: sc.serverUnicast.To16()})
		}
		m.AddOption(dhcpv6.OptDNS(dns1, dns2))
		if auth && sc.auth != nil {
			m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionAuth, OptionData: sc.auth})
		}
		return m
	}

	const replyAt = 27 * time.Millisecond
	renewAt := replyAt + sc.renewAfter
	renewDstMAC := allServersMAC
	if !sc.renewDst.IsMulticast() {
		renewDstMAC = serverMAC
	}
	// Multicast to the link goes with hop limit 1 (the Linux default),
	// link-local unicast with 255, routed unicast with 64, and the answer
	// to a unicast renewal comes from a few hops away.
	renewHops, renewReplyHops := uint8(1), uint8(255)
	if !sc.renewDst.IsMulticast() {
		renewHops, renewReplyHops = 64, 61
	}
	return []frame{
		{
			at:     0,
			srcMAC: clientMAC, dstMAC: allServersMAC,
			srcIP: clientLL, dstIP: allServers, hopLimit: 1,
			msg: clientMsg(dhcpv6.MessageTypeSolicit, false, false),
		},
		{
			at:     12 * time.Millisecond,
			srcMAC: serverMAC, dstMAC: clientMAC,
			srcIP: serverLL, dstIP: clientLL, hopLimit: 255,
			msg: serverMsg(dhcpv6.MessageTypeAdvertise, false),
		},
		{
			at:     13 * time.Millisecond,
			srcMAC: clientMAC, dstMAC: allServersMAC,
			srcIP: clientLL, dstIP: allServers, hopLimit: 1,
			msg: clientMsg(dhcpv6.MessageTypeRequest, true, true),
		},
		{
			at:     replyAt,
			srcMAC: serverMAC, dstMAC: clientMAC,
			srcIP: serverLL, dstIP: clientLL, hopLimit: 255,
			msg: serverMsg(dhcpv6.MessageTypeReply, true),
		},
		{
			at:     renewAt,
			srcMAC: clientMAC, dstMAC: renewDstMAC,
			srcIP: sc.renewSrc, dstIP: sc.renewDst, hopLimit: renewHops,
			msg: clientMsg(dhcpv6.MessageTypeRenew, true, true),
		},
		{
			at:     renewAt + 9*time.Millisecond,
			srcMAC: serverMAC, dstMAC: clientMAC,
			srcIP: sc.renewServerSrc, dstIP: sc.renewSrc, hopLimit: renewReplyHops,
			msg: serverMsg(dhcpv6.MessageTypeReply, false),
		},
	}
}

// capture returns the bytes of a pcap file (Ethernet link type) of frames.
func capture(frames []frame) ([]byte, error) {
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return nil, err
	}
	for i, f := range frames {
		data, err := f.serialize()
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

func (f frame) serialize() ([]byte, error) {
	eth := &layers.Ethernet{
		SrcMAC:       f.srcMAC,
		DstMAC:       f.dstMAC,
		EthernetType: layers.EthernetTypeIPv6,
	}
	ip := &layers.IPv6{
		Version:    6,
		NextHeader: layers.IPProtocolUDP,
		HopLimit:   f.hopLimit,
		SrcIP:      f.srcIP,
		DstIP:      f.dstIP,
	}
	sport, dport := layers.UDPPort(546), layers.UDPPort(547)
	if f.msg.MessageType == dhcpv6.MessageTypeAdvertise || f.msg.MessageType == dhcpv6.MessageTypeReply {
		sport, dport = 547, 546
	}
	udp := &layers.UDP{SrcPort: sport, DstPort: dport}
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
