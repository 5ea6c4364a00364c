package dhcp4

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/bpf"

	"github.com/homerouter/homerouter/state"
)

var (
	clientMAC = net.HardwareAddr{0x02, 0x77, 0, 0, 0, 0x01}
	t0        = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	broadcast = netip.MustParseAddr("255.255.255.255")
	errStop   = errors.New("test clock ran out")
)

// sent is one message the client sent, at fake time at.
type sent struct {
	at  time.Duration // since t0
	dst netip.Addr
	msg *dhcpv4.DHCPv4
}

// fakeNet is a Conn with a fake clock: Receive never blocks, it moves the
// clock to the deadline. Replies come from reply, a fake server.
type fakeNet struct {
	now   time.Time
	until time.Time // Receive fails with errStop past this
	sent  []sent
	queue []*dhcpv4.DHCPv4
	reply func(m *dhcpv4.DHCPv4, dst netip.Addr, now time.Time) []*dhcpv4.DHCPv4
	mac   net.HardwareAddr // the client's; default clientMAC
}

func (f *fakeNet) Send(m *dhcpv4.DHCPv4, dst netip.Addr) error {
	f.sent = append(f.sent, sent{f.now.Sub(t0), dst, m})
	if f.reply != nil {
		f.queue = append(f.queue, f.reply(m, dst, f.now)...)
	}
	return nil
}

func (f *fakeNet) Receive(ctx context.Context, deadline time.Time) (*dhcpv4.DHCPv4, error) {
	if len(f.queue) > 0 {
		m := f.queue[0]
		f.queue = f.queue[1:]
		return m, nil
	}
	if deadline.After(f.until) {
		f.now = f.until
		return nil, errStop
	}
	if deadline.After(f.now) {
		f.now = deadline
	}
	return nil, ErrTimeout
}

// fakeServer answers like a simple DHCP server at 10.77.0.1 with
// 2-minute leases, while up says so.
type fakeServer struct {
	up   func(now time.Time) bool
	nak  func(now time.Time) bool
	addr netip.Addr
}

func (s fakeServer) reply(m *dhcpv4.DHCPv4, dst netip.Addr, now time.Time) []*dhcpv4.DHCPv4 {
	if s.up != nil && !s.up(now) {
		return nil
	}
	var t dhcpv4.MessageType
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		t = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		t = dhcpv4.MessageTypeAck
		if s.nak != nil && s.nak(now) {
			t = dhcpv4.MessageTypeNak
		}
	default:
		return nil
	}
	addr := s.addr
	if !addr.IsValid() {
		addr = netip.MustParseAddr("10.77.0.150")
	}
	r, err := dhcpv4.NewReplyFromRequest(m,
		dhcpv4.WithMessageType(t),
		dhcpv4.WithYourIP(addr.AsSlice()),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 77, 0, 1))),
		dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(10, 77, 0, 1))),
		dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(10, 77, 0, 1))),
		dhcpv4.WithLeaseTime(120),
	)
	if err != nil {
		panic(err)
	}
	return []*dhcpv4.DHCPv4{r}
}

// run runs a client on f until the fake clock reaches t0+d, and returns
// the leases it handed out and its last status.
func run(t *testing.T, f *fakeNet, lease state.DHCPv4Lease, d time.Duration) (leases []state.DHCPv4Lease, status state.DHCPv4Status) {
	t.Helper()
	f.now, f.until = t0, t0.Add(d)
	mac := f.mac
	if mac == nil {
		mac = clientMAC
	}
	c := NewClient(f, Config{
		HardwareAddr: mac,
		Hostname:     "homerouter",
		Now:          func() time.Time { return f.now },
		Rand:         rand.New(rand.NewPCG(1, 2)),
		OnLease:      func(l state.DHCPv4Lease) { leases = append(leases, l) },
		OnStatus:     func(s state.DHCPv4Status) { status = s },
	}, lease)
	if err := c.Run(context.Background()); !errors.Is(err, errStop) {
		t.Fatalf("Run = %v, want the fake clock to run out", err)
	}
	return leases, status
}

// kinds summarises sent messages as "TYPE dst @seconds".
func kind(s sent) string {
	dst := "broadcast"
	if s.dst != broadcast {
		dst = s.dst.String()
	}
	return s.msg.MessageType().String() + " " + dst
}

func TestRenewAtT1Unicast(t *testing.T) {
	f := &fakeNet{}
	f.reply = fakeServer{}.reply
	leases, status := run(t, f, state.DHCPv4Lease{}, 5*time.Minute)

	if len(leases) < 3 {
		t.Fatalf("got %d leases in 5 minutes of 2-minute leases", len(leases))
	}
	l := leases[0]
	if l.Addr != netip.MustParsePrefix("10.77.0.150/24") || l.Router != netip.MustParseAddr("10.77.0.1") ||
		l.ServerID != netip.MustParseAddr("10.77.0.1") || time.Duration(l.T1) != time.Minute || time.Duration(l.T2) != 105*time.Second {
		t.Errorf("first lease %+v", l)
	}
	// DISCOVER, REQUEST (broadcast, at 0), then at T1 = 60 s a REQUEST
	// unicast to the server, with ciaddr and without server identifier.
	want := []string{"DISCOVER broadcast", "REQUEST broadcast", "REQUEST 10.77.0.1", "REQUEST 10.77.0.1"}
	for i, w := range want {
		if got := kind(f.sent[i]); got != w {
			t.Errorf("message %d = %s, want %s", i, got, w)
		}
	}
	renew := f.sent[2]
	if renew.at != time.Minute {
		t.Errorf("renewal sent at %v, want at T1 = 1m0s", renew.at)
	}
	if !renew.msg.ClientIPAddr.Equal(net.IPv4(10, 77, 0, 150)) || renew.msg.ServerIdentifier() != nil || renew.msg.RequestedIPAddress() != nil {
		t.Errorf("renewal: ciaddr %v, server id %v, requested %v; want ciaddr only", renew.msg.ClientIPAddr, renew.msg.ServerIdentifier(), renew.msg.RequestedIPAddress())
	}
	first := f.sent[0].msg
	if first.HostName() != "homerouter" || string(first.GetOneOption(dhcpv4.OptionClientIdentifier)) != string(append([]byte{1}, clientMAC...)) {
		t.Errorf("DISCOVER hostname %q, client id %x", first.HostName(), first.GetOneOption(dhcpv4.OptionClientIdentifier))
	}
	if !first.IsOptionRequested(dhcpv4.OptionClasslessStaticRoute) || !first.IsOptionRequested(dhcpv4.OptionRenewTimeValue) {
		t.Errorf("DISCOVER parameter request list lacks 121 or 58: %v", first.ParameterRequestList())
	}
	if status.State != "bound" || status.Retained {
		t.Errorf("status %+v, want bound", status)
	}
}

// TestOutage: the server goes away after the first ACK. The client renews
// unicast from T1, rebinds by broadcast from T2, keeps the address past
// expiry, keeps trying, and takes a new lease when the server returns.
func TestOutage(t *testing.T) {
	back := t0.Add(10 * time.Minute)
	f := &fakeNet{}
	f.reply = fakeServer{up: func(now time.Time) bool { return now.Equal(t0) || !now.Before(back) }}.reply

	leases, status := run(t, f, state.DHCPv4Lease{}, 9*time.Minute)
	if len(leases) != 1 {
		t.Fatalf("leases %+v, want only the first (no drop)", leases)
	}
	if !status.Retained || status.Addr != netip.MustParsePrefix("10.77.0.150/24") || status.State != "selecting" {
		t.Errorf("status after expiry %+v, want selecting with 10.77.0.150/24 retained", status)
	}
	// Before expiry: renew unicast from T1, rebind by broadcast from T2.
	// From expiry on (INIT, lease retained): an INIT-REBOOT REQUEST for
	// the retained address and a DISCOVER, in pairs that back off.
	var renews, rebinds, after []time.Duration
	var afterKinds []string
	for _, s := range f.sent[2:] {
		switch k := kind(s); {
		case s.at >= 2*time.Minute:
			after = append(after, s.at)
			afterKinds = append(afterKinds, k)
			if !s.msg.RequestedIPAddress().Equal(net.IPv4(10, 77, 0, 150)) {
				t.Errorf("%s at %v does not ask for the retained address", k, s.at)
			}
		case k == "REQUEST 10.77.0.1":
			renews = append(renews, s.at)
		case k == "REQUEST broadcast":
			rebinds = append(rebinds, s.at)
		default:
			t.Errorf("unexpected %s at %v", k, s.at)
		}
	}
	if len(renews) == 0 || renews[0] != time.Minute || renews[len(renews)-1] >= 105*time.Second {
		t.Errorf("renewals at %v, want from T1 (1m0s) until T2 (1m45s)", renews)
	}
	if len(rebinds) == 0 || rebinds[0] != 105*time.Second {
		t.Errorf("rebinds at %v, want from T2 (1m45s) until expiry (2m0s)", rebinds)
	}
	if len(after) < 5 || after[0] != 2*time.Minute {
		t.Fatalf("messages after expiry at %v, want from expiry (2m0s) on", after)
	}
	for i := range after {
		want := "REQUEST broadcast"
		if i%2 == 1 {
			want = "DISCOVER broadcast"
		}
		if afterKinds[i] != want {
			t.Errorf("message %d after expiry is %s, want %s", i, afterKinds[i], want)
		}
		// Each REQUEST is followed at once by a DISCOVER; the pairs back off.
		switch {
		case i%2 == 1 && after[i] != after[i-1]:
			t.Errorf("DISCOVER %d after expiry came %v after its REQUEST, want at once", i, after[i]-after[i-1])
		case i%2 == 0 && i > 0:
			if gap := after[i] - after[i-2]; gap < 3*time.Second || gap > 65*time.Second {
				t.Errorf("pair %d after expiry came %v after the previous one, want 4 s ±1 doubling to 64 s ±1", i/2, gap)
			}
		}
	}

	// Now let the server come back.
	f2 := &fakeNet{reply: f.reply}
	leases, status = run(t, f2, state.DHCPv4Lease{}, 12*time.Minute)
	var acks int
	for _, l := range leases {
		if !l.Acked.Before(back) {
			acks++
			if l.Acked.Sub(back) > 66*time.Second {
				t.Errorf("first ACK after the server returned came %v later", l.Acked.Sub(back))
			}
			break
		}
	}
	if acks == 0 || status.Retained {
		t.Errorf("no new lease after the server returned; status %+v", status)
	}
}

func TestNakDropsLease(t *testing.T) {
	f := &fakeNet{}
	f.reply = fakeServer{nak: func(now time.Time) bool { return now.Equal(t0.Add(time.Minute)) }}.reply
	leases, _ := run(t, f, state.DHCPv4Lease{}, 70*time.Second)
	if len(leases) < 2 || leases[0].Addr.Bits() != 24 || leases[1].Valid() {
		t.Fatalf("leases %+v, want a lease then the zero lease (NAK at T1)", leases)
	}
	var after []sent
	for _, s := range f.sent {
		if s.at > time.Minute || (s.at == time.Minute && s.msg.MessageType() == dhcpv4.MessageTypeDiscover) {
			after = append(after, s)
		}
	}
	// The server NAKs only at 1m0s; 1 s later the client starts over.
	if len(after) == 0 || kind(after[0]) != "DISCOVER broadcast" || after[0].at != 61*time.Second {
		t.Fatalf("after the NAK the client sent %v, want a DISCOVER 1 s later", after)
	}
	last := after[0]
	if last.msg.RequestedIPAddress() != nil {
		t.Errorf("after a NAK the client still asks for %v", last.msg.RequestedIPAddress())
	}
}

func persisted(acked time.Time) state.DHCPv4Lease {
	return state.DHCPv4Lease{
		Addr:     netip.MustParsePrefix("10.77.0.150/24"),
		Router:   netip.MustParseAddr("10.77.0.1"),
		ServerID: netip.MustParseAddr("10.77.0.1"),
		Duration: state.Duration(2 * time.Minute),
		T1:       state.Duration(time.Minute),
		T2:       state.Duration(105 * time.Second),
		Acked:    acked,
		Expiry:   acked.Add(2 * time.Minute),
	}
}

func TestInitReboot(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lease    state.DHCPv4Lease
		serverUp bool
		run      time.Duration
		want     []string // kinds of the first messages
		wantAck  bool
	}{
		{
			name:     "server answers",
			lease:    persisted(t0.Add(-time.Hour)),
			serverUp: true,
			run:      time.Second,
			want:     []string{"REQUEST broadcast"},
			wantAck:  true,
		},
		{
			name:  "no answer, lease still valid: use it and renew at T1",
			lease: persisted(t0.Add(-30 * time.Second)),
			run:   31 * time.Second,
			want:  []string{"REQUEST broadcast", "REQUEST broadcast", "REQUEST broadcast", "REQUEST broadcast", "REQUEST 10.77.0.1"},
		},
		{
			name:  "no answer, lease expired: keep it, look for a server",
			lease: persisted(t0.Add(-time.Hour)),
			run:   2 * time.Minute,
			want:  []string{"REQUEST broadcast", "DISCOVER broadcast", "REQUEST broadcast", "DISCOVER broadcast", "REQUEST broadcast", "DISCOVER broadcast"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeNet{}
			f.reply = fakeServer{up: func(time.Time) bool { return tc.serverUp }}.reply
			leases, status := run(t, f, tc.lease, tc.run)
			if len(f.sent) < len(tc.want) {
				t.Fatalf("sent %d messages, want at least %d", len(f.sent), len(tc.want))
			}
			for i, w := range tc.want {
				if got := kind(f.sent[i]); got != w {
					t.Errorf("message %d at %v = %s, want %s", i, f.sent[i].at, got, w)
				}
			}
			reboot := f.sent[0].msg
			if !reboot.RequestedIPAddress().Equal(net.IPv4(10, 77, 0, 150)) || reboot.ServerIdentifier() != nil || !reboot.ClientIPAddr.IsUnspecified() {
				t.Errorf("INIT-REBOOT REQUEST: requested %v, server id %v, ciaddr %v", reboot.RequestedIPAddress(), reboot.ServerIdentifier(), reboot.ClientIPAddr)
			}
			if got := len(leases) > 0; got != tc.wantAck {
				t.Errorf("new lease: %v, want %v", got, tc.wantAck)
			}
			for _, l := range leases {
				if !l.Valid() {
					t.Errorf("the persisted lease was dropped without a NAK")
				}
			}
			if status.Addr != tc.lease.Addr {
				t.Errorf("status addr %v, want the persisted %v in use", status.Addr, tc.lease.Addr)
			}
		})
	}
}

// TestNakStorm: a server that offers and then always NAKs does not make
// the client spin; it backs off.
func TestNakStorm(t *testing.T) {
	f := &fakeNet{}
	f.reply = fakeServer{nak: func(time.Time) bool { return true }}.reply
	run(t, f, state.DHCPv4Lease{}, 10*time.Minute)
	var discovers []time.Duration
	for _, s := range f.sent {
		if s.msg.MessageType() == dhcpv4.MessageTypeDiscover {
			discovers = append(discovers, s.at)
		}
	}
	if len(discovers) > 20 {
		t.Errorf("%d DISCOVERs in 10 minutes of NAKs: %v", len(discovers), discovers)
	}
	if n := len(discovers); n < 3 || discovers[n-1]-discovers[n-2] != maxRetransmit {
		t.Errorf("DISCOVERs at %v, want the gap to grow to %v", discovers, maxRetransmit)
	}
}

// TestPort68Filter runs the BPF program on hand-made IPv4 datagrams.
func TestPort68Filter(t *testing.T) {
	vm, err := bpf.NewVM(port68)
	if err != nil {
		t.Fatal(err)
	}
	ipUDP := func(proto byte, frag uint16, ihl int, dport uint16) []byte {
		b := make([]byte, ihl*4+8)
		b[0] = 0x40 | byte(ihl)
		b[6], b[7] = byte(frag>>8), byte(frag)
		b[9] = proto
		b[ihl*4+2], b[ihl*4+3] = byte(dport>>8), byte(dport)
		return b
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"UDP to 68", ipUDP(17, 0, 5, 68), true},
		{"UDP to 68 with IP options", ipUDP(17, 0, 6, 68), true},
		{"UDP to 67", ipUDP(17, 0, 5, 67), false},
		{"TCP to 68", ipUDP(6, 0, 5, 68), false},
		{"later fragment", ipUDP(17, 0x0010, 5, 68), false},
		{"first fragment, more to come", ipUDP(17, 0x2000, 5, 68), true},
	} {
		n, err := vm.Run(tc.pkt)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := n > 0; got != tc.want {
			t.Errorf("%s: accepted %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLeaseFromAck(t *testing.T) {
	ack := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		m, err := dhcpv4.New(append([]dhcpv4.Modifier{
			dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
			dhcpv4.WithYourIP(net.IPv4(10, 77, 0, 150)),
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 77, 0, 1))),
			dhcpv4.WithLeaseTime(120),
		}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		ack     *dhcpv4.DHCPv4
		wantErr bool
		check   func(state.DHCPv4Lease) bool
	}{
		{name: "plain", ack: ack(), check: func(l state.DHCPv4Lease) bool {
			return l.Addr == netip.MustParsePrefix("10.77.0.150/24") && time.Duration(l.T1) == time.Minute
		}},
		{name: "loopback address", ack: ack(dhcpv4.WithYourIP(net.IPv4(127, 0, 0, 1))), wantErr: true},
		{name: "no address", ack: ack(dhcpv4.WithYourIP(net.IPv4zero)), wantErr: true},
		{name: "no server identifier", ack: ack(dhcpv4.WithoutOption(dhcpv4.OptionServerIdentifier), dhcpv4.WithServerIP(net.IPv4(10, 77, 0, 1))), wantErr: true},
		{name: "mask 0.0.0.0 means none", ack: ack(dhcpv4.WithNetmask(net.CIDRMask(0, 32))), check: func(l state.DHCPv4Lease) bool {
			return l.Addr.Bits() == 32
		}},
		{name: "router 0.0.0.0 ignored", ack: ack(dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4zero, net.IPv4(10, 77, 0, 1)))), check: func(l state.DHCPv4Lease) bool {
			return l.Router == netip.MustParseAddr("10.77.0.1")
		}},
		{name: "1 s lease raised to the minimum", ack: ack(dhcpv4.WithLeaseTime(1)), check: func(l state.DHCPv4Lease) bool {
			return time.Duration(l.Duration) == minLeaseTime && l.T1 < l.T2
		}},
		{name: "T2 before T1: defaults", ack: ack(dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(100*time.Second)), dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(50*time.Second))), check: func(l state.DHCPv4Lease) bool {
			return time.Duration(l.T1) == time.Minute && time.Duration(l.T2) == 105*time.Second
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := leaseFromAck(tc.ack, t0)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && !tc.check(l) {
				t.Errorf("lease %+v", l)
			}
		})
	}
}

// TestUnusablePersistedLease: a lease file with nonsense timers keeps its
// address in use, but the client starts over in INIT rather than trusting
// its timers.
func TestUnusablePersistedLease(t *testing.T) {
	l := persisted(t0.Add(-10 * time.Second))
	l.T1 = 0
	f := &fakeNet{}
	f.reply = fakeServer{up: func(time.Time) bool { return false }}.reply
	leases, status := run(t, f, l, 10*time.Second)
	if len(leases) != 0 || status.Addr != l.Addr || status.State != "selecting" {
		t.Errorf("leases %v, status %+v; want the address kept, selecting", leases, status)
	}
	if got := kind(f.sent[0]); got != "REQUEST broadcast" || kind(f.sent[1]) != "DISCOVER broadcast" {
		t.Errorf("first messages %s, %s; want REQUEST then DISCOVER (INIT with a retained lease)", got, kind(f.sent[1]))
	}
}

// TestRequestingFallsBack: an OFFER whose REQUEST is never answered sends
// the client back to DISCOVER after four tries.
func TestRequestingFallsBack(t *testing.T) {
	f := &fakeNet{}
	f.reply = func(m *dhcpv4.DHCPv4, dst netip.Addr, now time.Time) []*dhcpv4.DHCPv4 {
		if m.MessageType() != dhcpv4.MessageTypeDiscover {
			return nil
		}
		return fakeServer{}.reply(m, dst, now)
	}
	run(t, f, state.DHCPv4Lease{}, 2*time.Minute)
	var kinds []string
	for _, s := range f.sent[:6] {
		kinds = append(kinds, kind(s))
	}
	want := "DISCOVER broadcast,REQUEST broadcast,REQUEST broadcast,REQUEST broadcast,REQUEST broadcast,DISCOVER broadcast"
	if got := strings.Join(kinds, ","); got != want {
		t.Errorf("messages %s\nwant %s", got, want)
	}
}
