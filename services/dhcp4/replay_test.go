package dhcp4

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/homerouter/homerouter/state"
)

// replayer answers the client with a capture's server messages, in order:
// each client message must match the next captured client message (type
// and destination); its answer is the captured server reply, given the
// client's transaction ID. Past the end of the capture nothing answers.
type replayer struct {
	t    *testing.T
	msgs []captured
	next int
}

func (r *replayer) reply(m *dhcpv4.DHCPv4, dst netip.Addr, now time.Time) []*dhcpv4.DHCPv4 {
	r.t.Helper()
	for r.next < len(r.msgs) && r.msgs[r.next].Src.Port() == 67 {
		r.next++ // server messages not asked for (none expected)
	}
	if r.next >= len(r.msgs) {
		return nil
	}
	want := r.msgs[r.next]
	r.next++
	if m.MessageType() != want.Msg.MessageType() || dst != want.Dst.Addr() {
		r.t.Errorf("client sent %v to %v, the capture has %v to %v", m.MessageType(), dst, want.Msg.MessageType(), want.Dst.Addr())
	}
	var out []*dhcpv4.DHCPv4
	for r.next < len(r.msgs) && r.msgs[r.next].Src.Port() == 67 {
		reply := *r.msgs[r.next].Msg
		reply.TransactionID = m.TransactionID
		out = append(out, &reply)
		r.next++
	}
	return out
}

// replay runs the client against a capture for d of fake time.
func replay(t *testing.T, path string, d time.Duration) (*fakeNet, []state.DHCPv4Lease) {
	t.Helper()
	r := &replayer{t: t, msgs: readCapture(t, path)}
	f := &fakeNet{reply: r.reply, mac: r.msgs[0].Msg.ClientHWAddr}
	leases, _ := run(t, f, state.DHCPv4Lease{}, d)
	if r.next < len(r.msgs) {
		t.Errorf("replay stopped at message %d of %d", r.next, len(r.msgs))
	}
	return f, leases
}

// TestReplayFiber7: the ACK's server and lease time win over the OFFER's,
// and without T1 the client renews at half the ACK's lease, unicast to the
// ACK's server.
func TestReplayFiber7(t *testing.T) {
	f, leases := replay(t, "testdata/fiber7.pcap", 804*time.Second+time.Minute)
	if len(leases) != 2 {
		t.Fatalf("%d leases, want 2 (the ACK and the renewal)", len(leases))
	}
	l := leases[0]
	for _, c := range []struct{ what, got, want string }{
		{"address", l.Addr.String(), "85.195.207.62/26"},
		{"router", l.Router.String(), "85.195.207.1"},
		{"server", l.ServerID.String(), "213.144.129.5"},
		{"lease", time.Duration(l.Duration).String(), "26m48s"},
		{"T1", time.Duration(l.T1).String(), "13m24s"},
		{"DNS", fmt.Sprint(l.DNS), "[77.109.128.2 213.144.129.20]"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.what, c.got, c.want)
		}
	}
	renew := f.sent[2]
	if kind(renew) != "REQUEST 213.144.129.5" || renew.at != 804*time.Second {
		t.Errorf("renewal: %s at %v, want REQUEST to 213.144.129.5 at 13m24s", kind(renew), renew.at)
	}
}

// TestReplayDnsmasq replays an exchange recorded from dnsmasq in the lab
// (TestDHCPv4Lab with HOMEROUTER_RECORD=1): DISCOVER, OFFER, REQUEST,
// ACK, and the renewal at T1, unicast.
func TestReplayDnsmasq(t *testing.T) {
	f, leases := replay(t, "testdata/dnsmasq.pcap", 100*time.Second)
	if len(leases) != 2 {
		t.Fatalf("%d leases, want 2 (the ACK and the renewal)", len(leases))
	}
	l := leases[0]
	if !netip.MustParsePrefix("10.77.0.0/24").Contains(l.Addr.Addr()) || l.Addr.Bits() != 24 ||
		l.Router != netip.MustParseAddr("10.77.0.1") || l.ServerID != netip.MustParseAddr("10.77.0.1") ||
		time.Duration(l.Duration) != 2*time.Minute || time.Duration(l.T1) != time.Minute {
		t.Errorf("lease %+v", l)
	}
	if l.Domain != "isp.test" || len(l.DNS) != 1 || l.DNS[0] != netip.MustParseAddr("10.77.0.1") {
		t.Errorf("domain %q, DNS %v; want isp.test, [10.77.0.1]", l.Domain, l.DNS)
	}
	if renew := f.sent[2]; kind(renew) != "REQUEST 10.77.0.1" || renew.at != time.Minute {
		t.Errorf("renewal: %s at %v, want REQUEST to 10.77.0.1 at 1m0s", kind(renew), renew.at)
	}
}
