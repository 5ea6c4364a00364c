// Package dns is the LAN's DNS resolver: it answers the LAN's own names
// (acknowledged DHCP clients as H.lan, dns.json's hosts, the router's
// hostname, PTRs) and the locally served zones itself, and forwards the
// rest to the ISP's resolvers (or dns.json's upstreams) through a cache
// that keeps answering with stale entries when the upstreams are gone.
// Upstream answers that point into the home's own address ranges are
// dropped (rebinding protection).
//
// It listens on UDP and TCP port 53 of lan0's addresses (link-local
// with its zone) and of loopback, never on a wildcard address, so the
// uplink never reaches it, and follows lan0's addresses as they change.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/homerouter/homerouter/internal/sockopt"
	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/state"
)

// ServiceName is the name main gives the resolver in the supervisor.
const ServiceName = "dns"

// maxInFlight bounds the queries in flight upstream.
const maxInFlight = 512

// Service is the DNS service.
type Service struct {
	st       *state.Store
	logger   *log.Logger
	hostname string
	// Port is the port to listen on; 53 unless a test says otherwise.
	Port uint16
}

// New returns the DNS service; hostname is the router's own name.
func New(st *state.Store, logger *log.Logger, hostname string) *Service {
	return &Service{st: st, logger: logger, hostname: hostname, Port: 53}
}

// Run implements services.Service.
func (s *Service) Run(ctx context.Context) error {
	h := newHandler(NewForwarder(s.upstreams, maxInFlight), cacheSize(s.st.DNS.Value()))
	done := make(chan struct{})
	defer func() { <-done }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(done)
		s.follow(ctx, h)
	}()
	return services.Follow[[]netip.AddrPort]{
		Watch: []state.Watcher{s.st.Links},
		Key:   func() ([]netip.AddrPort, bool) { return listenAddrs(s.st.Links.Value(), s.Port), true },
		Serve: func(ctx context.Context, addrs []netip.AddrPort) error { return s.serve(ctx, h, addrs) },
	}.Run(ctx)
}

func cacheSize(c state.DNS) int {
	if c.CacheSize > 0 {
		return c.CacheSize
	}
	return state.DefaultDNSCacheSize
}

// follow keeps the handler's local names, rebind exceptions and cache
// size in step with the store, and publishes the counters.
func (s *Service) follow(ctx context.Context, h *Handler) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	size := cacheSize(s.st.DNS.Value())
	for {
		w := state.WatchAll(s.st.DHCPv4ServerLeases, s.st.DNS, s.st.DHCPv4Server, s.st.Links)
		cfg := s.st.DNS.Value()
		h.local.Store(buildLocal(s.st, s.hostname))
		allow := make([]string, 0, len(cfg.RebindAllow))
		for _, d := range cfg.RebindAllow {
			allow = append(allow, dns.Fqdn(strings.ToLower(d)))
		}
		h.rebindAllow.Store(&allow)
		if n := cacheSize(cfg); n != size {
			size = n
			h.cache.Store(NewCache(n, time.Now))
			h.wire.Store(newWireCache(n, time.Now))
		}
		s.st.DNSStatus.Publish(h.status())
		wctx, cancel := context.WithCancel(ctx)
		waited := make(chan struct{})
		go func() {
			defer close(waited)
			w.Wait(wctx)
		}()
	wait:
		for {
			select {
			case <-tick.C:
				s.st.DNSStatus.Publish(h.status())
			case <-waited:
				break wait
			}
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// upstreams returns the resolvers to forward to (state.Upstreams).
func (s *Service) upstreams() []netip.AddrPort {
	return state.Upstreams(s.st.DNS.Value(), s.st.DHCPv4Lease.Value(), s.st.DHCPv6Lease.Value())
}

// listenAddrs returns loopback and lan0's addresses, link-local ones
// with their zone.
func listenAddrs(links []state.Link, port uint16) []netip.AddrPort {
	out := []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
		netip.AddrPortFrom(netip.IPv6Loopback(), port),
	}
	if l, ok := state.FindLink(links, state.LAN); ok {
		for _, p := range l.Addrs {
			a := p.Addr()
			if a.IsLinkLocalUnicast() {
				a = a.WithZone(l.Name)
			}
			out = append(out, netip.AddrPortFrom(a, port))
		}
	}
	return out
}

// serveUDP reads queries from pc until ctx is done, and answers them:
// cache hits at once, in this goroutine (no goroutine per query: most
// queries are hits), the rest in a goroutine each, since they may wait
// for an upstream.
//
// It reads and writes in batches (recvmmsg and sendmmsg): a cache hit
// costs far less than the two system calls that carry it, so under load
// one call each for up to udpBatch queries is most of the saving; when
// queries come one at a time, a batch is one query.
func serveUDP(ctx context.Context, pc net.PacketConn, h *Handler) {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	defer pc.Close()
	var bc batchConn = ipv4.NewPacketConn(pc)
	if ap, ok := pc.LocalAddr().(*net.UDPAddr); ok && ap.IP.To4() == nil {
		bc = ipv6.NewPacketConn(pc)
	}
	in := make([]ipv4.Message, udpBatch)
	out := make([]ipv4.Message, udpBatch)
	replies := make([][]byte, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, udpQueryMax)}
		out[i].Buffers = make([][]byte, 1)
		replies[i] = make([]byte, 0, 1232)
	}
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		k := 0 // replies in out
		for i := range in[:n] {
			m := &in[i]
			if m.Flags&unix.MSG_TRUNC != 0 {
				continue // larger than any query: dropped
			}
			q := m.Buffers[0][:m.N]
			if reply := h.fastUDP(q, replies[i]); reply != nil {
				replies[i] = reply[:0] // keep a buffer that grew
				out[k].Buffers[0], out[k].Addr = reply, m.Addr
				k++
				continue
			}
			req, addr := slices.Clone(q), m.Addr
			go func() {
				if reply := h.slowUDP(ctx, req); reply != nil {
					pc.WriteTo(reply, addr)
				}
			}()
		}
		for sent := 0; sent < k; {
			n, err := bc.WriteBatch(out[sent:k], 0)
			if err != nil {
				// sendmmsg fails only on the first message it could not
				// send (a source the firewall refuses, unreachable): that
				// client asks again, the others get their answers.
				n = 1
			}
			sent += n
		}
	}
}

// batchConn reads and writes several datagrams a system call:
// ipv4.PacketConn or ipv6.PacketConn, whose Message is the same type.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpBatch is how many datagrams serveUDP reads or writes a system call,
// and udpQueryMax the longest query it reads (a query is one question
// and an OPT record: a few hundred bytes).
const (
	udpBatch    = 32
	udpQueryMax = 4096
)

// serve answers on addrs, UDP and TCP, until ctx is done.
func (s *Service) serve(ctx context.Context, h *Handler, addrs []netip.AddrPort) error {
	lc := net.ListenConfig{Control: sockopt.Freebind}
	// Several UDP sockets per address (SO_REUSEPORT), one per CPU up to
	// four: the kernel spreads the queries over them, and each has its
	// own reading goroutine.
	udp := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return errors.Join(err, serr, sockopt.Freebind(network, address, c))
	}}
	sockets := min(max(runtime.NumCPU(), 1), 4)
	var servers []*dns.Server
	var wg sync.WaitGroup
	defer func() {
		for _, srv := range servers {
			srv.Shutdown()
		}
		wg.Wait()
	}()
	start := func(srv *dns.Server) {
		servers = append(servers, srv)
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
	}
	for _, ap := range addrs {
		ln, err := lc.Listen(ctx, "tcp", ap.String())
		if err != nil {
			if ap.Addr() == netip.IPv6Loopback() && errors.Is(err, syscall.EADDRNOTAVAIL) {
				continue // a kernel without IPv6 still serves on 127.0.0.1
			}
			return fmt.Errorf("dns: %w", err)
		}
		start(&dns.Server{Listener: ln, Handler: h, ReadTimeout: 5 * time.Second})
		for range sockets {
			pc, err := udp.ListenPacket(ctx, "udp", ap.String())
			if err != nil {
				return fmt.Errorf("dns: %w", err)
			}
			wg.Go(func() { serveUDP(ctx, pc, h) })
		}
	}
	s.logger.Printf("answering on %v", addrs)
	<-ctx.Done()
	return nil
}
