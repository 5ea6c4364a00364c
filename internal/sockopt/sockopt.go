// Package sockopt sets the socket options the DHCP services need before
// they bind: a DHCP socket serves one link, and must not see (or answer
// on) the others.
package sockopt

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// Control returns a net.ListenConfig Control function that binds the
// socket to the link ifname (SO_BINDTODEVICE) after setting each of the
// SOL_SOCKET options in opts (e.g. unix.SO_REUSEADDR) to 1.
func Control(ifname string, opts ...int) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, o := range opts {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o, 1); serr != nil {
					return
				}
			}
			serr = unix.BindToDevice(int(fd), ifname)
		})
		return errors.Join(err, serr)
	}
}

// Freebind is a net.ListenConfig Control function that sets
// IP_FREEBIND (or IPV6_FREEBIND): the listener binds an address that is
// not usable yet (an IPv6 address still tentative, a LAN cable out) and
// serves once it is. httpd and dns listen on lan0's addresses this way.
func Freebind(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if network[len(network)-1] == '6' {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		}
	})
	return errors.Join(err, serr)
}
