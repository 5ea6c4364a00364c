package state

import (
	"fmt"
	"net/netip"
	"time"
)

// DHCPv4Lease is the uplink's DHCPv4 lease, /perm/dhcp4-lease.json. The
// DHCPv4 client writes it on every ACK and reads it at start, so that the
// router configures the address it had before it sends any packet: the
// ISP's server is likely to agree, and the connection works meanwhile.
// netconfig configures uplink0 from it. The zero value (no Addr) means no
// lease.
//
//	{
//	  "addr": "10.77.0.150/24",
//	  "router": "10.77.0.1",
//	  "dns": ["10.77.0.1"],
//	  "domain": "isp.test",
//	  "server_id": "10.77.0.1",
//	  "lease_duration": "2m0s",
//	  "t1": "1m0s",
//	  "t2": "1m45s",
//	  "acked": "2026-11-25T13:00:00Z",
//	  "expiry": "2026-11-25T13:02:00Z"
//	}
type DHCPv4Lease struct {
	// Addr is our address with the subnet's prefix length.
	Addr netip.Prefix `json:"addr"`
	// Router is the default gateway (option 3). Ignored for routing when
	// Routes is not empty: classless static routes override it (RFC 3442).
	Router netip.Addr `json:"router,omitzero"`
	// Routes are the classless static routes (option 121).
	Routes []DHCPv4Route `json:"routes,omitempty"`
	// Broadcast is the subnet's broadcast address (option 28), if sent.
	Broadcast netip.Addr   `json:"broadcast,omitzero"`
	DNS       []netip.Addr `json:"dns,omitempty"`
	Domain    string       `json:"domain,omitempty"`
	// MTU is the interface MTU the server asks for (option 26); 0: none.
	MTU int `json:"mtu,omitempty"`
	// ServerID is the server identifier (option 54) of the ACK: renewals
	// are sent there.
	ServerID netip.Addr `json:"server_id"`
	// Duration, T1 and T2 are the lease time and the renewal and rebinding
	// times, counted from Acked.
	Duration Duration `json:"lease_duration"`
	T1       Duration `json:"t1"`
	T2       Duration `json:"t2"`
	// Acked is when the ACK arrived; Expiry is Acked + Duration.
	Acked  time.Time `json:"acked"`
	Expiry time.Time `json:"expiry"`
}

// DHCPv4Route is one classless static route.
type DHCPv4Route struct {
	Destination netip.Prefix `json:"destination"`
	// Gateway 0.0.0.0 means the destination is on the link.
	Gateway netip.Addr `json:"gateway"`
}

// Valid reports whether l holds a lease.
func (l DHCPv4Lease) Valid() bool { return l.Addr.IsValid() }

// DHCPv4Status is what the DHCPv4 client is doing, for diagnostics.
type DHCPv4Status struct {
	// State is the RFC 2131 client state: "selecting" (INIT and
	// SELECTING), "requesting", "rebooting" (INIT-REBOOT), "bound",
	// "renewing", "rebinding"; or "no link" while uplink0 is absent.
	State string `json:"state"`
	// Addr is the address in use, if any.
	Addr netip.Prefix `json:"addr,omitzero"`
	// Retained is true when the lease expired and no server answered:
	// the address stays configured, because it most likely still works.
	Retained  bool      `json:"retained,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	LastAck   time.Time `json:"last_ack,omitzero"`
	Since     time.Time `json:"since"`
}

// Duration is a time.Duration that reads and writes as text ("30m0s",
// "1800s") rather than nanoseconds, for people reading the files.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like 30m or 1800s", b)
	}
	*d = Duration(v)
	return nil
}
