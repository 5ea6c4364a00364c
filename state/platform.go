package state

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
)

// PlatformAction is what a service may ask of PID 1.
type PlatformAction string

// The actions of a PlatformRequest.
const (
	// Reboot stops the services, writes the state, unmounts /perm and
	// reboots the machine.
	Reboot PlatformAction = "reboot"
	// PowerOff does the same and powers the machine off.
	PowerOff PlatformAction = "poweroff"
	// Kexec loads Kernel, Initramfs and Cmdline first (a kernel that
	// does not load is an error, and nothing stops), then stops like
	// Reboot and jumps into the loaded kernel instead of the firmware.
	Kexec PlatformAction = "kexec"
)

// PlatformRequest asks PID 1 to end this run of the router.
type PlatformRequest struct {
	Action PlatformAction
	// Kernel and Initramfs are paths of the image to kexec, and Cmdline
	// its kernel command line; only for Kexec.
	Kernel, Initramfs, Cmdline string
}

// Validate checks that r names an action and, for Kexec, a kernel.
func (r PlatformRequest) Validate() error {
	switch r.Action {
	case Reboot, PowerOff:
		if r.Kernel != "" || r.Initramfs != "" || r.Cmdline != "" {
			return fmt.Errorf("platform request %s: a kernel, initramfs or command line is only for kexec", r.Action)
		}
	case Kexec:
		if r.Kernel == "" {
			return errors.New("platform request kexec: no kernel")
		}
	default:
		return fmt.Errorf("platform request %q: not reboot, poweroff or kexec", r.Action)
	}
	return nil
}

// Platform is what PID 1 does for the services: it is platform.System
// when the router is the image's init, and nothing otherwise. Services
// reach it through the Store (RequestPlatform, StartCommand), so that no
// service imports platform.
type Platform interface {
	// Request starts what r asks and returns once it is under way (the
	// services are then being stopped), or an error when it cannot be
	// done: the router then keeps running as it was.
	Request(ctx context.Context, r PlatformRequest) error
	// Start starts cmd as exec.Cmd.Start does, and keeps PID 1's
	// reaper away from it, so that cmd.Wait gets its exit status.
	Start(cmd *exec.Cmd) error
}

// ErrNotPID1 is the error of a platform request under `homerouter run`:
// a process in a network namespace must not reboot the machine it runs
// on.
var ErrNotPID1 = errors.New("not PID 1 of the router's image (homerouter run): reboot, power-off and kexec are PID 1's to do")

// SetPlatform makes p the platform of RequestPlatform and StartCommand.
// main calls it before the services start, as PID 1 only.
func (s *Store) SetPlatform(p Platform) {
	s.platformMu.Lock()
	defer s.platformMu.Unlock()
	s.platform = p
}

func (s *Store) getPlatform() Platform {
	s.platformMu.Lock()
	defer s.platformMu.Unlock()
	return s.platform
}

// RequestPlatform asks PID 1 for a reboot, a power-off or a kexec. It
// returns nil once the request is under way: the caller's context is
// cancelled soon after, with every other service's. Under `homerouter
// run` it returns ErrNotPID1, and nothing happens.
func (s *Store) RequestPlatform(ctx context.Context, r PlatformRequest) error {
	if err := r.Validate(); err != nil {
		return err
	}
	p := s.getPlatform()
	if p == nil {
		return fmt.Errorf("platform request %s: %w", r.Action, ErrNotPID1)
	}
	return p.Request(ctx, r)
}

// StartCommand starts cmd. Use it, not cmd.Start, for every program the
// router runs: as PID 1, the reaper of orphaned processes would otherwise
// take cmd's exit status before cmd.Wait could. cmd.Run, Output and
// CombinedOutput start the command themselves, so they have that
// problem: call StartCommand and then cmd.Wait instead.
func (s *Store) StartCommand(cmd *exec.Cmd) error {
	if p := s.getPlatform(); p != nil {
		return p.Start(cmd)
	}
	return cmd.Start()
}
