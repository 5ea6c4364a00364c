package netconfig

import (
	"github.com/homerouter/homerouter/internal/sysctl"
	"github.com/homerouter/homerouter/state"
)

// setting is one kernel setting under /proc/sys (see internal/sysctl).
type setting struct {
	path  []string // e.g. net, ipv6, conf, uplink0, accept_ra; a link name may hold dots
	value string
}

func (s setting) String() string { return sysctl.Name(s.path) + "=" + s.value }

// wantedSysctls is what the links need: accept_ra=2 on the uplink, so
// that its IPv6 default route keeps coming from the ISP's router
// advertisements once forwarding is on. Forwarding itself is the
// firewall's to switch on, once its ruleset is in force.
func wantedSysctls(uplinkPresent bool) []setting {
	if !uplinkPresent {
		return nil
	}
	return []setting{{[]string{"net", "ipv6", "conf", state.Uplink, "accept_ra"}, "2"}}
}
