package state

import (
	"net/netip"
	"time"
)

// DHCPv6Lease is the uplink's DHCPv6 lease, /perm/dhcp6-lease.json: the
// prefix the ISP delegated (IA_PD) and the uplink's own address (IA_NA).
// The DHCPv6 client writes it on every REPLY and reads it at start, so the
// LAN's IPv6 prefix is configured before any packet is sent; netconfig
// configures lan0 and uplink0 from it. The zero value means no lease.
//
//	{
//	  "prefixes": [
//	    {"prefix": "2a02:168:4a00::/48", "preferred": "1h0m0s", "valid": "24h0m0s", "given": "2026-11-25T13:00:00Z"}
//	  ],
//	  "addr": {"addr": "2a02:168:1:2::3", "preferred": "1h0m0s", "valid": "24h0m0s", "given": "2026-11-25T13:00:00Z"},
//	  "dns": ["2001:1620:2777:1::10"],
//	  "domains": ["example.net"],
//	  "server_duid": "000100012a2b3c4d02770000000a",
//	  "t1": "20m0s",
//	  "t2": "30m0s",
//	  "acked": "2026-11-25T13:00:00Z"
//	}
type DHCPv6Lease struct {
	// Prefixes are the delegated prefixes (IA_PD). lan0 gets a /64 of the
	// first.
	Prefixes []DelegatedPrefix `json:"prefixes,omitempty"`
	// Addr is the uplink's own address (IA_NA), if the ISP gave one.
	Addr *LeasedAddr `json:"addr,omitempty"`
	// DNS servers (option 23) and domain search list (option 24).
	DNS     []netip.Addr `json:"dns,omitempty"`
	Domains []string     `json:"domains,omitempty"`
	// ServerDUID identifies the server (hex), for renewals.
	ServerDUID string `json:"server_duid"`
	// ServerUnicast is the server's address when it allows unicast
	// (option 12); renewals then go there rather than to ff02::1:2.
	ServerUnicast netip.Addr `json:"server_unicast,omitzero"`
	// T1 and T2 of the IA_PD, counted from Acked.
	T1    Duration  `json:"t1"`
	T2    Duration  `json:"t2"`
	Acked time.Time `json:"acked"`
}

// DelegatedPrefix is one prefix of an IA_PD.
type DelegatedPrefix struct {
	Prefix    netip.Prefix `json:"prefix"`
	Preferred Duration     `json:"preferred"`
	Valid     Duration     `json:"valid"`
	// Given is when the REPLY that carried it arrived.
	Given time.Time `json:"given"`
}

// LeasedAddr is an IA_NA address.
type LeasedAddr struct {
	// IAID is the IA_NA's identity as the server named it (some ISPs
	// answer with another IAID than the client asked for); renewals use
	// it.
	IAID      uint32     `json:"iaid,omitempty"`
	Addr      netip.Addr `json:"addr"`
	Preferred Duration   `json:"preferred"`
	Valid     Duration   `json:"valid"`
	Given     time.Time  `json:"given"`
}

// Valid reports whether l holds a prefix or an address.
func (l DHCPv6Lease) Valid() bool { return len(l.Prefixes) > 0 || l.Addr != nil }

// DHCPv6Status is what the DHCPv6 client is doing, for diagnostics.
type DHCPv6Status struct {
	// State: "soliciting", "requesting", "bound", "renewing", "rebinding",
	// or "no link".
	State  string       `json:"state"`
	Prefix netip.Prefix `json:"prefix,omitzero"`
	// Retained is true when the lifetimes ran out and no server answered:
	// the prefix stays configured, because it most likely still works.
	Retained  bool      `json:"retained,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	LastReply time.Time `json:"last_reply,omitzero"`
	Since     time.Time `json:"since"`
}

// DHCPv6 is /perm/dhcp6.json, the optional settings of the DHCPv6 client
// and of how the delegated prefix is used. A missing file means the
// defaults.
//
//	{"prefix_length": 56, "lan_subnet": 0}
type DHCPv6 struct {
	// PrefixLength is the prefix length hint sent to the ISP: 0 means 56.
	PrefixLength int `json:"prefix_length,omitempty"`
	// LANSubnet is which /64 of the delegated prefix lan0 gets: 0 is the
	// first. lan0's address is that /64's ::1.
	LANSubnet int `json:"lan_subnet,omitempty"`
}

// Hint returns the prefix length to ask for.
func (c DHCPv6) Hint() int {
	if c.PrefixLength == 0 {
		return 56
	}
	return c.PrefixLength
}

func (c *DHCPv6) validate(d *decoded) ConfigErrors {
	var errs ConfigErrors
	if c.PrefixLength != 0 && (c.PrefixLength < 32 || c.PrefixLength > 64) {
		errs = append(errs, d.errorf("prefix_length", "%d is not between 32 and 64", c.PrefixLength))
	}
	if c.LANSubnet < 0 || c.LANSubnet > 0xffff {
		errs = append(errs, d.errorf("lan_subnet", "%d is not between 0 and 65535", c.LANSubnet))
	}
	return errs
}

// LANPrefix returns the /64 of the delegated prefix p that lan0 uses
// (subnet index n), and whether p has one.
func LANPrefix(p netip.Prefix, n int) (netip.Prefix, bool) {
	if !p.Addr().Is6() || p.Bits() > 64 || n < 0 || uint64(n) >= uint64(1)<<min(64-p.Bits(), 63) {
		return netip.Prefix{}, false
	}
	b := p.Masked().Addr().As16()
	v := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	v += uint64(n)
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), 64), true
}

// DUID is /perm/dhcp6-duid.json: the DHCPv6 client's identity. It is made
// once (DUID-LL from uplink0's MAC) and then used verbatim, so that the ISP
// keeps delegating the same prefix; set it by hand to the DUID your ISP has
// bound a static prefix to.
//
//	{"duid": "00030001027700000001"}
type DUID struct {
	// DUID in hex, with or without colons.
	DUID string `json:"duid"`
}
