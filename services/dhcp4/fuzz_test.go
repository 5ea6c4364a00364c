package dhcp4

import (
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/homerouter/homerouter/state"
)

// FuzzReply feeds arbitrary bytes to the client as the server's answer to
// everything it sends. Whatever they hold, the client must not panic or
// spin, and a lease made of them must be sane.
func FuzzReply(f *testing.F) {
	for _, c := range readCapture(f, "testdata/fiber7.pcap") {
		f.Add(c.Msg.ToBytes())
	}
	offer := fakeServer{}.reply(mustMessage(f, dhcpv4.MessageTypeDiscover), broadcast, t0)[0]
	ack := fakeServer{}.reply(mustMessage(f, dhcpv4.MessageTypeRequest), broadcast, t0)[0]
	nak := fakeServer{nak: func(time.Time) bool { return true }}.reply(mustMessage(f, dhcpv4.MessageTypeRequest), broadcast, t0)[0]
	for _, m := range []*dhcpv4.DHCPv4{offer, ack, nak} {
		f.Add(m.ToBytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := dhcpv4.FromBytes(data)
		if err != nil {
			return // the conn drops what does not parse
		}
		if l, err := leaseFromAck(m, t0); err == nil {
			checkLease(t, l)
		}
		fn := &fakeNet{reply: func(req *dhcpv4.DHCPv4, _ netip.Addr, _ time.Time) []*dhcpv4.DHCPv4 {
			r := *m
			r.TransactionID = req.TransactionID
			r.ClientHWAddr = req.ClientHWAddr
			return []*dhcpv4.DHCPv4{&r}
		}}
		leases, _ := run(t, fn, state.DHCPv4Lease{}, 10*time.Minute)
		for _, l := range leases {
			if l.Valid() {
				checkLease(t, l)
			}
		}
		if len(fn.sent) > 2000 {
			t.Fatalf("the client sent %d messages in 10 minutes", len(fn.sent))
		}
	})
}

func checkLease(t *testing.T, l state.DHCPv4Lease) {
	t.Helper()
	if !usable(l.Addr.Addr()) || !usable(l.ServerID) || l.Addr.Bits() < 8 || (l.Router.IsValid() && !usable(l.Router)) {
		t.Fatalf("lease with address %v, server %v, router %v", l.Addr, l.ServerID, l.Router)
	}
	if !leaseUsable(l) || l.Duration < state.Duration(minLeaseTime) {
		t.Fatalf("lease %+v would not be usable after a restart", l)
	}
	if !(0 < l.T1 && l.T1 < l.T2 && l.T2 < l.Duration) {
		t.Fatalf("lease timers T1 %v, T2 %v, lease %v", l.T1, l.T2, l.Duration)
	}
	if !l.Expiry.Equal(l.Acked.Add(time.Duration(l.Duration))) {
		t.Fatalf("expiry %v is not acked %v + %v", l.Expiry, l.Acked, l.Duration)
	}
}

func mustMessage(t testing.TB, typ dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	c := NewClient(nil, Config{HardwareAddr: clientMAC}, state.DHCPv4Lease{})
	m, err := c.message(typ, c.xid())
	if err != nil {
		t.Fatal(err)
	}
	return m
}
