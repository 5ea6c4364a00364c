package dhcp6

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"golang.org/x/sys/unix"

	"github.com/homerouter/homerouter/internal/inbox"
	"github.com/homerouter/homerouter/internal/sockopt"
)

// linkConn is the Conn on a real link: one UDP socket on port 546, bound
// to the link. Unlike DHCPv4 no packet socket is needed: the link-local
// address exists before any lease, and servers answer to it.
type linkConn struct {
	ifname string
	udp    *net.UDPConn
	inbox  *inbox.Inbox[*dhcpv6.Message]
}

func listen(ifname string) (*linkConn, error) {
	lc := net.ListenConfig{Control: sockopt.Control(ifname)}
	pc, err := lc.ListenPacket(context.Background(), "udp6", "[::]:546")
	if err != nil {
		return nil, fmt.Errorf("UDP socket on %s: %w", ifname, err)
	}
	c := &linkConn{ifname: ifname, udp: pc.(*net.UDPConn)}
	buf := make([]byte, 65536)
	c.inbox = inbox.Start(func() (*dhcpv6.Message, bool, error) { return c.read(buf) })
	return c, nil
}

// read reads one message; what does not parse, or is a relay message,
// is skipped.
func (c *linkConn) read(buf []byte) (*dhcpv6.Message, bool, error) {
	n, _, err := c.udp.ReadFrom(buf)
	if errors.Is(err, unix.ENETDOWN) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("receive: %w", err)
	}
	m, err := dhcpv6.MessageFromBytes(buf[:n])
	return m, err != nil, nil
}

// Send implements Conn.
func (c *linkConn) Send(m *dhcpv6.Message, dst netip.Addr) error {
	to := &net.UDPAddr{IP: dst.AsSlice(), Port: 547}
	if dst.IsLinkLocalMulticast() || dst.IsLinkLocalUnicast() {
		to.Zone = c.ifname
	}
	_, err := c.udp.WriteTo(m.ToBytes(), to)
	return err
}

// Receive implements Conn.
func (c *linkConn) Receive(ctx context.Context, deadline time.Time) (*dhcpv6.Message, error) {
	return c.inbox.Receive(ctx, deadline, ErrTimeout)
}

// Close closes the socket and stops the reader.
func (c *linkConn) Close() error {
	c.inbox.Close()
	return c.udp.Close()
}
