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
//   - The router lifetime is 0 while uplink0 has no IPv6 default route
//     (RFC 7084, G-4): hosts do not send internet traffic into a dead
//     end, while the ULA still works on the LAN.
//   - RDNSS names the router's ULA address (which the ISP cannot take
//     away); DNSSL the LAN domain (dns.json's, else dhcp4d.json's, else
//     "lan").
//
// Timing follows RFC 4861: unsolicited advertisements at random
// intervals between a third of ra.json's max_interval and all of it
// (default 10 minutes), the first three and the three after any change
// at most 16 s apart, and at most a third of the shortest prefix
// lifetime apart (a lease shorter than the interval must not run out on
// hosts between two advertisements); solicitations are answered within
// 500 ms, straight
// to the host when it has an address, by multicast (at most every 3 s)
// when it has none. When the router stops, a last advertisement says
// router lifetime 0, so hosts stop routing through it at once, and keep
// their addresses for when it is back.
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
// address to become usable (it is tentative for a second or so after
// the link comes up, and until a cable is plugged in) before it fails
// and the supervisor restarts it.
const listenTimeout = time.Minute

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
// there, and starts over on another lan0 (a new index or MAC).
func (s *Service) Run(ctx context.Context) error {
	return services.Follow[services.Link]{
		Watch:  []state.Watcher{s.st.Links},
		Key:    func() (services.Link, bool) { return services.LinkKey(s.st.Links.Value(), state.LAN, nil) },
		Serve:  s.serve,
		Logger: s.logger,
	}.Run(ctx)
}

// serve advertises on lan until ctx is done.
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

	// Both goroutines end with ctx, which is the only way out of the
	// loop below; the wait comes before conn.Close.
	var wg sync.WaitGroup
	defer wg.Wait()
	solicits := make(chan netip.Addr, 16)
	var malformed atomic.Uint64
	wg.Go(func() { s.read(ctx, conn, solicits, &malformed) })
	changed := make(chan struct{}, 1)
	wg.Go(func() { s.watch(ctx, changed) })

	sch := schedule{randN: rand.Int64N}
	var pending []unicast // answers to send straight to hosts
	var last advert
	var status state.RAStatus
	send := func(now time.Time, dst netip.Addr, stopping bool) advert {
		a := s.advert(now, ifi, stopping)
		if err := conn.WriteTo(a.message(), nil, dst); err != nil {
			s.logger.Printf("send router advertisement to %s: %v", dst, err)
			return a
		}
		if dst == allNodes {
			last = a
		} else {
			status.Solicited++
		}
		status.Sent++
		status.Last = now
		status.RouterLifetime = state.Duration(a.RouterLifetime)
		status.Prefixes = status.Prefixes[:0]
		for _, p := range a.Prefixes {
			status.Prefixes = append(status.Prefixes, fmt.Sprintf("%s preferred %v valid %v", p.Prefix, p.Preferred, p.Valid))
		}
		status.Malformed = malformed.Load()
		status.DNS = ""
		if a.DNS.IsValid() {
			status.DNS = a.DNS.String()
		}
		s.st.RAStatus.Publish(status)
		return a
	}

	sch.interval = s.st.RA.Value().Interval()
	sch.news(time.Now())
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := time.Now()
		if !now.Before(sch.next) {
			a := send(now, allNodes, false)
			sch.sent(now, a.shortest())
		}
		for len(pending) > 0 && !now.Before(pending[0].due) {
			send(now, pending[0].dst, false)
			pending = pending[1:]
		}
		due := sch.next
		if len(pending) > 0 && pending[0].due.Before(due) {
			due = pending[0].due
		}
		timer.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			// Goodbye: router lifetime 0, so that hosts pick another
			// default router (or none) now rather than in 30 minutes.
			send(time.Now(), allNodes, true)
			return nil
		case <-timer.C:
		case src := <-solicits:
			status.Solicitations++
			now := time.Now()
			if src.IsUnspecified() {
				sch.solicited(now)
			} else if sch.allowUnicast(now) {
				pending = insertUnicast(pending, unicast{dst: src, due: now.Add(sch.delay())})
			}
		case <-changed:
			now := time.Now()
			if iv := s.st.RA.Value().Interval(); iv != sch.interval {
				sch.interval = iv
				sch.news(now)
			} else if s.advert(now, ifi, false).differs(last) {
				sch.news(now)
			}
		}
	}
}

// unicast is an answer due to a host.
type unicast struct {
	dst netip.Addr
	due time.Time
}

// insertUnicast adds u to pending, which is sorted by due time.
func insertUnicast(pending []unicast, u unicast) []unicast {
	i := len(pending)
	for i > 0 && pending[i-1].due.After(u.due) {
		i--
	}
	pending = append(pending, unicast{})
	copy(pending[i+1:], pending[i:])
	pending[i] = u
	return pending
}

// advert derives the advertisement at now from the Store, and remembers
// its prefixes in st.AdvertisedPrefixes.
func (s *Service) advert(now time.Time, ifi *net.Interface, stopping bool) advert {
	links := s.st.Links.Value()
	lan, _ := state.FindLink(links, state.LAN)
	uplink, _ := state.FindLink(links, state.Uplink)
	in := inputs{
		Now:          now.Round(0),
		LAN:          lan,
		DefaultRoute: uplink.HasDefaultRoute6(),
		Tracked:      s.st.AdvertisedPrefixes.Value(),
		Interval:     s.st.RA.Value().Interval(),
		Domain:       state.LANDomain(s.st.DNS.Value(), s.st.DHCPv4Server.Value()),
		MTU:          ifi.MTU,
		Stopping:     stopping,
	}
	if cur, err := net.InterfaceByIndex(ifi.Index); err == nil {
		in.MTU = cur.MTU
	}
	a, tracked := plan(in)
	s.st.AdvertisedPrefixes.PublishIfChanged(tracked)
	return a
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
// ctx is done; anything else is dropped, and counted when malformed.
func (s *Service) read(ctx context.Context, conn *ndp.Conn, solicits chan<- netip.Addr, malformed *atomic.Uint64) {
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	b := make([]byte, 1500)
	for {
		n, cm, src, err := conn.ReadRaw(b)
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Printf("read: %v", err)
			}
			return
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
// router advertisements must come from, waiting until the address is
// usable. It returns nil, nil when ctx is done first.
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
	return errors.Join(
		conn.SetICMPFilter(&f),
		conn.SetControlMessage(ipv6.FlagHopLimit, true),
		conn.JoinGroup(allRouters),
	)
}
