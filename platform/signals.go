// Package platform is the only place that knows how the router process
// meets the operating system: signals, and, when it runs as PID 1 of its
// image, mounts, consoles, kernel modules, /perm, the first boot, the
// power button, the reaper of orphans, and reboot, power-off and kexec
// (on its own or at a service's request). Everything else runs the same
// under `homerouter run` in a network namespace.
package platform

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// Signals turns the signals a router obeys into Go values: the returned
// context is cancelled by SIGTERM or SIGINT (stop), and reload receives on
// SIGHUP (re-read the config files). Several SIGHUPs in a burst may
// arrive as one; reloading once is enough. Call stop to restore the default
// handling.
func Signals(ctx context.Context) (stopCtx context.Context, reload <-chan struct{}, stop func()) {
	stopCtx, cancel := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	r := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-stopCtx.Done():
				return
			case <-hup:
				select {
				case r <- struct{}{}:
				default: // a reload is already pending
				}
			}
		}
	}()
	return stopCtx, r, func() {
		signal.Stop(hup)
		cancel()
	}
}
