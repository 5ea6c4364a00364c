// Package netconfig makes the kernel's links match /perm/interfaces.json
// and the DHCP leases: it finds each configured link, renames it, sets
// its MAC and MTU, brings it up, gives it its addresses and extra routes,
// gives uplink0 the DHCPv4 lease's address and routes and the DHCPv6
// lease's address, and gives lan0 an address in the delegated prefix
// (forwarding is the firewall's). It is a level-triggered reconciler: Run applies
// the whole config again whenever the config, dhcp6.json or a lease
// changes or the kernel reports a link event (a USB NIC plugged in, a
// link renamed or taken down by hand), and every apply is idempotent, so
// nothing depends on remembering what happened before.
//
// # Matching links
//
// A config entry picks its link by hardware_addr (the NIC's permanent MAC
// or its current one), else by name. A link must be down to be renamed,
// so netconfig takes it down and brings it back up. When the new name is
// held by a link the config does not claim, that entry fails (the other
// link is left alone) and the other entries are still applied. A
// configured link that is absent is not an error: it is logged once and
// configured when it appears.
//
// # What netconfig owns
//
// On the links it configures, netconfig owns every IPv4 address, and every
// IPv6 address that is not link-local and is permanent (IFA_F_PERMANENT;
// addresses the kernel made by SLAAC, temporary addresses and DHCPv6
// addresses with a lifetime lack it). It removes those that the config no
// longer lists, also ones left by an earlier run of the router, so that a
// restart converges on the config. IPv6 link-local and kernel-configured
// addresses are never touched, nor are addresses on links the config does
// not name.
//
// Routes: netconfig installs extra_routes in the main table with its own
// routing protocol number, Protocol (0x48), and removes every route with
// that number that the config no longer lists. It also owns, in the main
// table and on uplink0 only, every route with LeaseProtocol (RTPROT_DHCP,
// 16, "proto dhcp"), and in the main table every IPv6 unreachable route
// with LeaseProtocol: the leases' routes, below; stale ones (a previous
// lease's, another DHCP client's) are removed. Routes of the kernel
// (prefix routes, RA routes: uplink0's IPv6 default route is one), of
// other programs, and other proto dhcp routes off uplink0 are never
// touched. One diff covers all kinds: a route is the same only with the
// same type, destination, gateway, link, protocol and preferred source.
//
// # The DHCPv4 lease
//
// When uplink0 is configured and present, its wanted addresses are the
// config's plus the lease's Addr, with the server's broadcast address
// (option 28) or else the subnet's. Since netconfig owns all IPv4
// addresses there, a new lease's address replaces the old one and the
// zero lease removes it. The lease's routes, all with preferred source
// the lease's address:
//
//   - its classless static routes (option 121), when it has any, and then
//     no default route via Router: they override option 3 (RFC 3442). A
//     gateway 0.0.0.0 makes an on-link (scope link) route;
//   - otherwise a default route via Router, when it has one.
//
// A gateway outside the lease's subnet (a /32 lease, say) gets an on-link
// host route to itself first, because the kernel refuses a gateway it
// cannot reach on the link. We chose a visible host route over the onlink
// flag: it shows in `ip route`, serves every route via that gateway, and
// makes the router itself reachable.
//
// Order keeps the uplink connected: new addresses are added, then new
// routes, then stale routes removed (a new route whose destination a
// stale one still holds, such as the default route to a new router, only
// right after it), then stale addresses removed. The kernel drops the
// routes whose preferred source was a removed address, and all of a
// link's IPv4 routes, foreign ones included, with its last IPv4 address
// (as when a lease ends, or its prefix length or broadcast address
// changes, which the kernel only allows by removing and adding the
// address), so after removing addresses netconfig compares the routes
// again and puts its own back.
//
// # The DHCPv6 lease
//
// lan0 gets the ::1 of the /64 number lan_subnet (dhcp6.json, default 0)
// of the lease's first delegated prefix, as a /64, in addition to its
// configured addresses; a lan_subnet the prefix has no room for is
// reported as an error. It is added with IFA_F_NODAD, so that it is
// usable at once (see lanAddr6). uplink0 gets the IA_NA address, if the
// lease has one, as a /128, with DAD. Both are permanent addresses,
// whatever the lease's lifetimes: the DHCPv6 client keeps a lease past
// them on purpose, and netconfig owns an IPv6 address only while it is
// permanent. So a new prefix replaces the old address (the new one is
// added first), and the zero lease removes them.
//
// Each delegated prefix gets an unreachable route with LeaseProtocol
// (`unreachable 2a02:168:4a00::/48 proto dhcp`), so that packets to its
// unused parts are not sent back to the ISP (RFC 7084, WPD-5); lan0's
// /64 prefix route is more specific. It is not tied to a link, so it is
// there whichever configured links are present. uplink0's IPv6 default
// route comes from the ISP's router advertisements (accept_ra=2 below),
// not from netconfig.
//
// Sysctls: net.ipv6.conf.uplink0.accept_ra=2, so that the uplink still
// learns its default route once forwarding is on. Forwarding itself is
// the firewall's (services/firewall): it switches it on only once its
// ruleset is in force. Sysctls are per network namespace.
package netconfig

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/homerouter/homerouter/internal/sysctl"
	"github.com/homerouter/homerouter/state"
	"github.com/jsimonetti/rtnetlink/v2"
	"golang.org/x/sys/unix"
)

// Netconfig is the netconfig service. Its only memory between applies is
// which absent links it already logged; everything else is read from the
// kernel each time, so a restarted service picks up where it was.
type Netconfig struct {
	st  *state.Store
	log *log.Logger
	// procSys is where sysctls are written; a field so that it is not a
	// package global.
	procSys string

	mu     sync.Mutex      // one Apply at a time
	absent map[string]bool // configured names logged as absent
}

// New returns the netconfig service for st; logs go to logger (prefix
// already set by the caller, e.g. "netconfig: ").
func New(st *state.Store, logger *log.Logger) *Netconfig {
	return &Netconfig{st: st, log: logger, procSys: "/proc/sys", absent: make(map[string]bool)}
}

// Run is the supervised loop: it applies st.Interfaces, st.DHCPv4Lease,
// st.DHCPv6Lease, st.DHCPv6, st.RA and st.ULA whenever one of these
// topics changes or the kernel reports a link event or a change of a
// default route, logging each change, and makes the ULA on the first
// run that needs one (makeULA). An
// apply that fails (a name held by a link the config does not claim, a
// link that vanished half-way) is reported as the service's problem in
// st.Problems, shown by /health.json, and retried with backoff, while Run
// goes on following changes: one bad entry must not stop the others from
// being kept right. Run returns ctx.Err() when ctx is done, or an error
// when the kernel's link events stop. Before interfaces.json was first
// loaded it applies nothing, rather than removing routes an empty config
// does not list.
func (n *Netconfig) Run(ctx context.Context) error {
	events, err := subscribeLinks()
	if err != nil {
		return err
	}
	defer events.Close()
	defer n.st.ReportProblem(ServiceName, nil)
	var retry time.Duration // 0: no retry pending
	lastErr := ""
	for {
		w := state.WatchAll(n.st.Interfaces, n.st.DHCPv4Lease, n.st.DHCPv6Lease, n.st.DHCPv6, n.st.RA, n.st.ULA, events)
		if err := events.Err(); err != nil {
			return err
		}
		n.makeULA()
		if cfg, version := n.st.Interfaces.Get(); version > 0 {
			_, _, err := n.Apply(ctx, cfg, n.Inputs()) // logs each change
			switch {
			case err != nil:
				retry = min(max(2*retry, retryMin), retryMax)
				if err.Error() != lastErr {
					n.log.Printf("%v (retrying on every change, and with backoff)", err)
					lastErr = err.Error()
				}
			case lastErr != "":
				n.log.Printf("applied the config in full again")
				retry, lastErr = 0, ""
			}
			n.st.ReportProblem(ServiceName, err)
		}
		if err := waitOrRetry(ctx, w, retry); err != nil {
			return err
		}
	}
}

// Inputs returns what Run applies besides interfaces.json, from the
// Store.
func (n *Netconfig) Inputs() Inputs {
	in := Inputs{Lease: n.st.DHCPv4Lease.Value(), Lease6: n.st.DHCPv6Lease.Value(), DHCPv6: n.st.DHCPv6.Value()}
	in.ULA, in.ULALAN = state.LANULA(n.st.RA.Value(), n.st.ULA.Value())
	return in
}

// makeULA makes lan0's unique local prefix, once: when neither ra.json
// nor ula.json has one, it publishes a new random /48 on st.ULA, which
// SaveState writes to ula.json. An ula.json that exists but does not
// parse is left for a person to mend (a new prefix would renumber the
// LAN for good), with a notice; the LAN goes without a ULA meanwhile.
func (n *Netconfig) makeULA() {
	if state.IsULA(n.st.RA.Value().ULA) || state.IsULA(n.st.ULA.Value().Prefix) {
		n.st.ReportNotice(ulaNotice, "")
		return
	}
	if err := n.st.ULA.LoadErr(); err != nil {
		n.st.ReportNotice(ulaNotice, fmt.Sprintf("%v: the LAN has no unique local prefix until it is mended (or removed, and a new one is made)", err))
		return
	}
	u, err := state.NewULA(time.Now())
	if err != nil {
		n.log.Print(err)
		return
	}
	n.log.Printf("made the unique local prefix %s for the LAN (kept in ula.json)", u.Prefix)
	n.st.ULA.Publish(u)
}

// ulaNotice is the subject of the notice about an ula.json that does not
// parse.
const ulaNotice = "ula.json"

// ServiceName is the name main gives netconfig in the supervisor, and the
// one its problems are reported under.
const ServiceName = "netconfig"

// Retry delays after a failed apply; any config change or link event
// retries at once.
const (
	retryMin = time.Second
	retryMax = 30 * time.Second
)

// waitOrRetry waits for w, or for retry to pass when it is not 0. It
// returns an error only when ctx is done.
func waitOrRetry(ctx context.Context, w state.Watch, retry time.Duration) error {
	if retry == 0 {
		return w.Wait(ctx)
	}
	tctx, cancel := context.WithTimeout(ctx, retry)
	defer cancel()
	w.Wait(tctx)
	return ctx.Err()
}

// Apply makes the kernel match cfg and in once, logs each change, and returns a
// human-readable line per change it made (empty when nothing changed) and
// the resulting links, which it also publishes on st.Links. Errors of one
// link do not stop the others: they are joined and returned after
// everything else was tried.
func (n *Netconfig) Apply(ctx context.Context, cfg state.Interfaces, in Inputs) (changes []string, links []state.Link, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k, err := dialKernel()
	if err != nil {
		return nil, nil, fmt.Errorf("netconfig: %w", err)
	}
	defer k.close()
	a := &apply{n: n, k: k, in: in}
	a.run(ctx, cfg)
	links, err = a.result()
	if err != nil {
		a.errs = append(a.errs, err)
	} else {
		n.st.Links.PublishIfChanged(links)
	}
	return a.changes, links, errors.Join(a.errs...)
}

// apply is the state of one Apply.
type apply struct {
	n       *Netconfig
	k       *kernel
	in      Inputs
	links   []kernelLink          // the kernel's links, names kept up to date
	found   []found               // configured links present, in config order
	wanted  map[uint32][]wantAddr // each found link's wanted addresses
	changes []string
	errs    []error
}

// found pairs a config entry with its link.
type found struct {
	ifc   state.Interface
	index uint32
}

// changef records a change and logs it at once: before st.Links shows
// it, so that the log's order is the order of what happened (a DHCP
// client that follows st.Links logs after the address it uses).
func (a *apply) changef(format string, args ...any) {
	c := fmt.Sprintf(format, args...)
	a.changes = append(a.changes, c)
	a.n.log.Print(c)
}

func (a *apply) fail(err error) { a.errs = append(a.errs, err) }

// run does the steps in an order where each one's preconditions hold:
// links get their names before the uplink sysctl is written, and are up
// (taking a link down flushes its routes and IPv6 addresses) before
// addresses and routes are compared. New addresses come before the routes
// (a route's gateway and preferred source must be on the link) and stale
// ones after them, so that a new lease's default route is in place
// before the old address goes. Removing an address makes the kernel drop
// the routes that use it as source, and all of a link's IPv4 routes with
// its last IPv4 address, so the routes are compared once more after
// addresses were removed; that second pass starts from what the kernel
// has then, so the first pass's errors (a gateway not yet reachable
// because its address only came with the removals) are dropped.
func (a *apply) run(ctx context.Context, cfg state.Interfaces) {
	links, err := a.k.links()
	if err != nil {
		a.fail(fmt.Errorf("netconfig: %w", err))
		return
	}
	a.links = links
	a.match(cfg)
	if err := a.configureLinks(ctx); err != nil {
		a.fail(err)
		return
	}
	a.sysctls()
	stale := a.addAddresses()
	before := len(a.errs)
	a.routes()
	routeErrs := slices.Clone(a.errs[before:])
	a.errs = a.errs[:before]
	if a.removeAddresses(stale) {
		a.routes()
	} else {
		a.errs = append(a.errs, routeErrs...)
	}
}

// match pairs each config entry with its link and logs, once, the ones
// that are absent.
func (a *apply) match(cfg state.Interfaces) {
	claimed := make(map[uint32]bool)
	for _, ifc := range cfg.Interfaces {
		l, ok := matchLink(ifc, a.links, claimed)
		if !ok {
			if !a.n.absent[ifc.Name] {
				a.n.log.Printf("%s (hardware_addr %q) is absent; it is configured when it appears", ifc.Name, ifc.HardwareAddr)
				a.n.absent[ifc.Name] = true
			}
			continue
		}
		delete(a.n.absent, ifc.Name)
		claimed[l.Index] = true
		a.found = append(a.found, found{ifc: ifc, index: l.Index})
	}
}

// configureLinks configures each found link, in passes: a link whose new
// name another link still holds waits for a later pass, so that chains of
// renames (a to b while b goes to c) work in one apply. What is still
// blocked when a pass makes no progress fails and is left out of the
// rest of the apply: the holder is not a link the config renames away
// (or the renames form a cycle, which needs a hand).
func (a *apply) configureLinks(ctx context.Context) error {
	pending := a.found
	for len(pending) > 0 {
		var blocked []found
		for _, f := range pending {
			if err := ctx.Err(); err != nil {
				return err
			}
			if a.nameHolder(f) != nil {
				blocked = append(blocked, f)
				continue
			}
			a.configureLink(f)
		}
		if len(blocked) == len(pending) {
			a.dropBlocked(blocked)
			return nil
		}
		pending = blocked
	}
	return nil
}

// nameHolder returns the other link that has the name f wants, or nil.
func (a *apply) nameHolder(f found) *kernelLink {
	for i, l := range a.links {
		if l.Name == f.ifc.Name && l.Index != f.index {
			return &a.links[i]
		}
	}
	return nil
}

// dropBlocked fails the entries whose name is held by another link and
// removes them from found, so that no address or route goes onto a link
// that does not carry its configured name.
func (a *apply) dropBlocked(blocked []found) {
	for _, f := range blocked {
		a.fail(fmt.Errorf("netconfig: rename %s to %s: link %d already has that name",
			a.link(f.index).Name, f.ifc.Name, a.nameHolder(f).Index))
	}
	a.found = slices.DeleteFunc(a.found, func(f found) bool {
		return slices.ContainsFunc(blocked, func(b found) bool { return b.index == f.index })
	})
}

// link returns the kernel's view of index, kept current by this apply.
func (a *apply) link(index uint32) *kernelLink {
	for i := range a.links {
		if a.links[i].Index == index {
			return &a.links[i]
		}
	}
	return nil
}

// configureLink renames the link, sets its MAC and MTU and brings it up.
// Renaming and changing the MAC need the link down (for most drivers), so
// it goes down only for those, and always comes back up.
func (a *apply) configureLink(f found) {
	l := a.link(f.index)
	spoof := normMAC(f.ifc.SpoofHardwareAddr)
	rename := l.Name != f.ifc.Name
	setMAC := spoof != "" && l.MAC != spoof
	if rename || setMAC {
		if err := a.setDown(l); err != nil {
			a.fail(err)
			return
		}
	}
	if rename {
		a.rename(l, f.ifc.Name)
	}
	if setMAC {
		a.setMAC(l, f.ifc.Name, spoof)
	}
	if mtu := uint32(f.ifc.MTU); mtu != 0 && l.MTU != mtu {
		if err := a.k.setLink(l.Index, 0, 0, &rtnetlink.LinkAttributes{MTU: mtu}); err != nil {
			a.fail(fmt.Errorf("netconfig: set MTU of %s to %d: %w", l.Name, mtu, err))
		} else {
			a.changef("%s: set MTU %d (was %d)", f.ifc.Name, mtu, l.MTU)
			l.MTU = mtu
		}
	}
	a.setUp(l, f.ifc.Name, !rename && !setMAC)
}

func (a *apply) setDown(l *kernelLink) error {
	if !l.Up {
		return nil
	}
	if err := a.k.setLink(l.Index, 0, unix.IFF_UP, nil); err != nil {
		return fmt.Errorf("netconfig: take %s down: %w", l.Name, err)
	}
	l.Up = false
	return nil
}

// setUp brings the link up; report says whether that is news (it is not
// when this apply only took the link down to rename it).
func (a *apply) setUp(l *kernelLink, name string, report bool) {
	if l.Up {
		return
	}
	if err := a.k.setLink(l.Index, unix.IFF_UP, unix.IFF_UP, nil); err != nil {
		a.fail(fmt.Errorf("netconfig: bring %s up: %w", l.Name, err))
		return
	}
	l.Up = true
	if report {
		a.changef("%s: up", name)
	}
}

// rename renames l to name; configureLinks made sure the name is free.
func (a *apply) rename(l *kernelLink, name string) {
	if err := a.k.setLink(l.Index, 0, 0, &rtnetlink.LinkAttributes{Name: name}); err != nil {
		a.fail(fmt.Errorf("netconfig: rename %s to %s: %w", l.Name, name, err))
		return
	}
	a.changef("%s: renamed from %s", name, l.Name)
	l.Name = name
}

func (a *apply) setMAC(l *kernelLink, name, mac string) {
	hw, _ := net.ParseMAC(mac) // normMAC parsed it already
	if err := a.k.setLink(l.Index, 0, 0, &rtnetlink.LinkAttributes{Address: hw}); err != nil {
		a.fail(fmt.Errorf("netconfig: set hardware address of %s to %s: %w", l.Name, mac, err))
		return
	}
	a.changef("%s: set hardware address %s (was %s)", name, mac, l.MAC)
	l.MAC = mac
}

func (a *apply) sysctls() {
	uplink := false
	for _, l := range a.links {
		uplink = uplink || l.Name == state.Uplink
	}
	for _, s := range wantedSysctls(uplink) {
		wrote, err := sysctl.Set(a.n.procSys, s.path, s.value)
		if err != nil {
			a.fail(fmt.Errorf("netconfig: %w", err))
		} else if wrote {
			a.changef("sysctl %s", s)
		}
	}
}

// linkAddrs is what addAddresses leaves for removeAddresses to do on one
// link.
type linkAddrs struct {
	f    found
	want []wantAddr
	del  []netip.Prefix
}

// addAddresses adds the addresses each found link lacks and returns the
// owned addresses to remove afterwards. Adding before removing matters:
// when a link loses its last IPv4 address the kernel flushes every IPv4
// route over it, also routes netconfig does not own. An address that
// only changes its prefix length cannot be added twice (IPv6), so it is
// left for removeAddresses, and so is an IPv4 address with the wrong
// broadcast address: the kernel changes an address's broadcast only by
// removing and adding it (NLM_F_REPLACE updates lifetimes alone).
func (a *apply) addAddresses() []linkAddrs {
	have, err := a.k.addrs()
	if err != nil {
		a.fail(fmt.Errorf("netconfig: %w", err))
		return nil
	}
	var out []linkAddrs
	for _, f := range a.found {
		want, err := wantedAddrs(f.ifc, a.in)
		if err != nil {
			a.fail(fmt.Errorf("netconfig: %s: %w", f.ifc.Name, err))
		}
		if a.wanted == nil {
			a.wanted = make(map[uint32][]wantAddr)
		}
		a.wanted[f.index] = want
		add, del := diffAddrs(prefixes(want), have[f.index])
		first, _ := splitAdds(add, del) // the rest: removeAddresses
		a.addAddrs(f, want, first)
		del = append(del, prefixes(wrongBroadcasts(want, have[f.index]))...)
		if len(del) > 0 {
			out = append(out, linkAddrs{f: f, want: want, del: del})
		}
	}
	return out
}

// removeAddresses removes the stale addresses and reports whether it
// removed any. Removing an IPv4 primary address also removes its
// secondaries (unless promote_secondaries), so what is missing then is
// added again from a fresh list.
func (a *apply) removeAddresses(stale []linkAddrs) bool {
	removed := false
	for _, s := range stale {
		for _, p := range s.del {
			if err := a.k.delAddr(s.f.index, p); err != nil {
				a.fail(fmt.Errorf("netconfig: remove %s from %s: %w", p, s.f.ifc.Name, err))
				continue
			}
			removed = true
			a.changef("%s: removed address %s", s.f.ifc.Name, p)
		}
	}
	if !removed {
		return false
	}
	all, err := a.k.addrs()
	if err != nil {
		a.fail(fmt.Errorf("netconfig: %w", err))
		return true
	}
	for _, s := range stale {
		missing, _ := diffAddrs(prefixes(s.want), all[s.f.index])
		a.addAddrs(s.f, s.want, missing)
	}
	return true
}

// addAddrs adds ps, which are among want, to f's link.
func (a *apply) addAddrs(f found, want []wantAddr, ps []netip.Prefix) {
	for _, p := range ps {
		i := slices.IndexFunc(want, func(w wantAddr) bool { return w.Prefix == p })
		if err := a.k.addAddr(f.index, want[i]); err != nil {
			a.fail(fmt.Errorf("netconfig: add %s to %s: %w", p, f.ifc.Name, err))
			continue
		}
		switch {
		case want[i].Broadcast.IsValid():
			a.changef("%s: added address %s broadcast %s", f.ifc.Name, p, want[i].Broadcast)
		case want[i].NoDAD:
			a.changef("%s: added address %s nodad", f.ifc.Name, p)
		default:
			a.changef("%s: added address %s", f.ifc.Name, p)
		}
	}
}

// routes makes the routes netconfig owns exactly the extra_routes of the
// found links plus, on uplink0, the DHCPv4 lease's routes, plus the
// unreachable routes of the delegated prefixes. Routes of a
// configured link that is absent are gone with the link, so they are
// neither wanted nor found. New routes are added before the stale ones
// are removed, except those that the kernel would refuse while a stale
// route to the same destination is in place.
func (a *apply) routes() {
	want := lease6Routes(a.in.Lease6, a.in.ULA)
	var uplink uint32
	for _, f := range a.found {
		rs, err := wantedRoutes(f.ifc, f.index)
		if err != nil {
			a.fail(fmt.Errorf("netconfig: %s: %w", f.ifc.Name, err))
		}
		want = append(want, rs...)
		if f.ifc.Name == state.Uplink {
			uplink = f.index
			want = append(want, leaseRoutes(a.in.Lease, f.index)...)
		}
	}
	have, err := a.k.ourRoutes(uplink)
	if err != nil {
		a.fail(fmt.Errorf("netconfig: %w", err))
		return
	}
	add, del := diffRoutes(want, have)
	first, later := splitRouteAdds(add, del)
	a.addRoutes(first)
	for _, r := range del {
		desc := r.describe(a.linkName(r.Index))
		if err := a.k.delRoute(r); err != nil {
			a.fail(fmt.Errorf("netconfig: remove route %s: %w", desc, err))
			continue
		}
		a.changef("removed route %s", desc)
	}
	a.addRoutes(later)
}

func (a *apply) addRoutes(rs []route) {
	for _, r := range rs {
		desc := r.describe(a.linkName(r.Index))
		if err := a.k.addRoute(r); err != nil {
			a.fail(fmt.Errorf("netconfig: add route %s: %w", desc, err))
			continue
		}
		a.changef("added route %s", desc)
	}
}

func (a *apply) linkName(index uint32) string {
	if l := a.link(index); l != nil {
		return l.Name
	}
	return fmt.Sprintf("#%d", index)
}

// result reads back the found links as they are now.
func (a *apply) result() ([]state.Link, error) {
	links, err := a.k.links()
	if err != nil {
		return nil, fmt.Errorf("netconfig: %w", err)
	}
	addrs, err := a.k.addrs()
	if err != nil {
		return nil, fmt.Errorf("netconfig: %w", err)
	}
	// Without the routes, the links are still worth publishing: their
	// default routes are taken to be the ones last published.
	defaults, err := a.k.defaultRoutes()
	if err != nil {
		a.fail(fmt.Errorf("netconfig: %w", err))
		defaults = make(map[uint32][]netip.Addr)
		for _, l := range a.n.st.Links.Value() {
			defaults[uint32(l.Index)] = l.DefaultRoutes
		}
	}
	out := []state.Link{}
	for _, f := range a.found {
		for _, l := range links {
			if l.Index != f.index {
				continue
			}
			ps := []netip.Prefix{}
			for _, ad := range addrs[l.Index] {
				ps = append(ps, ad.Prefix)
			}
			sortPrefixes(ps)
			want, ok := a.wanted[l.Index]
			if !ok {
				// The apply stopped before the addresses: what is in
				// force is still what the config and leases want.
				want, _ = wantedAddrs(f.ifc, a.in)
			}
			out = append(out, state.Link{Name: l.Name, Index: int(l.Index), HardwareAddr: l.MAC, Up: l.Up, Carrier: l.Carrier, Addrs: ps,
				InForce: inForce(want, addrs[l.Index]), DefaultRoutes: defaults[l.Index]})
		}
	}
	return out, nil
}
