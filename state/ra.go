package state

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"time"
)

// RA is /perm/ra.json, the router advertisements on lan0 (services/ra)
// and lan0's unique local prefix. Every field is optional; a missing file
// means the defaults.
//
//	{
//	  "max_interval": "10m",
//	  "ula": "fd4e:3a21:9c07::/48",
//	  "ula_subnet": 0
//	}
//
// Which /64 of the delegated prefix lan0 gets is dhcp6.json's lan_subnet,
// since the prefix is the DHCPv6 client's.
type RA struct {
	// MaxInterval is the longest time between two unsolicited router
	// advertisements (RFC 4861's MaxRtrAdvInterval): 4s to 30m,
	// default 10m. The shortest is a third of it.
	MaxInterval Duration `json:"max_interval,omitempty"`
	// ULA is the unique local prefix (RFC 4193: in fd00::/8, a /48 or
	// longer up to /64) lan0 takes its /64 from. Default: a random /48,
	// made once and kept in ula.json. Set it to keep the LAN's addresses
	// when /perm is lost or replaced.
	ULA netip.Prefix `json:"ula,omitzero"`
	// ULASubnet is the number of lan0's /64 in the ULA prefix, default 0.
	ULASubnet int `json:"ula_subnet,omitempty"`
}

// The bounds and default of RA.MaxInterval (RFC 4861, section 6.2.1).
const (
	DefaultRAInterval = 10 * time.Minute
	minRAInterval     = 4 * time.Second
	maxRAInterval     = 30 * time.Minute
)

// Interval returns MaxInterval, or its default.
func (c RA) Interval() time.Duration {
	if c.MaxInterval == 0 {
		return DefaultRAInterval
	}
	return time.Duration(c.MaxInterval)
}

func (c *RA) validate(d *decoded) ConfigErrors {
	var errs ConfigErrors
	if iv := time.Duration(c.MaxInterval); iv != 0 && (iv < minRAInterval || iv > maxRAInterval) {
		errs = append(errs, d.errorf("max_interval", "%v is not between %v and %v", iv, minRAInterval, maxRAInterval))
	}
	if c.ULA.IsValid() && !IsULA(c.ULA) {
		errs = append(errs, d.errorf("ula", "%s is not a unique local prefix in fd00::/8 of /48 to /64, like fd4e:3a21:9c07::/48", c.ULA))
	}
	if c.ULA.IsValid() && IsULA(c.ULA) {
		if _, ok := LANPrefix(c.ULA, c.ULASubnet); !ok {
			errs = append(errs, d.errorf("ula_subnet", "%s has no /64 number %d", c.ULA, c.ULASubnet))
		}
	} else if c.ULASubnet < 0 || c.ULASubnet >= 1<<16 {
		errs = append(errs, d.errorf("ula_subnet", "%d is not between 0 and 65535 (the /64s of a /48)", c.ULASubnet))
	}
	return errs
}

// IsULA reports whether p is a unique local prefix lan0 can take a /64
// from: in fd00::/8, the locally assigned half of RFC 4193's fc00::/7,
// and no shorter than the /48 of one global ID (a shorter one would
// claim, and make unreachable, other sites' prefixes).
func IsULA(p netip.Prefix) bool {
	return p.IsValid() && p.Addr().Is6() && !p.Addr().Is4In6() && p.Bits() >= 48 && p.Bits() <= 64 &&
		p.Addr().As16()[0] == 0xfd
}

// ULA is /perm/ula.json: lan0's unique local /48, made once by netconfig
// (unless ra.json sets one) and kept, so that LAN hosts' IPv6 addresses
// under it stay the same across reboots and ISP renumbering.
//
//	{"prefix": "fd4e:3a21:9c07::/48", "generated": "2026-12-02T12:00:00Z"}
type ULA struct {
	Prefix    netip.Prefix `json:"prefix,omitzero"`
	Generated time.Time    `json:"generated,omitzero"`
}

// NewULA returns a random /48 in fd00::/8 (RFC 4193, section 3.2: 40
// random bits for the global ID), for the time now.
func NewULA(now time.Time) (ULA, error) {
	var b [16]byte
	b[0] = 0xfd
	if _, err := rand.Read(b[1:6]); err != nil {
		return ULA{}, fmt.Errorf("state: make a unique local prefix: %w", err)
	}
	return ULA{Prefix: netip.PrefixFrom(netip.AddrFrom16(b), 48), Generated: now.UTC()}, nil
}

// LANULA returns the unique local prefix in force, ra.json's ula else
// the generated one in ula.json, and lan0's /64 of it (ra.json's
// ula_subnet); both invalid when there is none.
func LANULA(cfg RA, generated ULA) (ula, lan netip.Prefix) {
	ula = cfg.ULA
	if !IsULA(ula) {
		ula = generated.Prefix
		if !IsULA(ula) {
			return netip.Prefix{}, netip.Prefix{}
		}
	}
	lan, ok := LANPrefix(ula, cfg.ULASubnet)
	if !ok {
		return netip.Prefix{}, netip.Prefix{}
	}
	return ula.Masked(), lan
}

// AdvertisedPrefixes is /perm/ra-prefixes.json: the prefixes the router
// advertised on lan0, kept so that one that is gone (the ISP delegated
// another prefix, also across a reboot) is deprecated on the LAN rather
// than left to linger on hosts for hours (RFC 9096).
type AdvertisedPrefixes struct {
	Prefixes []AdvertisedPrefix `json:"prefixes"`
}

// AdvertisedPrefix is one prefix the router advertised.
type AdvertisedPrefix struct {
	Prefix netip.Prefix `json:"prefix"`
	// Valid is when the prefix's lease ends; zero for one without a
	// lease (the ULA).
	Valid time.Time `json:"valid,omitzero"`
	// Told is how long hosts may hold the prefix by what they were
	// told, rounded up (it is rewritten about every half hour, not on
	// every advertisement), so that after a long power cut a prefix
	// hosts have long forgotten is not advertised again.
	Told time.Time `json:"told,omitzero"`
	// Withdrawn is when the prefix left lan0; zero while it is in force.
	// From then until Until it is advertised with a preferred lifetime
	// of 0 and a valid lifetime counting down to 0 at Until.
	Withdrawn time.Time `json:"withdrawn,omitzero"`
	Until     time.Time `json:"until,omitzero"`
}

// RAStatus is what the router advertisements service did, for the status
// page and metrics.
type RAStatus struct {
	// Sent counts router advertisements; Solicited those that answered
	// a router solicitation.
	Sent      uint64 `json:"sent"`
	Solicited uint64 `json:"solicited"`
	// Solicitations counts router solicitations answered; Malformed the
	// ICMPv6 messages dropped as not a valid solicitation (did not
	// parse, wrong hop limit or code, a link-layer address from ::).
	// Failed counts advertisements the kernel refused to send.
	Solicitations uint64 `json:"solicitations"`
	Malformed     uint64 `json:"malformed"`
	Failed        uint64 `json:"failed"`
	// Last is when the last one was sent, and what it said.
	Last           time.Time `json:"last,omitzero"`
	RouterLifetime Duration  `json:"router_lifetime"`
	Prefixes       []string  `json:"prefixes,omitempty"`
	DNS            string    `json:"dns,omitempty"`
}
