package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
	"github.com/homerouter/homerouter/platform"
	"github.com/homerouter/homerouter/services/httpd"
)

// imageWatchdogQEMU adds to a VM (lab.VMOptions.QEMUArgs) the watchdog
// QEMU emulates: Intel's 6300ESB, a PCI device, for which coldplug loads
// i6300esb by its modalias. When it fires QEMU resets the VM, or, without
// lab.VMOptions.Reboot, exits.
var imageWatchdogQEMU = []string{"-device", "i6300esb"}

// imageWatchdogArmedRE is PID 1's line when it armed the watchdog: the
// driver, and the timeout the driver took.
var imageWatchdogArmedRE = regexp.MustCompile(`platform: watchdog: (\S+) armed, timeout (\S+),`)

// imageWatchdogResetLine is in PID 1's log of a boot that followed a
// reset by the watchdog (its driver's boot status says so), and
// /health.json then has a watchdog notice.
const imageWatchdogResetLine = "reset the box before this boot"

// watchdogArmed waits until boot n of vm (1 for the first) has armed the
// watchdog, and returns the driver, the timeout and when the test saw
// the line. Boots are counted by that line, so a boot that hung before
// PID 1 armed the watchdog does not count.
func watchdogArmed(ctx context.Context, t *testing.T, vm *lab.VM, n int) (driver string, timeout time.Duration, at time.Time) {
	t.Helper()
	for {
		out := vm.Output()
		if m := imageWatchdogArmedRE.FindAllStringSubmatch(out, -1); len(m) >= n {
			d, err := time.ParseDuration(m[n-1][2])
			if err != nil {
				t.Fatalf("watchdog timeout %q on the console: %v", m[n-1][2], err)
			}
			return m[n-1][1], d, time.Now()
		}
		// The line is whole once a newline follows it.
		if _, err := vm.WaitOutputAfter(ctx, len(out), "\n"); err != nil {
			t.Fatalf("boot %d did not arm the watchdog: %v", n, err)
		}
	}
}

// watchdogStaysUp fails the test unless vm is still running its current
// boot at until: QEMU did not exit and no kernel started since (a reset
// by the watchdog shows as either, depending on lab.VMOptions.Reboot).
func watchdogStaysUp(t *testing.T, vm *lab.VM, until time.Time) {
	t.Helper()
	boots := vm.Boots()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(until) {
		select {
		case <-vm.Exited():
			t.Fatalf("VM exited (%v) before %v: the watchdog reset it?", vm.Err(), until.Format("15:04:05.000"))
		case <-tick.C:
		}
		if b := vm.Boots(); b != boots {
			t.Fatalf("boot %d started before %v: the watchdog reset the VM", b, until.Format("15:04:05.000"))
		}
	}
}

// watchdogPermDisk is an ext4 image labelled perm holding interfaces.json
// for the VM's NICs, lan0 192.168.42.1/24.
func watchdogPermDisk(t *testing.T) string {
	t.Helper()
	img, err := lab.PermImage(t.TempDir(), map[string]string{"interfaces.json": permInterfaces("192.168.42.1/24")})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestImageWatchdog boots the image with QEMU's i6300esb and a 10 s
// timeout (homerouter.watchdog=10s): coldplug loads i6300esb, PID 1 arms
// it with that timeout and pets it, so the VM outlives twice the timeout
// in its first boot (QEMU exits when the watchdog fires: -no-reboot), the
// router answers throughout, /health.json has no watchdog notice, and the
// power button disarms it before the power-off.
func TestImageWatchdog(t *testing.T) {
	lab.Require(t, "qemu-system-x86_64", "udhcpc", "curl", "mke2fs")
	lab.RequireFiles(t, imageKernel, imageInitrd, "/dev/net/tun")
	const timeout = 10 * time.Second
	l := lab.NewT(t)
	lan := newVMLAN(t, l)
	opt := lab.VMOptions{
		Kernel: imageKernel, Initrd: imageInitrd, Disk: watchdogPermDisk(t), LANTap: lanTap,
		Append:   "console=ttyS0 panic=-1 " + platform.WatchdogParam + "=" + timeout.String(),
		QEMUArgs: imageWatchdogQEMU,
	}
	ctx, cancel := context.WithTimeout(context.Background(), vmBootTimeout)
	defer cancel()
	start := time.Now()
	vm, err := l.StartVM(lan.ns, opt)
	if err != nil {
		t.Fatal(err)
	}
	driver, took, armed := watchdogArmed(ctx, t, vm, 1)
	t.Logf("power-on to watchdog armed: %d ms (%s, timeout %v)", armed.Sub(start).Milliseconds(), driver, took)
	if driver != "i6300esb" || took != timeout {
		t.Errorf("armed %s with timeout %v, want i6300esb with %v", driver, took, timeout)
	}
	// The kernel's own word that the driver found the device.
	consoleHas(t, vm, `i6300ESB timer .*initialized`)

	_, out := lan.lease(ctx, t, vm, start, "192.168.42.1")
	body, _, _ := strings.Cut(out, "\nHTTP ")
	var h httpd.Health
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("/health.json: %v", err)
	}
	for path, c := range imageChecks(h.Checks, "") {
		if strings.Contains(path, "watchdog") || strings.Contains(c.Notice, "watchdog") {
			t.Errorf("/health.json: %s: %+v; with a watchdog, want no watchdog check or notice", path, c)
		}
	}

	// Two timeouts after the arming (and a second for the console's and
	// this loop's delays), the VM still runs its first boot: PID 1
	// pets the watchdog.
	until := armed.Add(2*took + time.Second)
	watchdogStaysUp(t, vm, until)
	t.Logf("power-on to %v past the arming (2 timeouts) without a reset: %d ms", until.Sub(armed), time.Since(start).Milliseconds())
	if out, err := lan.ns.Run(ctx, "curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", "http://192.168.42.1/health.json"); err != nil {
		t.Errorf("/health.json after 2 timeouts: %v: %s", err, out)
	}
	if vm.Boots() != 1 || strings.Contains(vm.Output(), imageWatchdogResetLine) {
		t.Errorf("console: %d kernels started, want 1; reset line: %v", vm.Boots(), strings.Contains(vm.Output(), imageWatchdogResetLine))
	}

	// The power button: PID 1 disarms the watchdog, so it cannot turn
	// the box back on, then powers off.
	if err := vm.PowerDown(time.Minute); err != nil {
		t.Fatal(err)
	}
	consoleHas(t, vm, `platform: watchdog: i6300esb disarmed`)
	consoleHas(t, vm, `platform: powering off`)
	consoleClean(t, vm)
}
