package state

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// DNS is /perm/dns.json, the LAN's DNS resolver (services/dns). Every
// field is optional; a missing file means the defaults.
//
//	{
//	  "domain": "lan",
//	  "upstreams": ["9.9.9.9", "2620:fe::fe"],
//	  "hosts": [{"name": "nas", "addrs": ["192.168.42.5"]}],
//	  "cache_size": 10000,
//	  "rebind_allow": ["plex.direct"]
//	}
type DNS struct {
	// Domain is the LAN's DNS domain; default dhcp4d.json's, else "lan"
	// (see DHCPv4Server.LANDomain).
	Domain string `json:"domain,omitempty"`
	// Upstreams are the resolvers to forward to, "ADDR" or "ADDR:PORT"
	// ("[ADDR]:PORT" for IPv6). Default: the DNS servers of the uplink's
	// DHCPv4 and DHCPv6 leases.
	Upstreams []string `json:"upstreams,omitempty"`
	// Hosts are names the resolver answers itself, under Domain (and as
	// they are, when they hold a dot).
	Hosts []DNSHost `json:"hosts,omitempty"`
	// CacheSize is how many answers the cache holds; default 10,000.
	CacheSize int `json:"cache_size,omitempty"`
	// RebindAllow are domains whose names may resolve to private, LAN,
	// loopback or link-local addresses (DNS rebinding protection blocks
	// such answers from upstream for every other name).
	RebindAllow []string `json:"rebind_allow,omitempty"`
}

// LANDomain returns the LAN's DNS domain: dns.json's domain, else
// dhcp4d.json's, else DefaultDomain. The resolver answers under it and
// router advertisements name it as the search domain.
func LANDomain(dns DNS, dhcp4d DHCPv4Server) string {
	if dns.Domain != "" {
		return dns.Domain
	}
	return dhcp4d.LANDomain()
}

// DNSHost is a static name.
type DNSHost struct {
	Name  string       `json:"name"`
	Addrs []netip.Addr `json:"addrs"`
}

// DefaultDNSCacheSize is the cache's size when dns.json sets none.
const DefaultDNSCacheSize = 10000

// maxDNSCacheSize bounds cache_size: a typo must not eat the router's
// memory.
const maxDNSCacheSize = 1000000

// ParseUpstream parses an upstream as dns.json writes it.
func ParseUpstream(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap(), 53), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%q is not an address like 9.9.9.9 or [2620:fe::fe]:53", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func (c *DNS) validate(d *decoded) ConfigErrors {
	var errs ConfigErrors
	if c.Domain != "" && !ValidDomain(c.Domain) {
		errs = append(errs, d.errorf("domain", "%q is not a DNS name like lan or home.example", c.Domain))
	}
	for i, u := range c.Upstreams {
		if _, err := ParseUpstream(u); err != nil {
			errs = append(errs, d.errorf(fmt.Sprintf("upstreams[%d]", i), "%v", err))
		}
	}
	names := map[string]string{}
	for i, h := range c.Hosts {
		p := fmt.Sprintf("hosts[%d]", i)
		name := strings.ToLower(strings.TrimSuffix(h.Name, "."))
		switch {
		case !ValidDomain(name):
			errs = append(errs, d.errorf(p+".name", "%q is not a host name like nas or nas.lan", h.Name))
		case names[name] != "":
			errs = append(errs, d.errorf(p+".name", "%q is already used by %s", h.Name, names[name]))
		default:
			names[name] = p
		}
		if len(h.Addrs) == 0 {
			errs = append(errs, d.errorf(p, `"addrs" is missing`))
		}
		for j, a := range h.Addrs {
			if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
				errs = append(errs, d.errorf(fmt.Sprintf("%s.addrs[%d]", p, j), "%s is not a host's address", a))
			}
		}
	}
	if c.CacheSize < 0 || c.CacheSize > maxDNSCacheSize {
		errs = append(errs, d.errorf("cache_size", "%d is not between 0 (the default, %d) and %d", c.CacheSize, DefaultDNSCacheSize, maxDNSCacheSize))
	}
	for i, dom := range c.RebindAllow {
		if !ValidDomain(strings.TrimSuffix(dom, ".")) {
			errs = append(errs, d.errorf(fmt.Sprintf("rebind_allow[%d]", i), "%q is not a domain like plex.direct", dom))
		}
	}
	return errs
}

// DNSStatus is what the DNS resolver counts, for the status page and
// metrics.
type DNSStatus struct {
	// Queries by type ("A", "AAAA", ...) and by where the answer came
	// from: "local", "cache", "stale", "upstream", "failed".
	QueriesByType   map[string]uint64 `json:"queries_by_type"`
	QueriesBySource map[string]uint64 `json:"queries_by_source"`
	// RebindBlocked counts upstream answers replaced by an empty one.
	RebindBlocked uint64 `json:"rebind_blocked"`
	// UpstreamRTT is the smoothed round trip time per upstream.
	UpstreamRTT map[string]Duration `json:"upstream_rtt"`
	CacheSize   int                 `json:"cache_size"`
}

// Upstreams are the resolvers the router's DNS forwards to: dns.json's
// upstreams (those that parse), else the DNS servers of the uplink's
// DHCPv4 and DHCPv6 leases, on port 53, each once, never a loopback or
// unspecified address (a loop). The resolver, the diagnostics' probe and
// the status page all show the same list.
func Upstreams(cfg DNS, lease4 DHCPv4Lease, lease6 DHCPv6Lease) []netip.AddrPort {
	var out []netip.AddrPort
	if len(cfg.Upstreams) > 0 {
		for _, u := range cfg.Upstreams {
			if ap, err := ParseUpstream(u); err == nil {
				out = append(out, ap)
			}
		}
		return out
	}
	for _, a := range append(append([]netip.Addr{}, lease4.DNS...), lease6.DNS...) {
		a = a.Unmap()
		if a.IsValid() && !a.IsLoopback() && !a.IsUnspecified() {
			ap := netip.AddrPortFrom(a, 53)
			if !slices.Contains(out, ap) {
				out = append(out, ap)
			}
		}
	}
	return out
}
