// Package services runs the router's services and keeps them running, and
// is the kit they share.
//
// A service is a long-running goroutine: usually a level-triggered
// reconciler that waits for any of its input topics in a *state.Store to
// change, computes what it wants, applies that idempotently and publishes
// its outputs. Services talk to each other only through topics, never by
// calling each other (TestServicesIndependent fails when one service package
// imports another), so one can fail and restart without the others
// noticing more than a pause in its outputs.
//
// Adding a service:
//
//  1. Write services/NAME, with New(st *state.Store, logger *log.Logger) and
//     Run(ctx) error; read inputs from st's topics, publish outputs to them.
//  2. On a link: Run returns Follow{Key: LinkKey(...), Serve: ...}.Run(ctx),
//     which starts Serve over when the link, its MAC or addresses change.
//     lan0's prefixes and their lifetimes are st.Links' InForce.
//  3. New state: a topic field in state.Store (persist(...) for a file in /perm).
//  4. Pages: Endpoints in its Service, which main hands to httpd.New.
//  5. Reboot or kexec: st.RequestPlatform; other programs: st.StartCommand.
//  6. main.go: one line in serve's svcs list.
package services

import (
	"context"
	"net/http"
)

// Service is one supervised goroutine.
//
// The supervisor starts Run in its own goroutine and cancels ctx when the
// router stops. Run returns only when ctx is done (then with ctx.Err() or
// nil) or when it failed; a failure, or a panic, is logged and reported in
// the Services topic, and Run is called again after a backoff. So Run must
// start from the state in the Store, not from memory of an earlier run, and
// it must release what it holds (sockets, listeners) before it returns.
type Service struct {
	Name string
	Run  func(ctx context.Context) error
	// Endpoints are the service's pages, which main hands to httpd.
	Endpoints []Endpoint
}

// Endpoint is a path that a service (or PID 1) serves on the router's one
// HTTP server. main hands them to httpd when it wires the services, so
// that a service with a page needs no import of httpd, nor httpd of it:
//
//	{Name: dns.ServiceName, Run: d.Run, Endpoints: d.Endpoints()}
//
// httpd listens on lan0's addresses and loopback only, never the uplink.
type Endpoint struct {
	// Pattern is an http.ServeMux pattern, such as "GET /log" or
	// "/metrics".
	Pattern string
	Handler http.Handler
	// NeedsPassword marks what must not be open to everyone on the LAN
	// (an update, a packet capture, a backup of /perm): it needs the
	// router's password. Until the router has one, such an endpoint is
	// refused to everyone.
	NeedsPassword bool
}
