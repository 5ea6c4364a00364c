package diagnostics

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/homerouter/homerouter/internal/sockopt"
	"github.com/miekg/dns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// probeTimeout bounds each ping and each DNS query: a gateway or resolver
// that takes longer is as good as gone for the people waiting on it.
const probeTimeout = 2 * time.Second

// network is the prober that sends real packets.
type network struct{}

// ping sends one echo request on a raw ICMP socket bound to ifname and
// waits for its reply (matched by identifier, sequence number and
// source). A raw socket needs root, which the router has; the kernel's
// unprivileged ping sockets are off unless a sysctl allows them, and
// PID 1 sets no such sysctl.
func (network) ping(ctx context.Context, ifname string, dst netip.Addr) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	netw, proto, laddr := "ip4:icmp", 1, "0.0.0.0"
	var req, rep icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		netw, proto, laddr = "ip6:ipv6-icmp", 58, "::"
		req, rep = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	lc := net.ListenConfig{Control: sockopt.Control(ifname)}
	c, err := lc.ListenPacket(ctx, netw, laddr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	// The router stopping ends the wait at once, not at the deadline: a
	// kexec waits for the services.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	id, seq := rand.N(0x10000), 1
	// The kernel fills in an ICMPv6 checksum (a raw ICMPv6 socket has
	// IPV6_CHECKSUM on), so Marshal needs no pseudo-header.
	b, err := (&icmp.Message{Type: req, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("homerouter diagnostics")}}).Marshal(nil)
	if err != nil {
		return 0, err
	}
	to := &net.IPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}
	if dst.Is6() && dst.IsLinkLocalUnicast() && to.Zone == "" {
		to.Zone = ifname
	}
	start := time.Now()
	if _, err := c.WriteTo(b, to); err != nil {
		return 0, err
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			switch {
			case errors.Is(ctx.Err(), context.Canceled):
				return 0, ctx.Err()
			case ctx.Err() != nil || isTimeout(err):
				return 0, fmt.Errorf("no reply within %v", probeTimeout)
			}
			return 0, err
		}
		// A raw socket sees every ICMP packet of the link: other
		// echoes, neighbour discovery. Only our reply counts.
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != rep {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		if !ok || e.ID != id || e.Seq != seq {
			continue
		}
		if a, ok := from.(*net.IPAddr); !ok || !a.IP.Equal(to.IP) {
			continue
		}
		return time.Since(start), nil
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// query asks server for the root's NS records over UDP. Any answer will
// do, whatever its rcode: the question is whether the server is there,
// not whether it likes us.
func (network) query(ctx context.Context, server netip.AddrPort) (time.Duration, error) {
	m := new(dns.Msg)
	m.SetQuestion(".", dns.TypeNS)
	c := dns.Client{Net: "udp", Timeout: probeTimeout}
	_, rtt, err := c.ExchangeContext(ctx, m, server.String())
	return rtt, err
}
