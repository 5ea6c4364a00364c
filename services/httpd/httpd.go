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
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/homerouter/homerouter/state"
)

// DefaultAddr is the listen address when none is given: port 80 on lan0
// and loopback.
const DefaultAddr = ":80"

// Server is the HTTP service.
type Server struct {
	// Log, when not nil, returns the log since boot, served at /log:
	// PID 1 keeps it in memory (under `run` the log is on stderr).
	Log func() []byte

	st     *state.Store
	logger *log.Logger
	host   netip.Addr // valid: listen only there
	port   uint16
}

// New returns the HTTP service. addr is "HOST:PORT" to listen on exactly
// that address, or ":PORT" to listen on PORT on lan0's addresses and on
// loopback; "" means DefaultAddr.
func New(st *state.Store, logger *log.Logger, addr string) (*Server, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	s := &Server{st: st, logger: logger}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("httpd: listen address %q: %w", addr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("httpd: listen address %q: bad port", addr)
	}
	s.port = uint16(p)
	if host != "" {
		if s.host, err = netip.ParseAddr(host); err != nil {
			return nil, fmt.Errorf("httpd: listen address %q: host must be an IP address", addr)
		}
	}
	return s, nil
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

// handler is Handler with /log when s.Log is set.
func (s *Server) handler() http.Handler {
	h := Handler(s.st)
	if s.Log == nil {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("GET /log", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(s.Log())
	})
	return mux
}

// listenRetry is how long Run waits before trying again to listen on an
// address that failed (the port taken by another program, say).
const listenRetry = 5 * time.Second

// Run serves until ctx is done, following lan0's addresses. An address it
// cannot listen on is logged, reported in st.Problems and retried; the
// other addresses keep serving, so a problem on one never takes away
// loopback or the LAN.
func (s *Server) Run(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          s.logger,
	}
	// Freebind: lan0's IPv6 addresses stay tentative while duplicate
	// address detection runs, or for as long as the LAN cable is out;
	// listen anyway, and serve once the address is usable.
	lc := net.ListenConfig{Control: freebind}
	listeners := make(map[netip.AddrPort]net.Listener)
	defer func() {
		shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shutCtx)
		for _, l := range listeners {
			l.Close()
		}
		s.st.ReportProblem(ServiceName, nil)
	}()

	failedBefore := map[netip.AddrPort]string{}
	for {
		w := state.WatchAll(s.st.Links)
		want := []netip.AddrPort{netip.AddrPortFrom(s.host, s.port)}
		if !s.host.IsValid() {
			want = listenAddrs(s.st.Links.Value(), s.port)
		}
		for ap, l := range listeners {
			if !slices.Contains(want, ap) {
				s.logger.Printf("stop listening on %v", ap)
				l.Close()
				delete(listeners, ap)
			}
		}
		var errs []error
		failed := map[netip.AddrPort]string{}
		for _, ap := range want {
			if listeners[ap] != nil {
				continue
			}
			l, err := lc.Listen(ctx, "tcp", ap.String())
			if err != nil {
				if ap.Addr() == netip.IPv6Loopback() && errors.Is(err, syscall.EADDRNOTAVAIL) {
					continue // a kernel without IPv6 still serves on 127.0.0.1
				}
				failed[ap] = err.Error()
				if failedBefore[ap] != err.Error() {
					s.logger.Printf("%v (retrying every %v)", err, listenRetry)
				}
				errs = append(errs, err)
				continue
			}
			s.logger.Printf("listening on http://%v", ap)
			listeners[ap] = l
			go func() {
				if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
					s.logger.Printf("serve %v: %v", ap, err)
				}
			}()
		}
		failedBefore = failed
		s.st.ReportProblem(ServiceName, errors.Join(errs...))

		wctx, cancel := ctx, context.CancelFunc(func() {})
		if len(errs) > 0 {
			wctx, cancel = context.WithTimeout(ctx, listenRetry)
		}
		w.Wait(wctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// ServiceName is the name main gives httpd in the supervisor, and the one
// its problems are reported under.
const ServiceName = "httpd"

// freebind sets IP_FREEBIND / IPV6_FREEBIND on a listening socket.
func freebind(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if strings.HasSuffix(network, "6") {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
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
