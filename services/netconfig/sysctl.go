package netconfig

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/homerouter/homerouter/state"
)

// sysctl is one kernel setting under /proc/sys. The files there belong to
// the network namespace of the process that opens them, so writing them
// configures the router's namespace, not the host's, under `homerouter run`.
type sysctl struct {
	path  []string // e.g. net, ipv4, ip_forward; a link name may hold dots
	value string
}

func (s sysctl) String() string { return strings.Join(s.path, ".") + "=" + s.value }

// wantedSysctls is what a router needs: forwarding for both families and,
// because forwarding turns off accepting router advertisements, accept_ra=2
// on the uplink so that its IPv6 default route keeps coming from the ISP.
func wantedSysctls(uplinkPresent bool) []sysctl {
	ss := []sysctl{
		{[]string{"net", "ipv4", "ip_forward"}, "1"},
		{[]string{"net", "ipv6", "conf", "all", "forwarding"}, "1"},
	}
	if uplinkPresent {
		ss = append(ss, sysctl{[]string{"net", "ipv6", "conf", state.Uplink, "accept_ra"}, "2"})
	}
	return ss
}

// applySysctl writes s under root (normally /proc/sys) unless it already
// has that value, and reports whether it wrote.
func applySysctl(root string, s sysctl) (bool, error) {
	p := filepath.Join(append([]string{root}, s.path...)...)
	cur, err := os.ReadFile(p)
	if err != nil {
		return false, fmt.Errorf("sysctl %s: %w", s, err)
	}
	if string(bytes.TrimSpace(cur)) == s.value {
		return false, nil
	}
	if err := os.WriteFile(p, []byte(s.value+"\n"), 0o644); err != nil {
		return false, fmt.Errorf("sysctl %s: %w", s, err)
	}
	return true, nil
}
