package dhcp4d

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestReplyOptions(t *testing.T) {
	o := func(cs ...dhcpv4.OptionCode) dhcpv4.Modifier { return dhcpv4.WithRequestedOptions(cs...) }
	const (
		mask    = 1
		router  = 3
		dns     = 6
		domain  = 15
		mtu     = 26
		bcast   = 28
		lease   = 51
		msgType = 53
		server  = 54
		message = 56
		t1      = 58
		t2      = 59
		id      = 61
		search  = 119
	)
	for _, tt := range []struct {
		name string
		mtu  int
		req  func(testing.TB) *dhcpv4.DHCPv4
		want []uint8 // option codes, sorted
	}{
		{
			name: "parameter request list",
			req:  discover(macA, o(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer)),
			want: []uint8{mask, router, dns, lease, msgType, server, t1, t2},
		},
		{
			name: "no list gets everything",
			mtu:  1492,
			req:  selecting(macA, "192.168.42.100"),
			want: []uint8{mask, router, dns, domain, mtu, bcast, lease, msgType, server, t1, t2, search},
		},
		{
			name: "MTU only when configured",
			req:  discover(macA, o(dhcpv4.OptionInterfaceMTU, dhcpv4.OptionDomainName, dhcpv4.OptionDNSDomainSearchList, dhcpv4.OptionBroadcastAddress)),
			want: []uint8{domain, bcast, lease, msgType, server, t1, t2, search},
		},
		{
			name: "MTU when asked",
			mtu:  1492,
			req:  discover(macA, o(dhcpv4.OptionInterfaceMTU), clientID(1, 2, 3)),
			want: []uint8{mtu, lease, msgType, server, t1, t2, id},
		},
		{
			name: "INFORM: no lease times",
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return msg(t, dhcpv4.MessageTypeInform, macA, ciaddr("192.168.42.7"), o(dhcpv4.OptionRouter, dhcpv4.OptionIPAddressLeaseTime))
			},
			want: []uint8{router, msgType, server},
		},
		{
			name: "NAK",
			req:  request(macA, reqIP("10.0.0.1")),
			want: []uint8{msgType, server, message},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newTestHandler(t, small, Link{Addr: lan.Addr, MTU: tt.mtu}, nil)
			req := tt.req(t)
			reply, _ := h.Serve(req)
			if reply == nil {
				t.Fatal("no reply")
			}
			checkReply(t, h, req, reply)
			var got []uint8
			for c := range reply.Options {
				got = append(got, c)
			}
			slices.Sort(got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("option codes: -want +got:\n%s", diff)
			}
		})
	}
}

func TestReplyValues(t *testing.T) {
	h, _ := newTestHandler(t, Config{Domain: "home.example"}, Link{Addr: lan.Addr, MTU: 1492}, nil)
	req := msg(t, dhcpv4.MessageTypeDiscover, macA, clientID(1, 2, 3), broadcastBit())
	m, _ := h.Serve(req)
	m, err := dhcpv4.FromBytes(m.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	var search []string
	if s := m.DomainSearch(); s != nil {
		search = s.Labels
	}
	type values struct {
		Yiaddr, Mask, Router, DNS, Bcast, Server string
		Domain                                   string
		Search                                   []string
		Lease, T1, T2                            string
		MTU                                      []byte
		ID                                       []byte
		Broadcast                                bool
	}
	got := values{
		Yiaddr:    m.YourIPAddr.String(),
		Mask:      netip.AddrFrom4([4]byte(m.SubnetMask())).String(),
		Router:    m.Router()[0].String(),
		DNS:       m.DNS()[0].String(),
		Bcast:     m.BroadcastAddress().String(),
		Server:    m.ServerIdentifier().String(),
		Domain:    m.DomainName(),
		Search:    search,
		Lease:     m.IPAddressLeaseTime(0).String(),
		T1:        m.IPAddressRenewalTime(0).String(),
		T2:        m.IPAddressRebindingTime(0).String(),
		MTU:       m.Options.Get(dhcpv4.OptionInterfaceMTU),
		ID:        m.Options.Get(dhcpv4.OptionClientIdentifier),
		Broadcast: m.IsBroadcast(),
	}
	want := values{
		Yiaddr: "192.168.42.2", Mask: "255.255.255.0", Router: "192.168.42.1", DNS: "192.168.42.1",
		Bcast: "192.168.42.255", Server: "192.168.42.1", Domain: "home.example", Search: []string{"home.example"},
		Lease: "1h0m0s", T1: "30m0s", T2: "52m30s", MTU: []byte{0x05, 0xd4}, ID: []byte{1, 2, 3}, Broadcast: true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("OFFER: -want +got:\n%s", diff)
	}
}
