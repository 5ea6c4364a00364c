package dhcp6

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/homerouter/homerouter/state"
)

// replayer answers the client with a capture's server messages in order,
// as in package dhcp4: each client message must match the next captured
// one (type and destination), and gets the captured replies with the
// client's transaction ID.
type replayer struct {
	t    *testing.T
	msgs []captured
	next int
}

func (r *replayer) reply(m *dhcpv6.Message, dst netip.Addr, now time.Time) []*dhcpv6.Message {
	r.t.Helper()
	if r.next >= len(r.msgs) {
		return nil
	}
	want := r.msgs[r.next]
	r.next++
	if m.MessageType != want.Msg.MessageType || dst != want.Dst.Addr() {
		r.t.Errorf("client sent %v to %v, the capture has %v to %v", m.MessageType, dst, want.Msg.MessageType, want.Dst.Addr())
	}
	var out []*dhcpv6.Message
	for r.next < len(r.msgs) && r.msgs[r.next].Src.Port() == 547 {
		reply := *r.msgs[r.next].Msg
		reply.TransactionID = m.TransactionID
		out = append(out, &reply)
		r.next++
	}
	return out
}

func replay(t *testing.T, path string, d time.Duration) (*fakeNet, []state.DHCPv6Lease) {
	t.Helper()
	r := &replayer{t: t, msgs: readCapture(t, path)}
	f := &fakeNet{reply: r.reply}
	leases, _ := run(t, f, state.DHCPv6Lease{}, d)
	if r.next < len(r.msgs) {
		t.Errorf("replay stopped at message %d of %d", r.next, len(r.msgs))
	}
	return f, leases
}

func TestReplayFiber7(t *testing.T) {
	for _, tc := range []struct {
		file, prefix, addr, renewTo string
		t1, preferred, valid        time.Duration
	}{
		{"testdata/fiber7-a.pcap", "2a02:168:4a00::/48", "2a02:168:4a00:1::2", "2001:1620:2777::1", 1200 * time.Second, time.Hour, 24 * time.Hour},
		{"testdata/fiber7-b.pcap", "2a02:168:4bf3::/48", "", "ff02::1:2", 1000 * time.Second, 3000 * time.Second, 4000 * time.Second},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, leases := replay(t, tc.file, tc.t1+time.Minute)
			if len(leases) != 2 {
				t.Fatalf("%d leases, want 2 (REQUEST and RENEW)", len(leases))
			}
			l := leases[0]
			p := l.Prefixes[0]
			got := fmt.Sprintf("%v %v %v %v %v", p.Prefix, time.Duration(p.Preferred), time.Duration(p.Valid), time.Duration(l.T1), l.DNS)
			want := fmt.Sprintf("%s %v %v %v %s", tc.prefix, tc.preferred, tc.valid, tc.t1, "[2001:1620:2777:1::10 2001:1620:2777:2::20]")
			if got != want {
				t.Errorf("lease %s, want %s", got, want)
			}
			if tc.addr != "" && (l.Addr == nil || l.Addr.Addr.String() != tc.addr) {
				t.Errorf("IA_NA address %v, want %s", l.Addr, tc.addr)
			}
			var renew sent
			for _, s := range f.sent {
				if s.msg.MessageType == dhcpv6.MessageTypeRenew {
					renew = s
					break
				}
			}
			if renew.msg == nil || renew.at != l.Acked.Sub(t0)+tc.t1 || renew.dst.String() != tc.renewTo {
				t.Errorf("RENEW at %v to %v, want at T1 (%v after the REPLY) to %s", renew.at, renew.dst, tc.t1, tc.renewTo)
			}
		})
	}
}

// TestReplayDhcpd replays an exchange recorded from ISC dhcpd -6 in the
// lab (TestDHCPv6Lab with HOMEROUTER_RECORD=1): SOLICIT, ADVERTISE,
// REQUEST, REPLY, and the RENEW at T1 with its REPLY.
func TestReplayDhcpd(t *testing.T) {
	f, leases := replay(t, "testdata/dhcpd.pcap", 30*time.Second)
	if len(leases) != 2 {
		t.Fatalf("%d leases, want 2 (REQUEST and RENEW)", len(leases))
	}
	l := leases[0]
	if len(l.Prefixes) != 1 || l.Prefixes[0].Prefix.Bits() != 56 || !netip.MustParsePrefix("fd00:78::/48").Contains(l.Prefixes[0].Prefix.Addr()) ||
		time.Duration(l.Prefixes[0].Valid) != time.Minute || time.Duration(l.T1) != 20*time.Second {
		t.Errorf("lease %+v", l)
	}
	if l.Addr == nil || !netip.MustParsePrefix("fd00:77::/64").Contains(l.Addr.Addr) || len(l.DNS) != 1 || l.DNS[0] != netip.MustParseAddr("fd00:77::1") {
		t.Errorf("IA_NA %v, DNS %v", l.Addr, l.DNS)
	}
	for _, s := range f.sent {
		if s.msg.MessageType == dhcpv6.MessageTypeRenew && s.at != l.Acked.Sub(t0)+20*time.Second {
			t.Errorf("RENEW at %v, want at T1 (20s after the REPLY)", s.at)
		}
	}
}
