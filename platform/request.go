package platform

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/homerouter/homerouter/state"
)

// System is PID 1's side of the Store's platform requests and commands.
var _ state.Platform = (*System)(nil)

// errUnderWay refuses a request that comes while another one, or the
// power button, is already stopping the router.
var errUnderWay = errors.New("another request is under way")

// StopOnRequest returns a context that is done when parent is, and also
// as soon as Request accepts a request: PID 1 runs the services under it,
// so that a service's reboot, power-off or kexec stops them all as a
// SIGTERM would, and then calls Shutdown(Action()). The context's cause
// names the request.
func (s *System) StopOnRequest(parent context.Context) context.Context {
	ctx, cancel := context.WithCancelCause(parent)
	s.requestMu.Lock()
	defer s.requestMu.Unlock()
	if s.action != "" {
		cancel(s.stopCause)
	} else {
		s.stops = append(s.stops, cancel)
	}
	return ctx
}

// Request does what r asks (state.Platform): it checks r, for a kexec
// loads the new kernel (a kernel that does not load is an error, and the
// router keeps running as it was), records the action for Shutdown and
// cancels the contexts of StopOnRequest. It refuses a request while
// another one, or the power button, is stopping the router: the first
// one asked wins, and a later kexec would replace the kernel an earlier
// one loaded.
func (s *System) Request(ctx context.Context, r state.PlatformRequest) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if r.Action == state.Kexec {
		// loadMu, not requestMu, is held across the load, which reads
		// from disk: a SIGTERM or the power button meanwhile must not
		// wait for it. Two kexecs cannot load over each other: the
		// second waits, then finds the first under way.
		s.loadMu.Lock()
		defer s.loadMu.Unlock()
		if err := s.refuse(ctx, r); err != nil {
			return err
		}
		if err := s.kexecLoad(r.Kernel, r.Initramfs, r.Cmdline); err != nil {
			return fmt.Errorf("platform: kexec load %s: %w", r.Kernel, err)
		}
		s.logger.Printf("kexec: loaded %s, initramfs %q, command line %q", r.Kernel, r.Initramfs, r.Cmdline)
	}
	s.requestMu.Lock()
	defer s.requestMu.Unlock()
	if err := s.refuseLocked(ctx, r); err != nil {
		return err
	}
	s.accept(r.Action, fmt.Sprintf("request %s: stopping the services", r.Action))
	return nil
}

// refuse says why r cannot be accepted now, or nil.
func (s *System) refuse(ctx context.Context, r state.PlatformRequest) error {
	s.requestMu.Lock()
	defer s.requestMu.Unlock()
	return s.refuseLocked(ctx, r)
}

func (s *System) refuseLocked(ctx context.Context, r state.PlatformRequest) error {
	if s.action != "" {
		return fmt.Errorf("platform: %s: %w (%s)", r.Action, errUnderWay, s.action)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("platform: %s: %w", r.Action, err)
	}
	return nil
}

// accept records action, logs msg and stops the services. The caller
// holds requestMu.
func (s *System) accept(action state.PlatformAction, msg string) {
	s.action = action
	s.stopCause = fmt.Errorf("platform: %s", msg)
	s.logger.Print(msg)
	for _, cancel := range s.stops {
		cancel(s.stopCause)
	}
	s.stops = nil
}

// Action is what Shutdown should do once the services have stopped: what
// an accepted Request asked for, a power-off after the power button, and
// otherwise (SIGTERM, Ctrl-Alt-Del, a fatal error) a reboot, the best
// chance for the router to come back.
func (s *System) Action() state.PlatformAction {
	s.requestMu.Lock()
	defer s.requestMu.Unlock()
	if s.action == "" {
		return state.Reboot
	}
	return s.action
}

// Start starts cmd as cmd.Start does, and keeps the reaper of orphans
// away from it, so that cmd.Wait gets its exit status (state.Platform).
func (s *System) Start(cmd *exec.Cmd) error {
	return s.reaper.start(cmd)
}

// kexecFileLoad loads kernel, initramfs ("" for none) and cmdline for
// the next LINUX_REBOOT_CMD_KEXEC, with kexec_file_load(2): the kernel
// reads and checks the image itself (signature included, where lockdown
// asks for one), so a bad image is an error now rather than a hang at
// the jump.
func kexecFileLoad(kernel, initramfs, cmdline string) error {
	k, err := os.Open(kernel)
	if err != nil {
		return err
	}
	defer k.Close()
	initrd, flags := -1, unix.KEXEC_FILE_NO_INITRAMFS
	if initramfs != "" {
		i, err := os.Open(initramfs)
		if err != nil {
			return err
		}
		defer i.Close()
		initrd, flags = int(i.Fd()), 0
	}
	return unix.KexecFileLoad(int(k.Fd()), initrd, cmdline, flags)
}
