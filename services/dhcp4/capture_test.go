package dhcp4

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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

// TestParseCapture checks what parseCapture adds to capture.UDP, whose
// own tests cover the file formats, link types and damaged files: every
// datagram on the DHCPv4 ports must parse, or the capture is an error.
func TestParseCapture(t *testing.T) {
	raw, err := os.ReadFile(fiber7Capture)
	if err != nil {
		t.Fatal(err)
	}
	// damaged is the capture with the DHCP magic cookie of its nth
	// packet (from 1) flipped.
	damaged := func(n int) []byte {
		const (
			fileHeaderLen   = 24
			recordHeaderLen = 16
			cookieOffset    = 14 + 20 + 8 + 236 // Ethernet, IPv4, UDP, BOOTP
		)
		b := bytes.Clone(raw)
		off := fileHeaderLen
		for range n - 1 {
			off += recordHeaderLen + int(binary.LittleEndian.Uint32(b[off+8:]))
		}
		b[off+recordHeaderLen+cookieOffset] ^= 0xff
		return b
	}
	for _, tt := range []struct {
		name string
		data []byte
		n    int    // messages, if no error is wanted
		err  string // the error wanted, or "" for none
	}{
		{name: "fiber7", data: raw, n: 6},
		{name: "first cookie damaged", data: damaged(1), err: "DHCPv4 datagram 1: "},
		{name: "last cookie damaged", data: damaged(6), err: "DHCPv4 datagram 6: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			msgs, err := parseCapture(bytes.NewReader(tt.data))
			if tt.err == "" {
				if err != nil || len(msgs) != tt.n {
					t.Fatalf("parseCapture = %d messages, %v; want %d messages, no error", len(msgs), err, tt.n)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) || msgs != nil {
				t.Fatalf("parseCapture = %d messages, %v; want only an error %q...", len(msgs), err, tt.err)
			}
		})
	}
}
