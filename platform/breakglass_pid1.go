package platform

import (
	"context"
	"io"
	"log"

	"github.com/homerouter/homerouter/platform/breakglass"
	"github.com/homerouter/homerouter/state"
)

// BreakglassTTY is the serial console the breakglass shell serves: the
// first serial port, where the image's boot configs put console=.
const BreakglassTTY = "/dev/ttyS0"

// ServeBreakglass runs the breakglass shell on BreakglassTTY until ctx
// is done (see package breakglass), with the log paused on that console
// while someone logs in or uses the shell, and the password from
// PermDir. homerouter runs the router's own subcommands (main's run),
// for the shell's homerouter check. It is PID 1's: under `homerouter
// run` the serial console is not the router's to take.
func (s *System) ServeBreakglass(ctx context.Context, homerouter func(args []string, stdout, stderr io.Writer) error) {
	logger := log.New(s.Log, "breakglass: ", log.LstdFlags|log.Lmsgprefix)
	breakglass.New(breakglass.Options{
		TTY:        BreakglassTTY,
		Password:   func() (string, error) { return state.ReadPassword(PermDir) },
		Pause:      s.PauseConsole,
		Logf:       logger.Printf,
		Log:        s.Ring.Bytes,
		Homerouter: homerouter,
	}).Serve(ctx)
}
