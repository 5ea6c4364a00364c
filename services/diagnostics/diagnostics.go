// Package diagnostics finds out whether the internet works, and if not,
// why: it keeps a tree of checks, from uplink0's carrier through the
// DHCPv4 lease and DHCPv6 prefix to pings of the ISP's gateways and a
// question to the upstream DNS server, and publishes it on
// st.Diagnosis. /health.json and the status page show it beside the
// checks of the config files, the services and /perm.
//
// A check runs only while its parent passes; otherwise it says
// "dependency X failed", so that the first failure in the tree is the
// cause. The tree is computed again at once when a link, a lease or
// dns.json changes, and every ten seconds. A probe across the network (a
// ping, a DNS query) runs on the ten-second rounds, and at once the
// first time it can (its dependency just passed); in between it repeats
// its verdict, so that a carrier lost shows within milliseconds and no
// burst of changes floods the ISP with pings. A probe turns a passing
// check failed only when it fails twice in a row: one lost packet is not
// an outage. A check that is failing passes again at its first success.
//
// The IPv6 branch counts like the IPv4 one: a router whose ISP offers no
// IPv6 is unhealthy, which the check's error says plainly.
package diagnostics

import (
	"context"
	"log"
	"strings"
	"time"

	"github.com/homerouter/homerouter/state"
)

// ServiceName is the diagnostics service's name in the supervisor.
const ServiceName = "diagnostics"

// interval is how often the probes ask the network again.
const interval = 10 * time.Second

// Service runs the checks.
type Service struct {
	st     *state.Store
	logger *log.Logger
	probe  prober
}

// New returns the diagnostics service.
func New(st *state.Store, logger *log.Logger) *Service {
	return &Service{st: st, logger: logger, probe: network{}}
}

// Run checks until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	st := s.st
	var e evaluator
	was := map[string]string{} // each check's last error, "" passing, to log changes
	var nextFresh time.Time    // the next round that probes the network
	for {
		w := state.WatchAll(st.Links, st.DHCPv4Lease, st.DHCPv4Status, st.DHCPv6Lease, st.DHCPv6Status, st.DNS)
		in := inputs{
			now:     time.Now(),
			links:   st.Links.Value(),
			lease4:  st.DHCPv4Lease.Value(),
			status4: st.DHCPv4Status.Value(),
			lease6:  st.DHCPv6Lease.Value(),
			status6: st.DHCPv6Status.Value(),
			dns:     st.DNS.Value(),
		}
		fresh := !time.Now().Before(nextFresh)
		checks := e.run(ctx, tree(in, s.probe), fresh)
		if ctx.Err() != nil {
			return nil
		}
		if fresh {
			nextFresh = time.Now().Add(interval)
		}
		st.Diagnosis.Publish(state.Diagnosis{Checked: time.Now(), Checks: checks})
		s.logChanges(checks, was)

		wctx, cancel := context.WithDeadline(ctx, nextFresh)
		w.Wait(wctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
	}
}

func isDependency(err string) bool { return strings.HasPrefix(err, "dependency ") }

// logChanges logs each check whose verdict changed since the last run
// (was, updated), and each failure the first time it is seen, but not
// the consequences of a failure logged above them: the log then tells
// when the internet went and came back, and why.
func (s *Service) logChanges(checks []state.HealthCheck, was map[string]string) {
	var walk func(c state.HealthCheck, parent string)
	walk = func(c state.HealthCheck, parent string) {
		path := c.Name
		if parent != "" {
			path = parent + "/" + c.Name
		}
		before, seen := was[path]
		switch {
		case !seen && c.Error == "":
		case before == c.Error:
		case isDependency(c.Error):
			// Its parent's line said it all.
		case c.Error == "":
			if !isDependency(before) {
				s.logger.Printf("%s: ok again (%s)", path, c.Summary)
			}
		default:
			s.logger.Printf("%s: %s", path, c.Error)
		}
		was[path] = c.Error
		for _, child := range c.Children {
			walk(child, path)
		}
	}
	for _, c := range checks {
		walk(c, "")
	}
}
