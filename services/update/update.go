// Package update installs a new image of the router and switches to it
// without losing the home's internet to a bad one.
//
// An image (kernel, initramfs, command line and their SHA-256) goes into
// one of two slots in /perm/update, a and b: always the one that is not
// active, so the running image and the one a failure returns to are
// never touched. The switch records a trial in /perm/update/state.json
// and asks PID 1 to kexec the slot with homerouter.trial=SLOT on its
// command line. The trial boot waits for the router to be healthy (the
// verdict of /health.json) within a deadline, 120 s by default:
//
//   - healthy: it commits. The slot becomes active and, on a router
//     booted from disk, its image is written to the boot partition, so
//     that cold boots run it from now on.
//   - not healthy in time: it rolls back, by a kexec into the active
//     slot without the trial flag (a reboot when there is none: a router
//     booted over the network then boots from the network again).
//
// An image that hangs before the router runs cannot roll itself back:
// the hardware watchdog, which PID 1 keeps armed across the kexec,
// resets the box, and the cold boot runs the boot partition's image,
// which only a commit changes. That boot finds the trial in state.json
// and records that it failed.
//
// At the first boot from disk the running image (the boot partition's)
// is copied into slot a, the active one.
package update

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/state"
)

// ServiceName is the update service's name in the supervisor.
const ServiceName = "update"

// DefaultDeadline is how long a trial boot has to become healthy: enough
// for a DHCP lease, a delegated prefix and a round of the diagnostics
// under QEMU's emulation, and not so long that a home waits long on a
// bad image.
const DefaultDeadline = 120 * time.Second

// TrialParam is the kernel command line parameter of a trial boot:
// homerouter.trial=SLOT.
const TrialParam = "homerouter.trial"

// Boot is what PID 1 knows of this boot. Under `homerouter run` it is
// the zero value: no trial, no boot partition.
type Boot struct {
	// Cmdline is this boot's kernel command line.
	Cmdline string
	// BootDir is where the boot partition, holding the image a cold
	// boot runs, is mounted; "" when there is none (a boot over the
	// network).
	BootDir string
}

// trial returns the slot of TrialParam on the command line, or "" (also
// for a value that is no slot: a trial needs one to commit).
func (b Boot) trial() string {
	for _, f := range strings.Fields(b.Cmdline) {
		if v, ok := strings.CutPrefix(f, TrialParam+"="); ok && validSlot(v) {
			return v
		}
	}
	return ""
}

// withoutTrial is cmdline without TrialParam and without the words a
// boot loader adds for itself (syslinux's BOOT_IMAGE= and initrd=): what
// a slot keeps, and what a rollback boots with.
func withoutTrial(cmdline string) string {
	var out []string
	for _, f := range strings.Fields(cmdline) {
		if !strings.HasPrefix(f, TrialParam+"=") && !strings.HasPrefix(f, "BOOT_IMAGE=") && !strings.HasPrefix(f, "initrd=") {
			out = append(out, f)
		}
	}
	return strings.Join(out, " ")
}

// Service is the update service.
type Service struct {
	st     *state.Store
	logger *log.Logger
	slots  slots
	boot   Boot
	// request asks PID 1 for a kexec or a reboot: st.RequestPlatform,
	// a fake in tests.
	request func(ctx context.Context, r state.PlatformRequest) error
	// hold is how long a trial must stay healthy before it commits.
	hold time.Duration
	// now and afterFunc are the trial's clock, which times its hold
	// and its deadline: time.Now and time.AfterFunc's (which returns
	// its timer's Stop), a fake that a test steps.
	now       func() time.Time
	afterFunc func(d time.Duration, f func()) (stop func() bool)
	// mu orders the uploads, switches and Run's records, which all
	// write the slots and state.json.
	mu sync.Mutex
}

// DefaultHold is how long a trial boot must stay healthy before it
// commits: longer than a diagnostics round, so that a service that
// crashes soon after the start, or a probe that passed once, does not
// commit a bad image.
const DefaultHold = 15 * time.Second

// New returns the update service, with its slots in dir/update.
func New(st *state.Store, logger *log.Logger, dir string, boot Boot) *Service {
	return &Service{st: st, logger: logger, slots: slots{dir: filepath.Join(dir, "update")}, boot: boot,
		request: st.RequestPlatform, hold: DefaultHold, now: time.Now, afterFunc: afterFunc}
}

func afterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Run records what this boot is, commits or rolls back a trial, and
// then waits for ctx.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	us, err := s.start()
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if trial := s.boot.trial(); trial != "" {
		return s.runTrial(ctx, us, trial)
	}
	<-ctx.Done()
	return nil
}

// start finds out what this boot runs, records it in state.json and
// publishes it. The caller holds mu.
//
// On a boot from disk the running image is the boot partition's, and
// which slot holds it is found by its SHA-256, not taken from
// state.json: after a power cut between a commit's write to the boot
// partition and its record, or a disk written anew by disk.sh, the file
// would be wrong. An image in no slot (the first boot from disk) is
// copied into the slot that is not active, and becomes the active one.
func (s *Service) start() (state.UpdateState, error) {
	us, err := s.slots.load()
	if err != nil {
		// Its own file, which nobody edits: start over rather than
		// refuse updates for good; the next save replaces it.
		s.logger.Printf("%v (starting from an empty state)", err)
		us = state.UpdateState{}
	}
	// An upload or a copy that a reset cut short.
	for _, slot := range []string{"a", "b"} {
		os.RemoveAll(s.slots.path(slot + ".new"))
	}
	trial := s.boot.trial()
	slot := trial
	switch {
	case trial != "":
		if us.Trial != trial {
			// Booted with the flag by hand, or state.json lost: the
			// trial still has to pass to commit.
			s.logger.Printf("a trial boot of slot %s that state.json does not know of (it says %q)", trial, us.Trial)
			us.Trial = trial
		}
	case s.boot.BootDir != "":
		slot = s.slots.holding(s.boot.BootDir)
		if slot == "" {
			slot = other(us.Active)
			if us.Active == "" {
				slot = "a"
			}
			if err := s.slots.fromBoot(s.boot.BootDir, slot, withoutTrial(s.boot.Cmdline)); err != nil {
				s.st.ReportProblem(ServiceName, fmt.Errorf("copy the running image into slot %s: %w", slot, err))
				slot = ""
				break
			}
			s.logger.Printf("the running image is slot %s now (copied from the boot partition)", slot)
			us.Active = slot
		}
		switch {
		case us.Trial != "" && us.Trial == slot:
			us.Last = fmt.Sprintf("committed slot %s: found on the boot partition after a restart", slot)
		case us.Trial != "":
			// A trial boot that never decided: the image hung or
			// crashed, the watchdog or a person reset the box, and the
			// cold boot ran the boot partition's image.
			us.Last = fmt.Sprintf("the trial of slot %s failed: the router restarted before it was healthy; running slot %s", us.Trial, slot)
		case us.Active != slot && slot != "":
			s.logger.Printf("the boot partition holds slot %s, state.json said %q", slot, us.Active)
		}
		if us.Trial != "" {
			s.logger.Print(us.Last)
			us.Trial = ""
		}
		if slot != "" {
			us.Active = slot
		}
	case us.Trial != "":
		// Booted over the network after a trial that never decided.
		us.Last = fmt.Sprintf("the trial of slot %s failed: the router restarted before it was healthy", us.Trial)
		s.logger.Print(us.Last)
		us.Trial = ""
	}
	if err := s.slots.save(us); err != nil {
		return us, err
	}
	s.st.Update.Publish(state.UpdateStatus{Slot: slot, State: us})
	return us, nil
}

// runTrial waits for the router to be healthy, then commits; at the
// deadline it rolls back.
func (s *Service) runTrial(ctx context.Context, us state.UpdateState, trial string) error {
	if us.Trial != trial {
		// Booted with the flag by hand, or state.json lost: the trial
		// is still the way back to a known good image.
		s.logger.Printf("a trial boot of slot %s that state.json does not know of (it says %q)", trial, us.Trial)
		us.Trial = trial
	}
	deadline := time.Duration(us.Deadline)
	if deadline <= 0 {
		deadline = DefaultDeadline
	}
	start := s.now()
	s.logger.Printf("trial of slot %s: committing once healthy for %v, rolling back to slot %q if not within %v", trial, s.hold, us.Active, deadline)
	st := s.st
	var healthySince time.Time
	for {
		w := state.WatchAll(st.ConfigStatus, st.Services, st.Problems, st.Notices, st.Diagnosis, st.Router)
		h := services.CurrentHealth(st)
		now := s.now()
		wait := deadline - now.Sub(start)
		switch {
		case h.FirstError != "":
			healthySince = time.Time{}
		case healthySince.IsZero():
			healthySince = now
			fallthrough
		default:
			// Healthy for a while, not for an instant: a service
			// that fails soon after the start must not be committed.
			held := now.Sub(healthySince)
			if held >= s.hold {
				return s.commit(ctx, us, trial, now.Sub(start))
			}
			wait = min(wait, s.hold-held)
		}
		if now.Sub(start) >= deadline {
			return s.rollback(ctx, us, trial, fmt.Sprintf("not healthy within %v: %s", deadline, h.FirstError))
		}
		// Until a topic changes, or the hold or the deadline is up.
		wctx, cancel := context.WithCancel(ctx)
		stop := s.afterFunc(wait, cancel)
		w.Wait(wctx)
		stop()
		cancel()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// commit makes trial the active slot and, from disk, the image of cold
// boots.
func (s *Service) commit(ctx context.Context, us state.UpdateState, trial string, took time.Duration) error {
	if s.boot.BootDir != "" {
		if err := s.slots.toBoot(trial, s.boot.BootDir); err != nil {
			// The boot partition keeps the old image: a cold boot runs
			// that, and the next update tries again.
			return s.rollback(ctx, us, trial, fmt.Sprintf("install on the boot partition: %v", err))
		}
	}
	us.Active, us.Trial, us.Attempts = trial, "", 0
	us.Last = fmt.Sprintf("committed slot %s, version %s: healthy %v after it started", trial, s.st.Router.Value().Version, took.Round(time.Second))
	s.mu.Lock()
	err := s.slots.save(us)
	if err == nil {
		s.st.Update.Publish(state.UpdateStatus{Slot: trial, State: us})
	}
	s.mu.Unlock()
	if err != nil {
		// The boot partition has the image: the next boot from disk
		// finds it there and records the commit.
		return fmt.Errorf("update: commit: %w", err)
	}
	s.logger.Print(us.Last)
	<-ctx.Done()
	return nil
}

// rollback returns to the active slot: a kexec into it, or a reboot when
// there is none or it does not load.
func (s *Service) rollback(ctx context.Context, us state.UpdateState, trial, why string) error {
	us.Trial = ""
	us.Last = fmt.Sprintf("rolled back from slot %s to slot %q: %s", trial, us.Active, why)
	s.mu.Lock()
	if err := s.slots.save(us); err != nil {
		s.logger.Printf("rollback: %v", err)
	}
	s.st.Update.Publish(state.UpdateStatus{Slot: trial, State: us})
	s.mu.Unlock()
	s.logger.Print(us.Last)
	r := state.PlatformRequest{Action: state.Reboot}
	if us.Active != "" {
		if err := s.slots.verify(us.Active); err != nil {
			s.logger.Printf("rollback: %v; rebooting instead", err)
		} else if cmdline, err := s.slots.cmdline(us.Active); err != nil {
			s.logger.Printf("rollback: %v; rebooting instead", err)
		} else {
			r = state.PlatformRequest{Action: state.Kexec, Kernel: s.slots.path(us.Active, kernelFile),
				Initramfs: s.slots.path(us.Active, initramfsFile), Cmdline: withoutTrial(cmdline)}
		}
	}
	err := s.request(ctx, r)
	if err != nil && r.Action == state.Kexec {
		s.logger.Printf("rollback: %v; rebooting instead", err)
		err = s.request(ctx, state.PlatformRequest{Action: state.Reboot})
	}
	if err != nil {
		// Under run, or while something else stops the router: the
		// state says what happened; nothing more to do here.
		s.st.ReportProblem(ServiceName, fmt.Errorf("roll back from slot %s: %w", trial, err))
	}
	<-ctx.Done()
	return nil
}
