package dhcp4d

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"sync"
	"time"

	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/state"
)

// ServiceName is the name main gives the LAN DHCPv4 server in the
// supervisor, and the key of its problems in st.Problems.
const ServiceName = "dhcp4d"

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
// DNS and the status page read. Replies go out at once; a goroutine then
// publishes the table, a burst of changes coalescing into one
// publication (see publish), and the Store writes the file.
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
// lease table has been published.
func (s *Service) Run(ctx context.Context) error {
	s.leases = s.st.DHCPv4ServerLeases

	// dirty holds the handler whose table has changed; publish publishes
	// it. It is stopped only after the server has returned, so that it
	// publishes the last change the server made.
	dirty := state.NewTopic[*Handler]("dhcp4d leases")
	var wg sync.WaitGroup
	pctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		stop()
		wg.Wait()
	}()
	wg.Go(func() { s.publish(pctx, dirty) })

	return services.Follow[lanKey]{
		Watch: []state.Watcher{s.st.Links, s.st.DHCPv4Server, s.st.Interfaces},
		Key:   s.key,
		Serve: func(ctx context.Context, k lanKey) error {
			return s.runOn(ctx, k, dirty)
		},
		Logger: s.logger,
	}.Run(ctx)
}

// lanKey is what the server depends on: lan0 with its first IPv4
// prefix (the subnet served and the server identifier), its MTU and
// dhcp4d.json as loaded.
type lanKey struct {
	services.Link
	MTU    int
	Config Config
}

func (k lanKey) String() string {
	return fmt.Sprintf("%v, MTU %d, %s as loaded", k.Link, k.MTU, ConfigFile)
}

// key returns the lanKey, if lan0 has an IPv4 address.
func (s *Service) key() (lanKey, bool) {
	first := true
	l, ok := services.LinkKey(s.st.Links.Value(), state.LAN, func(p netip.Prefix) bool {
		keep := first && p.Addr().Is4()
		first = first && !keep
		return keep
	})
	if !ok || len(l.Addrs) == 0 {
		return lanKey{}, false
	}
	return lanKey{Link: l, MTU: lanMTU(s.st.Interfaces.Value()), Config: s.st.DHCPv4Server.Value()}, true
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

// runOn serves on lan0 as k has it until ctx is done (error nil) or the
// sockets fail.
func (s *Service) runOn(ctx context.Context, k lanKey, dirty *state.Topic[*Handler]) error {
	lan := k.Addrs[0]
	cfg := s.config(k.Config, lan)
	table := s.leases.Value().Leases
	if s.h != nil {
		table = s.h.Leases()
	}
	h, err := NewHandler(cfg, Link{Addr: lan, MTU: k.MTU}, table, nil)
	if err != nil {
		return fmt.Errorf("dhcp4d: %w", err)
	}
	s.h = h
	conn, err := listenServer(k.Name, lan.Addr())
	if err != nil {
		return err
	}
	defer conn.Close()
	// A read deadline in the past wakes the receive loop below, which
	// then finishes what it is sending before it returns.
	defer context.AfterFunc(ctx, func() { conn.udp.SetReadDeadline(time.Now()) })()
	s.logger.Printf("serving %s on %s", lan.Masked(), k.Name)

	buf := make([]byte, 1<<16)
	for {
		req, malformed, err := conn.receive(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dhcp4d: receive on %s: %w", k.Name, err)
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

// config returns the config in force on lan: raw, dhcp4d.json as the
// Store last loaded it (a file that does not parse, or fails the Store's
// checks, is reported there and the previous one kept), if it also fits
// lan's subnet; else the last good one (or the defaults), with the
// problem reported.
func (s *Service) config(raw Config, lan netip.Prefix) Config {
	if err := Validate(raw, lan); err != nil {
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
	s.cfg = &raw
	return raw
}

// publishInterval is the least time between two publications of the
// lease table: a copy of the whole table each, which a burst of clients
// must not turn into one per request. DNS learns a new name within it.
const publishInterval = 100 * time.Millisecond

// publish publishes the lease table of the handler in dirty to
// st.DHCPv4ServerLeases whenever it changes, at most once per
// publishInterval, until ctx is done, and then once more if needed. The
// Store writes dhcp4d-leases.json after it (see state.Store.SaveState),
// so replies never wait for a disk, and a /perm that cannot be written
// stops neither the leases nor the names.
func (s *Service) publish(ctx context.Context, dirty *state.Topic[*Handler]) {
	var published uint64
	for {
		w := state.WatchAll(dirty)
		if h, v := dirty.Get(); v != published {
			s.leases.Publish(LeaseFile{Leases: h.Leases()})
			published = v
			if ctx.Err() == nil {
				t := time.NewTimer(publishInterval)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		w.Wait(ctx)
	}
}
