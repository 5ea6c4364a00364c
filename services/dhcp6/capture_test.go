package dhcp6

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/homerouter/homerouter/internal/capture"
)

// captured is one DHCPv6 message from a capture, with its IPv6/UDP endpoints.
type captured struct {
	Src, Dst netip.AddrPort
	Time     time.Time
	Msg      *dhcpv6.Message
}

// readCapture reads the pcap or pcapng file at path and returns its DHCPv6 messages in
// order. See parseCapture.
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

// parseCapture returns the DHCPv6 client and server messages of a
// capture (see capture.UDP) in order: the UDP payloads whose ports are
// both 546 or 547, relay messages left out. A message that does not parse
// is an error.
func parseCapture(r io.Reader) ([]captured, error) {
	ds, err := capture.UDP(r, 546, 547)
	if err != nil {
		return nil, err
	}
	var msgs []captured
	for i, d := range ds {
		if len(d.Payload) > 0 {
			if t := dhcpv6.MessageType(d.Payload[0]); t == dhcpv6.MessageTypeRelayForward || t == dhcpv6.MessageTypeRelayReply {
				continue
			}
		}
		msg, err := dhcpv6.MessageFromBytes(d.Payload)
		if err != nil {
			return nil, fmt.Errorf("DHCPv6 datagram %d: %w", i+1, err)
		}
		msgs = append(msgs, captured{Src: d.Src, Dst: d.Dst, Time: d.Time, Msg: msg})
	}
	return msgs, nil
}

// describeIAs formats the IA and status code options among opts, with their
// sub-options, lifetimes in seconds; other options are left out.
func describeIAs(opts dhcpv6.Options) string {
	var parts []string
	for _, o := range opts {
		switch o := o.(type) {
		case *dhcpv6.OptIANA:
			parts = append(parts, fmt.Sprintf("IA_NA %x T1=%d T2=%d {%s}", o.IaId, wholeSeconds(o.T1), wholeSeconds(o.T2), describeIAs(o.Options.Options)))
		case *dhcpv6.OptIAPD:
			parts = append(parts, fmt.Sprintf("IA_PD %x T1=%d T2=%d {%s}", o.IaId, wholeSeconds(o.T1), wholeSeconds(o.T2), describeIAs(o.Options.Options)))
		case *dhcpv6.OptIAAddress:
			parts = append(parts, fmt.Sprintf("%s %d/%d {%s}", o.IPv6Addr, wholeSeconds(o.PreferredLifetime), wholeSeconds(o.ValidLifetime), describeIAs(o.Options.Options)))
		case *dhcpv6.OptIAPrefix:
			parts = append(parts, fmt.Sprintf("%s %d/%d {%s}", o.Prefix, wholeSeconds(o.PreferredLifetime), wholeSeconds(o.ValidLifetime), describeIAs(o.Options.Options)))
		case *dhcpv6.OptStatusCode:
			parts = append(parts, fmt.Sprintf("%s %q", o.StatusCode, o.StatusMessage))
		}
	}
	return strings.Join(parts, "; ")
}

func wholeSeconds(d time.Duration) int64 { return int64(d / time.Second) }

// TestFiber7Captures checks testdata/fiber7-a.pcap and fiber7-b.pcap against
// the exchanges that internal/fiber7gen describes, so the generator and
// parseCapture check each other.
func TestFiber7Captures(t *testing.T) {
	// summary is what the test asserts about each message; "" means the
	// option is absent (Options lists which are present, in wire order).
	type summary struct {
		Type                  dhcpv6.MessageType
		Src, Dst              string
		SincePrevious         time.Duration
		XID                   dhcpv6.TransactionID
		Options               string
		ClientID, ServerID    string
		IANA, IAPD, Status    string
		ORO                   string
		Elapsed               time.Duration
		Preference            uint8
		Unicast, DNS, AuthHex string
	}
	const (
		clientLL   = "[fe80::77:ff:fe00:1]:546"
		serverLL   = "[fe80::1]:547"
		allServers = "[ff02::1:2]:547"
		clientDUID = "00030001027700000001"
		serverDUID = "000100012f1a2b3c00005e000201"
		dns        = "[2001:1620:2777:1::10 2001:1620:2777:2::20]"
		oro        = "[23 24]"
		addr       = "2a02:168:4a00:1::2"
		unicast    = "2001:1620:2777::1"
		// auth is a reconfigure key (RFC 8415 20.4): protocol 3,
		// algorithm 1, RDM 0, replay detection 1, type 1, 16-byte key.
		auth = "030100000000000000000101" + "6669626572372d7265636f6e666b6579"
	)
	client := func(s summary) summary {
		s.ClientID, s.ORO = clientDUID, oro
		if s.Type != dhcpv6.MessageTypeSolicit {
			s.ServerID = serverDUID
		}
		return s
	}
	server := func(s summary) summary {
		s.ClientID, s.ServerID, s.Preference, s.DNS = clientDUID, serverDUID, 255, dns
		return s
	}
	const (
		solicitOpts = "[1 3 25 6 8]"
		clientOpts  = "[1 2 3 25 6 8]"
	)
	solicitIAs := func(s summary) summary {
		s.IANA = "IA_NA 00000001 T1=0 T2=0 {}"
		s.IAPD = "IA_PD 00000001 T1=0 T2=0 {::/56 0/0 {}}"
		return s
	}

	// fiber7-a: status codes everywhere, server unicast, reconfigure key.
	naA := `IA_NA 00000001 T1=1200 T2=1800 {` + addr + ` 3600/86400 {Success "Assigned address"}}`
	pdA := `IA_PD 00000001 T1=1200 T2=1800 {2a02:168:4a00::/48 3600/86400 {Success "Assigned prefix"}}`
	statusA := `Success "All good"`
	boundA := func(s summary) summary {
		s.IANA = "IA_NA 00000001 T1=0 T2=0 {" + addr + " 0/0 {}}"
		s.IAPD = "IA_PD 00000001 T1=0 T2=0 {2a02:168:4a00::/48 0/0 {}}"
		return s
	}
	leasesA := func(s summary) summary {
		s.IANA, s.IAPD, s.Status, s.Unicast = naA, pdA, statusA, unicast
		return s
	}
	wantA := []summary{
		client(solicitIAs(summary{Type: dhcpv6.MessageTypeSolicit, Src: clientLL, Dst: allServers, Options: solicitOpts})),
		server(leasesA(summary{Type: dhcpv6.MessageTypeAdvertise, Src: serverLL, Dst: clientLL,
			SincePrevious: 12 * time.Millisecond, Options: "[1 2 3 25 13 7 12 23]"})),
		client(boundA(summary{Type: dhcpv6.MessageTypeRequest, Src: clientLL, Dst: allServers,
			SincePrevious: time.Millisecond, Options: clientOpts})),
		server(leasesA(summary{Type: dhcpv6.MessageTypeReply, Src: serverLL, Dst: clientLL,
			SincePrevious: 14 * time.Millisecond, Options: "[1 2 3 25 13 7 12 23 11]", AuthHex: auth})),
		// At T1, by unicast to the server-unicast address from the
		// assigned address.
		client(boundA(summary{Type: dhcpv6.MessageTypeRenew, Src: "[" + addr + "]:546", Dst: "[" + unicast + "]:547",
			SincePrevious: 1200 * time.Second, Options: clientOpts})),
		server(leasesA(summary{Type: dhcpv6.MessageTypeReply, Src: "[" + unicast + "]:547", Dst: "[" + addr + "]:546",
			SincePrevious: 9 * time.Millisecond, Options: "[1 2 3 25 13 7 12 23]"})),
	}

	// fiber7-b: IA_NA for another IAID, no status codes, no server
	// unicast, IA_PD T1/T2 unlike IA_NA's.
	naB := `IA_NA deadbeef T1=1200 T2=1800 {` + addr + ` 3600/86400 {}}`
	pdB := `IA_PD 00000001 T1=1000 T2=2000 {2a02:168:4bf3::/48 3000/4000 {}}`
	boundB := func(s summary) summary {
		s.IANA = "IA_NA 00000001 T1=0 T2=0 {}" // nothing bound to IAID 1
		s.IAPD = "IA_PD 00000001 T1=0 T2=0 {2a02:168:4bf3::/48 0/0 {}}"
		return s
	}
	leasesB := func(s summary) summary {
		s.IANA, s.IAPD = naB, pdB
		return s
	}
	const serverOptsB = "[1 2 3 25 7 23]"
	wantB := []summary{
		client(solicitIAs(summary{Type: dhcpv6.MessageTypeSolicit, Src: clientLL, Dst: allServers, Options: solicitOpts})),
		server(leasesB(summary{Type: dhcpv6.MessageTypeAdvertise, Src: serverLL, Dst: clientLL,
			SincePrevious: 12 * time.Millisecond, Options: serverOptsB})),
		client(boundB(summary{Type: dhcpv6.MessageTypeRequest, Src: clientLL, Dst: allServers,
			SincePrevious: time.Millisecond, Options: clientOpts})),
		server(leasesB(summary{Type: dhcpv6.MessageTypeReply, Src: serverLL, Dst: clientLL,
			SincePrevious: 14 * time.Millisecond, Options: serverOptsB})),
		// At IA_PD's T1, by multicast from the link-local address.
		client(boundB(summary{Type: dhcpv6.MessageTypeRenew, Src: clientLL, Dst: allServers,
			SincePrevious: 1000 * time.Second, Options: clientOpts})),
		server(leasesB(summary{Type: dhcpv6.MessageTypeReply, Src: serverLL, Dst: clientLL,
			SincePrevious: 9 * time.Millisecond, Options: serverOptsB})),
	}

	for _, tt := range []struct {
		path string
		want []summary
	}{
		{"testdata/fiber7-a.pcap", wantA},
		{"testdata/fiber7-b.pcap", wantB},
	} {
		t.Run(tt.path, func(t *testing.T) {
			msgs := readCapture(t, tt.path)
			var got []summary
			for i, c := range msgs {
				m := c.Msg
				var codes []dhcpv6.OptionCode
				for _, o := range m.Options.Options {
					codes = append(codes, o.Code())
				}
				s := summary{
					Type:       m.MessageType,
					Src:        c.Src.String(),
					Dst:        c.Dst.String(),
					XID:        m.TransactionID,
					Options:    fmt.Sprint(optionCodes(codes)),
					IANA:       describeIAs(m.Options.Get(dhcpv6.OptionIANA)),
					IAPD:       describeIAs(m.Options.Get(dhcpv6.OptionIAPD)),
					Status:     describeIAs(m.Options.Get(dhcpv6.OptionStatusCode)),
					Elapsed:    m.Options.ElapsedTime(),
					Preference: m.Options.Preference(),
				}
				if i > 0 {
					s.SincePrevious = c.Time.Sub(msgs[i-1].Time)
				}
				if d := m.Options.ClientID(); d != nil {
					s.ClientID = fmt.Sprintf("%x", d.ToBytes())
				}
				if d := m.Options.ServerID(); d != nil {
					s.ServerID = fmt.Sprintf("%x", d.ToBytes())
				}
				if oro := m.Options.RequestedOptions(); oro != nil {
					s.ORO = fmt.Sprint(optionCodes(oro))
				}
				if d := m.Options.DNS(); d != nil {
					s.DNS = fmt.Sprint(d)
				}
				if o := m.GetOneOption(dhcpv6.OptionUnicast); o != nil {
					s.Unicast = net.IP(o.ToBytes()).String()
				}
				if o := m.GetOneOption(dhcpv6.OptionAuth); o != nil {
					s.AuthHex = fmt.Sprintf("%x", o.ToBytes())
				}
				got = append(got, s)
			}
			want := tt.want
			for i := range want {
				want[i].XID = dhcpv6.TransactionID{0x4a, 0x7b, 0x1c}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("messages differ (-want +got):\n%s", diff)
			}
			if start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC); len(msgs) > 0 && !msgs[0].Time.Equal(start) {
				t.Errorf("first message at %v, want %v", msgs[0].Time, start)
			}
		})
	}
}

func optionCodes(codes []dhcpv6.OptionCode) []uint16 {
	u := make([]uint16, len(codes))
	for i, c := range codes {
		u[i] = uint16(c)
	}
	return u
}

// TestParseCapture checks what parseCapture adds to capture.UDP, whose
// own tests cover the file formats, link types and damaged files: relay
// messages are left out, and every other datagram on the DHCPv6 ports
// must parse, or the capture is an error.
func TestParseCapture(t *testing.T) {
	const path = "testdata/fiber7-a.pcap"
	want := readCapture(t, path)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// withRelayed is the capture with, after the first two packets, the
	// SOLICIT and the ADVERTISE as a relay agent and the server exchange
	// them.
	withRelayed := func() []byte {
		r, err := pcapgo.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		w := pcapgo.NewWriter(&out)
		if err := w.WriteFileHeader(65535, r.LinkType()); err != nil {
			t.Fatal(err)
		}
		relay, server := net.ParseIP("2a02:168:4a00:1::1"), net.ParseIP("2001:1620:2777::1")
		for i := 0; ; i++ {
			data, ci, err := r.ReadPacketData()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WritePacket(ci, data); err != nil {
				t.Fatal(err)
			}
			if i != 1 {
				continue
			}
			for _, m := range []struct {
				typ      dhcpv6.MessageType
				msg      *dhcpv6.Message
				src, dst net.IP
			}{
				{dhcpv6.MessageTypeRelayForward, want[0].Msg, relay, server},
				{dhcpv6.MessageTypeRelayReply, want[1].Msg, server, relay},
			} {
				relayed, err := dhcpv6.EncapsulateRelay(m.msg, m.typ, relay, net.ParseIP("fe80::77:ff:fe00:1"))
				if err != nil {
					t.Fatal(err)
				}
				ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolUDP, HopLimit: 64, SrcIP: m.src, DstIP: m.dst}
				udp := &layers.UDP{SrcPort: 547, DstPort: 547}
				if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
					t.Fatal(err)
				}
				buf := gopacket.NewSerializeBuffer()
				opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
				const ethHeaderLen = 14
				if err := gopacket.SerializeLayers(buf, opts, gopacket.Payload(data[:ethHeaderLen]), ip, udp, gopacket.Payload(relayed.ToBytes())); err != nil {
					t.Fatal(err)
				}
				ci.CaptureLength, ci.Length = len(buf.Bytes()), len(buf.Bytes())
				if err := w.WritePacket(ci, buf.Bytes()); err != nil {
					t.Fatal(err)
				}
			}
		}
		return out.Bytes()
	}()

	// badOption is the first packet with its first option's length (right
	// after the Ethernet, IPv6 and UDP headers and the DHCPv6 header) too
	// long.
	const (
		fileHeaderLen   = 24
		recordHeaderLen = 16
		optLenOffset    = fileHeaderLen + recordHeaderLen + 14 + 40 + 8 + 4 + 2
	)
	badOption := bytes.Clone(raw)
	badOption[optLenOffset] = 0xff

	for _, tt := range []struct {
		name string
		data []byte
		err  string // the error wanted, or "" for want's messages
	}{
		{name: "fiber7-a", data: raw},
		{name: "relay messages", data: withRelayed},
		{name: "bad option length", data: badOption, err: "DHCPv6 datagram 1: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCapture(bytes.NewReader(tt.data))
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) || got != nil {
					t.Fatalf("parseCapture = %d messages, %v; want only an error %q...", len(got), err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
				cmp.Comparer(func(a, b *dhcpv6.Message) bool { return bytes.Equal(a.ToBytes(), b.ToBytes()) })); diff != "" {
				t.Errorf("messages differ (-want +got):\n%s", diff)
			}
		})
	}
}
