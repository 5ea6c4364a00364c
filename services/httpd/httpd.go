// Package httpd is the router's one HTTP server: the status page, health
// and metrics, for the people and tools on the LAN.
//
// It listens on lan0's addresses and on loopback, never on a wildcard
// address, so nothing is reachable from the internet side even before the
// firewall is up. It follows lan0's addresses as netconfig changes them.
package httpd

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/homerouter/homerouter/internal/oui"
	"github.com/homerouter/homerouter/internal/sockopt"
	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/state"
)

// DefaultAddr is the listen address when none is given: port 80 on lan0
// and loopback.
const DefaultAddr = ":80"

// Server is the HTTP service.
type Server struct {
	st        *state.Store
	logger    *log.Logger
	host      netip.Addr // valid: listen only there
	port      uint16
	endpoints []services.Endpoint
	logs      func() []byte // the log's last lines; nil: none
	password  func() (string, error)
	vendors   *oui.Table // parsed at the first look at the page, once
}

// Options are what main tells the HTTP service beyond the Store.
type Options struct {
	// Addr is "HOST:PORT" to listen on exactly that address, or ":PORT"
	// to listen on PORT on lan0's addresses and on loopback; "" means
	// DefaultAddr.
	Addr string
	// Logs returns the log's last lines, for the status page (nil:
	// none).
	Logs func() []byte
	// Password returns the router's password (state.ReadPassword), for
	// the endpoints that need it. It is asked at each request, so that
	// a password a person wrote into /perm applies at once. nil, or an
	// error, refuses those endpoints to everyone.
	Password func() (string, error)
}

// New returns the HTTP service. endpoints are what the other services
// serve (see services.Endpoint); httpd adds /, /health.json and
// /metrics. Two endpoints with the same pattern are an error.
func New(st *state.Store, logger *log.Logger, opt Options, endpoints ...services.Endpoint) (*Server, error) {
	addr := opt.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	s := &Server{st: st, logger: logger, endpoints: endpoints, logs: opt.Logs, password: opt.Password, vendors: &oui.Table{}}
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
	if _, err := s.handler(); err != nil {
		return nil, err
	}
	return s, nil
}

// Handler serves the router's own pages from st: the status page (/),
// /health.json and /metrics.
func Handler(st *state.Store) http.Handler { return newMux(st, nil, &oui.Table{}) }

// newMux serves the router's own pages; logs (nil: none) returns the
// log's last lines, vendors names the LAN's devices' makers.
func newMux(st *state.Store, logs func() []byte, vendors *oui.Table) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health.json", func(w http.ResponseWriter, r *http.Request) {
		h := services.CurrentHealth(st)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if h.FirstError != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(h)
	})
	mux.Handle("GET /metrics", metricsHandler(st))
	mux.Handle("GET /{$}", statusHandler(st, vendors, logs))
	return mux
}

// handler is Handler with the endpoints. http.ServeMux panics on a
// pattern given twice or conflicting with another; that is turned into
// an error, at New.
func (s *Server) handler() (h http.Handler, err error) {
	mux := newMux(s.st, s.logs, s.vendors)
	for _, e := range s.endpoints {
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = errors.Join(err, fmt.Errorf("httpd: endpoint %q: %v", e.Pattern, r))
				}
			}()
			if e.Handler == nil {
				panic("no handler")
			}
			h := e.Handler
			if e.NeedsPassword {
				h = needsPassword(e.Pattern, s.password, h)
			}
			mux.Handle(e.Pattern, h)
		}()
	}
	return mux, err
}

// needsPassword lets a request through to h only with the router's
// password, in HTTP basic auth (any user name: there is one password).
// Without a password (none given, or the file unreadable) the endpoint
// is refused to everyone: failing closed is the only safe answer for an
// update or a packet capture.
func needsPassword(pattern string, password func() (string, error), h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want, err := "", errors.New("this router has no password set up")
		if password != nil {
			want, err = password()
		}
		if err != nil {
			http.Error(w, fmt.Sprintf("%s needs the router's password, and there is none (%v): refused", pattern, err), http.StatusForbidden)
			return
		}
		_, got, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="homerouter", charset="UTF-8"`)
			http.Error(w, fmt.Sprintf("%s needs the router's password (HTTP basic auth, any user name; it is in /perm/%s): wrong or missing", pattern, state.PasswordFile), http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// listenRetry is how long Run waits before trying again to listen on an
// address that failed (the port taken by another program, say).
const listenRetry = 5 * time.Second

// Run serves until ctx is done, following lan0's addresses. An address it
// cannot listen on is logged, reported in st.Problems and retried; the
// other addresses keep serving, so a problem on one never takes away
// loopback or the LAN.
func (s *Server) Run(ctx context.Context) error {
	h, err := s.handler()
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          s.logger,
		// A request's context ends with the service, so that a handler
		// that streams (a packet capture) stops with it.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	l := &listeners{s: s, srv: srv, open: make(map[netip.AddrPort]net.Listener)}
	defer func() {
		shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(shutCtx) != nil {
			srv.Close() // connections still busy after 2 s
		}
		l.closeAll()
		s.st.ReportProblem(ServiceName, nil)
	}()
	return services.Follow[[]netip.AddrPort]{
		Watch: []state.Watcher{s.st.Links},
		Key: func() ([]netip.AddrPort, bool) {
			if s.host.IsValid() {
				return []netip.AddrPort{netip.AddrPortFrom(s.host, s.port)}, true
			}
			return listenAddrs(s.st.Links.Value(), s.port), true
		},
		Serve: l.serve,
	}.Run(ctx)
}

// listeners are the open listeners of one Run, kept from one set of
// addresses to the next: an address that stays is never closed.
type listeners struct {
	s    *Server
	srv  *http.Server
	open map[netip.AddrPort]net.Listener
	// failed is each address's last error, logged once.
	failed map[netip.AddrPort]string
}

// serve listens on want (and on nothing else) until ctx is done,
// retrying the addresses that fail every listenRetry.
func (l *listeners) serve(ctx context.Context, want []netip.AddrPort) error {
	for ap, ln := range l.open {
		if !slices.Contains(want, ap) {
			l.s.logger.Printf("stop listening on %v", ap)
			ln.Close()
			delete(l.open, ap)
		}
	}
	// Freebind: lan0's IPv6 addresses stay tentative while duplicate
	// address detection runs, or for as long as the LAN cable is out;
	// listen anyway, and serve once the address is usable.
	lc := net.ListenConfig{Control: sockopt.Freebind}
	for {
		var errs []error
		failed := map[netip.AddrPort]string{}
		for _, ap := range want {
			if l.open[ap] != nil {
				continue
			}
			ln, err := lc.Listen(ctx, "tcp", ap.String())
			if err != nil {
				if ap.Addr() == netip.IPv6Loopback() && errors.Is(err, syscall.EADDRNOTAVAIL) {
					continue // a kernel without IPv6 still serves on 127.0.0.1
				}
				failed[ap] = err.Error()
				if l.failed[ap] != err.Error() {
					l.s.logger.Printf("%v (retrying every %v)", err, listenRetry)
				}
				errs = append(errs, err)
				continue
			}
			l.s.logger.Printf("listening on http://%v", ap)
			l.open[ap] = ln
			go func() {
				if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
					l.s.logger.Printf("serve %v: %v", ap, err)
				}
			}()
		}
		l.failed = failed
		l.s.st.ReportProblem(ServiceName, errors.Join(errs...))
		if len(errs) == 0 {
			<-ctx.Done()
			return nil
		}
		t := time.NewTimer(listenRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (l *listeners) closeAll() {
	for _, ln := range l.open {
		ln.Close()
	}
}

// ServiceName is the name main gives httpd in the supervisor, and the one
// its problems are reported under.
const ServiceName = "httpd"

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

// Health is the body of /health.json (see services.Health).
type Health = services.Health
