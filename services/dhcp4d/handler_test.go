package dhcp4d

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// MACs of the test clients.
const (
	macA = "02:77:00:00:00:0a"
	macB = "02:77:00:00:00:0b"
	macC = "02:77:00:00:00:0c"
	macD = "02:77:00:00:00:0d"
	macS = "02:77:00:00:00:12" // has a static lease
)

// step is one request in a scenario: after the clock moves on by after,
// the request gets reply (see summary) and changes the table or not.
type step struct {
	after   time.Duration
	req     func(t testing.TB) *dhcpv4.DHCPv4
	want    string
	changed bool
}

// Shorthands for the usual requests.
func discover(mac string, mods ...dhcpv4.Modifier) func(testing.TB) *dhcpv4.DHCPv4 {
	return func(t testing.TB) *dhcpv4.DHCPv4 { return msg(t, dhcpv4.MessageTypeDiscover, mac, mods...) }
}

// selecting is a REQUEST for a, following our OFFER.
func selecting(mac, a string, mods ...dhcpv4.Modifier) func(testing.TB) *dhcpv4.DHCPv4 {
	return request(mac, append([]dhcpv4.Modifier{sid(ourSID), reqIP(a)}, mods...)...)
}

func request(mac string, mods ...dhcpv4.Modifier) func(testing.TB) *dhcpv4.DHCPv4 {
	return func(t testing.TB) *dhcpv4.DHCPv4 { return msg(t, dhcpv4.MessageTypeRequest, mac, mods...) }
}

func release(mac, a string, mods ...dhcpv4.Modifier) func(testing.TB) *dhcpv4.DHCPv4 {
	return func(t testing.TB) *dhcpv4.DHCPv4 {
		return msg(t, dhcpv4.MessageTypeRelease, mac, append([]dhcpv4.Modifier{sid(ourSID), ciaddr(a)}, mods...)...)
	}
}

func decline(mac, a string) func(testing.TB) *dhcpv4.DHCPv4 {
	return func(t testing.TB) *dhcpv4.DHCPv4 {
		return msg(t, dhcpv4.MessageTypeDecline, mac, sid(ourSID), reqIP(a))
	}
}

// bind is DISCOVER and REQUEST for the address offered, which must be a.
func bind(mac, a string, mods ...dhcpv4.Modifier) []step {
	return []step{
		{req: discover(mac, mods...), want: "OFFER " + a},
		{req: selecting(mac, a, mods...), want: "ACK " + a, changed: true},
	}
}

func steps(groups ...[]step) []step {
	var all []step
	for _, g := range groups {
		all = append(all, g...)
	}
	return all
}

// small is a pool of three addresses: .100 to .102.
var small = Config{RangeStart: addr("192.168.42.100"), RangeEnd: addr("192.168.42.102")}

func TestServe(t *testing.T) {
	one := Config{RangeStart: addr("192.168.42.100"), RangeEnd: addr("192.168.42.100")}
	withStatic := func(c Config, a, name string) Config {
		c.StaticLeases = []StaticLease{{HardwareAddr: macS, Addr: addr(a), Hostname: name}}
		return c
	}
	for _, tt := range []struct {
		name  string
		cfg   Config
		link  Link
		steps []step
		// leases, when set, checks the table at the end.
		leases func(t *testing.T, ls []Lease)
	}{
		{
			name: "default pool starts after the router",
			steps: steps(
				bind(macA, "192.168.42.2"),
				bind(macB, "192.168.42.3"),
			),
		},
		{
			name: "pool bounds, router address inside",
			cfg:  Config{RangeStart: addr("192.168.42.1"), RangeEnd: addr("192.168.42.2")},
			steps: steps(
				bind(macA, "192.168.42.2"),
				[]step{{req: discover(macB), want: "-"}},
			),
		},
		{
			name: "/30 has one client address",
			link: Link{Addr: netip.MustParsePrefix("192.168.42.1/30")},
			steps: steps(
				bind(macA, "192.168.42.2"),
				[]step{{req: discover(macB), want: "-"}},
			),
		},
		{
			name: "pool end is included, then the pool is full",
			cfg:  small,
			steps: steps(
				bind(macA, "192.168.42.100"),
				bind(macB, "192.168.42.101"),
				bind(macC, "192.168.42.102"),
				[]step{{req: discover(macD), want: "-"}},
			),
		},
		{
			name: "renewing and rebinding extend the lease",
			cfg:  small,
			steps: steps(
				bind(macA, "192.168.42.100"),
				[]step{
					{after: 30 * time.Minute, req: request(macA, ciaddr("192.168.42.100")), want: "ACK 192.168.42.100", changed: true},
					{after: 55 * time.Minute, req: request(macA, ciaddr("192.168.42.100"), broadcastBit()), want: "ACK 192.168.42.100", changed: true},
					// 85 min after the first ACK: expired had it not been renewed.
					{req: discover(macB), want: "OFFER 192.168.42.101"},
				},
			),
		},
		{
			name: "current address wins over the requested one",
			cfg:  small,
			steps: steps(
				bind(macA, "192.168.42.100"),
				[]step{{req: discover(macA, reqIP("192.168.42.102")), want: "OFFER 192.168.42.100"}},
			),
		},
		{
			name: "requested address if free",
			cfg:  small,
			steps: []step{
				{req: discover(macA, reqIP("192.168.42.102")), want: "OFFER 192.168.42.102"},
				// held by A's offer
				{req: discover(macB, reqIP("192.168.42.102")), want: "OFFER 192.168.42.100"},
				// outside the pool, or the router's
				{req: discover(macC, reqIP("192.168.42.7")), want: "OFFER 192.168.42.101"},
				{req: discover(macD, reqIP("192.168.42.1")), want: "-"},
			},
		},
		{
			name: "previous address after expiry, unused addresses first for others",
			cfg:  small,
			steps: steps(
				bind(macA, "192.168.42.100"),
				[]step{
					{after: 2 * time.Hour, req: discover(macB), want: "OFFER 192.168.42.101"},
					{req: discover(macA), want: "OFFER 192.168.42.100"},
				},
			),
		},
		{
			name: "expired lease reused when the pool is full, live ones never",
			cfg:  one,
			steps: steps(
				bind(macA, "192.168.42.100"),
				[]step{
					{after: 59 * time.Minute, req: discover(macB), want: "-"},
					{after: time.Minute, req: discover(macB), want: "OFFER 192.168.42.100"},
					{req: selecting(macB, "192.168.42.100"), want: "ACK 192.168.42.100", changed: true},
					// A's record is gone: it starts over and finds the pool full.
					{req: discover(macA), want: "-"},
					{req: request(macA, ciaddr("192.168.42.100")), want: "NAK"},
				},
			),
			leases: func(t *testing.T, ls []Lease) {
				if len(ls) != 1 || ls[0].HardwareAddr != macB {
					t.Errorf("leases %+v, want only B's", ls)
				}
			},
		},
		{
			name: "longest-expired lease reused first",
			cfg:  small,
			steps: steps(
				bind(macA, "192.168.42.100"),
				[]step{{after: 10 * time.Minute}},
				bind(macB, "192.168.42.101"),
				[]step{{after: 10 * time.Minute}},
				bind(macC, "192.168.42.102"),
				[]step{{after: 10 * time.Minute, req: release(macA, "192.168.42.100"), changed: true, want: "-"}},
				// A released at 30 min, B expires at 70 min, C at 80.
				[]step{{after: 45 * time.Minute, req: discover(macD), want: "OFFER 192.168.42.100"}},
				[]step{{after: 30 * time.Minute, req: discover(macD), want: "OFFER 192.168.42.100"}},
				[]step{{req: discover("02:77:00:00:00:0e"), want: "OFFER 192.168.42.101"}},
			),
		},
		{
			name: "static lease inside the pool is never handed to others",
			cfg:  withStatic(Config{RangeStart: addr("192.168.42.100"), RangeEnd: addr("192.168.42.101")}, "192.168.42.100", "printer"),
			steps: steps(
				bind(macA, "192.168.42.101"),
				[]step{
					{req: discover(macB, reqIP("192.168.42.100")), want: "-"},
					{req: request(macB, reqIP("192.168.42.100")), want: "NAK"},
				},
				bind(macS, "192.168.42.100", hostname("android-1234")),
			),
			leases: func(t *testing.T, ls []Lease) {
				if ls[0].Hostname != "printer" || !ls[0].Static || !ls[0].Expiry.Equal(t0.Add(time.Hour)) {
					t.Errorf("static lease %+v, want hostname printer expiring at %v", ls[0], t0.Add(time.Hour))
				}
			},
		},
		{
			name: "static lease outside the pool",
			cfg:  withStatic(small, "192.168.42.50", ""),
			steps: steps(
				bind(macS, "192.168.42.50", hostname("my-phone")),
				[]step{
					// its own address only
					{req: request(macS, reqIP("192.168.42.101")), want: "NAK"},
					{req: request(macS, ciaddr("192.168.42.50")), want: "ACK 192.168.42.50", changed: true},
					{req: request(macA, reqIP("192.168.42.50")), want: "NAK"},
				},
			),
			leases: func(t *testing.T, ls []Lease) {
				if ls[0].Hostname != "my-phone" {
					t.Errorf("static lease without a hostname: %+v, want the client's hostname", ls[0])
				}
			},
		},
		{
			name: "INIT-REBOOT",
			cfg:  small,
			steps: steps(
				bind(macA, "192.168.42.100"),
				bind(macB, "192.168.42.101"),
				[]step{
					{req: request(macA, reqIP("192.168.42.100")), want: "ACK 192.168.42.100", changed: true},
					{req: request(macA, reqIP("10.0.0.5")), want: "NAK"},
					{req: request(macA, reqIP("192.168.42.255")), want: "NAK"},
					{req: request(macA, reqIP("192.168.42.101")), want: "NAK"},
					{req: request(macA, reqIP("192.168.42.1")), want: "NAK"},
					// no record of C: silence, unless the address is free
					// in the pool (the table was lost)
					{req: request(macC, reqIP("192.168.42.200")), want: "-"},
					{req: request(macC, reqIP("192.168.42.101")), want: "NAK"},
					{req: request(macC, reqIP("192.168.42.102")), want: "ACK 192.168.42.102", changed: true},
				},
			),
		},
		{
			name: "REQUEST for another server is ignored",
			cfg:  one,
			steps: []step{
				{req: discover(macA), want: "OFFER 192.168.42.100"},
				{req: request(macA, sid(otherID), reqIP("10.9.9.9")), want: "-"},
				// the client took another offer: ours is free again
				{req: discover(macB), want: "OFFER 192.168.42.100"},
				// B's offer runs out: nobody else's REQUEST frees it
				{req: request(macA, sid(otherID), reqIP("10.9.9.9")), want: "-"},
				{req: discover(macC), want: "-"},
				{after: offerHold, req: discover(macC), want: "OFFER 192.168.42.100"},
			},
		},
		{
			name: "SELECTING an address we did not offer",
			cfg:  small,
			steps: steps(
				bind(macA, "192.168.42.100"),
				[]step{
					{req: selecting(macB, "192.168.42.100"), want: "NAK"},
					{req: selecting(macB, "10.0.0.1"), want: "NAK"},
				},
			),
		},
		{
			name: "DECLINE sets the address aside",
			cfg:  Config{RangeStart: addr("192.168.42.100"), RangeEnd: addr("192.168.42.101")},
			steps: steps(
				bind(macA, "192.168.42.100"),
				[]step{
					{req: decline(macB, "192.168.42.100"), want: "-"}, // not B's
					{req: decline(macA, "192.168.42.100"), want: "-", changed: true},
				},
				bind(macA, "192.168.42.101"),
				[]step{
					{after: declineHold - time.Second, req: discover(macB), want: "-"},
					{after: time.Second, req: discover(macB), want: "OFFER 192.168.42.100"},
				},
			),
		},
		{
			name: "RELEASE",
			cfg:  one,
			steps: steps(
				bind(macA, "192.168.42.100"),
				[]step{
					// a live lease is not freed by a foreign REQUEST
					{req: request(macA, sid(otherID), reqIP("10.9.9.9")), want: "-"},
					{req: release(macB, "192.168.42.100"), want: "-"},
					{req: release(macA, "192.168.42.101"), want: "-"},
					{req: release(macA, "192.168.42.100", sid(otherID)), want: "-"},
					{req: discover(macB), want: "-"},
					{req: release(macA, "192.168.42.100"), want: "-", changed: true},
					{req: release(macA, "192.168.42.100"), want: "-"},
					{req: discover(macB), want: "OFFER 192.168.42.100"},
				},
			),
		},
		{
			name: "client identifier over chaddr",
			cfg:  small,
			steps: steps(
				bind(macA, "192.168.42.100", clientID(0xff, 1, 2, 3)),
				// same MAC, another identifier: another client (a VM, a
				// second OS)
				bind(macA, "192.168.42.101", clientID(0xff, 9, 9, 9)),
				// same identifier, another MAC (a dock, a USB NIC)
				[]step{{req: discover(macB, clientID(0xff, 1, 2, 3)), want: "OFFER 192.168.42.100"}},
				// no identifier: the MAC
				bind(macA, "192.168.42.102"),
			),
			leases: func(t *testing.T, ls []Lease) {
				if ls[0].ClientID != "ff010203" || ls[2].ClientID != "" || ls[2].HardwareAddr != macA {
					t.Errorf("leases %+v", ls)
				}
			},
		},
		{
			name: "hostname made a DNS label, kept when not sent again",
			cfg:  small,
			steps: steps(
				bind(macA, "192.168.42.100", hostname("Bob's iPhone.local")),
				[]step{{after: 30 * time.Minute, req: request(macA, ciaddr("192.168.42.100")), want: "ACK 192.168.42.100", changed: true}},
			),
			leases: func(t *testing.T, ls []Lease) {
				want := Lease{
					Addr:         addr("192.168.42.100"),
					HardwareAddr: macA,
					Hostname:     "Bob-s-iPhone",
					Expiry:       t0.Add(90 * time.Minute),
					LastSeen:     t0.Add(30 * time.Minute),
				}
				if diff := cmp.Diff([]Lease{want}, ls, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
					t.Errorf("leases: -want +got:\n%s", diff)
				}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.link.Addr.IsValid() {
				tt.link = lan
			}
			h, clk := newTestHandler(t, tt.cfg, tt.link, nil)
			for i, s := range tt.steps {
				clk.t = clk.t.Add(s.after)
				if s.req == nil {
					continue
				}
				req := s.req(t)
				reply, changed := h.Serve(req)
				if got := summary(reply); got != s.want || changed != s.changed {
					t.Fatalf("step %d (%s at +%v): got %s (changed %v), want %s (changed %v)",
						i, req.MessageType(), clk.t.Sub(t0), got, changed, s.want, s.changed)
				}
				if reply != nil {
					checkReply(t, h, req, reply)
				}
				checkTable(t, h)
			}
			if h.Dropped() != 0 {
				t.Errorf("dropped %d", h.Dropped())
			}
			if tt.leases != nil {
				tt.leases(t, h.Leases())
			}
		})
	}
}

// checkReply checks what every reply must be, whatever the request.
func checkReply(t testing.TB, h *Handler, req, reply *dhcpv4.DHCPv4) {
	t.Helper()
	if reply.OpCode != dhcpv4.OpcodeBootReply || reply.TransactionID != req.TransactionID ||
		reply.ClientHWAddr.String() != req.ClientHWAddr.String() || reply.HWType != req.HWType {
		t.Fatalf("reply header does not match the request:\n%v\n%v", req, reply)
	}
	if got := addr4(reply.ServerIdentifier()); got != h.server {
		t.Fatalf("server identifier %v", got)
	}
	if !cmp.Equal(req.Options.Get(dhcpv4.OptionClientIdentifier), reply.Options.Get(dhcpv4.OptionClientIdentifier)) {
		t.Fatalf("client identifier not copied")
	}
	yi := addr4(reply.YourIPAddr)
	switch reply.MessageType() {
	case dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeAck:
		if req.MessageType() == dhcpv4.MessageTypeInform {
			if !yi.IsUnspecified() || reply.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
				t.Fatalf("INFORM answered with an address or lease time: %v", reply)
			}
			break
		}
		if !h.subnet.Contains(yi) || yi == h.server || yi == h.subnet.Addr() || yi == h.bcast {
			t.Fatalf("reply gives %v", yi)
		}
		if reply.IPAddressLeaseTime(0) != h.duration {
			t.Fatalf("lease time %v", reply.IPAddressLeaseTime(0))
		}
	case dhcpv4.MessageTypeNak:
		if !yi.IsUnspecified() || !reply.IsBroadcast() {
			t.Fatalf("NAK with yiaddr %v, broadcast %v", yi, reply.IsBroadcast())
		}
	default:
		t.Fatalf("reply of type %v", reply.MessageType())
	}
	again, err := dhcpv4.FromBytes(reply.ToBytes())
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	if diff := cmp.Diff(reply.Options, again.Options); diff != "" {
		t.Fatalf("reply options round trip: -sent +parsed:\n%s", diff)
	}
}

func TestDropped(t *testing.T) {
	h, _ := newTestHandler(t, small, lan, nil)
	good := func(t testing.TB) *dhcpv4.DHCPv4 { return msg(t, dhcpv4.MessageTypeDiscover, macA) }
	for _, tt := range []struct {
		name   string
		mutate func(m *dhcpv4.DHCPv4)
	}{
		{"nil", nil},
		{"BOOTREPLY", func(m *dhcpv4.DHCPv4) { m.OpCode = dhcpv4.OpcodeBootReply }},
		{"chaddr too short for Ethernet", func(m *dhcpv4.DHCPv4) { m.ClientHWAddr = m.ClientHWAddr[:4] }},
		{"no chaddr", func(m *dhcpv4.DHCPv4) { m.ClientHWAddr = nil }},
		{"zero chaddr, no client id", func(m *dhcpv4.DHCPv4) { m.ClientHWAddr = make([]byte, 6) }},
		{"BOOTP", func(m *dhcpv4.DHCPv4) { m.Options.Del(dhcpv4.OptionDHCPMessageType) }},
		{"message type of 2 bytes", func(m *dhcpv4.DHCPv4) { m.Options[53] = []byte{1, 1} }},
		{"OFFER from a client", func(m *dhcpv4.DHCPv4) { m.Options[53] = []byte{2} }},
		{"unknown message type", func(m *dhcpv4.DHCPv4) { m.Options[53] = []byte{200} }},
		{"requested address of 3 bytes", func(m *dhcpv4.DHCPv4) { m.Options[50] = []byte{10, 0, 0} }},
		{"server identifier of 8 bytes", func(m *dhcpv4.DHCPv4) { m.Options[54] = make([]byte, 8) }},
		{"client identifier of 1 byte", func(m *dhcpv4.DHCPv4) { m.Options[61] = []byte{1} }},
		{"empty hostname", func(m *dhcpv4.DHCPv4) { m.Options[12] = []byte{} }},
		{"REQUEST naming no address", func(m *dhcpv4.DHCPv4) { m.Options[53] = []byte{3} }},
		{"DECLINE naming no address", func(m *dhcpv4.DHCPv4) { m.Options[53] = []byte{4} }},
		{"ciaddr of 16 bytes", func(m *dhcpv4.DHCPv4) { m.ClientIPAddr = make([]byte, 3) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var req *dhcpv4.DHCPv4
			if tt.mutate != nil {
				req = good(t)
				tt.mutate(req)
			}
			before := h.Dropped()
			if reply, changed := h.Serve(req); reply != nil || changed {
				t.Fatalf("got %s, changed %v; want it dropped", summary(reply), changed)
			}
			if h.Dropped() != before+1 {
				t.Fatalf("not counted")
			}
			checkTable(t, h)
		})
	}
	// Messages relayed from another subnet, or claiming the router's
	// or the subnet's own addresses as giaddr, are not ours, but not
	// broken either.
	for _, gi := range []string{"10.1.1.1", "192.168.42.1", "192.168.42.0", "192.168.42.255"} {
		req := good(t)
		req.GatewayIPAddr = addr(gi).AsSlice()
		before := h.Dropped()
		if reply, _ := h.Serve(req); reply != nil || h.Dropped() != before {
			t.Errorf("DISCOVER relayed by %s: got %s, dropped %d more", gi, summary(reply), h.Dropped()-before)
		}
	}
}

// TestRelayOnLink: a relay agent on lan0 itself (perfdhcp is one) gets
// lan0's leases, with giaddr kept in the replies.
func TestRelayOnLink(t *testing.T) {
	h, _ := newTestHandler(t, small, lan, nil)
	gi := giaddr("192.168.42.2")
	offer, _ := h.Serve(discover(macA, gi)(t))
	if summary(offer) != "OFFER 192.168.42.100" || offer.GatewayIPAddr.String() != "192.168.42.2" {
		t.Fatalf("relayed DISCOVER: got %s, giaddr %v", summary(offer), offer)
	}
	ack, changed := h.Serve(selecting(macA, "192.168.42.100", gi)(t))
	if summary(ack) != "ACK 192.168.42.100" || !changed || ack.GatewayIPAddr.String() != "192.168.42.2" {
		t.Fatalf("relayed REQUEST: got %s, changed %v", summary(ack), changed)
	}
	checkTable(t, h)
}
