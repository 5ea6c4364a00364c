package dhcp6

import (
	"context"
	"encoding/hex"
	"fmt"
	"log"
	"net"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/homerouter/homerouter/state"
)

// ServiceName is the name main gives the DHCPv6 client in the supervisor.
const ServiceName = "dhcp6"

// Service runs the Client on uplink0, between it and the store: it waits
// for netconfig to have found uplink0, makes the DUID once (DUID-LL from
// uplink0's MAC) and persists it, and starts over when uplink0 changes or
// dhcp6.json does.
type Service struct {
	st     *state.Store
	logger *log.Logger
}

// New returns the DHCPv6 client service.
func New(st *state.Store, logger *log.Logger) *Service {
	return &Service{st: st, logger: logger}
}

// Run implements services.Service.
func (s *Service) Run(ctx context.Context) error {
	for {
		w := state.WatchAll(s.st.Links)
		link, ok := state.FindLink(s.st.Links.Value(), state.Uplink)
		if !ok {
			s.st.DHCPv6Status.Publish(state.DHCPv6Status{State: "no link", Since: time.Now()})
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

// duid returns the persisted DUID, making and persisting one from mac
// the first time.
func (s *Service) duid(mac string) (dhcpv6.DUID, error) {
	if d := s.st.DHCPv6DUID.Value().DUID; d != "" {
		b, err := hex.DecodeString(strings.ReplaceAll(d, ":", ""))
		if err != nil {
			return nil, fmt.Errorf("dhcp6-duid.json: %q is not hex", d)
		}
		duid, err := dhcpv6.DUIDFromBytes(b)
		if err != nil {
			return nil, fmt.Errorf("dhcp6-duid.json: %q: %w", d, err)
		}
		return duid, nil
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return nil, fmt.Errorf("%s has no usable MAC %q", state.Uplink, mac)
	}
	duid := &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: hw}
	if err := s.st.DHCPv6DUID.Publish(state.DUID{DUID: hex.EncodeToString(duid.ToBytes())}); err != nil {
		s.logger.Printf("%v (the DUID will change at the next start)", err)
	}
	return duid, nil
}

// runOn runs a client on link until ctx is done or uplink0 or the config
// changes (nil, to start over), or the client fails.
func (s *Service) runOn(ctx context.Context, link state.Link) error {
	duid, err := s.duid(link.HardwareAddr)
	if err != nil {
		return fmt.Errorf("dhcp6: %w", err)
	}
	conn, err := listen(link.Name)
	if err != nil {
		return fmt.Errorf("dhcp6: %w", err)
	}
	defer conn.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg := s.st.DHCPv6.Value()
	changed := func() bool {
		l, ok := state.FindLink(s.st.Links.Value(), state.Uplink)
		return !ok || l.Index != link.Index || l.HardwareAddr != link.HardwareAddr || s.st.DHCPv6.Value().Hint() != cfg.Hint()
	}
	go func() {
		for {
			w := state.WatchAll(s.st.Links, s.st.DHCPv6)
			if changed() {
				s.logger.Printf("%s or dhcp6.json changed; starting over", state.Uplink)
				cancel()
				return
			}
			if w.Wait(ctx) != nil {
				return
			}
		}
	}()

	c := NewClient(conn, Config{
		DUID:         duid,
		PrefixLength: cfg.Hint(),
		Logger:       s.logger,
		OnLease:      s.setLease,
		OnStatus:     s.st.DHCPv6Status.Publish,
	}, s.st.DHCPv6Lease.Value())
	if err := c.Run(ctx); ctx.Err() == nil && !changed() {
		return err
	}
	return nil
}

// setLease persists and publishes a lease; when the file cannot be
// written it is published all the same.
func (s *Service) setLease(l state.DHCPv6Lease) error {
	if err := s.st.DHCPv6Lease.Publish(l); err != nil {
		s.st.DHCPv6Lease.Topic.Publish(l)
		return err
	}
	return nil
}
