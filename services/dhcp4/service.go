package dhcp4

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/state"
)

// ServiceName is the name main gives the DHCPv4 client in the supervisor.
const ServiceName = "dhcp4"

// Service runs the Client on uplink0: it is the thin adapter between the
// Client and the store. It waits for netconfig to have found and named
// uplink0 (the st.Links topic), and starts over when the link is replaced
// or its MAC changes (spoof_hardware_addr), because chaddr and the client
// identifier follow the MAC. Each lease is published to st.DHCPv4Lease at
// once, whether or not /perm can be written (the Store saves it).
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
	return services.Follow[services.Link]{
		Watch: []state.Watcher{s.st.Links},
		Key: func() (services.Link, bool) {
			return services.LinkKey(s.st.Links.Value(), state.Uplink, nil)
		},
		Absent: func() {
			s.st.DHCPv4Status.Publish(state.DHCPv4Status{State: "no link", Addr: s.st.DHCPv4Lease.Value().Addr, Since: time.Now()})
		},
		Serve:  s.runOn,
		Logger: s.logger,
	}.Run(ctx)
}

// runOn runs a client on link until ctx is done or the client fails.
func (s *Service) runOn(ctx context.Context, link services.Link) error {
	mac, err := net.ParseMAC(link.HardwareAddr)
	if err != nil {
		return fmt.Errorf("dhcp4: %s has no usable MAC %q: %w", link.Name, link.HardwareAddr, err)
	}
	conn, err := listen(link.Name)
	if err != nil {
		return err
	}
	defer conn.Close()
	c := NewClient(conn, Config{
		HardwareAddr: mac,
		Hostname:     s.hostname,
		Logger:       s.logger,
		OnLease:      s.st.DHCPv4Lease.Publish,
		OnStatus:     s.st.DHCPv4Status.Publish,
	}, s.st.DHCPv4Lease.Value())
	return c.Run(ctx)
}
