package dhcp4

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/homerouter/homerouter/state"
)

// ServiceName is the name main gives the DHCPv4 client in the supervisor.
const ServiceName = "dhcp4"

// Service runs the Client on uplink0: it is the thin adapter between the
// Client and the store. It waits for netconfig to have found and named
// uplink0 (the st.Links topic), and starts over when the link is replaced
// or its MAC changes (spoof_hardware_addr), because chaddr and the client
// identifier follow the MAC.
type Service struct {
	st       *state.Store
	logger   *log.Logger
	hostname string
}

// New returns the DHCPv4 client service. hostname is sent to the ISP.
func New(st *state.Store, logger *log.Logger, hostname string) *Service {
	return &Service{st: st, logger: logger, hostname: hostname}
}

// Run implements services.Service. It returns when ctx is done or the
// link's sockets fail (the supervisor then restarts it).
func (s *Service) Run(ctx context.Context) error {
	for {
		w := state.WatchAll(s.st.Links)
		link, ok := state.FindLink(s.st.Links.Value(), state.Uplink)
		if !ok {
			s.st.DHCPv4Status.Publish(state.DHCPv4Status{State: "no link", Addr: s.st.DHCPv4Lease.Value().Addr, Since: time.Now()})
			if err := w.Wait(ctx); err != nil {
				return nil
			}
			continue
		}
		if err := s.runOn(ctx, link); err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// runOn runs a client on link until ctx is done (error nil), the link
// changes (error nil, to start over) or the client fails.
func (s *Service) runOn(ctx context.Context, link state.Link) error {
	mac, err := net.ParseMAC(link.HardwareAddr)
	if err != nil {
		return fmt.Errorf("dhcp4: %s has no usable MAC %q: %w", link.Name, link.HardwareAddr, err)
	}
	conn, err := listen(link.Name)
	if err != nil {
		return err
	}
	defer conn.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// Start over when uplink0 is another link or has another MAC.
		for {
			w := state.WatchAll(s.st.Links)
			if changed(s.st.Links.Value(), link) {
				s.logger.Printf("%s changed; starting over", state.Uplink)
				cancel()
				return
			}
			if w.Wait(ctx) != nil {
				return
			}
		}
	}()

	c := NewClient(conn, Config{
		HardwareAddr: mac,
		Hostname:     s.hostname,
		Logger:       s.logger,
		OnLease:      s.setLease,
		OnStatus:     s.st.DHCPv4Status.Publish,
	}, s.st.DHCPv4Lease.Value())
	// A client that fails because uplink0 changed (the socket breaks when
	// the link goes) starts over rather than failing the service.
	if err := c.Run(ctx); ctx.Err() == nil && !changed(s.st.Links.Value(), link) {
		return err
	}
	return nil
}

// changed reports whether uplink0 is no longer link.
func changed(links []state.Link, link state.Link) bool {
	l, ok := state.FindLink(links, state.Uplink)
	return !ok || l.Index != link.Index || l.HardwareAddr != link.HardwareAddr
}

// setLease persists and publishes a lease. When the file cannot be
// written the lease is published all the same: the connection matters
// more than surviving the next reboot.
func (s *Service) setLease(l state.DHCPv4Lease) error {
	if err := s.st.DHCPv4Lease.Publish(l); err != nil {
		s.st.DHCPv4Lease.Topic.Publish(l)
		return err
	}
	return nil
}
