package state

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DHCPv4Server is /perm/dhcp4d.json, the LAN's DHCPv4 server. Every field is
// optional: an absent file serves lan0's whole subnet.
//
//	{
//	  "range_start": "192.168.42.100",
//	  "range_end": "192.168.42.250",
//	  "lease_duration": "1h",
//	  "domain": "lan",
//	  "static_leases": [
//	    {"hardware_addr": "02:77:00:00:00:12", "addr": "192.168.42.50", "hostname": "printer"}
//	  ]
//	}
//
// Read by the LAN DHCPv4 server (services/dhcp4d), which also checks it
// against lan0's subnet (interfaces.json). A missing file means the
// defaults.
type DHCPv4Server struct {
	// RangeStart and RangeEnd bound the pool of addresses handed out,
	// both included. Each defaults to the first or last host address of
	// lan0's subnet. The router's own address and the static leases'
	// addresses are never handed out from the pool.
	RangeStart netip.Addr `json:"range_start,omitzero"`
	RangeEnd   netip.Addr `json:"range_end,omitzero"`

	// LeaseDuration is how long a lease lasts, e.g. "1h" (default
	// one hour, see dhcp4d.DefaultLeaseDuration). Clients renew at half of it.
	LeaseDuration Duration `json:"lease_duration,omitzero"`

	// Domain is sent as the domain name and search list, so that "H"
	// resolves as "H.<domain>" on the clients. Default "lan"
	// (DefaultDomain); read it with LANDomain.
	Domain string `json:"domain,omitempty"`

	// StaticLeases always give the same address (and hostname) to a
	// device, picked by its MAC address. The address must be in lan0's
	// subnet, but may be outside the pool.
	StaticLeases []StaticLease `json:"static_leases,omitempty"`
}

// StaticLease pins one device's address.
type StaticLease struct {
	// HardwareAddr is the device's MAC address, e.g. "02:77:00:00:00:12"
	// (chaddr: whatever client identifier it sends).
	HardwareAddr string `json:"hardware_addr"`
	// Addr is the address it gets.
	Addr netip.Addr `json:"addr"`
	// Hostname, when set, is its DNS name under Domain, replacing the
	// hostname the device sends.
	Hostname string `json:"hostname,omitempty"`
}

// DefaultDomain is the LAN's DNS domain when dhcp4d.json names none
// (see DESIGN.md): a client that sent hostname H resolves as H.lan.
const DefaultDomain = "lan"

// LANDomain returns the LAN's DNS domain: Domain, or DefaultDomain when
// it is empty. It is the one place the default lives: the DHCPv4 server
// sends it to the clients (domain name and search list), and DNS answers
// for the names under it (a lease's Hostname H as H.<domain>, see
// DHCPv4ServerLease.Bound) reading it here, so that a DNS service never
// imports services/dhcp4d.
func (c DHCPv4Server) LANDomain() string {
	if c.Domain == "" {
		return DefaultDomain
	}
	return c.Domain
}

// Lease duration bounds: below a minute clients renew all the time; the
// upper bound keeps times far from the 32-bit seconds of option 51.
const (
	MinLeaseDuration = time.Minute
	MaxLeaseDuration = 365 * 24 * time.Hour
)

// validate checks what the file says on its own; the service checks it
// against lan0's subnet too.
func (c *DHCPv4Server) validate(d *decoded) ConfigErrors {
	var errs ConfigErrors
	for _, a := range []struct {
		path string
		addr netip.Addr
	}{{"range_start", c.RangeStart}, {"range_end", c.RangeEnd}} {
		if a.addr.IsValid() && !a.addr.Is4() {
			errs = append(errs, d.errorf(a.path, "%s is not an IPv4 address", a.addr))
		}
	}
	if c.RangeStart.Is4() && c.RangeEnd.Is4() && c.RangeEnd.Less(c.RangeStart) {
		errs = append(errs, d.errorf("range_end", "%s is before range_start %s", c.RangeEnd, c.RangeStart))
	}
	if v := time.Duration(c.LeaseDuration); v != 0 && (v < MinLeaseDuration || v > MaxLeaseDuration) {
		errs = append(errs, d.errorf("lease_duration", "%v is not between %v and %v", v, MinLeaseDuration, MaxLeaseDuration))
	}
	if c.Domain != "" && !ValidDomain(c.Domain) {
		errs = append(errs, d.errorf("domain", "%q is not a DNS name like lan or home.example", c.Domain))
	}
	macs := make(map[string]string)
	addrs := make(map[netip.Addr]string)
	names := make(map[string]string)
	for i, s := range c.StaticLeases {
		p := fmt.Sprintf("static_leases[%d]", i)
		if mac, err := net.ParseMAC(s.HardwareAddr); err != nil || len(mac) != 6 {
			errs = append(errs, d.errorf(p+".hardware_addr", "%q is not a MAC address like 02:00:00:00:00:01", s.HardwareAddr))
		} else if prev := macs[mac.String()]; prev != "" {
			errs = append(errs, d.errorf(p+".hardware_addr", "%s is already used by %s", mac, prev))
		} else {
			macs[mac.String()] = p
		}
		switch {
		case !s.Addr.IsValid():
			errs = append(errs, d.errorf(p, `"addr" is missing`))
		case !s.Addr.Is4():
			errs = append(errs, d.errorf(p+".addr", "%s is not an IPv4 address", s.Addr))
		case addrs[s.Addr] != "":
			errs = append(errs, d.errorf(p+".addr", "%s is already used by %s", s.Addr, addrs[s.Addr]))
		default:
			addrs[s.Addr] = p
		}
		if s.Hostname != "" {
			if !ValidLabel(s.Hostname) {
				errs = append(errs, d.errorf(p+".hostname", "%q is not a hostname: letters, digits and '-', at most 63", s.Hostname))
			} else if prev := names[strings.ToLower(s.Hostname)]; prev != "" {
				errs = append(errs, d.errorf(p+".hostname", "%q is already used by %s", s.Hostname, prev))
			} else {
				names[strings.ToLower(s.Hostname)] = p
			}
		}
	}
	return errs
}

// ValidLabel reports whether s is one DNS label (RFC 1123 host name
// syntax): letters, digits and '-', not at either end, 1 to 63 bytes.
func ValidLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ValidDomain reports whether s is a DNS name of valid labels.
func ValidDomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !ValidLabel(l) {
			return false
		}
	}
	return true
}

// DHCPv4ServerLease is one address the server has handed out, offered,
// pinned or set aside. The lease table is persisted as
// /perm/dhcp4d-leases.json (see DHCPv4ServerLeases) so that clients keep
// their addresses, and their names keep resolving, across restarts.
//
// A lease is in one of these states, as the file shows them:
//
//   - acknowledged: neither "offered" nor "declined". The client was
//     ACKed the address; it holds it until Expiry. Only an acknowledged
//     lease carries the client's Hostname.
//   - "offered": true: the server offered the address (DHCPOFFER) and has
//     not ACKed it yet, for a client with no lease or whose earlier lease
//     on it has expired. Its Expiry is the offer's short reservation. It
//     has no Hostname: the name is recorded at the ACK, so that a client
//     that only asks, or takes another server's offer, never gets a
//     name. A client renewing or rebooting into a lease it holds stays
//     acknowledged through a new offer.
//   - "declined": true: set aside after a DHCPDECLINE; no owner, no
//     Hostname.
//
// A static lease is never offered (dhcp4d.json, not an offer, reserves
// its address): it shows its configured hostname, and its Expiry,
// set at each ACK and zero before the first, says whether
// the device holds it. Without a configured hostname it takes the
// client's at the ACK.
//
// A file without "offered" (as an older version wrote it) thus reads as
// acknowledged, with its names. Expired leases are kept: a returning
// client gets its previous address back, and an address is reused only
// when the pool has no never-used address left (then the longest-expired
// first).
//
// DNS must name only acknowledged, unexpired leases (Bound): never an
// offered, declined, released or expired one, whose Hostname (if any) is
// only kept for the status page and for when the client comes back.
type DHCPv4ServerLease struct {
	Addr netip.Addr `json:"addr"`
	// HardwareAddr is the client's chaddr, e.g. "02:77:00:00:00:12".
	HardwareAddr string `json:"hardware_addr,omitempty"`
	// ClientID is the client identifier (option 61) in hex, when the
	// client sent one: it identifies the client rather than
	// HardwareAddr.
	ClientID string `json:"client_id,omitempty"`
	// Hostname is the static lease's, or what the client sent (option
	// 12) made into a DNS label; empty while Offered or Declined.
	Hostname string `json:"hostname,omitempty"`
	// Expiry is when the lease ends (for an offered one, the offer's
	// reservation); zero for a static lease not yet asked for.
	Expiry time.Time `json:"expiry,omitzero"`
	// LastSeen is when the client last sent a message for this lease.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Static is true for the static leases of dhcp4d.json. The table
	// keeps them only for their Expiry, LastSeen and state: the config
	// file decides their address and hostname.
	Static bool `json:"static,omitempty"`
	// Offered is true while the address is only offered, not yet
	// acknowledged (see the states above). Absent means acknowledged.
	Offered bool `json:"offered,omitempty"`
	// Declined is true when a client reported the address in use by
	// someone else (DHCPDECLINE): it is not handed out before Expiry.
	Declined bool `json:"declined,omitempty"`
}

// Bound reports whether the client holds the lease at now: acknowledged
// (neither Offered nor Declined) and not expired. Only a bound lease's
// Hostname is a name DNS may answer for, under DHCPv4Server.LANDomain.
func (l DHCPv4ServerLease) Bound(now time.Time) bool {
	return !l.Offered && !l.Declined && l.Expiry.After(now)
}

// DHCPv4ServerLeases is /perm/dhcp4d-leases.json, written by the LAN
// DHCPv4 server and published as a topic for DNS, which names the bound
// leases only (DHCPv4ServerLease.Bound), and the status page, which
// shows them all.
//
//	{
//	  "leases": [
//	    {
//	      "addr": "192.168.42.100",
//	      "hardware_addr": "02:77:00:00:00:21",
//	      "client_id": "01027700000021",
//	      "hostname": "laptop",
//	      "expiry": "2026-11-25T14:00:00Z",
//	      "last_seen": "2026-11-25T13:00:00Z"
//	    },
//	    {
//	      "addr": "192.168.42.101",
//	      "hardware_addr": "02:77:00:00:00:22",
//	      "expiry": "2026-11-25T13:01:00Z",
//	      "last_seen": "2026-11-25T13:00:00Z",
//	      "offered": true
//	    }
//	  ]
//	}
type DHCPv4ServerLeases struct {
	Leases []DHCPv4ServerLease `json:"leases"`
}
