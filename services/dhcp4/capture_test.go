package dhcp4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/homerouter/homerouter/internal/capture"
)

// captured is one DHCPv4 message from a capture, with its IP/UDP endpoints.
type captured struct {
	Src, Dst netip.AddrPort
	Time     time.Time
	Msg      *dhcpv4.DHCPv4
}

// readCapture reads the pcap or pcapng file at path and returns its DHCPv4
// messages in order. See parseCapture.
func readCapture(t testing.TB, path string) []captured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msgs, err := parseCapture(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return msgs
}

// parseCapture returns the DHCPv4 messages of a capture (see capture.UDP)
// in order: the UDP payloads whose source and destination ports are both
// 67 or 68 (client, server and relay traffic). A payload that does not
// parse is an error.
func parseCapture(r io.Reader) ([]captured, error) {
	ds, err := capture.UDP(r, 67, 68)
	if err != nil {
		return nil, err
	}
	msgs := make([]captured, 0, len(ds))
	for i, d := range ds {
		msg, err := dhcpv4.FromBytes(d.Payload)
		if err != nil {
			return nil, fmt.Errorf("DHCPv4 datagram %d: %w", i+1, err)
		}
		msgs = append(msgs, captured{Src: d.Src, Dst: d.Dst, Time: d.Time, Msg: msg})
	}
	return msgs, nil
}

const fiber7Capture = "testdata/fiber7.pcap"

// TestFiber7Capture checks testdata/fiber7.pcap against the exchange that
// internal/fiber7gen describes, so the generator and readCapture check each
// other.
func TestFiber7Capture(t *testing.T) {
	msgs := readCapture(t, fiber7Capture)

	// summary is what the test asserts about each message; "" and 0 mean the
	// field or option is absent.
	type summary struct {
		Type                      dhcpv4.MessageType
		Src, Dst                  string
		Broadcast                 bool
		CIAddr, YIAddr, GIAddr    string
		RequestedIP, ServerID     string
		Lease                     time.Duration
		HasT1, HasT2              bool
		Mask, Router, DNS         string
		ClientID, HostName        string
		ParameterRequestList      string
		XID                       dhcpv4.TransactionID
		ClientHWAddr              string
		SinceStart, SincePrevious time.Duration
	}
	const (
		clientID = "\x01\x02\x77\x00\x00\x00\x01"
		mac      = "02:77:00:00:00:01"
		prl      = "[1 3 6 15 28 26 51 54 58 59 121]" // in wire order
		dns      = "[77.109.128.2 213.144.129.20]"
		router   = "[85.195.207.1]"
		mask     = "ffffffc0"
		yiaddr   = "85.195.207.62"
		relay    = "212.51.156.1"
		xid      = 0x0c1a1d4e
	)
	client := func(s summary) summary {
		s.ClientID, s.HostName, s.ParameterRequestList, s.ClientHWAddr = clientID, "homerouter", prl, mac
		return s
	}
	server := func(s summary) summary {
		s.Mask, s.Router, s.DNS, s.ClientHWAddr = mask, router, dns, mac
		return s
	}
	want := []summary{
		client(summary{
			Type: dhcpv4.MessageTypeDiscover,
			Src:  "0.0.0.0:68", Dst: "255.255.255.255:67", Broadcast: true,
		}),
		server(summary{
			Type: dhcpv4.MessageTypeOffer,
			Src:  relay + ":67", Dst: "255.255.255.255:68", Broadcast: true,
			YIAddr: yiaddr, GIAddr: relay,
			ServerID: "77.109.140.123", Lease: 1800 * time.Second,
			SinceStart: 12 * time.Millisecond, SincePrevious: 12 * time.Millisecond,
		}),
		client(summary{
			Type: dhcpv4.MessageTypeRequest,
			Src:  "0.0.0.0:68", Dst: "255.255.255.255:67", Broadcast: true,
			RequestedIP: yiaddr, ServerID: "77.109.140.123",
			SinceStart: 13 * time.Millisecond, SincePrevious: time.Millisecond,
		}),
		server(summary{
			Type: dhcpv4.MessageTypeAck,
			Src:  relay + ":67", Dst: "255.255.255.255:68", Broadcast: true,
			YIAddr: yiaddr, GIAddr: relay,
			ServerID: "213.144.129.5", Lease: 1608 * time.Second,
			SinceStart: 27 * time.Millisecond, SincePrevious: 14 * time.Millisecond,
		}),
		// Renewal at T1 = lease/2 after the ACK, as there is no option 58.
		client(summary{
			Type: dhcpv4.MessageTypeRequest,
			Src:  yiaddr + ":68", Dst: "213.144.129.5:67",
			CIAddr:     yiaddr,
			SinceStart: 27*time.Millisecond + 804*time.Second, SincePrevious: 804 * time.Second,
		}),
		server(summary{
			Type: dhcpv4.MessageTypeAck,
			Src:  "213.144.129.5:67", Dst: yiaddr + ":68",
			CIAddr: yiaddr, YIAddr: yiaddr,
			ServerID: "213.144.129.5", Lease: 1608 * time.Second,
			SinceStart: 36*time.Millisecond + 804*time.Second, SincePrevious: 9 * time.Millisecond,
		}),
	}
	for i := range want {
		want[i].XID = dhcpv4.TransactionID{0x0c, 0x1a, 0x1d, 0x4e}
	}

	ip := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		a, _ := netip.AddrFromSlice(b)
		if a.Unmap().IsUnspecified() {
			return ""
		}
		return a.Unmap().String()
	}
	var got []summary
	for i, c := range msgs {
		m := c.Msg
		s := summary{
			Type:         m.MessageType(),
			Src:          c.Src.String(),
			Dst:          c.Dst.String(),
			Broadcast:    m.IsBroadcast(),
			CIAddr:       ip(m.ClientIPAddr),
			YIAddr:       ip(m.YourIPAddr),
			GIAddr:       ip(m.GatewayIPAddr),
			RequestedIP:  ip(m.RequestedIPAddress()),
			ServerID:     ip(m.ServerIdentifier()),
			Lease:        m.IPAddressLeaseTime(0),
			HasT1:        m.Options.Has(dhcpv4.OptionRenewTimeValue),
			HasT2:        m.Options.Has(dhcpv4.OptionRebindingTimeValue),
			ClientID:     string(m.GetOneOption(dhcpv4.OptionClientIdentifier)),
			HostName:     m.HostName(),
			XID:          m.TransactionID,
			ClientHWAddr: m.ClientHWAddr.String(),
			SinceStart:   c.Time.Sub(msgs[0].Time),
		}
		if mk := m.SubnetMask(); mk != nil {
			s.Mask = mk.String()
		}
		if r := m.Router(); r != nil {
			s.Router = fmt.Sprint(r)
		}
		if d := m.DNS(); d != nil {
			s.DNS = fmt.Sprint(d)
		}
		if m.Options.Has(dhcpv4.OptionParameterRequestList) {
			s.ParameterRequestList = fmt.Sprint(m.GetOneOption(dhcpv4.OptionParameterRequestList))
		}
		if i > 0 {
			s.SincePrevious = c.Time.Sub(msgs[i-1].Time)
		}
		got = append(got, s)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: messages differ (-want +got):\n%s", fiber7Capture, diff)
	}
	if len(msgs) > 0 {
		if start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC); !msgs[0].Time.Equal(start) {
			t.Errorf("first message at %v, want %v", msgs[0].Time, start)
		}
	}
}

// TestParseCaptureLinkTypes re-encapsulates the fiber7 capture's packets in
// every supported link type, as pcap and as pcapng, and checks that
// parseCapture returns the same messages.
func TestParseCaptureLinkTypes(t *testing.T) {
	raw, err := os.ReadFile(fiber7Capture)
	if err != nil {
		t.Fatal(err)
	}
	want, err := parseCapture(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, lt := range []struct {
		name     string
		linkType layers.LinkType
	}{
		{"SLL", layers.LinkTypeLinuxSLL},
		{"SLL2", layers.LinkTypeLinuxSLL2},
		{"raw", layers.LinkTypeRaw},
		{"IPv4", layers.LinkTypeIPv4},
	} {
		for _, format := range []string{"pcap", "pcapng"} {
			t.Run(lt.name+"/"+format, func(t *testing.T) {
				capture := reencapsulate(t, raw, lt.linkType, format == "pcapng")
				checkSameMessages(t, want, capture)
			})
		}
	}
}

// reencapsulate returns the Ethernet pcap capture raw with its IPv4 packets
// framed for linkType (Linux SLL or SLL2, raw or IPv4), as pcap or pcapng.
func reencapsulate(t *testing.T, raw []byte, linkType layers.LinkType, ng bool) []byte {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var frame func(ip []byte) []byte
	switch linkType {
	case layers.LinkTypeLinuxSLL:
		frame = func(ip []byte) []byte {
			// Packet type (to us), ARPHRD_ETHER, address length, 8 bytes of
			// address, protocol.
			h := make([]byte, 16, 16+len(ip))
			binary.BigEndian.PutUint16(h[2:], 1)
			binary.BigEndian.PutUint16(h[4:], 6)
			copy(h[6:], []byte{0x02, 0x77, 0, 0, 0, 1})
			binary.BigEndian.PutUint16(h[14:], uint16(layers.EthernetTypeIPv4))
			return append(h, ip...)
		}
	case layers.LinkTypeLinuxSLL2:
		frame = func(ip []byte) []byte {
			// Protocol, reserved, ifindex, ARPHRD_ETHER, packet type (to
			// us), address length, 8 bytes of address.
			h := make([]byte, 20, 20+len(ip))
			binary.BigEndian.PutUint16(h[0:], uint16(layers.EthernetTypeIPv4))
			binary.BigEndian.PutUint32(h[4:], 2)
			binary.BigEndian.PutUint16(h[8:], 1)
			h[11] = 6
			copy(h[12:], []byte{0x02, 0x77, 0, 0, 0, 1})
			return append(h, ip...)
		}
	case layers.LinkTypeRaw, layers.LinkTypeIPv4:
		frame = func(ip []byte) []byte { return ip }
	default:
		t.Fatalf("reencapsulate: link type %d", linkType)
	}

	var buf bytes.Buffer
	var write func(gopacket.CaptureInfo, []byte) error
	flush := func() error { return nil }
	if ng {
		w, err := pcapgo.NewNgWriter(&buf, linkType)
		if err != nil {
			t.Fatal(err)
		}
		write, flush = w.WritePacket, w.Flush
	} else {
		w := pcapgo.NewWriterNanos(&buf)
		if err := w.WriteFileHeader(65535, linkType); err != nil {
			t.Fatal(err)
		}
		write = w.WritePacket
	}
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		const ethHeaderLen = 14
		data = frame(data[ethHeaderLen:])
		ci.CaptureLength, ci.Length = len(data), len(data)
		if err := write(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkSameMessages parses capture and compares its messages with want.
func checkSameMessages(t *testing.T, want []captured, capture []byte) {
	t.Helper()
	got, err := parseCapture(bytes.NewReader(capture))
	if err != nil {
		t.Fatal(err)
	}
	opts := []cmp.Option{
		cmpopts.EquateComparable(netip.AddrPort{}),
		cmp.Comparer(func(a, b *dhcpv4.DHCPv4) bool {
			return bytes.Equal(a.ToBytes(), b.ToBytes())
		}),
	}
	if diff := cmp.Diff(want, got, opts...); diff != "" {
		t.Errorf("messages differ (-want +got):\n%s", diff)
	}
}

// TestParseCaptureErrors checks that a damaged capture is an error rather than
// fewer messages.
func TestParseCaptureErrors(t *testing.T) {
	raw, err := os.ReadFile(fiber7Capture)
	if err != nil {
		t.Fatal(err)
	}
	const (
		fileHeaderLen   = 24
		recordHeaderLen = 16
	)
	firstLen := int(binary.LittleEndian.Uint32(raw[fileHeaderLen+8:]))

	// snapped is the first packet, cut by a snap length of 100 bytes.
	snapped := append([]byte(nil), raw[:fileHeaderLen+recordHeaderLen+100]...)
	binary.LittleEndian.PutUint32(snapped[fileHeaderLen+8:], 100)

	// badDHCP is the first packet with its DHCP magic cookie damaged.
	const cookieOffset = 14 + 20 + 8 + 236
	badDHCP := append([]byte(nil), raw[:fileHeaderLen+recordHeaderLen+firstLen]...)
	badDHCP[fileHeaderLen+recordHeaderLen+cookieOffset] ^= 0xff

	// unknownLink is the capture with link type 147 (USER0).
	unknownLink := append([]byte(nil), raw...)
	binary.LittleEndian.PutUint32(unknownLink[20:], 147)

	ng := reencapsulate(t, raw, layers.LinkTypeLinuxSLL2, true)

	for _, tt := range []struct {
		name    string
		data    []byte
		wantN   int
		wantErr error // nil: any error; ignored when wantN >= 0
	}{
		{name: "complete", data: raw, wantN: 6},
		{name: "file header only", data: raw[:fileHeaderLen], wantN: 0},
		{name: "first packet only", data: raw[:fileHeaderLen+recordHeaderLen+firstLen], wantN: 1},
		{name: "empty", data: nil, wantN: -1, wantErr: io.ErrUnexpectedEOF},
		{name: "half magic", data: raw[:2], wantN: -1},
		{name: "half file header", data: raw[:fileHeaderLen/2], wantN: -1},
		{name: "half record header", data: raw[:fileHeaderLen+recordHeaderLen/2], wantN: -1, wantErr: io.ErrUnexpectedEOF},
		{name: "record header only", data: raw[:fileHeaderLen+recordHeaderLen], wantN: -1, wantErr: io.ErrUnexpectedEOF},
		{name: "half first packet", data: raw[:fileHeaderLen+recordHeaderLen+firstLen/2], wantN: -1, wantErr: io.ErrUnexpectedEOF},
		{name: "last byte missing", data: raw[:len(raw)-1], wantN: -1, wantErr: io.ErrUnexpectedEOF},
		{name: "not a capture", data: []byte("this is not a pcap file at all"), wantN: -1},
		{name: "snap length", data: snapped, wantN: -1},
		{name: "bad DHCP cookie", data: badDHCP, wantN: -1},
		{name: "unknown link type", data: unknownLink, wantN: -1},
		{name: "pcapng complete", data: ng, wantN: 6},
		{name: "pcapng half", data: ng[:len(ng)/2], wantN: -1, wantErr: io.ErrUnexpectedEOF},
		{name: "pcapng last byte missing", data: ng[:len(ng)-1], wantN: -1, wantErr: io.ErrUnexpectedEOF},
	} {
		t.Run(tt.name, func(t *testing.T) {
			msgs, err := parseCapture(bytes.NewReader(tt.data))
			if tt.wantN >= 0 {
				if err != nil || len(msgs) != tt.wantN {
					t.Fatalf("parseCapture = %d messages, %v; want %d messages, no error", len(msgs), err, tt.wantN)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseCapture = %d messages, no error; want an error", len(msgs))
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseCapture error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
