// Package httpd is the router's one HTTP server: the status page, health
// and metrics, for the people and tools on the LAN.
//
// It listens on lan0's addresses and on loopback, never on a wildcard
// address, so nothing is reachable from the internet side even before the
// firewall is up. It follows lan0's addresses as netconfig changes them.
package httpd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/homerouter/homerouter/state"
)

// DefaultAddr is the listen address when none is given: port 80 on lan0
// and loopback.
const DefaultAddr = ":80"

// Server is the HTTP service.
type Server struct {
	st     *state.Store
	logger *log.Logger
	addr   string
}

// New returns the HTTP service. addr is "HOST:PORT" to listen on exactly
// that address, or ":PORT" to listen on PORT on lan0's addresses and on
// loopback.
func New(st *state.Store, logger *log.Logger, addr string) *Server {
	if addr == "" {
		addr = DefaultAddr
	}
	return &Server{st: st, logger: logger, addr: addr}
}

// Handler serves the router's pages from st.
func Handler(st *state.Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health.json", func(w http.ResponseWriter, r *http.Request) {
		h := health(st)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if h.FirstError != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(h)
	})
	return mux
}

// Run serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	host, portStr, err := net.SplitHostPort(s.addr)
	if err != nil {
		return fmt.Errorf("httpd: listen address %q: %w", s.addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return fmt.Errorf("httpd: listen address %q: bad port", s.addr)
	}
	srv := &http.Server{
		Handler:           Handler(s.st),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          s.logger,
	}
	listeners := make(map[netip.AddrPort]net.Listener)
	defer func() {
		shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shutCtx)
		for _, l := range listeners {
			l.Close()
		}
	}()

	for {
		w := state.WatchAll(s.st.Links)
		var want []netip.AddrPort
		if host != "" {
			a, err := netip.ParseAddr(host)
			if err != nil {
				return fmt.Errorf("httpd: listen address %q: %w", s.addr, err)
			}
			want = []netip.AddrPort{netip.AddrPortFrom(a, uint16(port))}
		} else {
			want = listenAddrs(s.st.Links.Value(), uint16(port))
		}
		for ap, l := range listeners {
			if !slices.Contains(want, ap) {
				s.logger.Printf("stop listening on %v", ap)
				l.Close()
				delete(listeners, ap)
			}
		}
		for _, ap := range want {
			if listeners[ap] != nil {
				continue
			}
			l, err := net.Listen("tcp", ap.String())
			if err != nil {
				if ap.Addr() == netip.IPv6Loopback() {
					continue // a kernel without IPv6 still serves on 127.0.0.1
				}
				return fmt.Errorf("httpd: %w", err)
			}
			s.logger.Printf("listening on http://%v", ap)
			listeners[ap] = l
			go func() {
				if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
					s.logger.Printf("serve %v: %v", ap, err)
				}
			}()
		}
		if err := w.Wait(ctx); err != nil {
			return nil
		}
	}
}

// listenAddrs returns loopback and lan0's addresses (without IPv6
// link-local ones, which need a zone and are not what people type).
func listenAddrs(links []state.Link, port uint16) []netip.AddrPort {
	addrs := []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
		netip.AddrPortFrom(netip.IPv6Loopback(), port),
	}
	for _, l := range links {
		if l.Name != state.LAN {
			continue
		}
		for _, p := range l.Addrs {
			if !p.Addr().IsLinkLocalUnicast() {
				addrs = append(addrs, netip.AddrPortFrom(p.Addr(), port))
			}
		}
	}
	return addrs
}
