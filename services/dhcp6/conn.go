package dhcp6

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"golang.org/x/sys/unix"
)

// linkConn is the Conn on a real link: one UDP socket on port 546, bound
// to the link. Unlike DHCPv4 no packet socket is needed: the link-local
// address exists before any lease, and servers answer to it.
type linkConn struct {
	ifname string
	udp    *net.UDPConn
	msgs   chan received
	done   chan struct{}
}

type received struct {
	m   *dhcpv6.Message
	err error
}

func listen(ifname string) (*linkConn, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.BindToDevice(int(fd), ifname)
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp6", "[::]:546")
	if err != nil {
		return nil, fmt.Errorf("UDP socket on %s: %w", ifname, err)
	}
	c := &linkConn{ifname: ifname, udp: pc.(*net.UDPConn), msgs: make(chan received), done: make(chan struct{})}
	go c.read()
	return c, nil
}

// read parses what arrives; what does not parse, or is a relay message,
// is dropped.
func (c *linkConn) read() {
	buf := make([]byte, 65536)
	for {
		n, _, err := c.udp.ReadFrom(buf)
		if errors.Is(err, unix.ENETDOWN) {
			continue
		}
		if err != nil {
			select {
			case c.msgs <- received{err: err}:
			case <-c.done:
			}
			return
		}
		m, err := dhcpv6.MessageFromBytes(buf[:n])
		if err != nil {
			continue
		}
		select {
		case c.msgs <- received{m: m}:
		case <-c.done:
			return
		}
	}
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
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case r := <-c.msgs:
		if r.err != nil {
			return nil, fmt.Errorf("receive: %w", r.err)
		}
		return r.m, nil
	case <-t.C:
		return nil, ErrTimeout
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close closes the socket and stops the reader.
func (c *linkConn) Close() error {
	close(c.done)
	return c.udp.Close()
}
