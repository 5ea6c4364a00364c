package netconfig

import (
	"net"
	"testing"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestWakes: which kernel notifications make netconfig look again.
func TestWakes(t *testing.T) {
	route := func(typ uint16, dstLen uint8, proto uint8, table uint8) netlink.Message {
		m := rtnetlink.RouteMessage{Family: unix.AF_INET6, DstLength: dstLen, Protocol: proto, Table: table, Type: unix.RTN_UNICAST,
			Attributes: rtnetlink.RouteAttributes{Gateway: net.ParseIP("fe80::1"), OutIface: 2}}
		if dstLen != 0 {
			m.Attributes.Dst = net.ParseIP("fd00:77::")
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(typ)}, Data: b}
	}
	for _, tc := range []struct {
		name string
		m    netlink.Message
		want bool
	}{
		{"a link", netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWLINK}}, true},
		{"the ISP's default route", route(unix.RTM_NEWROUTE, 0, unix.RTPROT_RA, unix.RT_TABLE_MAIN), true},
		{"the ISP's default route expired", route(unix.RTM_DELROUTE, 0, unix.RTPROT_RA, unix.RT_TABLE_MAIN), true},
		{"the lease's default route, netconfig's own", route(unix.RTM_NEWROUTE, 0, LeaseProtocol, unix.RT_TABLE_MAIN), false},
		{"a prefix route", route(unix.RTM_NEWROUTE, 64, unix.RTPROT_KERNEL, unix.RT_TABLE_MAIN), false},
		{"another table's default route", route(unix.RTM_NEWROUTE, 0, unix.RTPROT_STATIC, 100), false},
		{"a route that does not parse", netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWROUTE}, Data: []byte{1}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := wakes(tc.m); got != tc.want {
				t.Errorf("wakes = %v, want %v", got, tc.want)
			}
		})
	}
}
