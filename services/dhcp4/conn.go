package dhcp4

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/homerouter/homerouter/internal/inbox"
	"github.com/homerouter/homerouter/internal/sockopt"
)

// linkConn is the Conn on a real link. It does what udhcpc and dhcpcd do:
// broadcasts go out of a packet socket, because before the first lease
// the link has no address to send from; unicasts (renewals) go out of a
// UDP socket, so that the kernel routes them to a server that may be
// several hops away (fiber7's is). Everything is received on the packet
// socket, which a BPF filter limits to UDP port 68, so it also sees
// replies to an address the link does not have yet.
type linkConn struct {
	raw   net.PacketConn // IP datagrams to and from port 68, via the packet socket
	udp   *net.UDPConn   // for unicast sends; what it receives is discarded
	inbox *inbox.Inbox[*dhcpv4.DHCPv4]
}

// port68 accepts UDP to port 68 on a cooked (SOCK_DGRAM) packet socket,
// where data starts at the IPv4 header.
var port68 = []bpf.Instruction{
	bpf.LoadAbsolute{Off: 9, Size: 1}, // IP protocol
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.IPPROTO_UDP, SkipTrue: 6},
	bpf.LoadAbsolute{Off: 6, Size: 2},                           // flags, fragment offset
	bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 4}, // a later fragment has no UDP header
	bpf.LoadMemShift{Off: 0},                                    // X = IP header length
	bpf.LoadIndirect{Off: 2, Size: 2},                           // UDP destination port
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: 68, SkipFalse: 1},
	bpf.RetConstant{Val: 1 << 16},
	bpf.RetConstant{Val: 0},
}

// listen opens the Conn on the link named ifname.
func listen(ifname string) (*linkConn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("dhcp4: %w", err)
	}
	filter, err := bpf.Assemble(port68)
	if err != nil {
		return nil, fmt.Errorf("dhcp4: BPF: %w", err)
	}
	p, err := packet.Listen(ifi, packet.Datagram, unix.ETH_P_IP, &packet.Config{Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("dhcp4: packet socket on %s: %w", ifname, err)
	}
	lc := net.ListenConfig{Control: sockopt.Control(ifname, unix.SO_REUSEADDR)}
	u, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("dhcp4: UDP socket on %s: %w", ifname, err)
	}
	c := &linkConn{
		raw: nclient4.NewBroadcastUDPConn(p, &net.UDPAddr{Port: 68}),
		udp: u.(*net.UDPConn),
	}
	buf := make([]byte, 1500)
	c.inbox = inbox.Start(func() (*dhcpv4.DHCPv4, bool, error) { return c.read(buf) })
	go c.drain()
	return c, nil
}

// read reads one message from the packet socket. A malformed message is
// skipped: it is somebody else's problem, not a reason to stop.
func (c *linkConn) read(buf []byte) (*dhcpv4.DHCPv4, bool, error) {
	n, _, err := c.raw.ReadFrom(buf)
	if errors.Is(err, unix.ENETDOWN) {
		// The link went down; the socket works again when it comes
		// back up. Retransmissions cover the gap.
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("receive: %w", err)
	}
	m, err := dhcpv4.FromBytes(buf[:n])
	return m, err != nil, nil
}

// drain empties the UDP socket, which receives copies of the unicast
// replies the packet socket already saw.
func (c *linkConn) drain() {
	buf := make([]byte, 1500)
	for {
		if _, _, err := c.udp.ReadFrom(buf); err != nil {
			return
		}
	}
}

// Send implements Conn.
func (c *linkConn) Send(m *dhcpv4.DHCPv4, dst netip.Addr) error {
	to := &net.UDPAddr{IP: dst.AsSlice(), Port: 67}
	var err error
	if dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		_, err = c.raw.WriteTo(m.ToBytes(), to)
	} else {
		_, err = c.udp.WriteTo(m.ToBytes(), to)
	}
	return err
}

// Receive implements Conn.
func (c *linkConn) Receive(ctx context.Context, deadline time.Time) (*dhcpv4.DHCPv4, error) {
	return c.inbox.Receive(ctx, deadline, ErrTimeout)
}

// Close closes both sockets and stops the readers.
func (c *linkConn) Close() error {
	c.inbox.Close()
	return errors.Join(c.raw.Close(), c.udp.Close())
}
