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

	"github.com/homerouter/homerouter/services"
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
	return services.Follow[uplinkKey]{
		Watch: []state.Watcher{s.st.Links, s.st.DHCPv6},
		Key: func() (uplinkKey, bool) {
			l, ok := services.LinkKey(s.st.Links.Value(), state.Uplink, nil)
			return uplinkKey{Link: l, PrefixLength: s.st.DHCPv6.Value().Hint()}, ok
		},
		Absent: func() {
			s.st.DHCPv6Status.Publish(state.DHCPv6Status{State: "no link", Since: time.Now()})
		},
		Serve:  s.runOn,
		Logger: s.logger,
	}.Run(ctx)
}

// uplinkKey is what the client depends on: uplink0 (its MAC makes the
// first DUID) and the prefix length it asks for.
type uplinkKey struct {
	services.Link
	PrefixLength int
}

func (k uplinkKey) String() string {
	return fmt.Sprintf("%v asking for a /%d", k.Link, k.PrefixLength)
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
	s.st.DHCPv6DUID.Publish(state.DUID{DUID: hex.EncodeToString(duid.ToBytes())})
	return duid, nil
}

// runOn runs a client on uplink0 until ctx is done or the client fails.
func (s *Service) runOn(ctx context.Context, k uplinkKey) error {
	duid, err := s.duid(k.HardwareAddr)
	if err != nil {
		return fmt.Errorf("dhcp6: %w", err)
	}
	conn, err := listen(k.Name)
	if err != nil {
		return fmt.Errorf("dhcp6: %w", err)
	}
	defer conn.Close()
	c := NewClient(conn, Config{
		DUID:         duid,
		PrefixLength: k.PrefixLength,
		Logger:       s.logger,
		OnLease:      s.st.DHCPv6Lease.Publish,
		OnStatus:     s.st.DHCPv6Status.Publish,
	}, s.st.DHCPv6Lease.Value())
	return c.Run(ctx)
}
