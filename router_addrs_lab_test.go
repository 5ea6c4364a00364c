package main

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/homerouter/homerouter/internal/lab"
)

// routerAddrs are the addresses a running router in the lab's home got
// from the ISP.
type routerAddrs struct {
	Uplink4  netip.Addr   // uplink0's DHCPv4 address
	Uplink6  []netip.Addr // uplink0's global IPv6 addresses (IA_NA, SLAAC)
	UplinkLL netip.Addr   // uplink0's link-local address
	LAN6     netip.Prefix // lan0's address in the delegated prefix
	LANLL    netip.Addr   // lan0's link-local address
}

// waitRouterAddrs waits until the router in h has its uplink's DHCPv4
// and IPv6 addresses and lan0 its address in the delegated prefix.
func waitRouterAddrs(ctx context.Context, t *testing.T, h *lab.Home) routerAddrs {
	t.Helper()
	var r routerAddrs
	err := lab.WaitFor(ctx, "uplink0's leases and lan0's delegated prefix", func() error {
		if h.RouterProc != nil {
			select {
			case <-h.RouterProc.Exited():
				return lab.Abort(fmt.Errorf("router exited (%v)", h.RouterProc.Err()))
			default:
			}
		}
		ls := links(ctx, t, h.Router)
		r = routerAddrs{}
		for _, a := range ls["uplink0"].AddrInfo {
			addr, err := netip.ParseAddr(a.Local)
			if err != nil {
				continue
			}
			switch {
			case addr.Is4() && netip.MustParsePrefix(lab.ISPPrefix4).Contains(addr):
				r.Uplink4 = addr
			case addr.Is6() && addr.IsLinkLocalUnicast():
				r.UplinkLL = addr
			case addr.Is6() && netip.MustParsePrefix(lab.ISPPrefix6).Contains(addr):
				r.Uplink6 = append(r.Uplink6, addr)
			}
		}
		for _, a := range ls["lan0"].AddrInfo {
			addr, err := netip.ParseAddr(a.Local)
			if err != nil {
				continue
			}
			switch {
			case addr.IsLinkLocalUnicast():
				r.LANLL = addr
			case netip.MustParsePrefix(lab.ISPPDPool).Contains(addr):
				r.LAN6 = netip.PrefixFrom(addr, a.PrefixLen)
			}
		}
		if !r.Uplink4.IsValid() || len(r.Uplink6) == 0 || !r.UplinkLL.IsValid() || !r.LAN6.IsValid() || !r.LANLL.IsValid() {
			return fmt.Errorf("uplink0 %v, lan0 %v", ls["uplink0"].AddrInfo, ls["lan0"].AddrInfo)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
