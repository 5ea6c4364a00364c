package state

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// PortForwardings is /perm/portforwardings.json: which ports on the uplink
// address are forwarded to which host on the LAN. It keeps router7's schema:
//
//	{
//	  "forwardings": [
//	    {"proto": "tcp", "port": "8080", "dest_addr": "192.168.42.10", "dest_port": "80"},
//	    {"proto": "tcp,udp", "port": "27015-27030", "dest_addr": "192.168.42.11", "dest_port": "27015-27030"},
//	    {"proto": "tcp", "port": "443", "dest_addr": "2001:db8:0:ff00::10", "dest_port": "443"}
//	  ]
//	}
//
// An IPv4 dest_addr forwards the port of the router's address (as the
// internet reaches it) to that host with destination NAT; LAN hosts may
// use the uplink address too. An IPv6
// dest_addr opens a pinhole instead: the host's own address and port are
// reachable from the internet, with no NAT, so dest_port must equal port.
// The firewall forwards only to hosts on the LAN (inside lan0's subnet and
// prefixes, or networks routed behind lan0): another destination is left
// out, with a notice on /health.json. A missing file means no forwardings.
type PortForwardings struct {
	Forwardings []Forwarding `json:"forwardings"`
}

// Forwarding forwards one port or port range.
type Forwarding struct {
	// Proto is "tcp", "udp" or "tcp,udp".
	Proto string `json:"proto"`
	// Port is the port on the uplink: "N" or a range "N-M".
	Port string `json:"port"`
	// DestAddr is the LAN host's IPv4 address, or its IPv6 address for a
	// pinhole.
	DestAddr string `json:"dest_addr"`
	// DestPort is the port on that host, "N" or "N-M". A range must be
	// Port's own range (each port goes to the same port), or one port
	// (all go there). For a pinhole it is Port.
	DestPort string `json:"dest_port"`
}

// PortRange is an inclusive range of ports; First == Last for one port.
type PortRange struct{ First, Last uint16 }

// ParsePortRange parses "N" or "N-M" with 1 <= N <= M <= 65535.
func ParsePortRange(s string) (PortRange, error) {
	a, b, isRange := strings.Cut(s, "-")
	first, err := parsePort(a)
	if err != nil {
		return PortRange{}, err
	}
	last := first
	if isRange {
		if last, err = parsePort(b); err != nil {
			return PortRange{}, err
		}
		if last < first {
			return PortRange{}, fmt.Errorf("range %q ends before it starts", s)
		}
	}
	return PortRange{first, last}, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port number between 1 and 65535", s)
	}
	return uint16(n), nil
}

// Protos returns the protocols of a validated forwarding.
func (f Forwarding) Protos() []string { return strings.Split(f.Proto, ",") }

func (c *PortForwardings) validate(d *decoded) ConfigErrors {
	var errs ConfigErrors
	// A claim is a port of the uplink address (dest "", NAT) or of one
	// IPv6 host (a pinhole): two forwards overlap only on the same one.
	type claim struct {
		proto string
		ports PortRange
		dest  string
		path  string
	}
	var claims []claim
	for i, f := range c.Forwardings {
		p := fmt.Sprintf("forwardings[%d]", i)
		protos := f.Protos()
		switch f.Proto {
		case "tcp", "udp", "tcp,udp":
		case "":
			errs = append(errs, d.errorf(p, `"proto" is missing`))
		default:
			errs = append(errs, d.errorf(p+".proto", `%q is not "tcp", "udp" or "tcp,udp"`, f.Proto))
			protos = nil
		}
		port, err := ParsePortRange(f.Port)
		if err != nil {
			errs = append(errs, d.errorf(p+".port", "%v", err))
		}
		dest, aerr := netip.ParseAddr(f.DestAddr)
		switch {
		case aerr != nil || dest.Zone() != "":
			errs = append(errs, d.errorf(p+".dest_addr", "%q is not an IPv4 or IPv6 address", f.DestAddr))
		case !dest.Unmap().IsGlobalUnicast():
			errs = append(errs, d.errorf(p+".dest_addr", "%s is not a host's unicast address", dest))
		}
		dport, derr := ParsePortRange(f.DestPort)
		if derr != nil {
			errs = append(errs, d.errorf(p+".dest_port", "%v", derr))
		}
		if err != nil || derr != nil {
			continue
		}
		switch {
		case aerr == nil && dest.Is6() && !dest.Is4In6() && dport != port:
			errs = append(errs, d.errorf(p+".dest_port", "%q is not port %q: an IPv6 destination is a pinhole, without NAT", f.DestPort, f.Port))
		case dport.First != dport.Last && dport != port:
			errs = append(errs, d.errorf(p+".dest_port", "range %q is not port's range %q (or one port)", f.DestPort, f.Port))
		}
		on := ""
		if aerr == nil && dest.Is6() && !dest.Is4In6() {
			on = dest.String()
		}
		for _, proto := range protos {
			for _, c := range claims {
				if c.proto == proto && c.dest == on && port.First <= c.ports.Last && c.ports.First <= port.Last {
					errs = append(errs, d.errorf(p+".port", "%s %s overlaps %s", proto, f.Port, c.path))
				}
			}
			claims = append(claims, claim{proto, port, on, p})
		}
	}
	return errs
}
