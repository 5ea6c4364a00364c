package platform

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/u-root/u-root/pkg/watchdog"
	"golang.org/x/sys/unix"
)

// WatchdogParam is the kernel command line parameter that sets the
// hardware watchdog's timeout: homerouter.watchdog=90s (a Go duration,
// or whole seconds: homerouter.watchdog=90), or homerouter.watchdog=off
// to leave the watchdog alone. Without it the timeout is
// DefaultWatchdogTimeout. The image tests set a short one, so that
// outliving two timeouts takes seconds rather than minutes.
const WatchdogParam = "homerouter.watchdog"

// DefaultWatchdogTimeout is how long the hardware watchdog waits for a
// pet before it resets the box. After a kexec the next kernel must boot
// and its PID 1 load the driver and open /dev/watchdog within it: a few
// seconds on an apu2, under 15 s for QEMU without KVM, so a minute is
// ample and still brings a hung router back soon. Every driver the image
// carries takes it (i6300esb up to 2046 s, sp5100_tco 65535 s,
// iTCO_wdt 614 s, or 76 s on its first chipsets).
const DefaultWatchdogTimeout = 60 * time.Second

// maxWatchdogTimeout bounds what homerouter.watchdog may ask: a router
// that takes longer to come back is as good as one without a watchdog.
const maxWatchdogTimeout = time.Hour

// Where PID 1 finds the watchdog: /dev/watchdog is the first one the
// kernel registered, which sysfs calls watchdog0.
const (
	watchdogDev   = "/dev/watchdog"
	watchdogClass = "class/watchdog/watchdog0" // under /sys
)

// watchdogCore is the watchdog drivers' common module (Debian builds
// CONFIG_WATCHDOG_CORE as a module): PID 1 loads it before coldplug
// does, with watchdogCoreParams.
const watchdogCore = "watchdog"

// parseWatchdogParam reads the value of WatchdogParam: "" is the
// default, "off" (or 0) turns the watchdog off (0), a Go duration or a
// number of seconds sets the timeout, rounded up to whole seconds (the
// driver's unit) and between 1 s and maxWatchdogTimeout.
func parseWatchdogParam(v string) (time.Duration, error) {
	switch v {
	case "":
		return DefaultWatchdogTimeout, nil
	case "off", "0":
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if n, nerr := strconv.Atoi(v); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%s=%s: not a duration (such as 60s) nor off", WatchdogParam, v)
	}
	if d == 0 {
		return 0, nil
	}
	if d < 0 || d > maxWatchdogTimeout {
		return 0, fmt.Errorf("%s=%s: not between 1s and %v", WatchdogParam, v, maxWatchdogTimeout)
	}
	return (d + time.Second - 1).Truncate(time.Second), nil
}

// watchdogPetInterval is how often PID 1 pets a watchdog with timeout:
// three times per timeout, so that one late pet (a stalled console, a
// slow disk under the Go runtime) costs nothing.
func watchdogPetInterval(timeout time.Duration) time.Duration {
	return timeout / 3
}

// watchdogCoreParams are the watchdog core's module parameters for the
// hand-over across kexec. stop_on_reboot=0: the core does not stop the
// watchdog at the kexec (its reboot notifier would, for every driver in
// the image), so a next kernel that hangs before its PID 1 runs is reset.
// open_timeout: a driver that finds its watchdog running when it probes
// (iTCO_wdt) has it petted by the kernel until PID 1 opens it (the
// kernel's CONFIG_WATCHDOG_HANDLE_BOOT_ENABLED), but only for that long,
// so a PID 1 that never comes is reset too. i6300esb and sp5100_tco stop
// their watchdog when they probe, so there the hand-over covers the next
// kernel up to coldplug, and armWatchdog the rest.
func watchdogCoreParams(timeout time.Duration) string {
	return fmt.Sprintf("stop_on_reboot=0 open_timeout=%d", int(timeout/time.Second))
}

// noWatchdogNotice is WatchdogNotice on a box without a watchdog PID 1
// can use.
const noWatchdogNotice = "an image that hangs while booting (after an update, say) needs a power cycle"

// watchdogDevice is an open /dev/watchdog: hardwareWatchdog in PID 1, a
// fake in tests, which must never open the host's.
type watchdogDevice interface {
	SetTimeout(time.Duration) error
	Timeout() (time.Duration, error)
	BootStatus() (watchdog.Status, error)
	KeepAlive() error
	// MagicClose stops the watchdog and closes the device.
	MagicClose() error
}

// hardwareWatchdog is u-root's Watchdog with a SetTimeout that works.
type hardwareWatchdog struct{ *watchdog.Watchdog }

// openHardwareWatchdog opens (and so starts) the watchdog at dev.
func openHardwareWatchdog(dev string) (watchdogDevice, error) {
	w, err := watchdog.Open(dev)
	if err != nil {
		return nil, err
	}
	return hardwareWatchdog{w}, nil
}

// SetTimeout asks the driver for a timeout of d, in whole seconds. u-root's
// Watchdog.SetTimeout (v0.16.0) hands the ioctl a pointer to the
// time.Duration itself: the driver reads the low half of its nanoseconds
// and refuses them.
func (h hardwareWatchdog) SetTimeout(d time.Duration) error {
	return unix.IoctlSetPointerInt(int(h.Fd()), unix.WDIOC_SETTIMEOUT, int(d/time.Second))
}

// runningWatchdog is the watchdog PID 1 keeps armed: its goroutine pets
// it until Shutdown disarms it or hands it over to the next kernel.
type runningWatchdog struct {
	dev     watchdogDevice
	name    string
	timeout time.Duration
	// state is sysfs's "active" or "inactive" file, read to tell
	// whether the magic close really stopped the watchdog.
	state string
	logf  func(string, ...any)
	// stop ends the goroutine that pets.
	stop context.CancelFunc

	mu      sync.Mutex // serialises pets with disarm
	closed  bool
	failing bool // the last pet failed: logged once until one works
}

// watchdogTimeout reads WatchdogParam's value: the timeout Boot loads the
// watchdog core for and armWatchdog asks for, 0 for off. A value it cannot
// use is logged and told on /health.json, and the default used: a typo on
// the command line must not leave the router without its watchdog.
func (s *System) watchdogTimeout(param string) time.Duration {
	timeout, err := parseWatchdogParam(param)
	if err != nil {
		s.watchdogNotice(fmt.Sprintf("%v: using %v", err, DefaultWatchdogTimeout))
		s.logger.Printf("watchdog: %v: using %v", err, DefaultWatchdogTimeout)
		return DefaultWatchdogTimeout
	}
	return timeout
}

// watchdogNotice adds msg to WatchdogNotice.
func (s *System) watchdogNotice(msg string) {
	if s.WatchdogNotice != "" {
		s.WatchdogNotice += "; "
	}
	s.WatchdogNotice += msg
}

// armWatchdog opens the hardware watchdog (coldplug loaded its driver),
// sets its timeout and pets it from a goroutine for as long as PID 1
// runs: a PID 1 that hangs, or a kernel that does, is reset within the
// timeout, and the box boots what its boot loader holds. Without a
// watchdog (none found, or timeout 0: homerouter.watchdog=off) the
// router runs as well, and WatchdogNotice says what that costs.
func (s *System) armWatchdog(timeout time.Duration) {
	if timeout == 0 {
		s.logger.Printf("watchdog: off (%s=off)", WatchdogParam)
		s.watchdogNotice(fmt.Sprintf("the hardware watchdog is off (%s=off): %s", WatchdogParam, noWatchdogNotice))
		return
	}
	dev, err := s.openWatchdog(s.watchdogDev)
	if errors.Is(err, fs.ErrNotExist) {
		s.logger.Printf("watchdog: none found (%s)", s.watchdogDev)
		s.watchdogNotice("no hardware watchdog: " + noWatchdogNotice)
		return
	}
	if err != nil {
		s.logger.Printf("watchdog: %v", err)
		s.watchdogNotice(fmt.Sprintf("cannot use the hardware watchdog (%v): %s", err, noWatchdogNotice))
		return
	}
	name := watchdogName(s.watchdogSys, s.watchdogDev)
	// Open started it with the driver's own timeout; ask for ours and
	// believe what the driver says it took.
	if err := dev.SetTimeout(timeout); err != nil {
		s.logger.Printf("watchdog: %s refused a %v timeout: %v", name, timeout, err)
	}
	if got, err := dev.Timeout(); err == nil && got > 0 {
		timeout = got
	}
	interval := watchdogPetInterval(timeout)
	ctx, stop := context.WithCancel(context.Background())
	w := &runningWatchdog{dev: dev, name: name, timeout: timeout, state: filepath.Join(s.watchdogSys, watchdogClass, "state"), logf: s.logger.Printf, stop: stop}
	s.watchdog = w
	s.Watchdog = fmt.Sprintf("%s, timeout %v", name, timeout)
	s.logger.Printf("watchdog: %s armed, timeout %v, petted every %v", name, timeout, interval.Round(time.Millisecond))
	if st, err := dev.BootStatus(); err == nil && st&watchdog.StatusCardReset != 0 {
		s.WatchdogReset = true
		s.logger.Printf("watchdog: %s reset the box before this boot", name)
		s.watchdogNotice("the hardware watchdog reset the router before this boot: the previous boot hung")
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		w.run(ctx, t.C)
	}()
}

// watchdogName names the watchdog for the log by its driver's module
// (i6300esb), looked up in sys (/sys): the module of its parent device's
// driver, else of the driver named as the watchdog's identity (i6300esb
// registers its watchdog without a parent, and calls both "i6300ESB
// timer"). Failing those it is the identity, else dev.
func watchdogName(sys, dev string) string {
	class := filepath.Join(sys, watchdogClass)
	if l, err := os.Readlink(filepath.Join(class, "device/driver/module")); err == nil {
		return filepath.Base(l)
	}
	b, _ := os.ReadFile(filepath.Join(class, "identity"))
	identity := strings.TrimSpace(string(b))
	if identity == "" {
		return dev
	}
	buses, _ := os.ReadDir(filepath.Join(sys, "bus"))
	for _, bus := range buses {
		if l, err := os.Readlink(filepath.Join(sys, "bus", bus.Name(), "drivers", identity, "module")); err == nil {
			return filepath.Base(l)
		}
	}
	return identity
}

// run pets the watchdog on each tick until ctx is done.
func (w *runningWatchdog) run(ctx context.Context, ticks <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			w.pet()
		}
	}
}

// pet pets the watchdog unless it was disarmed. A failure is logged once
// until a pet works again: the log must not fill with one line per pet.
func (w *runningWatchdog) pet() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	err := w.dev.KeepAlive()
	switch {
	case err != nil && !w.failing:
		w.logf("watchdog: pet %s: %v: it resets the box within %v unless a pet works", w.name, err, w.timeout)
	case err == nil && w.failing:
		w.logf("watchdog: pet %s: works again", w.name)
	}
	w.failing = err != nil
}

// handOver pets the watchdog a last time and leaves it running for the
// kernel Shutdown jumps into: the next PID 1 has the whole timeout to
// open it. That is the hand-over across kexec: an image that hangs
// before its PID 1 takes the watchdog over is reset, and the box boots
// the image its boot loader holds. Nil (no watchdog) does nothing.
func (w *runningWatchdog) handOver() {
	if w == nil {
		return
	}
	w.pet()
	w.logf("watchdog: %s left running for the next kernel: its PID 1 has %v to take it over", w.name, w.timeout)
}

// disarm stops petting and stops the watchdog with the magic close, for
// a power-off (a watchdog that outlived it could turn the box back on)
// and a reboot (a watchdog some chipsets keep across a reset could fire
// in the firmware or the boot loader, before the next PID 1 arms it:
// boot from the network can take longer than the timeout). It logs
// whether the watchdog really stopped: a driver loaded with nowayout
// cannot. Nil (no watchdog) does nothing.
func (w *runningWatchdog) disarm() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	w.stop()
	if err := w.dev.MagicClose(); err != nil {
		w.logf("watchdog: disarm %s: %v", w.name, err)
		return
	}
	if b, err := os.ReadFile(w.state); err == nil && strings.TrimSpace(string(b)) != "inactive" {
		w.logf("watchdog: %s still %s after the magic close: it resets the box within %v", w.name, strings.TrimSpace(string(b)), w.timeout)
		return
	}
	w.logf("watchdog: %s disarmed", w.name)
}
