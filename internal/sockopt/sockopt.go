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
