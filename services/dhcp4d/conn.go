package dhcp4d

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/homerouter/homerouter/internal/sockopt"
)

// linkConn is the server's socket pair on lan0. Requests arrive on a UDP
// socket bound to port 67 on the link. Replies leave where Destination
// says (RFC 2131 section 4.1): by UDP to a relay agent on the link, to a
// client that has an address or to the broadcast address, and otherwise unicast to the offered address
// at the client's MAC, which the kernel cannot do (the client does not
// answer ARP yet), so a packet socket sends that one with headers built
// by udp4. Service uses it.
type linkConn struct {
	ifi *net.Interface
	src netip.Addr // the server's address on the link
	udp *net.UDPConn
	raw *packet.Conn

	closeOnce sync.Once
	closeErr  error
}

func listenServer(ifname string, src netip.Addr) (*linkConn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("dhcp4d: %w", err)
	}
	lc := net.ListenConfig{Control: sockopt.Control(ifname, unix.SO_BROADCAST)}
	u, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:67")
	if err != nil {
		return nil, fmt.Errorf("dhcp4d: UDP port 67 on %s: %w", ifname, err)
	}
	// The packet socket only sends: a filter that accepts nothing (ret
	// #0), set before the socket is bound, keeps the kernel from queueing
	// the LAN's IPv4 packets on it.
	raw, err := packet.Listen(ifi, packet.Datagram, unix.ETH_P_IP, &packet.Config{Filter: []bpf.RawInstruction{{Op: 0x06, K: 0}}})
	if err != nil {
		u.Close()
		return nil, fmt.Errorf("dhcp4d: packet socket on %s: %w", ifname, err)
	}
	return &linkConn{ifi: ifi, src: src, udp: u.(*net.UDPConn), raw: raw}, nil
}

// send delivers reply to the client that sent req, where Destination
// says: by UDP, or by the packet socket to the client's MAC.
func (c *linkConn) send(req, reply *dhcpv4.DHCPv4) error {
	b := reply.ToBytes()
	dst, hw := Destination(req, reply)
	if hw == nil {
		_, err := c.udp.WriteToUDPAddrPort(b, dst)
		return err
	}
	_, err := c.raw.WriteTo(udp4(c.src, 67, dst.Addr(), dst.Port(), b), &packet.Addr{HardwareAddr: hw})
	return err
}

// receive reads one request. malformed is true for a packet that does
// not parse, which the caller drops and counts; err is the socket's.
func (c *linkConn) receive(buf []byte) (m *dhcpv4.DHCPv4, malformed bool, err error) {
	n, _, err := c.udp.ReadFrom(buf)
	if err != nil {
		return nil, false, err
	}
	m, perr := dhcpv4.FromBytes(buf[:n])
	return m, perr != nil, nil
}

// Close closes both sockets. It may be called more than once: the service
// closes the sockets to end a blocked receive, and again on its way out.
func (c *linkConn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = errors.Join(c.udp.Close(), c.raw.Close()) })
	return c.closeErr
}
