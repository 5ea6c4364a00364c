package dns

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/homerouter/homerouter/state"
)

// local is what the resolver answers itself: the LAN's names and the
// zones that are never sent upstream. It is rebuilt whenever a lease,
// dns.json or lan0's addresses change, and swapped in whole.
type local struct {
	// domain is the LAN domain as a lowercase FQDN ("lan.").
	domain string
	// names maps lowercase FQDNs to their addresses.
	names map[string][]localAddr
	// ptr maps an address to the FQDN its PTR names.
	ptr map[netip.Addr]string
	// lan are lan0's prefixes and the other ranges an upstream answer
	// must not point into (see rebinding).
	lan []netip.Prefix
}

// localAddr is one address of a local name. A lease's ends at expiry;
// a static one (dns.json, the router's own) has none.
type localAddr struct {
	addr   netip.Addr
	expiry time.Time
}

func (a localAddr) live(now time.Time) bool { return a.expiry.IsZero() || a.expiry.After(now) }

// localTTL is the TTL of local answers: short, so that a new lease
// shows soon on clients that cache.
const localTTL = 60

// buildLocal makes the local table from the store and the router's
// hostname.
func buildLocal(st *state.Store, hostname string) *local {
	cfg := st.DNS.Value()
	domain := state.LANDomain(cfg, st.DHCPv4Server.Value())
	l := &local{domain: dns.Fqdn(strings.ToLower(domain)), names: map[string][]localAddr{}, ptr: map[netip.Addr]string{}}
	add := func(name string, a localAddr) {
		fqdn := dns.Fqdn(strings.ToLower(name))
		if !strings.Contains(strings.TrimSuffix(name, "."), ".") {
			fqdn = strings.ToLower(name) + "." + l.domain
		}
		l.names[fqdn] = append(l.names[fqdn], a)
		if _, ok := l.ptr[a.addr]; !ok {
			l.ptr[a.addr] = fqdn
		}
	}
	// The router itself, by its hostname, on lan0's addresses.
	// lan0's prefixes (for rebinding protection, whether or not the
	// router has a name) and the router itself, by its hostname.
	if lan, ok := state.FindLink(st.Links.Value(), state.LAN); ok {
		for _, a := range lan.InForce {
			l.lan = append(l.lan, a.Prefix.Masked())
			if hostname != "" {
				add(hostname, localAddr{addr: a.Prefix.Addr()})
			}
		}
	}
	for _, h := range cfg.Hosts {
		for _, a := range h.Addrs {
			add(h.Name, localAddr{addr: a.Unmap()})
		}
	}
	// Acknowledged leases only: an offered one has no name yet.
	for _, le := range st.DHCPv4ServerLeases.Value().Leases {
		if le.Hostname == "" || le.Offered || le.Declined || le.Expiry.IsZero() {
			continue
		}
		add(le.Hostname, localAddr{addr: le.Addr, expiry: le.Expiry})
	}
	return l
}

// inLAN reports whether name is the LAN domain or under it.
func (l *local) inLAN(name string) bool {
	return name == l.domain || (strings.HasSuffix(name, l.domain) && len(name) > len(l.domain) && name[len(name)-len(l.domain)-1] == '.')
}

// lookup answers a name under the LAN domain (or a single label, taken
// as one): the records of qtype, and whether the name exists at all.
func (l *local) lookup(name string, qtype uint16, now time.Time) ([]dns.RR, bool) {
	var rrs []dns.RR
	exists := false
	for _, a := range l.names[name] {
		if !a.live(now) {
			continue
		}
		exists = true
		hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: localTTL}
		switch {
		case qtype == dns.TypeA && a.addr.Is4():
			hdr.Rrtype = dns.TypeA
			rrs = append(rrs, &dns.A{Hdr: hdr, A: a.addr.AsSlice()})
		case qtype == dns.TypeAAAA && a.addr.Is6():
			hdr.Rrtype = dns.TypeAAAA
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: a.addr.AsSlice()})
		}
	}
	return rrs, exists
}

// reverse answers a PTR query for one of the LAN's addresses.
func (l *local) reverse(name string, now time.Time) (dns.RR, bool) {
	a, ok := ptrAddr(name)
	if !ok {
		return nil, false
	}
	fqdn, ok := l.ptr[a]
	if !ok {
		return nil, false
	}
	live := false
	for _, la := range l.names[fqdn] {
		live = live || (la.addr == a && la.live(now))
	}
	if !live {
		return nil, false
	}
	return &dns.PTR{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: localTTL}, Ptr: fqdn}, true
}

// ptrAddr parses a full reverse name (in-addr.arpa or ip6.arpa).
func ptrAddr(name string) (netip.Addr, bool) {
	switch {
	case strings.HasSuffix(name, ".in-addr.arpa."):
		labels := strings.Split(strings.TrimSuffix(name, ".in-addr.arpa."), ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		for i, j := 0, 3; i < j; i, j = i+1, j-1 {
			labels[i], labels[j] = labels[j], labels[i]
		}
		a, err := netip.ParseAddr(strings.Join(labels, "."))
		return a, err == nil && a.Is4()
	case strings.HasSuffix(name, ".ip6.arpa."):
		nibbles := strings.Split(strings.TrimSuffix(name, ".ip6.arpa."), ".")
		if len(nibbles) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, n := range nibbles {
			if len(n) != 1 {
				return netip.Addr{}, false
			}
			v := strings.IndexByte("0123456789abcdef", n[0])
			if v < 0 {
				return netip.Addr{}, false
			}
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= byte(v) << 4
			} else {
				b[pos/2] |= byte(v)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// locallyServed are the zones of RFC 6761 and RFC 6303 that never go
// upstream: their answers can only be local (or NXDOMAIN), and a query
// for them leaks what the LAN looks like.
var locallyServed = func() []string {
	zs := []string{
		"localhost.", "local.", "home.arpa.", "invalid.",
		"10.in-addr.arpa.", "168.192.in-addr.arpa.", "127.in-addr.arpa.", "254.169.in-addr.arpa.", "0.in-addr.arpa.",
		"d.f.ip6.arpa.", "c.f.ip6.arpa.", "8.e.f.ip6.arpa.", "9.e.f.ip6.arpa.", "a.e.f.ip6.arpa.", "b.e.f.ip6.arpa.",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
		"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
	}
	for i := 16; i < 32; i++ {
		zs = append(zs, strconv.Itoa(i)+".172.in-addr.arpa.")
	}
	return zs
}()

// locallyServedSuffixes are the zones with a dot in front: the suffixes
// of the names in them.
var locallyServedSuffixes = func() []string {
	out := make([]string, len(locallyServed))
	for i, z := range locallyServed {
		out[i] = "." + z
	}
	return out
}()

// servedLocally reports whether name is in a zone that never goes
// upstream (besides the LAN domain, which lookup answers).
func servedLocally(name string) bool {
	for i, z := range locallyServed {
		if name == z || strings.HasSuffix(name, locallyServedSuffixes[i]) {
			return true
		}
	}
	return false
}
