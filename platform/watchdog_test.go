package platform

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/watchdog"
)

func TestParseWatchdogParam(t *testing.T) {
	for _, tc := range []struct {
		v       string
		want    time.Duration
		wantErr bool
	}{
		{"", DefaultWatchdogTimeout, false},
		{"off", 0, false},
		{"0", 0, false},
		{"0s", 0, false},
		{"10s", 10 * time.Second, false},
		{"10", 10 * time.Second, false},
		{"2m", 2 * time.Minute, false},
		{"1500ms", 2 * time.Second, false}, // whole seconds, rounded up
		{"100ms", time.Second, false},
		{"1h", time.Hour, false},
		{"61m", 0, true},
		{"-5s", 0, true},
		{"-5", 0, true},
		{"banana", 0, true},
		{"on", 0, true},
	} {
		got, err := parseWatchdogParam(tc.v)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("parseWatchdogParam(%q) = %v, %v; want %v, error %v", tc.v, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), WatchdogParam+"="+tc.v) {
			t.Errorf("parseWatchdogParam(%q): error %q does not name the parameter", tc.v, err)
		}
	}
}

// TestWatchdogTimings: the pet interval leaves two pets of slack, and
// the watchdog core gets the timeout, in seconds, as the time a running
// watchdog may wait for PID 1.
func TestWatchdogTimings(t *testing.T) {
	for _, tc := range []struct {
		timeout, interval time.Duration
		core              string
	}{
		{DefaultWatchdogTimeout, 20 * time.Second, "stop_on_reboot=0 open_timeout=60"},
		{10 * time.Second, 3333333333 * time.Nanosecond, "stop_on_reboot=0 open_timeout=10"},
		{time.Second, 333333333 * time.Nanosecond, "stop_on_reboot=0 open_timeout=1"},
	} {
		if got := watchdogPetInterval(tc.timeout); got != tc.interval {
			t.Errorf("watchdogPetInterval(%v) = %v, want %v", tc.timeout, got, tc.interval)
		}
		if got := watchdogCoreParams(tc.timeout); got != tc.core {
			t.Errorf("watchdogCoreParams(%v) = %q, want %q", tc.timeout, got, tc.core)
		}
	}
}

// fakeWatchdog records what PID 1 does to its watchdog.
type fakeWatchdog struct {
	mu         sync.Mutex
	timeout    time.Duration
	maxTimeout time.Duration // SetTimeout refuses more
	bootStatus watchdog.Status
	petErr     error
	pets       int
	closed     int
	petted     chan struct{} // receives after each pet, if not nil
}

func (f *fakeWatchdog) SetTimeout(d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d > f.maxTimeout {
		return errors.New("invalid argument")
	}
	f.timeout = d
	return nil
}

func (f *fakeWatchdog) Timeout() (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.timeout, nil
}

func (f *fakeWatchdog) BootStatus() (watchdog.Status, error) { return f.bootStatus, nil }

func (f *fakeWatchdog) KeepAlive() error {
	f.mu.Lock()
	f.pets++
	err := f.petErr
	f.mu.Unlock()
	if f.petted != nil {
		f.petted <- struct{}{}
	}
	return err
}

func (f *fakeWatchdog) MagicClose() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed++
	return nil
}

func (f *fakeWatchdog) counts() (pets, closed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pets, f.closed
}

// watchdogSystem returns a testSystem whose watchdog is dev (nil: none;
// openErr: the open fails) with a fake sysfs directory naming its
// driver, and the log lines it wrote.
func watchdogSystem(t *testing.T, dev *fakeWatchdog, openErr error) (*System, *strings.Builder) {
	s := testSystem(t)
	var log strings.Builder
	var mu sync.Mutex
	s.logger.SetOutput(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		t.Log(strings.TrimSuffix(string(p), "\n"))
		return log.Write(p)
	}))
	// sysfs as Debian's 6.1 kernel has it for QEMU's i6300esb: a
	// watchdog without a parent device, named as its PCI driver.
	sys := t.TempDir()
	class := filepath.Join(sys, watchdogClass)
	driver := filepath.Join(sys, "bus/pci/drivers/i6300ESB timer")
	for _, dir := range []string{class, driver} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../../../../module/i6300esb", filepath.Join(driver, "module")); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"identity": "i6300ESB timer\n", "state": "inactive\n"} {
		if err := os.WriteFile(filepath.Join(class, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.watchdogSys = sys
	s.watchdogDev = "/dev/watchdog-fake"
	s.openWatchdog = func(name string) (watchdogDevice, error) {
		if name != s.watchdogDev {
			t.Errorf("opened %s, want %s", name, s.watchdogDev)
		}
		if openErr != nil {
			return nil, openErr
		}
		if dev == nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return dev, nil
	}
	t.Cleanup(func() { s.watchdog.disarm() })
	return s, &log
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestArmWatchdog: what PID 1 logs and tells main for each kind of box
// and command line, and the timeout it asks the driver for.
func TestArmWatchdog(t *testing.T) {
	for _, tc := range []struct {
		name       string
		param      string
		dev        *fakeWatchdog
		openErr    error
		wantTO     time.Duration // what the driver was left with
		wantDesc   string
		wantLog    string
		wantNotice string // a substring; "" for none
		wantReset  bool
	}{
		{
			name:     "default",
			dev:      &fakeWatchdog{timeout: 30 * time.Second, maxTimeout: 2046 * time.Second},
			wantTO:   time.Minute,
			wantDesc: "i6300esb, timeout 1m0s",
			wantLog:  "watchdog: i6300esb armed, timeout 1m0s, petted every 20s",
		},
		{
			name:     "short",
			param:    "10s",
			dev:      &fakeWatchdog{timeout: 30 * time.Second, maxTimeout: 2046 * time.Second},
			wantTO:   10 * time.Second,
			wantDesc: "i6300esb, timeout 10s",
			wantLog:  "watchdog: i6300esb armed, timeout 10s, petted every 3.333s",
		},
		{
			name:     "driver refuses",
			param:    "40m",
			dev:      &fakeWatchdog{timeout: 30 * time.Second, maxTimeout: 614 * time.Second},
			wantTO:   30 * time.Second,
			wantDesc: "i6300esb, timeout 30s",
			wantLog:  "watchdog: i6300esb refused a 40m0s timeout: invalid argument",
		},
		{
			name:       "watchdog reset",
			dev:        &fakeWatchdog{timeout: 30 * time.Second, maxTimeout: 2046 * time.Second, bootStatus: watchdog.StatusCardReset},
			wantTO:     time.Minute,
			wantDesc:   "i6300esb, timeout 1m0s",
			wantLog:    "watchdog: i6300esb reset the box before this boot",
			wantNotice: "the hardware watchdog reset the router before this boot",
			wantReset:  true,
		},
		{
			name:       "none",
			wantLog:    "watchdog: none found (/dev/watchdog-fake)",
			wantNotice: "no hardware watchdog: an image that hangs while booting (after an update, say) needs a power cycle",
		},
		{
			name:       "open fails",
			openErr:    errors.New("device or resource busy"),
			wantLog:    "watchdog: device or resource busy",
			wantNotice: "cannot use the hardware watchdog (device or resource busy): an image that hangs",
		},
		{
			name:       "off",
			param:      "off",
			dev:        &fakeWatchdog{timeout: 30 * time.Second, maxTimeout: 2046 * time.Second},
			wantTO:     30 * time.Second, // untouched
			wantLog:    "watchdog: off (homerouter.watchdog=off)",
			wantNotice: "the hardware watchdog is off (homerouter.watchdog=off): an image that hangs",
		},
		{
			name:       "typo",
			param:      "60x",
			dev:        &fakeWatchdog{timeout: 30 * time.Second, maxTimeout: 2046 * time.Second},
			wantTO:     time.Minute,
			wantDesc:   "i6300esb, timeout 1m0s",
			wantLog:    "watchdog: homerouter.watchdog=60x: not a duration (such as 60s) nor off: using 1m0s",
			wantNotice: "homerouter.watchdog=60x: not a duration (such as 60s) nor off: using 1m0s",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, log := watchdogSystem(t, tc.dev, tc.openErr)
			s.armWatchdog(s.watchdogTimeout(tc.param))
			if tc.dev != nil {
				if to, _ := tc.dev.Timeout(); to != tc.wantTO {
					t.Errorf("driver's timeout %v, want %v", to, tc.wantTO)
				}
			}
			if s.Watchdog != tc.wantDesc {
				t.Errorf("Watchdog = %q, want %q", s.Watchdog, tc.wantDesc)
			}
			if (s.watchdog != nil) != (tc.wantDesc != "") {
				t.Errorf("armed: %v, want %v", s.watchdog != nil, tc.wantDesc != "")
			}
			if !strings.Contains(log.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, log)
			}
			if tc.wantNotice == "" && s.WatchdogNotice != "" || !strings.Contains(s.WatchdogNotice, tc.wantNotice) {
				t.Errorf("WatchdogNotice = %q, want %q", s.WatchdogNotice, tc.wantNotice)
			}
			if s.WatchdogReset != tc.wantReset {
				t.Errorf("WatchdogReset = %v, want %v", s.WatchdogReset, tc.wantReset)
			}
			if len(s.Problems) > 0 {
				t.Errorf("Problems = %q: a watchdog is never a boot problem", s.Problems)
			}
		})
	}
}

// TestWatchdogPets: each tick is a pet; a failing pet is logged once, and
// again when it works; disarm ends the loop, and nothing pets after it.
func TestWatchdogPets(t *testing.T) {
	dev := &fakeWatchdog{timeout: 10 * time.Second, petted: make(chan struct{}, 1)}
	s, log := watchdogSystem(t, dev, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// By hand rather than armWatchdog: the ticks come from the test.
	w := &runningWatchdog{dev: dev, name: "i6300esb", timeout: 10 * time.Second, state: filepath.Join(s.watchdogSys, watchdogClass, "state"), logf: s.logger.Printf, stop: cancel}
	ticks := make(chan time.Time)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx, ticks)
	}()
	tick := func(fail error) {
		t.Helper()
		dev.mu.Lock()
		dev.petErr = fail
		dev.mu.Unlock()
		ticks <- time.Time{}
		select {
		case <-dev.petted:
		case <-time.After(10 * time.Second):
			t.Fatal("a tick did not pet")
		}
	}
	tick(nil)
	tick(errors.New("input/output error"))
	tick(errors.New("input/output error"))
	tick(nil)
	tick(nil)
	if pets, _ := dev.counts(); pets != 5 {
		t.Errorf("%d pets after 5 ticks", pets)
	}
	if n := strings.Count(log.String(), "watchdog: pet i6300esb: input/output error"); n != 1 {
		t.Errorf("a failing pet logged %d times, want once:\n%s", n, log)
	}
	if !strings.Contains(log.String(), "watchdog: pet i6300esb: works again") {
		t.Errorf("log lacks the pet that works again:\n%s", log)
	}

	w.disarm()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("disarm did not end the loop")
	}
	w.disarm()
	w.pet() // as a tick that raced with disarm would
	if pets, closed := dev.counts(); closed != 1 || pets != 5 {
		t.Errorf("after two disarms and a pet: %d pets, %d magic closes; want 5 and 1", pets, closed)
	}
	if !strings.Contains(log.String(), "watchdog: i6300esb disarmed") {
		t.Errorf("log lacks the disarm:\n%s", log)
	}
}

// TestWatchdogShutdown: a kexec pets once and leaves the watchdog
// running (no magic close); a disarm whose watchdog stays active says
// so; with no watchdog both do nothing.
func TestWatchdogShutdown(t *testing.T) {
	// An hour: armWatchdog's goroutine does not pet during the test.
	dev := &fakeWatchdog{timeout: 30 * time.Second, maxTimeout: time.Hour}
	s, log := watchdogSystem(t, dev, nil)
	s.armWatchdog(time.Hour)
	s.watchdog.handOver()
	if pets, closed := dev.counts(); pets != 1 || closed != 0 {
		t.Errorf("after the hand-over: %d pets, %d magic closes; want 1 and 0", pets, closed)
	}
	if want := "watchdog: i6300esb left running for the next kernel: its PID 1 has 1h0m0s to take it over"; !strings.Contains(log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, log)
	}

	// nowayout: the magic close leaves it running.
	if err := os.WriteFile(filepath.Join(s.watchdogSys, watchdogClass, "state"), []byte("active\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.watchdog.disarm()
	if want := "watchdog: i6300esb still active after the magic close: it resets the box within 1h0m0s"; !strings.Contains(log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, log)
	}

	var none *runningWatchdog
	none.handOver()
	none.disarm()
}

// TestWatchdogName: the module of the parent device's driver, else of
// the driver named as the identity, else the identity, else the device.
func TestWatchdogName(t *testing.T) {
	sys := t.TempDir()
	class := filepath.Join(sys, watchdogClass)
	mkdir := func(dir string) error { return os.MkdirAll(dir, 0o755) }
	for _, step := range []struct {
		what string
		do   func() error
		want string
	}{
		{"nothing", func() error { return nil }, "/dev/watchdog"},
		{"identity", func() error {
			if err := mkdir(class); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(class, "identity"), []byte("SP5100 TCO timer\n"), 0o644)
		}, "SP5100 TCO timer"},
		{"a driver of another name", func() error {
			dir := filepath.Join(sys, "bus/platform/drivers/sp5100-tco")
			if err := mkdir(dir); err != nil {
				return err
			}
			return os.Symlink("../../../../module/sp5100_tco", filepath.Join(dir, "module"))
		}, "SP5100 TCO timer"},
		{"the parent's driver", func() error {
			if err := mkdir(filepath.Join(sys, "devices/platform/sp5100-tco")); err != nil {
				return err
			}
			if err := os.Symlink("../../../bus/platform/drivers/sp5100-tco", filepath.Join(sys, "devices/platform/sp5100-tco/driver")); err != nil {
				return err
			}
			return os.Symlink("../../../devices/platform/sp5100-tco", filepath.Join(class, "device"))
		}, "sp5100_tco"},
	} {
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		if got := watchdogName(sys, "/dev/watchdog"); got != step.want {
			t.Errorf("%s: watchdogName = %q, want %q", step.what, got, step.want)
		}
	}
}
