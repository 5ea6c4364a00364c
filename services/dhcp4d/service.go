package dhcp4d

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"github.com/homerouter/homerouter/state"
)

// ServiceName is the name main gives the LAN DHCPv4 server in the
// supervisor, and the key of its problems in st.Problems.
const ServiceName = "dhcp4d"

// leasesProblem is the st.Problems key of a lease table that cannot be
// read or written; ServiceName's is the config's.
const leasesProblem = ServiceName + " " + LeasesFile

// Service runs a Handler on lan0: it is the thin adapter between the
// Handler, lan0's sockets and the store.
//
// It waits for netconfig to have given lan0 an IPv4 address (st.Links):
// the link's first IPv4 prefix is the server identifier and the subnet
// served. Its config is st.DHCPv4Server (dhcp4d.json, reloaded on
// SIGHUP); one that does not fit lan0's subnet is reported in st.Problems
// under ServiceName and the last good config (at first the defaults)
// stays in force. It starts over, keeping the lease table, when lan0, its
// address or MTU, or the config changes.
//
// The lease table is st.DHCPv4ServerLeases (dhcp4d-leases.json), which
// DNS and the status page read. Replies go out at once; a writer
// goroutine then persists and publishes the table, one atomic write at a
// time, a burst of changes coalescing into the next write (see persist).
type Service struct {
	st     *state.Store
	logger *log.Logger

	// The fields below belong to Run, which the supervisor never runs
	// twice at once.
	leases *state.Persistent[LeaseFile] // the Store's, loaded by LoadState
	cfg    *Config                      // the last good config; nil before the first
	h      *Handler                     // the last handler, whose table the next one starts from
}

// New returns the LAN DHCPv4 server service.
func New(st *state.Store, logger *log.Logger) *Service {
	return &Service{st: st, logger: logger}
}

// Run implements services.Service. It returns when ctx is done (nil) or
// lan0's sockets fail (the supervisor then restarts it); either way the
// lease table has been written.
func (s *Service) Run(ctx context.Context) error {
	s.leases = s.st.DHCPv4ServerLeases

	// dirty holds the handler whose table has changed; persist writes it.
	dirty := state.NewTopic[*Handler]("dhcp4d leases")
	var wg sync.WaitGroup
	defer wg.Wait()
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.persist(pctx, dirty)
	}()

	for {
		w := state.WatchAll(s.st.Links)
		link, lan, ok := lan0(s.st.Links.Value())
		if !ok {
			if w.Wait(ctx) != nil {
				return nil
			}
			continue
		}
		if err := s.runOn(ctx, link, lan, dirty); err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// lan0 returns lan0 and its first IPv4 prefix, if it has one.
func lan0(links []state.Link) (state.Link, netip.Prefix, bool) {
	l, ok := state.FindLink(links, state.LAN)
	if !ok {
		return l, netip.Prefix{}, false
	}
	for _, p := range l.Addrs {
		if p.Addr().Is4() {
			return l, p, true
		}
	}
	return l, netip.Prefix{}, false
}

// lanMTU is lan0's configured MTU, 0 when not set.
func lanMTU(ifs state.Interfaces) int {
	for _, ifc := range ifs.Interfaces {
		if ifc.Name == state.LAN {
			return ifc.MTU
		}
	}
	return 0
}

// runOn serves on link, whose address is lan, until ctx is done (error
// nil), something it serves with changes (error nil, to start over) or
// the sockets fail.
func (s *Service) runOn(ctx context.Context, link state.Link, lan netip.Prefix, dirty *state.Topic[*Handler]) error {
	raw := s.st.DHCPv4Server.Value()
	cfg := s.config(lan)
	mtu := lanMTU(s.st.Interfaces.Value())
	table := s.leases.Value().Leases
	if s.h != nil {
		table = s.h.Leases()
	}
	h, err := NewHandler(cfg, Link{Addr: lan, MTU: mtu}, table, nil)
	if err != nil {
		return fmt.Errorf("dhcp4d: %w", err)
	}
	s.h = h
	conn, err := listenServer(link.Name, lan.Addr())
	if err != nil {
		return err
	}
	defer conn.Close()

	ctx, cancel := context.WithCancel(ctx)
	var watcher sync.WaitGroup
	defer watcher.Wait()
	defer cancel()
	watcher.Go(func() {
		// A read deadline in the past wakes the receive loop below, which
		// then finishes what it is sending before it returns.
		defer conn.udp.SetReadDeadline(time.Now())
		for {
			w := state.WatchAll(s.st.Links, s.st.DHCPv4Server, s.st.Interfaces)
			if why := s.changed(link, lan, raw, mtu); why != "" {
				s.logger.Printf("%s; starting over", why)
				cancel()
				return
			}
			if w.Wait(ctx) != nil {
				return
			}
		}
	})
	s.logger.Printf("serving %s on %s", lan.Masked(), link.Name)

	buf := make([]byte, 1<<16)
	for {
		req, malformed, err := conn.receive(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dhcp4d: receive on %s: %w", link.Name, err)
		}
		if malformed {
			h.dropped.Add(1)
			continue
		}
		reply, changed := h.Serve(req)
		if reply == nil {
			continue
		}
		if err := conn.send(req, reply); err != nil {
			s.logger.Printf("send %s for %s: %v", reply.MessageType(), reply.ClientHWAddr, err)
		}
		if changed {
			dirty.Publish(h)
		}
	}
}

// changed says why the server must start over, or "" when it need not:
// lan0 (its link, MAC or address), its MTU or dhcp4d.json has changed.
// It only reads: config, which reports problems, runs in runOn.
func (s *Service) changed(link state.Link, lan netip.Prefix, raw Config, mtu int) string {
	l, p, ok := lan0(s.st.Links.Value())
	switch {
	case !ok || l.Index != link.Index || l.HardwareAddr != link.HardwareAddr || p != lan:
		return state.LAN + " changed"
	case lanMTU(s.st.Interfaces.Value()) != mtu:
		return state.LAN + "'s MTU changed"
	case !reflect.DeepEqual(s.st.DHCPv4Server.Value(), raw):
		return ConfigFile + " changed"
	}
	return ""
}

// config returns the config in force on lan: dhcp4d.json as the Store
// last loaded it (a file that does not parse, or fails the Store's checks,
// is reported there and the previous one kept), if it also fits lan's
// subnet; else the last good one (or the defaults), with the problem
// reported.
func (s *Service) config(lan netip.Prefix) Config {
	cfg := s.st.DHCPv4Server.Value()
	if err := Validate(cfg, lan); err != nil {
		if s.st.Problems.Value()[ServiceName] == "" {
			s.logger.Printf("%v (the previous config stays in force)", err)
		}
		s.st.ReportProblem(ServiceName, err)
		if s.cfg != nil && Validate(*s.cfg, lan) == nil {
			return *s.cfg
		}
		return Config{}
	}
	s.st.ReportProblem(ServiceName, nil)
	s.cfg = &cfg
	return cfg
}

// persist writes the lease table of the handler in dirty whenever it is
// published, until ctx is done, and then once more if needed. Writing in
// this one goroutine is the group commit: at most one write is in
// flight, and the changes made during a write are all in the next one,
// which starts as soon as the previous ends (an fsync takes milliseconds,
// well within the second a lease may wait to be durable). A failed write
// is reported and retried a second later.
func (s *Service) persist(ctx context.Context, dirty *state.Topic[*Handler]) {
	var written uint64
	write := func() error {
		h, v := dirty.Get()
		if v == written {
			return nil
		}
		if err := s.leases.Publish(LeaseFile{Leases: h.Leases()}); err != nil {
			s.logger.Printf("%v", err)
			s.st.ReportProblem(leasesProblem, err)
			return err
		}
		s.st.ReportProblem(leasesProblem, nil)
		written = v
		return nil
	}
	for {
		w := state.WatchAll(dirty)
		if write() != nil {
			select {
			case <-ctx.Done():
				write() // a last try before the service stops
				return
			case <-time.After(time.Second):
			}
			continue
		}
		if w.Wait(ctx) != nil {
			write()
			return
		}
	}
}
