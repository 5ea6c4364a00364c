package httpd

import (
	"bytes"
	"cmp"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/homerouter/homerouter/internal/oui"
	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/state"
)

// statusFS holds the page's template.
//
//go:embed status.html
var statusFS embed.FS

// statusTemplate is the status page: plain HTML that refreshes itself,
// readable on a phone, without JavaScript.
var statusTemplate = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"ago":   ago,
	"until": until,
	"plus":  func(t time.Time, d state.Duration) time.Time { return t.Add(time.Duration(d)) },
	"dur":   func(d state.Duration) string { return time.Duration(d).String() },
	"bytes": bytesIEC,
}).ParseFS(statusFS, "status.html"))

// statusPage is what the page shows, gathered from the Store at one
// instant.
type statusPage struct {
	Now    time.Time
	Router state.RouterInfo
	Health Health
	// Checks is the health tree flattened, each with its depth.
	Checks []flatCheck

	Uplink4, Uplink6 []string // addresses in force on uplink0
	Lease4           state.DHCPv4Lease
	Status4          state.DHCPv4Status
	Lease6           state.DHCPv6Lease
	DefaultRoutes    []netip.Addr
	Upstreams        []string

	LAN     []string // lan0's addresses in force, with their origin
	Devices []device

	DNS      state.DNSStatus
	Firewall state.FirewallStatus
	RA       state.RAStatus
	Services []state.ServiceStatus
	// Log are the log's last lines, oldest first.
	Log []string
}

// flatCheck is a node of the check tree with its depth, for a table.
type flatCheck struct {
	state.HealthCheck
	Depth int
}

// device is a row of the LAN's table: a DHCP lease, with the traffic
// of its MAC; or a MAC the firewall counted that has no lease (an
// address set by hand, IPv6 only).
type device struct {
	Hostname, MAC, Vendor string
	Addr                  netip.Addr // invalid without a lease
	Expiry, LastSeen      time.Time
	Static, Bound         bool
	Traffic               state.DeviceTraffic
}

// logLines is how many of the log's last lines the page shows.
const logLines = 30

// gatherStatus reads the page's content from st and logs (nil: no log)
// at now.
func gatherStatus(st *state.Store, vendors *oui.Table, logs func() []byte, now time.Time) statusPage {
	p := statusPage{Now: now, Router: st.Router.Value(), Health: services.CurrentHealth(st)}
	var flatten func(c state.HealthCheck, depth int)
	flatten = func(c state.HealthCheck, depth int) {
		p.Checks = append(p.Checks, flatCheck{HealthCheck: c, Depth: depth})
		for _, child := range c.Children {
			flatten(child, depth+1)
		}
	}
	flatten(p.Health.Checks, 0)

	links := st.Links.Value()
	if up, ok := state.FindLink(links, state.Uplink); ok {
		for _, a := range up.InForce {
			if a.Prefix.Addr().Is4() {
				p.Uplink4 = append(p.Uplink4, a.Prefix.String())
			} else {
				p.Uplink6 = append(p.Uplink6, a.Prefix.String())
			}
		}
		p.DefaultRoutes = up.DefaultRoutes
	}
	if lan, ok := state.FindLink(links, state.LAN); ok {
		for _, a := range lan.InForce {
			p.LAN = append(p.LAN, fmt.Sprintf("%s (%s)", a.Prefix, a.Origin))
		}
	}
	p.Lease4, p.Lease6, p.Status4 = st.DHCPv4Lease.Value(), st.DHCPv6Lease.Value(), st.DHCPv4Status.Value()
	for _, ap := range state.Upstreams(st.DNS.Value(), p.Lease4, p.Lease6) {
		p.Upstreams = append(p.Upstreams, ap.String())
	}
	traffic := st.Traffic.Value()
	leased := map[string]bool{}
	for _, l := range st.DHCPv4ServerLeases.Value().Leases {
		// Offered: not a device's yet; declined: the address is
		// someone else's, not a device that asked for it.
		if l.Offered || l.Declined || (l.Expiry.IsZero() && !l.Static) {
			continue
		}
		d := device{
			Hostname: l.Hostname, Addr: l.Addr, MAC: l.HardwareAddr, Vendor: vendors.Vendor(l.HardwareAddr),
			Expiry: l.Expiry, LastSeen: l.LastSeen, Static: l.Static, Bound: l.Bound(now),
		}
		d.Traffic, _ = traffic.Find(l.HardwareAddr)
		leased[l.HardwareAddr] = true
		p.Devices = append(p.Devices, d)
	}
	for _, t := range traffic.Devices {
		if !leased[t.MAC] {
			p.Devices = append(p.Devices, device{MAC: t.MAC, Vendor: vendors.Vendor(t.MAC), Traffic: t})
		}
	}
	// By address, those without one (no lease) last, by MAC.
	slices.SortFunc(p.Devices, func(a, b device) int {
		switch {
		case a.Addr.IsValid() != b.Addr.IsValid():
			return cmp.Compare(boolInt(!a.Addr.IsValid()), boolInt(!b.Addr.IsValid()))
		case a.Addr != b.Addr:
			return a.Addr.Compare(b.Addr)
		}
		return strings.Compare(a.MAC, b.MAC)
	})
	p.DNS, p.Firewall, p.RA = st.DNSStatus.Value(), st.Firewall.Value(), st.RAStatus.Value()
	p.Services = st.Services.Value()
	if logs != nil {
		lines := strings.Split(strings.TrimRight(string(logs()), "\n"), "\n")
		if len(lines) > logLines {
			lines = lines[len(lines)-logLines:]
		}
		if len(lines) > 0 && lines[0] != "" {
			p.Log = lines
		}
	}
	return p
}

// statusHandler serves the status page.
func statusHandler(st *state.Store, vendors *oui.Table, logs func() []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		if err := statusTemplate.Execute(&b, gatherStatus(st, vendors, logs, time.Now())); err != nil {
			http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b.Bytes())
	})
}

// ago says how long before now t was, to the second; "never" for zero.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return roundDuration(now.Sub(t)) + " ago"
}

// until says how long after now t is ("in 5m0s", or "5m0s ago" when
// past); "—" for zero.
func until(now, t time.Time) string {
	switch {
	case t.IsZero():
		return "—"
	case t.Before(now):
		return roundDuration(now.Sub(t)) + " ago"
	}
	return "in " + roundDuration(t.Sub(now))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// bytesIEC writes n bytes for people: "0 B", "812 B", "10.5 MiB".
func bytesIEC(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// roundDuration rounds d to the second, for people.
func roundDuration(d time.Duration) string { return d.Round(time.Second).String() }
