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
//	    {"proto": "tcp,udp", "port": "27015-27030", "dest_addr": "192.168.42.11", "dest_port": "27015-27030"}
//	  ]
//	}
//
// Read by the firewall. A missing file means no forwardings.
type PortForwardings struct {
	Forwardings []Forwarding `json:"forwardings"`
}

// Forwarding forwards one port or port range.
type Forwarding struct {
	// Proto is "tcp", "udp" or "tcp,udp".
	Proto string `json:"proto"`
	// Port is the port on the uplink: "N" or a range "N-M".
	Port string `json:"port"`
	// DestAddr is the LAN host's IPv4 address.
	DestAddr string `json:"dest_addr"`
	// DestPort is the port on that host, "N" or "N-M". A range must be as
	// long as Port's.
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
	type claim struct {
		proto string
		ports PortRange
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
		if a, err := netip.ParseAddr(f.DestAddr); err != nil || !a.Is4() {
			errs = append(errs, d.errorf(p+".dest_addr", "%q is not an IPv4 address", f.DestAddr))
		}
		dport, derr := ParsePortRange(f.DestPort)
		if derr != nil {
			errs = append(errs, d.errorf(p+".dest_port", "%v", derr))
		}
		if err != nil || derr != nil {
			continue
		}
		if dport.First != dport.Last && dport.Last-dport.First != port.Last-port.First {
			errs = append(errs, d.errorf(p+".dest_port", "range %q is not as long as port %q", f.DestPort, f.Port))
		}
		for _, proto := range protos {
			for _, c := range claims {
				if c.proto == proto && port.First <= c.ports.Last && c.ports.First <= port.Last {
					errs = append(errs, d.errorf(p+".port", "%s %s overlaps %s", proto, f.Port, c.path))
				}
			}
			claims = append(claims, claim{proto, port, p})
		}
	}
	return errs
}
