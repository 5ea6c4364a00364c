// Package firewall is the router's nftables firewall and NAT: closed to
// the internet, open to the LAN, with port forwards, IPv6 pinholes, MSS
// clamping and, where the kernel has one, a flowtable.
//
// It owns one table, inet homerouter (see Build for the policy), which it
// replaces whole, in one atomic netlink transaction, whenever what it is
// built from changes: portforwardings.json, the links and their
// addresses in force (st.Links: lan0's subnet and prefixes, the uplink's
// address). Applying the same inputs again changes nothing.
//
// It also counts each LAN device's bytes up and down, by MAC, for
// st.Traffic, in a second table, netdev homerouter_traffic (see
// traffic.go): that one it makes once and never replaces, so that the
// counts run from boot. It never touches another table.
//
// It fails closed. Forwarding (IPv4 and IPv6) is the firewall's to switch
// on, and only once its ruleset is in force: at start, before anything
// else, it is switched off unless the table is already there (a restart
// of the service keeps the last ruleset in force); a ruleset the kernel
// refuses switches it off, shows on /health.json and is retried. Replacing
// the table keeps conntrack, so established connections survive a reload.
package firewall

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/homerouter/homerouter/internal/sysctl"
	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/state"
)

// ServiceName is the name main gives the firewall in the supervisor, and
// the key of its problems and notices.
const ServiceName = "firewall"

// Retry delays after a ruleset the kernel refused; an input change
// retries at once.
const (
	retryMin = time.Second
	retryMax = 30 * time.Second
)

// countersEvery is how often the counters are read for st.Firewall and
// st.Traffic.
const countersEvery = 5 * time.Second

// trafficKey is the key of the per-device counting's problems and
// notices: its own, so that they neither hide nor clear the ruleset's.
const trafficKey = ServiceName + " traffic"

// forwarding are the settings that make the kernel forward.
var forwarding = [][]string{
	{"net", "ipv4", "ip_forward"},
	{"net", "ipv6", "conf", "all", "forwarding"},
}

// Service is the firewall service.
type Service struct {
	st     *state.Store
	logger *log.Logger
	// Fault, when not empty, makes every apply fail with it: how the lab
	// shows that a ruleset the kernel refuses leaves forwarding off. The
	// per-device counting is then left out too, so that a unit test with
	// a Fault puts nothing into the kernel it runs on.
	Fault string
	// Bench serves POST /firewall/mode (see Endpoints), which can take
	// the ruleset away: for benchmarks only, never on a router in use.
	Bench bool
	// procSys is where sysctls are written (tests use a directory).
	procSys string
	// every is how often the counters are read: countersEvery, shorter
	// in tests.
	every time.Duration
	// mode is the bench mode: "full" (the default), "noflowtable" or
	// "off".
	mode *state.Topic[string]

	// The fields below belong to Run.
	applied   string    // the ruleset in force, as text; "" when none
	appliedAt time.Time // when it was put in force
	flowtable bool      // whether to try a flowtable
	base      state.FirewallCounters
	traffic   *trafficCounter
	// trafficErr and trafficNotice are what was last logged about the
	// counting, so that a failure that lasts is logged once.
	trafficErr, trafficNotice string
}

// New returns the firewall service.
func New(st *state.Store, logger *log.Logger) *Service {
	return &Service{st: st, logger: logger, procSys: sysctl.Root, every: countersEvery, mode: state.NewTopic[string]("firewall mode")}
}

// Bench modes (see Endpoints).
const (
	modeFull        = "full"
	modeNoFlowtable = "noflowtable"
	modeOff         = "off"
)

// Endpoints are the firewall's pages: with Bench, POST /firewall/mode
// with a body of "full", "noflowtable" or "off" (no ruleset at all,
// forwarding on), which `make bench` uses to compare the three in one
// boot of the image, where there is no nft. It needs no password on
// purpose, and that is why it exists only with Bench: /health.json then
// carries a notice.
func (s *Service) Endpoints() []services.Endpoint {
	if !s.Bench {
		return nil
	}
	return []services.Endpoint{{Pattern: "POST /firewall/mode", Handler: http.HandlerFunc(s.setMode)}}
}

func (s *Service) setMode(w http.ResponseWriter, r *http.Request) {
	// A header a web page cannot send cross-site without the browser
	// asking first (CORS), so a page a LAN user visits cannot switch the
	// firewall off.
	if r.Header.Get(BenchHeader) != "1" {
		http.Error(w, "POST /firewall/mode needs the header "+BenchHeader+": 1", http.StatusForbidden)
		return
	}
	b, _ := io.ReadAll(io.LimitReader(r.Body, 64))
	mode := strings.TrimSpace(string(b))
	switch mode {
	case modeFull, modeNoFlowtable, modeOff:
	default:
		http.Error(w, fmt.Sprintf("mode %q is not full, noflowtable or off", mode), http.StatusBadRequest)
		return
	}
	s.mode.Publish(mode)
	fmt.Fprintf(w, "firewall mode %s asked for; /health.json shows it in force\n", mode)
}

// Run implements services.Service.
func (s *Service) Run(ctx context.Context) error {
	s.applied = ""
	s.flowtable = true // tried again at every start: a module may have loaded since
	s.traffic = newTrafficCounter(func() (*nftables.Conn, error) { return nftables.New() })
	s.trafficErr, s.trafficNotice = "", ""
	present, err := tablePresent()
	if err != nil || !present {
		// No ruleset of ours: nothing may be forwarded until there is.
		if err := s.setForwarding(false); err != nil {
			s.st.ReportProblem(ServiceName, err)
		}
	}
	var retry time.Duration
	lastErr := ""
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for {
		w := state.WatchAll(s.st.Links, s.st.PortForwardings, s.st.Interfaces, s.mode)
		in := s.inputs()
		var err error
		if mode := s.mode.Value(); mode == modeOff {
			err = s.off()
		} else {
			if mode == modeNoFlowtable {
				in.Flowtable = false
			}
			err = s.apply(in)
		}
		if s.Bench {
			mode := cmp.Or(s.mode.Value(), modeFull)
			if err == nil {
				s.st.ReportNotice(ServiceName+" bench", fmt.Sprintf("bench mode %s in force (/perm/%s): not for a router in use", mode, BenchFile))
			}
		}
		switch {
		case err != nil:
			retry = min(max(2*retry, retryMin), retryMax)
			if err.Error() != lastErr {
				s.logger.Printf("%v (forwarding is off; retrying)", err)
				lastErr = err.Error()
			}
			s.st.ReportProblem(ServiceName, fmt.Errorf("%w (forwarding is off)", err))
		case lastErr != "":
			s.logger.Printf("ruleset in force again; forwarding on")
			retry, lastErr = 0, ""
			s.st.ReportProblem(ServiceName, nil)
		default:
			retry = 0
			s.st.ReportProblem(ServiceName, nil)
		}
		s.publish(in)
		s.countTraffic()

		wctx, cancel := context.WithCancel(ctx)
		if retry > 0 {
			cancel()
			wctx, cancel = context.WithTimeout(ctx, retry)
		}
		done := make(chan error, 1)
		go func() { done <- w.Wait(wctx) }()
	wait:
		for {
			select {
			case <-done:
				break wait
			case <-tick.C:
				s.countTraffic()
				if !s.publish(in) {
					// Someone took the table away (nft flush ruleset):
					// put it back now, or forwarding is open.
					s.logger.Printf("the table inet %s is gone; loading it again", TableName)
					s.applied = ""
					cancel()
					<-done
					break wait
				}
			}
		}
		cancel()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// BenchFile in /perm turns Bench on (main reads it at start).
const BenchFile = "firewall-bench"

// BenchHeader must be "1" on POST /firewall/mode.
const BenchHeader = "X-Homerouter-Bench"

// off takes the tables away, the counting one too, and leaves
// forwarding on: the bench's "no ruleset at all". Back in another mode,
// the counts start from zero.
func (s *Service) off() error {
	if s.applied == modeOff {
		return s.setForwarding(true)
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("firewall: netlink: %w", err)
	}
	defer c.CloseLasting()
	tables := []*nftables.Table{{Name: TableName, Family: nftables.TableFamilyINet}}
	if s.traffic == nil || s.traffic.unable == "" {
		// (A kernel without the netdev family would refuse the batch.)
		tables = append(tables, &nftables.Table{Name: TrafficTableName, Family: nftables.TableFamilyNetdev})
	}
	for _, t := range tables {
		c.AddTable(t)
		c.DelTable(t)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("firewall: remove the tables: %w", err)
	}
	s.logger.Printf("bench mode off: no ruleset, forwarding on")
	s.applied, s.appliedAt = modeOff, time.Time{}
	return s.setForwarding(true)
}

// inputs derives the ruleset's inputs from the store.
func (s *Service) inputs() Inputs {
	in := Inputs{LAN: state.LAN, Uplink: state.Uplink}
	links := s.st.Links.Value()
	// A flowtable names its devices, which must exist: until netconfig
	// has named both links there is none (and its absence then says
	// nothing about the kernel).
	_, lanOK := state.FindLink(links, state.LAN)
	_, uplinkOK := state.FindLink(links, state.Uplink)
	in.Flowtable = s.flowtable && lanOK && uplinkOK
	var lan []netip.Prefix
	if l, ok := state.FindLink(links, state.LAN); ok {
		for _, a := range l.InForce {
			if a.Origin == state.OriginULA {
				in.ULA = appendNew(in.ULA, a.Prefix.Masked())
				continue
			}
			lan = append(lan, a.Prefix.Masked())
		}
	}
	// Networks routed behind a host on the LAN (interfaces.json's
	// extra_routes on lan0) are the LAN's too.
	if ifc, ok := s.st.Interfaces.Value().ByName(state.LAN); ok {
		for _, r := range ifc.ExtraRoutes {
			if p, err := netip.ParsePrefix(r.Destination); err == nil {
				lan = append(lan, p.Masked())
			}
		}
	}
	for _, p := range lan {
		if p.Addr().Is4() {
			in.LAN4 = appendNew(in.LAN4, p)
		} else if !p.Addr().IsLinkLocalUnicast() {
			in.LAN6 = appendNew(in.LAN6, p)
		}
	}
	if l, ok := state.FindLink(links, state.Uplink); ok {
		for _, a := range l.InForce {
			if a.Prefix.Addr().Is4() {
				in.Uplink4 = append(in.Uplink4, a.Prefix.Addr())
			}
		}
	}
	in.Forwards = Forwards(s.st.PortForwardings.Value())
	return in
}

func appendNew(ps []netip.Prefix, p netip.Prefix) []netip.Prefix {
	for _, q := range ps {
		if q == p {
			return ps
		}
	}
	return append(ps, p)
}

// Forwards turns portforwardings.json (validated by the Store) into
// Forwards, one per protocol.
func Forwards(c state.PortForwardings) []Forward {
	var out []Forward
	for _, f := range c.Forwardings {
		ports, err1 := state.ParsePortRange(f.Port)
		dports, err2 := state.ParsePortRange(f.DestPort)
		dest, err3 := netip.ParseAddr(f.DestAddr)
		if err1 != nil || err2 != nil || err3 != nil {
			continue // the Store refused the file; it never gets here
		}
		for _, p := range f.Protos() {
			proto := byte(protoTCP)
			if p == "udp" {
				proto = protoUDP
			}
			out = append(out, Forward{Proto: proto, Ports: portRange{ports.First, ports.Last}, Dest: dest.Unmap(),
				DestPorts: portRange{dports.First, dports.Last}})
		}
	}
	return out
}

// apply puts the ruleset for in in force, unless it already is, and
// switches forwarding on. A kernel without flowtables gets the ruleset
// without one, and a notice.
func (s *Service) apply(in Inputs) error {
	rs := Build(in)
	text := rs.String()
	if text == s.applied {
		return s.setForwarding(true) // writes only what a failure left
	}
	s.reportSkipped(rs.Skipped)
	err := s.load(rs)
	if err != nil && in.Flowtable && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP)) {
		// A kernel without flowtables (CONFIG_NF_FLOW_TABLE off) refuses
		// the whole batch: everything else goes in without it.
		in.Flowtable = false
		rs2 := Build(in)
		if err2 := s.load(rs2); err2 != nil {
			err = err2
		} else {
			s.flowtable = false
			why, _, _ := strings.Cut(err.Error(), "; ")
			msg := fmt.Sprintf("no flowtable, the kernel refused one (%s): established flows take the slow path", why)
			s.logger.Print(msg)
			s.st.ReportNotice(ServiceName, msg)
			rs, text, err = rs2, rs2.String(), nil
		}
	}
	if err != nil {
		s.applied = ""
		if ferr := s.setForwarding(false); ferr != nil {
			err = errors.Join(err, ferr)
		}
		return err
	}
	if in.Flowtable {
		s.st.ReportNotice(ServiceName, "")
	}
	if s.applied == "" {
		s.logger.Printf("ruleset in force: %d rules, %d forwards, flowtable %v", rs.rules(), len(in.Forwards), in.Flowtable)
	} else {
		s.logger.Printf("ruleset replaced: %d rules, %d forwards, flowtable %v", rs.rules(), len(in.Forwards), in.Flowtable)
	}
	s.applied, s.appliedAt = text, time.Now()
	return s.setForwarding(true)
}

// reportSkipped logs and shows the forwards that are not to a LAN host.
func (s *Service) reportSkipped(skipped []Forward) {
	var msgs []string
	for _, f := range skipped {
		msgs = append(msgs, f.String())
	}
	msg := ""
	if len(msgs) > 0 {
		msg = fmt.Sprintf("portforwardings.json: left out, not to a host on the LAN: %s", strings.Join(msgs, "; "))
		s.logger.Print(msg)
	}
	s.st.ReportNotice(ServiceName+" forwards", msg)
}

// load replaces the table with rs, carrying the counters over.
func (s *Service) load(rs *Ruleset) error {
	if s.Fault != "" {
		return fmt.Errorf("firewall: %s", s.Fault)
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("firewall: netlink: %w", err)
	}
	defer c.CloseLasting()
	before, _ := readCounters(c)
	rs.add(c)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("firewall: load the ruleset: %w", err)
	}
	s.base = addCounters(s.base, before)
	return nil
}

// setForwarding switches forwarding on or off for both families.
func (s *Service) setForwarding(on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	var errs []error
	for _, p := range forwarding {
		changed, err := sysctl.Set(s.procSys, p, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("firewall: %w", err))
		} else if changed {
			s.logger.Printf("%s=%s", sysctl.Name(p), v)
		}
	}
	return errors.Join(errs...)
}

// publish publishes what is in force, with the counters. It reports
// false when the ruleset should be in force and the kernel has no table.
func (s *Service) publish(in Inputs) bool {
	st := state.FirewallStatus{Counters: s.base, Forwarding: s.applied == modeOff}
	ok := true
	if s.applied != "" && s.applied != modeOff {
		st.Applied = s.appliedAt
		st.Forwarding = true
		st.Flowtable = in.Flowtable && s.flowtable
		st.Forwards = len(in.Forwards)
		if c, err := nftables.New(); err == nil {
			if _, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet); errors.Is(err, unix.ENOENT) {
				ok = false
			} else if now, err := readCounters(c); err == nil {
				st.Counters = addCounters(s.base, now)
			}
			c.CloseLasting()
		}
	}
	s.st.Firewall.PublishIfChanged(st)
	return ok
}

// tablePresent reports whether the kernel has the firewall's table.
func tablePresent() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, err
	}
	defer c.CloseLasting()
	_, err = c.ListTableOfFamily(TableName, nftables.TableFamilyINet)
	return err == nil, nil
}

// readCounters reads the table's counters; a table that is not there
// has none.
func readCounters(c *nftables.Conn) (state.FirewallCounters, error) {
	var fc state.FirewallCounters
	objs, err := c.GetObjects(&nftables.Table{Name: TableName, Family: nftables.TableFamilyINet})
	if err != nil {
		return fc, err
	}
	for _, o := range objs {
		co, ok := o.(*nftables.CounterObj)
		if !ok {
			continue
		}
		if p := counterField(&fc, co.Name); p != nil {
			*p = state.Counter{Packets: co.Packets, Bytes: co.Bytes}
		}
	}
	return fc, nil
}

func counterField(fc *state.FirewallCounters, name string) *state.Counter {
	switch name {
	case forwardedOut4:
		return &fc.ForwardedOut4
	case forwardedIn4:
		return &fc.ForwardedIn4
	case forwardedOut6:
		return &fc.ForwardedOut6
	case forwardedIn6:
		return &fc.ForwardedIn6
	case droppedForward4:
		return &fc.DroppedForward4
	case droppedForward6:
		return &fc.DroppedForward6
	case droppedInput4:
		return &fc.DroppedInput4
	case droppedInput6:
		return &fc.DroppedInput6
	}
	return nil
}

func addCounters(a, b state.FirewallCounters) state.FirewallCounters {
	for _, name := range counterNames {
		p, q := counterField(&a, name), counterField(&b, name)
		p.Packets += q.Packets
		p.Bytes += q.Bytes
	}
	return a
}

// rules counts the ruleset's rules, for the log.
func (rs *Ruleset) rules() int {
	n := 0
	for _, c := range rs.chains {
		n += len(c.rules)
	}
	return n
}

// countTraffic keeps the per-device counting in force and publishes
// st.Traffic from it, at every turn of Run's loop and every
// countersEvery (5 s): a new sample each time, even when no count moved,
// because the last minute's figures shrink as time passes and Sampled
// says how fresh they are. While the counters cannot be read, st.Traffic
// keeps its last value.
func (s *Service) countTraffic() {
	if s.applied == modeOff || s.Fault != "" {
		return // off took the table away; a Fault leaves the kernel alone
	}
	_, lanUp := state.FindLink(s.st.Links.Value(), state.LAN)
	tr, err := s.traffic.step(state.LAN, lanUp, time.Now())
	if notice := s.traffic.notice(); notice != s.trafficNotice {
		if notice != "" {
			s.logger.Print(notice)
		}
		s.trafficNotice = notice
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != s.trafficErr {
		if err != nil {
			s.logger.Printf("%v (per-device traffic not counted; retrying)", err)
		} else {
			s.logger.Printf("per-device traffic counted again")
		}
		s.trafficErr = msg
	}
	// A notice, not a problem, even when the counters cannot be read:
	// the internet works without them, and an unhealthy router would
	// roll back an update.
	notice := s.trafficNotice
	if err != nil {
		notice = strings.TrimPrefix(notice+"; per-device traffic not counted: "+msg, "; ")
	}
	s.st.ReportNotice(trafficKey, notice)
	if err == nil && !tr.Sampled.IsZero() {
		s.st.Traffic.Publish(tr)
	}
}
