package dhcp6

import (
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/homerouter/homerouter/state"
)

// FuzzReply feeds arbitrary bytes to the client as the answer to
// everything it sends: no panic, no spin, and what it keeps is sane.
func FuzzReply(f *testing.F) {
	for _, file := range []string{"testdata/fiber7-a.pcap", "testdata/fiber7-b.pcap"} {
		for _, c := range readCapture(f, file) {
			f.Add(c.Msg.ToBytes())
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := dhcpv6.MessageFromBytes(data)
		if err != nil {
			return
		}
		checkLease(t, leaseFromReply(m, t0))
		fn := &fakeNet{reply: func(req *dhcpv6.Message, _ netip.Addr, _ time.Time) []*dhcpv6.Message {
			r := *m
			r.TransactionID = req.TransactionID
			r.Options = dhcpv6.MessageOptions{Options: append(dhcpv6.Options(nil), m.Options.Options...)}
			r.Options.Update(dhcpv6.OptClientID(clientDUID))
			return []*dhcpv6.Message{&r}
		}}
		leases, _ := run(t, fn, state.DHCPv6Lease{}, 10*time.Minute)
		for _, l := range leases {
			if !l.Valid() || l.T1 <= 0 || l.T2 <= l.T1 {
				t.Fatalf("kept lease %+v", l)
			}
			checkLease(t, l)
		}
		if len(fn.sent) > 2000 {
			t.Fatalf("the client sent %d messages in 10 minutes", len(fn.sent))
		}
	})
}

func checkLease(t *testing.T, l state.DHCPv6Lease) {
	t.Helper()
	for _, p := range l.Prefixes {
		if !p.Prefix.Addr().Is6() || p.Prefix.Bits() > 64 || p.Valid <= 0 || p.Preferred > p.Valid {
			t.Fatalf("prefix %+v", p)
		}
	}
	if a := l.Addr; a != nil && (!a.Addr.Is6() || a.Valid <= 0) {
		t.Fatalf("address %+v", a)
	}
}
