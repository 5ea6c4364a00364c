package dhcp6

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/homerouter/homerouter/state"
)

var (
	t0         = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clientDUID = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0x77, 0, 0, 0, 1}}
	serverDUID = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0x77, 0, 0, 1, 1}}
	errStop    = errors.New("test clock ran out")
)

type sent struct {
	at  time.Duration
	dst netip.Addr
	msg *dhcpv6.Message
}

// fakeNet is a Conn with a fake clock, as in package dhcp4.
type fakeNet struct {
	now, until time.Time
	sent       []sent
	queue      []*dhcpv6.Message
	reply      func(m *dhcpv6.Message, dst netip.Addr, now time.Time) []*dhcpv6.Message
}

func (f *fakeNet) Send(m *dhcpv6.Message, dst netip.Addr) error {
	f.sent = append(f.sent, sent{f.now.Sub(t0), dst, m})
	if f.reply != nil {
		f.queue = append(f.queue, f.reply(m, dst, f.now)...)
	}
	return nil
}

func (f *fakeNet) Receive(ctx context.Context, deadline time.Time) (*dhcpv6.Message, error) {
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

// fakeServer delegates fd00:78:0:100::/56 (T1 45 s, T2 72 s, preferred
// 90 s, valid 120 s) and gives fd00:77::1234, while up.
type fakeServer struct {
	up      func(now time.Time) bool
	unicast bool                     // send the server-unicast option
	status  func(now time.Time) bool // answer RENEWs with NoBinding
	prefix  string
}

func (s fakeServer) reply(m *dhcpv6.Message, dst netip.Addr, now time.Time) []*dhcpv6.Message {
	if s.up != nil && !s.up(now) {
		return nil
	}
	t := dhcpv6.MessageTypeReply
	if m.MessageType == dhcpv6.MessageTypeSolicit {
		t = dhcpv6.MessageTypeAdvertise
	}
	r := &dhcpv6.Message{MessageType: t, TransactionID: m.TransactionID}
	r.AddOption(dhcpv6.OptClientID(m.Options.ClientID()))
	r.AddOption(dhcpv6.OptServerID(serverDUID))
	if s.status != nil && s.status(now) && m.MessageType == dhcpv6.MessageTypeRenew {
		pd := &dhcpv6.OptIAPD{IaId: IAID}
		pd.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoBinding, StatusMessage: "who are you"})
		r.AddOption(pd)
		return []*dhcpv6.Message{r}
	}
	p := s.prefix
	if p == "" {
		p = "fd00:78:0:100::/56"
	}
	_, n, _ := net.ParseCIDR(p)
	pd := &dhcpv6.OptIAPD{IaId: IAID, T1: 45 * time.Second, T2: 72 * time.Second}
	pd.Options.Add(&dhcpv6.OptIAPrefix{PreferredLifetime: 90 * time.Second, ValidLifetime: 120 * time.Second, Prefix: n})
	r.AddOption(pd)
	na := &dhcpv6.OptIANA{IaId: IAID, T1: 45 * time.Second, T2: 72 * time.Second}
	na.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("fd00:77::1234"), PreferredLifetime: 90 * time.Second, ValidLifetime: 120 * time.Second})
	r.AddOption(na)
	r.AddOption(dhcpv6.OptDNS(net.ParseIP("fd00:77::1")))
	if s.unicast {
		r.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionUnicast, OptionData: net.ParseIP("fd00:77::1")})
	}
	return []*dhcpv6.Message{r}
}

func run(t *testing.T, f *fakeNet, lease state.DHCPv6Lease, d time.Duration) (leases []state.DHCPv6Lease, status state.DHCPv6Status) {
	t.Helper()
	f.now, f.until = t0, t0.Add(d)
	c := NewClient(f, Config{
		DUID:         clientDUID,
		PrefixLength: 56,
		Now:          func() time.Time { return f.now },
		Rand:         rand.New(rand.NewPCG(1, 2)),
		OnLease:      func(l state.DHCPv6Lease) { leases = append(leases, l) },
		OnStatus:     func(s state.DHCPv6Status) { status = s },
	}, lease)
	if err := c.Run(context.Background()); !errors.Is(err, errStop) {
		t.Fatalf("Run = %v, want the fake clock to run out", err)
	}
	return leases, status
}

func kind(s sent) string {
	dst := "multicast"
	if s.dst != AllServers {
		dst = s.dst.String()
	}
	return s.msg.MessageType.String() + " " + dst
}

func TestSolicitRequestRenew(t *testing.T) {
	f := &fakeNet{reply: fakeServer{}.reply}
	leases, status := run(t, f, state.DHCPv6Lease{}, 50*time.Second)
	want := []string{"SOLICIT multicast", "REQUEST multicast", "RENEW multicast"}
	if len(f.sent) < len(want) {
		t.Fatalf("sent %d messages", len(f.sent))
	}
	for i, w := range want {
		if got := kind(f.sent[i]); got != w {
			t.Errorf("message %d = %s, want %s", i, got, w)
		}
	}
	sol := f.sent[0].msg
	pd := sol.Options.OneIAPD()
	if pd == nil || len(pd.Options.Prefixes()) != 1 || pd.Options.Prefixes()[0].Prefix.String() != "::/56" || sol.Options.OneIANA() == nil {
		t.Errorf("SOLICIT lacks IA_NA or an IA_PD with a /56 hint: %v", sol)
	}
	if !sol.IsOptionRequested(dhcpv6.OptionDNSRecursiveNameServer) || !sol.IsOptionRequested(dhcpv6.OptionDomainSearchList) {
		t.Errorf("SOLICIT does not request options 23 and 24")
	}
	if len(leases) != 2 {
		t.Fatalf("%d leases, want 2", len(leases))
	}
	// The client collects ADVERTISEs for the first retransmission time
	// (1 s ±10%) before it REQUESTs.
	acked := leases[0].Acked.Sub(t0)
	if acked < 900*time.Millisecond || acked > 1100*time.Millisecond {
		t.Errorf("bound at %v, want after about 1 s of collecting ADVERTISEs", acked)
	}
	renew := f.sent[2]
	if renew.at != acked+45*time.Second || !renew.msg.Options.ServerID().Equal(serverDUID) {
		t.Errorf("RENEW at %v with server ID %v, want at T1 (%v) with the server's", renew.at, renew.msg.Options.ServerID(), acked+45*time.Second)
	}
	l := leases[0]
	if len(l.Prefixes) != 1 || l.Prefixes[0].Prefix != netip.MustParsePrefix("fd00:78:0:100::/56") || l.Addr == nil ||
		l.Addr.Addr != netip.MustParseAddr("fd00:77::1234") || time.Duration(l.T1) != 45*time.Second ||
		len(l.DNS) != 1 || l.ServerDUID == "" {
		t.Errorf("lease %+v", l)
	}
	if status.State != "bound" || status.Prefix != netip.MustParsePrefix("fd00:78:0:100::/56") {
		t.Errorf("status %+v", status)
	}
}

func TestUnicastRenew(t *testing.T) {
	f := &fakeNet{reply: fakeServer{unicast: true}.reply}
	run(t, f, state.DHCPv6Lease{}, 50*time.Second)
	if got := kind(f.sent[2]); got != "RENEW fd00:77::1" {
		t.Errorf("renewal %s, want RENEW unicast to fd00:77::1 (server-unicast option)", got)
	}
}

// TestOutage6: RENEW from T1, REBIND from T2, the prefix kept past its
// valid lifetime, SOLICITs that back off, and a new lease on return.
func TestOutage6(t *testing.T) {
	back := t0.Add(8 * time.Minute)
	f := &fakeNet{reply: fakeServer{up: func(now time.Time) bool { return now.Before(t0.Add(2*time.Second)) || !now.Before(back) }}.reply}
	leases, status := run(t, f, state.DHCPv6Lease{}, 7*time.Minute)
	if len(leases) != 1 {
		t.Fatalf("leases %+v, want only the first", leases)
	}
	if !status.Retained || status.State != "soliciting" || !status.Prefix.IsValid() {
		t.Errorf("status %+v, want soliciting with the prefix retained", status)
	}
	var renews, rebinds, solicits []time.Duration
	for _, s := range f.sent[2:] {
		switch s.msg.MessageType {
		case dhcpv6.MessageTypeRenew:
			renews = append(renews, s.at)
		case dhcpv6.MessageTypeRebind:
			rebinds = append(rebinds, s.at)
		case dhcpv6.MessageTypeSolicit:
			solicits = append(solicits, s.at)
		}
	}
	acked := leases[0].Acked.Sub(t0)
	if len(renews) == 0 || renews[0] != acked+45*time.Second || renews[len(renews)-1] >= acked+72*time.Second {
		t.Errorf("RENEWs at %v, want from T1 (%v) until T2", renews, acked+45*time.Second)
	}
	if len(rebinds) == 0 || rebinds[0] != acked+72*time.Second || rebinds[len(rebinds)-1] >= acked+2*time.Minute {
		t.Errorf("REBINDs at %v, want from T2 (%v) until the valid lifetime ends", rebinds, acked+72*time.Second)
	}
	if len(solicits) < 4 || solicits[0] != acked+2*time.Minute {
		t.Fatalf("SOLICITs at %v, want from %v on", solicits, acked+2*time.Minute)
	}
	for i := 1; i < len(solicits); i++ {
		if gap := solicits[i] - solicits[i-1]; gap > 71*time.Second {
			t.Errorf("SOLICIT %d came %v after the previous one, want at most 64 s +10%%", i, gap)
		}
	}
	// A retained prefix is the hint of the SOLICITs.
	if pd := f.sent[len(f.sent)-1].msg.Options.OneIAPD(); pd == nil || pd.Options.Prefixes()[0].Prefix.String() != "fd00:78:0:100::/56" {
		t.Errorf("SOLICIT after expiry does not ask for the retained prefix")
	}

	f2 := &fakeNet{reply: f.reply}
	leases, status = run(t, f2, state.DHCPv6Lease{}, 10*time.Minute)
	if n := len(leases); n < 2 || leases[1].Acked.Sub(back) > 75*time.Second || status.Retained {
		t.Errorf("after the server returned: leases %v, status %+v", leases, status)
	}
}

// TestNoBindingRequests: a RENEW answered with NoBinding makes the client
// REQUEST its lease again (RFC 8415 section 18.2.10.1), keeping it
// meanwhile.
func TestNoBindingRequests(t *testing.T) {
	f := &fakeNet{reply: fakeServer{status: func(now time.Time) bool { return now.Before(t0.Add(60 * time.Second)) }}.reply}
	leases, status := run(t, f, state.DHCPv6Lease{}, 50*time.Second)
	var kinds []string
	for _, s := range f.sent {
		kinds = append(kinds, kind(s))
	}
	want := "SOLICIT multicast,REQUEST multicast,RENEW multicast,REQUEST multicast"
	if got := strings.Join(kinds, ","); got != want {
		t.Errorf("messages %s, want %s", got, want)
	}
	if last := f.sent[len(f.sent)-1].msg; !last.Options.ServerID().Equal(serverDUID) || last.Options.OneIAPD().Options.Prefixes()[0].Prefix.String() != "fd00:78:0:100::/56" {
		t.Errorf("REQUEST after NoBinding: %v", last)
	}
	if len(leases) != 2 || status.Prefix != netip.MustParsePrefix("fd00:78:0:100::/56") {
		t.Errorf("leases %v, status %+v", leases, status)
	}
}

// TestPartialReplyKeepsTheRest: an IA the REPLY lacks, or answers with an
// error status, keeps what the lease had.
func TestPartialReplyKeepsTheRest(t *testing.T) {
	old := state.DHCPv6Lease{
		Prefixes: []state.DelegatedPrefix{{Prefix: netip.MustParsePrefix("fd00:78:0:300::/56"), Preferred: state.Duration(time.Minute), Valid: state.Duration(2 * time.Minute), Given: t0}},
		Addr:     &state.LeasedAddr{Addr: netip.MustParseAddr("fd00:77::99"), Preferred: state.Duration(time.Minute), Valid: state.Duration(2 * time.Minute), Given: t0},
		T1:       state.Duration(30 * time.Second), T2: state.Duration(48 * time.Second), Acked: t0,
	}
	reply := func(mods func(*dhcpv6.Message)) *dhcpv6.Message {
		m := fakeServer{}.reply(&dhcpv6.Message{MessageType: dhcpv6.MessageTypeRequest}, AllServers, t0)[0]
		mods(m)
		return m
	}
	noPD := reply(func(m *dhcpv6.Message) {
		m.Options.Del(dhcpv6.OptionIAPD)
		pd := &dhcpv6.OptIAPD{IaId: IAID}
		pd.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoPrefixAvail})
		m.AddOption(pd)
	})
	got := merge(old, leaseFromReply(noPD, t0.Add(time.Minute)))
	if prefixOf(got) != prefixOf(old) || got.Addr.Addr != netip.MustParseAddr("fd00:77::1234") {
		t.Errorf("NoPrefixAvail with an address: prefix %v, address %v; want the old prefix and the new address", prefixOf(got), got.Addr.Addr)
	}
	noNA := reply(func(m *dhcpv6.Message) { m.Options.Del(dhcpv6.OptionIANA) })
	got = merge(old, leaseFromReply(noNA, t0.Add(time.Minute)))
	if prefixOf(got) != netip.MustParsePrefix("fd00:78:0:100::/56") || got.Addr.Addr != old.Addr.Addr {
		t.Errorf("no IA_NA: prefix %v, address %v; want the new prefix and the old address", prefixOf(got), got.Addr.Addr)
	}
	if !(0 < got.T1 && got.T1 < got.T2) {
		t.Errorf("timers %v %v", got.T1, got.T2)
	}
}

// TestRebootRebinds: a restart with a lease that has not run out REBINDs.
func TestRebootRebinds(t *testing.T) {
	l := state.DHCPv6Lease{
		Prefixes: []state.DelegatedPrefix{{Prefix: netip.MustParsePrefix("fd00:78:0:100::/56"), Preferred: state.Duration(90 * time.Second), Valid: state.Duration(120 * time.Second), Given: t0.Add(-10 * time.Second)}},
		T1:       state.Duration(45 * time.Second), T2: state.Duration(72 * time.Second), Acked: t0.Add(-10 * time.Second),
	}
	f := &fakeNet{reply: fakeServer{}.reply}
	leases, _ := run(t, f, l, 5*time.Second)
	if got := kind(f.sent[0]); got != "REBIND multicast" || len(leases) != 1 {
		t.Errorf("first message %s, %d leases; want a REBIND answered", got, len(leases))
	}
}

// TestPreference: of the ADVERTISEs in the first RT, the one with the
// higher preference wins.
func TestPreference(t *testing.T) {
	f := &fakeNet{}
	f.reply = func(m *dhcpv6.Message, dst netip.Addr, now time.Time) []*dhcpv6.Message {
		if m.MessageType != dhcpv6.MessageTypeSolicit {
			return fakeServer{}.reply(m, dst, now)
		}
		low := fakeServer{prefix: "fd00:78:0:100::/56"}.reply(m, dst, now)[0]
		low.AddOption(dhcpv6.OptPreference(10))
		high := fakeServer{prefix: "fd00:78:0:200::/56"}.reply(m, dst, now)[0]
		high.AddOption(dhcpv6.OptPreference(20))
		return []*dhcpv6.Message{low, high}
	}
	run(t, f, state.DHCPv6Lease{}, 3*time.Second)
	req := f.sent[1].msg
	if req.MessageType != dhcpv6.MessageTypeRequest || req.Options.OneIAPD().Options.Prefixes()[0].Prefix.String() != "fd00:78:0:200::/56" {
		t.Errorf("REQUEST %v, want it for the preferred server's fd00:78:0:200::/56", req)
	}
}

func TestPersistedPrefixIsTheHint(t *testing.T) {
	l := state.DHCPv6Lease{
		Prefixes: []state.DelegatedPrefix{{Prefix: netip.MustParsePrefix("fd00:78:0:300::/56"), Preferred: state.Duration(time.Minute), Valid: state.Duration(2 * time.Minute), Given: t0.Add(-time.Hour)}},
		T1:       state.Duration(30 * time.Second), T2: state.Duration(48 * time.Second), Acked: t0.Add(-time.Hour),
	}
	f := &fakeNet{reply: fakeServer{up: func(time.Time) bool { return false }}.reply}
	leases, status := run(t, f, l, 10*time.Second)
	pd := f.sent[0].msg.Options.OneIAPD()
	if f.sent[0].msg.MessageType != dhcpv6.MessageTypeSolicit || pd == nil || pd.Options.Prefixes()[0].Prefix.String() != "fd00:78:0:300::/56" {
		t.Errorf("first message %v, want a SOLICIT asking for fd00:78:0:300::/56", f.sent[0].msg)
	}
	if len(leases) != 0 || status.Prefix != l.Prefixes[0].Prefix || !status.Retained {
		t.Errorf("leases %v, status %+v; want the persisted prefix retained", leases, status)
	}
}
