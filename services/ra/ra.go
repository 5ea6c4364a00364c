// Package ra sends IPv6 router advertisements on lan0, so that LAN hosts
// get IPv6: they take addresses (SLAAC) in lan0's /64 of the delegated
// prefix and in its unique local /64, learn the router's resolver
// (RDNSS) and the LAN's domain (DNSSL), and route to the internet
// through the router while the uplink has IPv6.
//
// What it advertises is derived from the Store each time: the prefixes
// are lan0's addresses in force (st.Links) that netconfig put there from
// the DHCPv6 lease and the ULA, so that what hosts hear always matches
// what lan0 routes. In detail:
//
//   - Prefix lifetimes never run past what remains of the delegated
//     prefix's lease, and are at most 45 and 90 minutes (RFC 9096). Once
//     the lease has run out (the router keeps it on purpose, hoping for
//     the ISP's server), the prefix goes out with lifetimes of 0: the
//     ISP may have given it to someone else, and hosts fall back to
//     IPv4 and the ULA rather than hold on to a prefix that may not
//     route.
//   - A prefix that leaves lan0 (the ISP delegated another one, also
//     across a reboot: ra-prefixes.json remembers what was advertised)
//     is advertised with a preferred lifetime of 0 and a valid lifetime
//     counting down to 0, so that hosts stop using it for new
//     connections at once.
//   - The router lifetime is 0 while uplink0 has no IPv6 default route,
//     or lan0 no preferred prefix from the ISP (RFC 7084, G-4 and ULA-5):
//     hosts do not send internet traffic into a dead end, while the ULA
//     still works on the LAN. The ULA never leaves the home (the
//     firewall sees to that).
//   - RDNSS names the router's ULA address (which the ISP cannot take
//     away); DNSSL the LAN domain (dns.json's, else dhcp4d.json's, else
//     "lan").
//
// Timing follows RFC 4861: unsolicited advertisements at random
// intervals between a third of ra.json's max_interval and all of it
// (default 10 minutes), the first three and the three after any change
// at most 16 s apart, and at most a third of the shortest prefix
// lifetime apart (a lease shorter than the interval must not run out on
// hosts between two advertisements). Solicitations are answered within
// 500 ms, straight to the host when it has an address, by multicast (at
// most every 3 s) when it has none or too many ask at once. When the
// router stops, its last advertisement, said twice, has router lifetime
// 0, so hosts stop routing through it at once, and keep their addresses
// for when it is back.
//
// The logic is the advertiser type, fed by the service's loop and
// tested with a fake clock; advert.go makes the messages.
package ra

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"

	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/state"
)

// ServiceName is the name main gives the service in the supervisor.
const ServiceName = "ra"

// listenTimeout is how long the service waits for lan0's link-local
// address to become usable (it is tentative for the second or two of
// duplicate address detection) before it fails and the supervisor
// restarts it.
const listenTimeout = 30 * time.Second

var (
	allNodes   = netip.MustParseAddr("ff02::1")
	allRouters = netip.MustParseAddr("ff02::2")
)

// Service is the router advertisement service.
type Service struct {
	st     *state.Store
	logger *log.Logger
}

// New returns the service; logs go to logger.
func New(st *state.Store, logger *log.Logger) *Service {
	return &Service{st: st, logger: logger}
}

// Run implements services.Service: it advertises on lan0 while lan0 is
// there with a link-local address (which advertisements must come from;
// a link without carrier has none), and starts over on another lan0 (a
// new index or MAC) or link-local address.
func (s *Service) Run(ctx context.Context) error {
	return services.Follow[services.Link]{
		Watch: []state.Watcher{s.st.Links},
		Key: func() (services.Link, bool) {
			k, ok := services.LinkKey(s.st.Links.Value(), state.LAN, func(p netip.Prefix) bool { return p.Addr().IsLinkLocalUnicast() })
			return k, ok && len(k.Addrs) > 0
		},
		Serve:  s.serve,
		Logger: s.logger,
	}.Run(ctx)
}

// serve advertises on lan until ctx is done, or reading from the socket
// fails.
func (s *Service) serve(ctx context.Context, lan services.Link) error {
	ifi, err := net.InterfaceByIndex(lan.Index)
	if err != nil {
		return fmt.Errorf("ra: %s: %w", lan.Name, err)
	}
	conn, err := listen(ctx, ifi)
	if err != nil || conn == nil {
		return err
	}
	defer conn.Close()
	s.logger.Printf("advertising on %s", ifi.Name)

	// Both goroutines end with rctx; the wait comes before conn.Close.
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	solicits := make(chan netip.Addr, 16)
	readErr := make(chan error, 1)
	var malformed atomic.Uint64
	wg.Go(func() { readErr <- s.read(rctx, conn, solicits, &malformed) })
	changed := make(chan struct{}, 1)
	wg.Go(func() { s.watch(rctx, changed) })

	ad := &advertiser{
		conn:     conn,
		now:      time.Now,
		inputs:   func(now time.Time) (inputs, bool) { return s.inputs(now, lan.Index) },
		remember: func(p state.AdvertisedPrefixes) { s.st.AdvertisedPrefixes.PublishIfChanged(p) },
		status:   s.st.RAStatus.Publish,
		logf:     s.logger.Printf,
		sch:      schedule{randN: rand.Int64N},
	}
	ad.start(s.st.RA.Value().Interval())
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		ad.counts.Malformed = malformed.Load()
		ad.tick()
		timer.Reset(time.Until(ad.due()))
		select {
		case <-ctx.Done():
			ad.goodbye(time.Sleep)
			return nil
		case err := <-readErr:
			return err
		case <-timer.C:
		case src := <-solicits:
			ad.solicited(src)
		case <-changed:
			ad.changed(s.st.RA.Value().Interval())
		}
	}
}

// inputs reads what an advertisement on the link with index is made of
// from the Store; false when lan0 is no longer that link.
func (s *Service) inputs(now time.Time, index int) (inputs, bool) {
	links := s.st.Links.Value()
	lan, ok := state.FindLink(links, state.LAN)
	if !ok || lan.Index != index {
		return inputs{}, false
	}
	uplink, _ := state.FindLink(links, state.Uplink)
	in := inputs{
		Now:          now.Round(0),
		LAN:          lan,
		DefaultRoute: uplink.HasDefaultRoute6(),
		Tracked:      s.st.AdvertisedPrefixes.Value(),
		Interval:     s.st.RA.Value().Interval(),
		Domain:       state.LANDomain(s.st.DNS.Value(), s.st.DHCPv4Server.Value()),
	}
	if ifi, err := net.InterfaceByIndex(index); err == nil {
		in.MTU = ifi.MTU
	}
	return in, true
}

// watch signals changed whenever a topic an advertisement is made from
// changes. The next watch is taken before the signal, so that nothing
// published after the reader was woken goes unseen.
func (s *Service) watch(ctx context.Context, changed chan<- struct{}) {
	topics := []state.Watcher{s.st.Links, s.st.RA, s.st.DNS, s.st.DHCPv4Server}
	w := state.WatchAll(topics...)
	for {
		if w.Wait(ctx) != nil {
			return
		}
		w = state.WatchAll(topics...)
		select {
		case changed <- struct{}{}:
		default:
		}
	}
}

// read passes the source of each router solicitation to solicits until
// ctx is done (then it returns nil) or reading fails; anything else is
// dropped and counted in malformed.
func (s *Service) read(ctx context.Context, conn *ndp.Conn, solicits chan<- netip.Addr, malformed *atomic.Uint64) error {
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	b := make([]byte, 1500)
	for {
		n, cm, src, err := conn.ReadRaw(b)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("ra: read: %w", err)
		}
		hop := -1
		if cm != nil {
			hop = cm.HopLimit
		}
		if err := solicitation(b[:n], hop, src); err != nil {
			malformed.Add(1)
			continue
		}
		select {
		case solicits <- src.WithZone(""):
		default: // the loop is behind: it will advertise soon anyway
		}
	}
}

// listen opens the ICMPv6 socket on ifi's link-local address, which
// router advertisements must come from, retrying while the address is
// tentative (no event says when it stops being so). It returns nil, nil
// when ctx is done first.
func listen(ctx context.Context, ifi *net.Interface) (*ndp.Conn, error) {
	deadline := time.Now().Add(listenTimeout)
	for {
		conn, _, err := ndp.Listen(ifi, ndp.LinkLocal)
		if err == nil {
			if err := setup(conn); err != nil {
				conn.Close()
				return nil, err
			}
			return conn, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("ra: listen on %s's link-local address: %w", ifi.Name, err)
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// setup makes conn receive router solicitations only, with their hop
// limit, also those sent to all routers.
func setup(conn *ndp.Conn) error {
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	if err := errors.Join(
		conn.SetICMPFilter(&f),
		conn.SetControlMessage(ipv6.FlagHopLimit, true),
		conn.JoinGroup(allRouters),
	); err != nil {
		return fmt.Errorf("ra: set up the ICMPv6 socket: %w", err)
	}
	return nil
}
