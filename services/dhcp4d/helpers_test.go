package dhcp4d

import (
	"container/heap"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	t0      = time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	lan     = Link{Addr: netip.MustParsePrefix("192.168.42.1/24")}
	ourSID  = netip.MustParseAddr("192.168.42.1")
	otherID = netip.MustParseAddr("192.168.42.254")
)

// clock is the fake clock a test steps.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestHandler(t testing.TB, cfg Config, l Link, leases []Lease) (*Handler, *clock) {
	t.Helper()
	c := &clock{t: t0}
	h, err := NewHandler(cfg, l, leases, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return h, c
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// msg is a request of type typ from the client with MAC mac, as it reads
// after a trip over the wire. mods add options and fields.
func msg(t testing.TB, typ dhcpv4.MessageType, mac string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	zero := net.IPv4zero.To4()
	m := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootRequest,
		HWType:        iana.HWTypeEthernet,
		TransactionID: dhcpv4.TransactionID{0xde, 0xad, hw[4], hw[5]},
		ClientIPAddr:  zero,
		YourIPAddr:    zero,
		ServerIPAddr:  zero,
		GatewayIPAddr: zero,
		ClientHWAddr:  hw,
		Options:       dhcpv4.Options{},
	}
	m.UpdateOption(dhcpv4.OptMessageType(typ))
	for _, mod := range mods {
		mod(m)
	}
	w, err := dhcpv4.FromBytes(m.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// Request modifiers.
func reqIP(s string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP(addr(s).AsSlice())))
}
func sid(a netip.Addr) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(a.AsSlice())))
}
func ciaddr(s string) dhcpv4.Modifier { return dhcpv4.WithClientIP(net.IP(addr(s).AsSlice())) }
func giaddr(s string) dhcpv4.Modifier { return dhcpv4.WithGatewayIP(net.IP(addr(s).AsSlice())) }
func clientID(b ...byte) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptClientIdentifier(b))
}
func hostname(s string) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptHostName(s)) }
func broadcastBit() dhcpv4.Modifier     { return dhcpv4.WithBroadcast(true) }

// summary is a reply in a word or two: "OFFER 192.168.42.100", "ACK
// 192.168.42.100", "NAK", or "-" for no reply.
func summary(m *dhcpv4.DHCPv4) string {
	if m == nil {
		return "-"
	}
	switch typ := m.MessageType(); typ {
	case dhcpv4.MessageTypeNak:
		return "NAK"
	default:
		return fmt.Sprintf("%s %s", typ, m.YourIPAddr)
	}
}

// checkTable verifies the table's invariants: the indexes agree, the heap
// is ordered, every address is where it may be.
func checkTable(t testing.TB, h *Handler) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.p
	inHeap := 0
	for a, r := range p.byAddr {
		if r.addr != a || toU32(r.Addr) != a {
			t.Fatalf("record %v filed under %v", r.Addr, fromU32(a))
		}
		if (r.Offered || r.Declined) && r.Hostname != "" || r.Offered && r.Declined {
			t.Fatalf("record %v: offered %v, declined %v, with hostname %q", r.Addr, r.Offered, r.Declined, r.Hostname)
		}
		if r.Static {
			if r.idx != -1 || p.static[r.HardwareAddr] != r {
				t.Fatalf("static record %+v not indexed right", r.Lease)
			}
			continue
		}
		inHeap++
		if !p.inPool(a) {
			t.Fatalf("dynamic record %v outside the pool", r.Addr)
		}
		if r.idx < 0 || r.idx >= len(p.expiry) || p.expiry[r.idx] != r {
			t.Fatalf("record %v: heap index %d wrong", r.Addr, r.idx)
		}
		if r.key != "" && p.byKey[r.key] != r {
			t.Fatalf("record %v: owner %q not indexed", r.Addr, r.key)
		}
		if r.Declined != (r.key == "") {
			t.Fatalf("record %v: declined %v but owner %q", r.Addr, r.Declined, r.key)
		}
	}
	if inHeap != len(p.expiry) {
		t.Fatalf("%d dynamic records, %d in the heap", inHeap, len(p.expiry))
	}
	for k, r := range p.byKey {
		if r.key != k || p.byAddr[r.addr] != r {
			t.Fatalf("owner %q: record %v not in the table", k, r.Addr)
		}
	}
	for i := 1; i < len(p.expiry); i++ {
		if p.expiry.Less(i, (i-1)/2) {
			t.Fatalf("heap out of order at %d", i)
		}
	}
	_ = heap.Interface(&p.expiry)
}
