package netconfig

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/homerouter/homerouter/state"
	"golang.org/x/sys/unix"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestOwned(t *testing.T) {
	for _, tt := range []struct {
		name string
		addr kernelAddr
		want bool
	}{
		{"ipv4 static", kernelAddr{Prefix: pfx("10.42.0.1/24"), Flags: unix.IFA_F_PERMANENT}, true},
		{"ipv4 with lifetime (DHCP)", kernelAddr{Prefix: pfx("10.42.0.1/24"), Flags: 0}, true},
		{"ipv6 static", kernelAddr{Prefix: pfx("fd00:42::1/64"), Flags: unix.IFA_F_PERMANENT}, true},
		{"ipv6 static tentative", kernelAddr{Prefix: pfx("fd00:42::1/64"), Flags: unix.IFA_F_PERMANENT | unix.IFA_F_TENTATIVE}, true},
		{"ipv6 SLAAC", kernelAddr{Prefix: pfx("fd00:42::5054:ff:fe12:3456/64"), Flags: unix.IFA_F_MANAGETEMPADDR}, false},
		{"ipv6 temporary", kernelAddr{Prefix: pfx("fd00:42::1234/64"), Flags: unix.IFA_F_TEMPORARY}, false},
		{"ipv6 link-local", kernelAddr{Prefix: pfx("fe80::1/64"), Flags: unix.IFA_F_PERMANENT}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := owned(tt.addr); got != tt.want {
				t.Errorf("owned(%v) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestDiffAddrs(t *testing.T) {
	perm := func(s string) kernelAddr { return kernelAddr{Prefix: pfx(s), Flags: unix.IFA_F_PERMANENT} }
	for _, tt := range []struct {
		name string
		want []netip.Prefix
		have []kernelAddr
		add  []netip.Prefix
		del  []netip.Prefix
	}{
		{name: "empty"},
		{
			name: "fresh link",
			want: []netip.Prefix{pfx("10.42.0.1/24"), pfx("fd00:42::1/64")},
			have: []kernelAddr{perm("fe80::1/64")},
			add:  []netip.Prefix{pfx("10.42.0.1/24"), pfx("fd00:42::1/64")},
		},
		{
			name: "in place",
			want: []netip.Prefix{pfx("10.42.0.1/24")},
			have: []kernelAddr{perm("10.42.0.1/24"), perm("fe80::1/64")},
		},
		{
			name: "address changed",
			want: []netip.Prefix{pfx("10.43.0.1/24")},
			have: []kernelAddr{perm("10.42.0.1/24")},
			add:  []netip.Prefix{pfx("10.43.0.1/24")},
			del:  []netip.Prefix{pfx("10.42.0.1/24")},
		},
		{
			name: "prefix length changed",
			want: []netip.Prefix{pfx("10.42.0.1/24")},
			have: []kernelAddr{perm("10.42.0.1/16")},
			add:  []netip.Prefix{pfx("10.42.0.1/24")},
			del:  []netip.Prefix{pfx("10.42.0.1/16")},
		},
		{
			name: "kernel-made and link-local kept",
			have: []kernelAddr{
				perm("fe80::1/64"),
				{Prefix: pfx("fd00:42::5054:ff:fe12:3456/64"), Flags: unix.IFA_F_MANAGETEMPADDR},
				perm("fd00:99::1/64"),
				{Prefix: pfx("10.99.0.5/24"), Flags: 0},
			},
			del: []netip.Prefix{pfx("fd00:99::1/64"), pfx("10.99.0.5/24")},
		},
		{
			name: "duplicate wanted added once",
			want: []netip.Prefix{pfx("10.42.0.1/24"), pfx("10.42.0.1/24")},
			add:  []netip.Prefix{pfx("10.42.0.1/24")},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			add, del := diffAddrs(tt.want, tt.have)
			opt := cmpopts.EquateEmpty()
			if d := cmp.Diff(tt.add, add, opt, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
				t.Errorf("add (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.del, del, opt, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
				t.Errorf("del (-want +got):\n%s", d)
			}
		})
	}
}

func TestDiffRoutes(t *testing.T) {
	gw := netip.MustParseAddr
	r := func(dst, via string, index, prio uint32) route {
		rt := route{Dst: pfx(dst), Index: index, Priority: prio}
		if via != "" {
			rt.Gateway = gw(via)
		}
		return rt
	}
	for _, tt := range []struct {
		name             string
		want, have       []route
		wantAdd, wantDel []route
	}{
		{name: "empty"},
		{
			name:    "add",
			want:    []route{r("10.10.0.0/16", "10.42.0.254", 3, 0), r("10.11.0.0/16", "", 3, 0)},
			wantAdd: []route{r("10.10.0.0/16", "10.42.0.254", 3, 0), r("10.11.0.0/16", "", 3, 0)},
		},
		{
			name: "present, kernel filled in the IPv6 metric",
			want: []route{r("fd00:10::/48", "fd00:42::fe", 3, 0)},
			have: []route{r("fd00:10::/48", "fd00:42::fe", 3, 1024)},
		},
		{
			name:    "removed from config",
			have:    []route{r("10.10.0.0/16", "10.42.0.254", 3, 0)},
			wantDel: []route{r("10.10.0.0/16", "10.42.0.254", 3, 0)},
		},
		{
			name:    "gateway changed",
			want:    []route{r("10.10.0.0/16", "10.42.0.253", 3, 0)},
			have:    []route{r("10.10.0.0/16", "10.42.0.254", 3, 0)},
			wantAdd: []route{r("10.10.0.0/16", "10.42.0.253", 3, 0)},
			wantDel: []route{r("10.10.0.0/16", "10.42.0.254", 3, 0)},
		},
		{
			name:    "same route, other protocol: a lease's route is not an extra_route",
			want:    []route{{Dst: pfx("10.10.0.0/16"), Index: 3, Protocol: LeaseProtocol}},
			have:    []route{{Dst: pfx("10.10.0.0/16"), Index: 3, Protocol: Protocol}},
			wantAdd: []route{{Dst: pfx("10.10.0.0/16"), Index: 3, Protocol: LeaseProtocol}},
			wantDel: []route{{Dst: pfx("10.10.0.0/16"), Index: 3, Protocol: Protocol}},
		},
		{
			name:    "source changed (new lease address)",
			want:    []route{{Dst: pfx("0.0.0.0/0"), Gateway: gw("10.77.0.1"), Index: 3, Protocol: LeaseProtocol, Src: gw("10.77.0.151")}},
			have:    []route{{Dst: pfx("0.0.0.0/0"), Gateway: gw("10.77.0.1"), Index: 3, Protocol: LeaseProtocol, Src: gw("10.77.0.150")}},
			wantAdd: []route{{Dst: pfx("0.0.0.0/0"), Gateway: gw("10.77.0.1"), Index: 3, Protocol: LeaseProtocol, Src: gw("10.77.0.151")}},
			wantDel: []route{{Dst: pfx("0.0.0.0/0"), Gateway: gw("10.77.0.1"), Index: 3, Protocol: LeaseProtocol, Src: gw("10.77.0.150")}},
		},
		{
			name:    "unreachable is not the unicast route to the same prefix",
			want:    []route{{Dst: pfx("fd00:78::/56"), Protocol: LeaseProtocol, Unreachable: true}},
			have:    []route{{Dst: pfx("fd00:78::/56"), Protocol: LeaseProtocol, Index: 3}, {Dst: pfx("fd00:77::/56"), Protocol: LeaseProtocol, Unreachable: true, Priority: 1024}},
			wantAdd: []route{{Dst: pfx("fd00:78::/56"), Protocol: LeaseProtocol, Unreachable: true}},
			wantDel: []route{{Dst: pfx("fd00:78::/56"), Protocol: LeaseProtocol, Index: 3}, {Dst: pfx("fd00:77::/56"), Protocol: LeaseProtocol, Unreachable: true, Priority: 1024}},
		},
		{
			name:    "link changed (renumbered after replug)",
			want:    []route{r("10.10.0.0/16", "", 7, 0)},
			have:    []route{r("10.10.0.0/16", "", 3, 0)},
			wantAdd: []route{r("10.10.0.0/16", "", 7, 0)},
			wantDel: []route{r("10.10.0.0/16", "", 3, 0)},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			add, del := diffRoutes(tt.want, tt.have)
			// Origins and lifetimes: TestInForce.
			opts := []cmp.Option{cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmpopts.IgnoreFields(wantAddr{}, "Origin", "Preferred", "Valid")}
			if d := cmp.Diff(tt.wantAdd, add, opts...); d != "" {
				t.Errorf("add (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantDel, del, opts...); d != "" {
				t.Errorf("del (-want +got):\n%s", d)
			}
		})
	}
}

func TestWantedRoutes(t *testing.T) {
	ifc := state.Interface{Name: "lan0", ExtraRoutes: []state.Route{
		{Destination: "10.10.0.0/16", Gateway: "10.42.0.254"},
		{Destination: "10.11.0.0/16"},
		{Destination: "fd00:10::/48", Gateway: "fd00:42::fe"},
	}}
	got, err := wantedRoutes(ifc, 5)
	if err != nil {
		t.Fatal(err)
	}
	want := []route{
		{Dst: pfx("10.10.0.0/16"), Gateway: netip.MustParseAddr("10.42.0.254"), Index: 5, Protocol: Protocol},
		{Dst: pfx("10.11.0.0/16"), Index: 5, Protocol: Protocol},
		{Dst: pfx("fd00:10::/48"), Gateway: netip.MustParseAddr("fd00:42::fe"), Index: 5, Protocol: Protocol},
	}
	if !slices.Equal(got, want) {
		t.Errorf("wantedRoutes = %v, want %v", got, want)
	}
	ifc.ExtraRoutes = append(ifc.ExtraRoutes, state.Route{Destination: "bogus"})
	if _, err := wantedRoutes(ifc, 5); err == nil {
		t.Error("wantedRoutes accepted destination \"bogus\"")
	}
}

func TestMatchLink(t *testing.T) {
	links := []kernelLink{
		{Index: 1, Name: "lo"},
		{Index: 2, Name: "eth0", MAC: "02:77:00:00:00:01"},
		{Index: 3, Name: "uplink0", MAC: "02:77:00:00:01:01"},                              // spoofed earlier, veth: no permanent MAC
		{Index: 4, Name: "enp2s0", MAC: "02:aa:00:00:00:01", PermMAC: "00:0d:b9:00:00:04"}, // spoofed NIC
		{Index: 5, Name: "lan0", MAC: "02:77:00:00:00:05"},
	}
	for _, tt := range []struct {
		name      string
		ifc       state.Interface
		claimed   map[uint32]bool
		wantIndex uint32 // 0: no match
	}{
		{"by current MAC", state.Interface{HardwareAddr: "02:77:00:00:00:01", Name: "wan"}, nil, 2},
		{"unknown MAC", state.Interface{HardwareAddr: "02:77:00:00:00:0A", Name: "x"}, nil, 0},
		{"by permanent MAC, upper case", state.Interface{HardwareAddr: "00:0D:B9:00:00:04", Name: "x"}, nil, 4},
		{"by name and spoofed MAC", state.Interface{HardwareAddr: "02:77:00:00:00:09", SpoofHardwareAddr: "02:77:00:00:01:01", Name: "uplink0"}, nil, 3},
		{"name alone does not do when a MAC is configured", state.Interface{HardwareAddr: "02:77:00:00:00:09", Name: "lan0"}, nil, 0},
		{"by name", state.Interface{Name: "lan0"}, nil, 5},
		{"claimed by an earlier entry", state.Interface{Name: "lan0"}, map[uint32]bool{5: true}, 0},
		{"absent", state.Interface{Name: "usb0"}, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, ok := matchLink(tt.ifc, links, tt.claimed)
			if !ok {
				l.Index = 0
			}
			if l.Index != tt.wantIndex {
				t.Errorf("matchLink = link %d, want %d", l.Index, tt.wantIndex)
			}
		})
	}
}

func TestBroadcast(t *testing.T) {
	for in, want := range map[string]string{
		"10.42.0.1/24": "10.42.0.255",
		"10.42.0.1/16": "10.42.255.255",
		"10.42.0.1/30": "10.42.0.3",
		"10.42.0.1/20": "10.42.15.255",
	} {
		if got := broadcast(pfx(in)).String(); got != want {
			t.Errorf("broadcast(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestSortPrefixes(t *testing.T) {
	ps := []netip.Prefix{pfx("fe80::1/64"), pfx("10.42.0.1/24"), pfx("fd00:42::1/64"), pfx("10.42.0.1/16"), pfx("10.4.0.1/8")}
	sortPrefixes(ps)
	want := []netip.Prefix{pfx("10.4.0.1/8"), pfx("10.42.0.1/16"), pfx("10.42.0.1/24"), pfx("fd00:42::1/64"), pfx("fe80::1/64")}
	if !slices.Equal(ps, want) {
		t.Errorf("sorted = %v, want %v", ps, want)
	}
}

func TestSplitAdds(t *testing.T) {
	ps := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, pfx(s))
		}
		return out
	}
	for _, tt := range []struct {
		name                 string
		add, del             []netip.Prefix
		wantFirst, wantLater []netip.Prefix
	}{
		{name: "new subnet first", add: ps("10.43.0.1/24"), del: ps("10.42.0.1/24"), wantFirst: ps("10.43.0.1/24")},
		{name: "same address, new length later", add: ps("fd00:42::1/56", "10.42.0.1/24"), del: ps("fd00:42::1/64", "10.42.0.1/16"), wantLater: ps("fd00:42::1/56", "10.42.0.1/24")},
		{name: "nothing removed", add: ps("10.42.0.1/24"), wantFirst: ps("10.42.0.1/24")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			first, later := splitAdds(tt.add, tt.del)
			if !slices.Equal(first, tt.wantFirst) || !slices.Equal(later, tt.wantLater) {
				t.Errorf("splitAdds = %v, %v; want %v, %v", first, later, tt.wantFirst, tt.wantLater)
			}
		})
	}
}

func TestLeaseRoutes(t *testing.T) {
	ip := netip.MustParseAddr
	const up = 4
	// dhcp is a route from the lease at 10.77.0.150 over uplink0.
	dhcp := func(dst, via string) route {
		r := route{Dst: pfx(dst), Index: up, Protocol: LeaseProtocol, Src: ip("10.77.0.150")}
		if via != "" {
			r.Gateway = ip(via)
		}
		return r
	}
	lease := func(addr, router string, routes ...state.DHCPv4Route) state.DHCPv4Lease {
		l := state.DHCPv4Lease{Addr: pfx(addr), Routes: routes}
		if router != "" {
			l.Router = ip(router)
		}
		return l
	}
	cr := func(dst, gw string) state.DHCPv4Route {
		return state.DHCPv4Route{Destination: pfx(dst), Gateway: ip(gw)}
	}
	for _, tt := range []struct {
		name  string
		lease state.DHCPv4Lease
		want  []route
	}{
		{name: "no lease", lease: state.DHCPv4Lease{}},
		{name: "no lease, stray router", lease: state.DHCPv4Lease{Router: ip("10.77.0.1")}},
		{name: "no router", lease: lease("10.77.0.150/24", "")},
		{name: "router 0.0.0.0", lease: lease("10.77.0.150/24", "0.0.0.0")},
		{
			name:  "router on the subnet",
			lease: lease("10.77.0.150/24", "10.77.0.1"),
			want:  []route{dhcp("0.0.0.0/0", "10.77.0.1")},
		},
		{
			name:  "router off the subnet gets a host route first",
			lease: lease("10.77.0.150/32", "10.77.0.1"),
			want:  []route{dhcp("10.77.0.1/32", ""), dhcp("0.0.0.0/0", "10.77.0.1")},
		},
		{
			name: "classless routes override the router (RFC 3442)",
			lease: lease("10.77.0.150/24", "10.77.0.1",
				cr("10.60.0.0/16", "10.77.0.2"),
				cr("10.61.0.0/16", "0.0.0.0"),
				cr("0.0.0.0/0", "10.77.0.3")),
			want: []route{dhcp("10.60.0.0/16", "10.77.0.2"), dhcp("10.61.0.0/16", ""), dhcp("0.0.0.0/0", "10.77.0.3")},
		},
		{
			name: "classless routes without a default: none",
			lease: lease("10.77.0.150/24", "10.77.0.1",
				cr("10.60.0.0/16", "10.77.0.2")),
			want: []route{dhcp("10.60.0.0/16", "10.77.0.2")},
		},
		{
			name: "classless gateways off the subnet get one host route each",
			lease: lease("10.77.0.150/32", "10.77.0.1",
				cr("10.60.0.0/16", "10.78.0.1"),
				cr("0.0.0.0/0", "10.78.0.1"),
				cr("10.78.0.1/32", "0.0.0.0")),
			want: []route{dhcp("10.78.0.1/32", ""), dhcp("10.60.0.0/16", "10.78.0.1"), dhcp("0.0.0.0/0", "10.78.0.1")},
		},
		{
			name:  "classless destination not masked",
			lease: lease("10.77.0.150/24", "", cr("10.60.1.2/16", "10.77.0.2")),
			want:  []route{dhcp("10.60.0.0/16", "10.77.0.2")},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := leaseRoutes(tt.lease, up)
			// Origins and lifetimes: TestInForce.
			opts := []cmp.Option{cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmpopts.IgnoreFields(wantAddr{}, "Origin", "Preferred", "Valid")}
			if d := cmp.Diff(tt.want, got, opts...); d != "" {
				t.Errorf("leaseRoutes (-want +got):\n%s", d)
			}
		})
	}
}

func TestWantedAddrs(t *testing.T) {
	ip := netip.MustParseAddr
	uplink := state.Interface{Name: state.Uplink, Addr: "10.50.0.1/24", ExtraAddrs: []string{"fd00:50::1/64"}}
	for _, tt := range []struct {
		name  string
		ifc   state.Interface
		lease state.DHCPv4Lease
		want  []wantAddr
	}{
		{
			name: "config only, broadcast computed",
			ifc:  uplink,
			want: []wantAddr{{Prefix: pfx("10.50.0.1/24"), Broadcast: ip("10.50.0.255")}, {Prefix: pfx("fd00:50::1/64")}},
		},
		{
			name:  "lease with computed broadcast",
			ifc:   uplink,
			lease: state.DHCPv4Lease{Addr: pfx("10.77.0.150/20")},
			want:  []wantAddr{{Prefix: pfx("10.50.0.1/24"), Broadcast: ip("10.50.0.255")}, {Prefix: pfx("fd00:50::1/64")}, {Prefix: pfx("10.77.0.150/20"), Broadcast: ip("10.77.15.255")}},
		},
		{
			name:  "lease with the server's broadcast",
			ifc:   state.Interface{Name: state.Uplink},
			lease: state.DHCPv4Lease{Addr: pfx("10.77.0.150/24"), Broadcast: ip("10.77.0.127")},
			want:  []wantAddr{{Prefix: pfx("10.77.0.150/24"), Broadcast: ip("10.77.0.127")}},
		},
		{
			name:  "/32 lease: no broadcast",
			ifc:   state.Interface{Name: state.Uplink},
			lease: state.DHCPv4Lease{Addr: pfx("10.77.0.150/32")},
			want:  []wantAddr{{Prefix: pfx("10.77.0.150/32")}},
		},
		{
			name:  "lease only on uplink0",
			ifc:   state.Interface{Name: state.LAN, Addr: "10.42.0.1/24"},
			lease: state.DHCPv4Lease{Addr: pfx("10.77.0.150/24")},
			want:  []wantAddr{{Prefix: pfx("10.42.0.1/24"), Broadcast: ip("10.42.0.255")}},
		},
		{
			name:  "lease address also in the config: once",
			ifc:   state.Interface{Name: state.Uplink, Addr: "10.77.0.150/24"},
			lease: state.DHCPv4Lease{Addr: pfx("10.77.0.150/24"), Broadcast: ip("10.77.0.127")},
			want:  []wantAddr{{Prefix: pfx("10.77.0.150/24"), Broadcast: ip("10.77.0.255")}},
		},
		{name: "zero lease: nothing", ifc: state.Interface{Name: state.Uplink}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wantedAddrs(tt.ifc, Inputs{Lease: tt.lease})
			if err != nil {
				t.Fatal(err)
			}
			// Origins and lifetimes: TestInForce.
			opts := []cmp.Option{cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmpopts.IgnoreFields(wantAddr{}, "Origin", "Preferred", "Valid")}
			if d := cmp.Diff(tt.want, got, opts...); d != "" {
				t.Errorf("wantedAddrs (-want +got):\n%s", d)
			}
		})
	}
}

func TestWrongBroadcasts(t *testing.T) {
	ip := netip.MustParseAddr
	want := []wantAddr{{Prefix: pfx("10.77.0.150/24"), Broadcast: ip("10.77.0.127")}, {Prefix: pfx("10.42.0.1/24"), Broadcast: ip("10.42.0.255")}, {Prefix: pfx("10.9.0.1/32")}, {Prefix: pfx("fd00:42::1/64")}}
	have := []kernelAddr{
		{Prefix: pfx("10.77.0.150/24"), Broadcast: ip("10.77.0.255")}, // wrong
		{Prefix: pfx("10.42.0.1/24"), Broadcast: ip("10.42.0.255")},   // right
		{Prefix: pfx("10.9.0.1/32")},                                  // right: none
		{Prefix: pfx("fd00:42::1/64")},
	}
	got := wrongBroadcasts(want, have)
	if len(got) != 1 || got[0] != want[0] {
		t.Errorf("wrongBroadcasts = %v, want %v", got, want[:1])
	}
	if got := wrongBroadcasts(want[1:2], []kernelAddr{{Prefix: pfx("10.42.0.1/24")}}); len(got) != 1 {
		t.Errorf("an address without broadcast: wrongBroadcasts = %v, want it fixed", got)
	}
	if got := wrongBroadcasts(want, nil); len(got) != 0 {
		t.Errorf("addresses the link lacks: wrongBroadcasts = %v, want none (they are added)", got)
	}
}

func TestSplitRouteAdds(t *testing.T) {
	ip := netip.MustParseAddr
	def := func(via string) route {
		return route{Dst: pfx("0.0.0.0/0"), Gateway: ip(via), Index: 4, Protocol: LeaseProtocol}
	}
	host := route{Dst: pfx("10.77.1.1/32"), Index: 4, Protocol: LeaseProtocol}
	first, later := splitRouteAdds([]route{host, def("10.77.1.1")}, []route{def("10.77.0.1")})
	if !slices.Equal(first, []route{host}) || !slices.Equal(later, []route{def("10.77.1.1")}) {
		t.Errorf("splitRouteAdds = %v, %v; want the host route first and the default route after the old one is gone", first, later)
	}
}

func TestWantedAddrs6(t *testing.T) {
	ip := netip.MustParseAddr
	lan := state.Interface{Name: state.LAN, Addr: "10.42.0.1/24", ExtraAddrs: []string{"fd00:42::1/64"}}
	uplink := state.Interface{Name: state.Uplink}
	configured := []wantAddr{{Prefix: pfx("10.42.0.1/24"), Broadcast: ip("10.42.0.255")}, {Prefix: pfx("fd00:42::1/64")}}
	pd := func(ps ...string) state.DHCPv6Lease {
		var l state.DHCPv6Lease
		for _, p := range ps {
			l.Prefixes = append(l.Prefixes, state.DelegatedPrefix{Prefix: pfx(p)})
		}
		return l
	}
	na := &state.LeasedAddr{Addr: ip("2a02:168:1:2::3")}
	both := pd("2a02:168:4a00::/48")
	both.Addr = na
	for _, tt := range []struct {
		name    string
		ifc     state.Interface
		lease6  state.DHCPv6Lease
		subnet  int
		want    []wantAddr
		wantErr bool
	}{
		{name: "no lease: the config's", ifc: lan, want: configured},
		{name: "no lease, uplink0: nothing", ifc: uplink},
		{
			name:   "/48, subnet 0",
			ifc:    lan,
			lease6: pd("2a02:168:4a00::/48"),
			want:   append(slices.Clone(configured), wantAddr{Prefix: pfx("2a02:168:4a00::1/64"), NoDAD: true}),
		},
		{
			name:   "/48, subnet 3",
			ifc:    lan,
			lease6: pd("2a02:168:4a00::/48"),
			subnet: 3,
			want:   append(slices.Clone(configured), wantAddr{Prefix: pfx("2a02:168:4a00:3::1/64"), NoDAD: true}),
		},
		{
			name:   "/56, subnet 0",
			ifc:    lan,
			lease6: pd("2a02:168:4a00:100::/56"),
			want:   append(slices.Clone(configured), wantAddr{Prefix: pfx("2a02:168:4a00:100::1/64"), NoDAD: true}),
		},
		{
			name:   "/56, subnet 3",
			ifc:    lan,
			lease6: pd("2a02:168:4a00:100::/56"),
			subnet: 3,
			want:   append(slices.Clone(configured), wantAddr{Prefix: pfx("2a02:168:4a00:103::1/64"), NoDAD: true}),
		},
		{
			name:   "/56 not masked, only the first prefix counts",
			ifc:    state.Interface{Name: state.LAN},
			lease6: pd("2a02:168:4a00:1ff::5/56", "2a02:168:4b00::/48"),
			want:   []wantAddr{{Prefix: pfx("2a02:168:4a00:100::1/64"), NoDAD: true}},
		},
		{
			name:   "/64 delegated, subnet 0",
			ifc:    state.Interface{Name: state.LAN},
			lease6: pd("2a02:168:4a00:100::/64"),
			want:   []wantAddr{{Prefix: pfx("2a02:168:4a00:100::1/64"), NoDAD: true}},
		},
		{
			name:    "subnet outside the prefix: the config's, and an error",
			ifc:     lan,
			lease6:  pd("2a02:168:4a00:100::/60"),
			subnet:  16,
			want:    configured,
			wantErr: true,
		},
		{
			name:    "prefix longer than /64",
			ifc:     state.Interface{Name: state.LAN},
			lease6:  pd("2a02:168:4a00:100::/80"),
			wantErr: true,
		},
		{
			name:   "prefix and IA_NA: the prefix on lan0 only",
			ifc:    state.Interface{Name: state.LAN},
			lease6: both,
			want:   []wantAddr{{Prefix: pfx("2a02:168:4a00::1/64"), NoDAD: true}},
		},
		{
			name:   "prefix and IA_NA: the IA_NA on uplink0 only, with DAD",
			ifc:    uplink,
			lease6: both,
			want:   []wantAddr{{Prefix: pfx("2a02:168:1:2::3/128")}},
		},
		{
			name:   "IA_NA only",
			ifc:    uplink,
			lease6: state.DHCPv6Lease{Addr: na},
			want:   []wantAddr{{Prefix: pfx("2a02:168:1:2::3/128")}},
		},
		{name: "IA_NA only, lan0: the config's", ifc: lan, lease6: state.DHCPv6Lease{Addr: na}, want: configured},
		{name: "IA_NA link-local: ignored", ifc: uplink, lease6: state.DHCPv6Lease{Addr: &state.LeasedAddr{Addr: ip("fe80::3")}}},
		{name: "IA_NA IPv4-mapped: ignored", ifc: uplink, lease6: state.DHCPv6Lease{Addr: &state.LeasedAddr{Addr: ip("::ffff:10.0.0.1")}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wantedAddrs(tt.ifc, Inputs{Lease6: tt.lease6, DHCPv6: state.DHCPv6{LANSubnet: tt.subnet}})
			if (err != nil) != tt.wantErr {
				t.Errorf("wantedAddrs error = %v, want error: %v", err, tt.wantErr)
			}
			// Origins and lifetimes: TestInForce.
			opts := []cmp.Option{cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmpopts.IgnoreFields(wantAddr{}, "Origin", "Preferred", "Valid")}
			if d := cmp.Diff(tt.want, got, opts...); d != "" {
				t.Errorf("wantedAddrs (-want +got):\n%s", d)
			}
		})
	}
}

func TestLease6Routes(t *testing.T) {
	unreach := func(dst string) route {
		return route{Dst: pfx(dst), Protocol: LeaseProtocol, Unreachable: true}
	}
	pd := func(ps ...string) state.DHCPv6Lease {
		var l state.DHCPv6Lease
		for _, p := range ps {
			l.Prefixes = append(l.Prefixes, state.DelegatedPrefix{Prefix: pfx(p)})
		}
		return l
	}
	for _, tt := range []struct {
		name   string
		lease6 state.DHCPv6Lease
		want   []route
	}{
		{name: "no lease"},
		{name: "IA_NA only", lease6: state.DHCPv6Lease{Addr: &state.LeasedAddr{Addr: netip.MustParseAddr("2a02:168:1:2::3")}}},
		{name: "/48", lease6: pd("2a02:168:4a00::/48"), want: []route{unreach("2a02:168:4a00::/48")}},
		{name: "/56 not masked", lease6: pd("2a02:168:4a00:1ff::1/56"), want: []route{unreach("2a02:168:4a00:100::/56")}},
		{
			name:   "every prefix, once",
			lease6: pd("2a02:168:4a00:100::/56", "2a02:168:4b00::/48", "2a02:168:4a00:100::/56"),
			want:   []route{unreach("2a02:168:4a00:100::/56"), unreach("2a02:168:4b00::/48")},
		},
		{name: "IPv4 prefix ignored", lease6: pd("10.0.0.0/8")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := lease6Routes(tt.lease6, netip.Prefix{})
			// Origins and lifetimes: TestInForce.
			opts := []cmp.Option{cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmpopts.IgnoreFields(wantAddr{}, "Origin", "Preferred", "Valid")}
			if d := cmp.Diff(tt.want, got, opts...); d != "" {
				t.Errorf("lease6Routes (-want +got):\n%s", d)
			}
		})
	}
}

func TestRouteDescribe(t *testing.T) {
	for _, tt := range []struct {
		r    route
		want string
	}{
		{route{Dst: pfx("fd00:78:0:100::/56"), Protocol: LeaseProtocol, Unreachable: true}, "unreachable fd00:78:0:100::/56 proto dhcp"},
		{route{Dst: pfx("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.77.0.1"), Index: 4, Protocol: LeaseProtocol, Src: netip.MustParseAddr("10.77.0.150")}, "0.0.0.0/0 via 10.77.0.1 dev uplink0 proto dhcp src 10.77.0.150"},
		{route{Dst: pfx("10.11.0.0/16"), Index: 5, Protocol: Protocol}, "10.11.0.0/16 dev uplink0"},
	} {
		if got := tt.r.describe(state.Uplink); got != tt.want {
			t.Errorf("describe = %q, want %q", got, tt.want)
		}
	}
}

// TestInForce: each address netconfig wants carries its origin and its
// lease's lifetimes, and st.Links shows those the link has.
func TestInForce(t *testing.T) {
	given := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	lease := state.DHCPv4Lease{Addr: pfx("10.77.0.150/24"), Expiry: given.Add(time.Hour)}
	lease6 := state.DHCPv6Lease{
		Prefixes: []state.DelegatedPrefix{{Prefix: pfx("2a02:168:4a00::/48"), Preferred: state.Duration(time.Hour), Valid: state.Duration(24 * time.Hour), Given: given}},
		Addr:     &state.LeasedAddr{Addr: netip.MustParseAddr("2a02:168:1:2::3"), Preferred: state.Duration(2 * time.Hour), Valid: state.Duration(3 * time.Hour), Given: given},
	}
	for _, tc := range []struct {
		ifc  state.Interface
		have []string
		want []state.Address
	}{
		{
			ifc:  state.Interface{Name: state.Uplink, Addr: "10.9.0.1/32"},
			have: []string{"10.9.0.1/32", "10.77.0.150/24", "2a02:168:1:2::3/128", "fe80::1/64"},
			want: []state.Address{
				{Prefix: pfx("10.9.0.1/32"), Family: "ipv4", Origin: state.OriginStatic},
				{Prefix: pfx("10.77.0.150/24"), Family: "ipv4", Origin: state.OriginDHCPv4, Preferred: given.Add(time.Hour), Valid: given.Add(time.Hour)},
				{Prefix: pfx("2a02:168:1:2::3/128"), Family: "ipv6", Origin: state.OriginDHCPv6, Preferred: given.Add(2 * time.Hour), Valid: given.Add(3 * time.Hour)},
			},
		},
		{
			// The IA_NA address failed DAD (see have below): not in force.
			ifc:  state.Interface{Name: state.Uplink},
			have: []string{"10.77.0.150/24", "2a02:168:1:2::3/128 dadfailed"},
			want: []state.Address{{Prefix: pfx("10.77.0.150/24"), Family: "ipv4", Origin: state.OriginDHCPv4, Preferred: given.Add(time.Hour), Valid: given.Add(time.Hour)}},
		},
		{
			ifc:  state.Interface{Name: state.LAN, Addr: "192.168.42.1/24", ExtraAddrs: []string{"fd00:42::1/64"}},
			have: []string{"fd00:42::1/64", "192.168.42.1/24", "2a02:168:4a00::1/64"},
			want: []state.Address{
				{Prefix: pfx("192.168.42.1/24"), Family: "ipv4", Origin: state.OriginStatic},
				{Prefix: pfx("fd00:42::1/64"), Family: "ipv6", Origin: state.OriginStatic},
				{Prefix: pfx("2a02:168:4a00::1/64"), Family: "ipv6", Origin: state.OriginDelegated, Preferred: given.Add(time.Hour), Valid: given.Add(24 * time.Hour)},
			},
		},
	} {
		t.Run(tc.ifc.Name, func(t *testing.T) {
			want, err := wantedAddrs(tc.ifc, Inputs{Lease: lease, Lease6: lease6})
			if err != nil {
				t.Fatal(err)
			}
			var have []kernelAddr
			for _, h := range tc.have {
				p, flag, _ := strings.Cut(h, " ")
				a := kernelAddr{Prefix: pfx(p), Flags: unix.IFA_F_PERMANENT}
				if flag == "dadfailed" {
					a.Flags |= unix.IFA_F_DADFAILED
				}
				have = append(have, a)
			}
			got := inForce(want, have)
			if d := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
				t.Errorf("inForce (-want +got):\n%s", d)
			}
			l := state.Link{InForce: got}
			if tc.ifc.Name == state.LAN && len(l.InForceOf(state.OriginDelegated)) != 1 {
				t.Errorf("InForceOf(delegated) = %v", l.InForceOf(state.OriginDelegated))
			}
		})
	}
}
