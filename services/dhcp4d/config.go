package dhcp4d

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/homerouter/homerouter/state"
)

// Config is /perm/dhcp4d.json; its schema, with every field explained,
// is state.DHCPv4Server. The Store loads it (positioned errors, last good
// kept); Validate checks it against lan0's subnet.
type Config = state.DHCPv4Server

// StaticLease pins one device's address.
type StaticLease = state.StaticLease

// DefaultLeaseDuration is one hour. A home LAN's pool is far larger than
// its device count, so long leases buy nothing; short ones mean that a
// config change (DNS, domain, MTU) reaches every client within half an
// hour (T1), that guests' addresses and names (phones with a random MAC
// per network) are reclaimed the same day, and a renewal every 30 minutes
// per device is negligible traffic and, with the lease file written in
// batches, negligible writes. It is dnsmasq's default too.
const DefaultLeaseDuration = time.Hour

// Lease duration bounds (see state).
const (
	minLeaseDuration = state.MinLeaseDuration
	maxLeaseDuration = state.MaxLeaseDuration
)

// ConfigFile is the file's name under /perm.
const ConfigFile = "dhcp4d.json"

// ParseConfig decodes data as dhcp4d.json, rejecting unknown fields and
// trailing data. It does not validate: see Validate.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, fmt.Errorf("%s: unexpected data after the top-level value", ConfigFile)
	}
	return c, nil
}

// Validate checks c against lan0's address and prefix (e.g.
// 192.168.42.1/24) and returns every problem, each naming its field.
func Validate(c Config, lan netip.Prefix) error {
	var errs []error
	fail := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %s", ConfigFile, path, fmt.Sprintf(format, args...)))
	}
	if err := checkLAN(lan); err != nil {
		return fmt.Errorf("%s: %w", ConfigFile, err)
	}
	subnet := lan.Masked()
	first, last := hostRange(lan)
	inSubnet := func(path string, a netip.Addr) bool {
		switch {
		case !a.Is4():
			fail(path, "%s is not an IPv4 address", a)
		case !subnet.Contains(a):
			fail(path, "%s is not in lan0's subnet %s", a, subnet)
		case a == subnet.Addr() || a == last.Next():
			fail(path, "%s is the subnet's network or broadcast address", a)
		default:
			return true
		}
		return false
	}
	start, end := first, last
	okRange := true
	if c.RangeStart.IsValid() {
		okRange = inSubnet("range_start", c.RangeStart) && okRange
		start = c.RangeStart
	}
	if c.RangeEnd.IsValid() {
		okRange = inSubnet("range_end", c.RangeEnd) && okRange
		end = c.RangeEnd
	}
	if okRange && end.Less(start) {
		fail("range_end", "%s is before range_start %s", end, start)
	}
	if d := time.Duration(c.LeaseDuration); d != 0 && (d < minLeaseDuration || d > maxLeaseDuration) {
		fail("lease_duration", "%v is not between %v and %v", d, minLeaseDuration, maxLeaseDuration)
	}
	if c.Domain != "" && !state.ValidDomain(c.Domain) {
		fail("domain", "%q is not a DNS name like lan or home.example", c.Domain)
	}
	macs := make(map[string]string)
	addrs := make(map[netip.Addr]string)
	names := make(map[string]string)
	for i, s := range c.StaticLeases {
		p := fmt.Sprintf("static_leases[%d]", i)
		if mac, err := parseMAC(s.HardwareAddr); err != nil {
			fail(p+".hardware_addr", "%q is not a MAC address like 02:00:00:00:00:01", s.HardwareAddr)
		} else if prev := macs[mac]; prev != "" {
			fail(p+".hardware_addr", "%s is already used by %s", mac, prev)
		} else {
			macs[mac] = p
		}
		switch {
		case !s.Addr.IsValid():
			fail(p, `"addr" is missing`)
		case !inSubnet(p+".addr", s.Addr):
		case s.Addr == lan.Addr():
			fail(p+".addr", "%s is the router's own address", s.Addr)
		case addrs[s.Addr] != "":
			fail(p+".addr", "%s is already used by %s", s.Addr, addrs[s.Addr])
		default:
			addrs[s.Addr] = p
		}
		if s.Hostname != "" {
			if !state.ValidLabel(s.Hostname) {
				fail(p+".hostname", "%q is not a hostname: letters, digits and '-', at most 63", s.Hostname)
			} else if prev := names[strings.ToLower(s.Hostname)]; prev != "" {
				fail(p+".hostname", "%q is already used by %s", s.Hostname, prev)
			} else {
				names[strings.ToLower(s.Hostname)] = p
			}
		}
	}
	return errors.Join(errs...)
}

// checkLAN reports whether lan0's prefix leaves room for clients.
func checkLAN(lan netip.Prefix) error {
	if !lan.IsValid() || !lan.Addr().Is4() || lan.Bits() > 30 {
		return fmt.Errorf("lan0's address %v is not an IPv4 address in a subnet of /30 or larger", lan)
	}
	first, last := hostRange(lan)
	if a := lan.Addr(); a.Less(first) || last.Less(a) {
		return fmt.Errorf("lan0's address %v is its subnet's network or broadcast address", lan)
	}
	return nil
}

// hostRange returns the first and last host address of lan's subnet.
func hostRange(lan netip.Prefix) (first, last netip.Addr) {
	n := lan.Masked().Addr()
	size := uint32(1) << (32 - lan.Bits())
	return n.Next(), fromU32(toU32(n) + size - 2)
}

// parseMAC parses an Ethernet address and returns it in canonical form.
func parseMAC(s string) (string, error) {
	mac, err := net.ParseMAC(s)
	if err != nil {
		return "", err
	}
	if len(mac) != 6 {
		return "", fmt.Errorf("%q is not an Ethernet address", s)
	}
	return mac.String(), nil
}

// sanitizeHostname turns what a client sends in option 12 into a DNS
// label, or "": the first label, with bytes outside [A-Za-z0-9-]
// replaced by '-', cut at 63 bytes, without leading or trailing '-'.
// Clients send "My iPhone", "host.example" or worse; the name must be
// usable as "<name>.lan".
func sanitizeHostname(s string) string {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = s[:i]
	}
	b := []byte(s)
	for i, c := range b {
		if !state.ValidLabel(string(c)) && c != '-' {
			b[i] = '-'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	return strings.Trim(string(b), "-")
}

func toU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func fromU32(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
