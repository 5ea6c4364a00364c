package platform

import (
	"context"
	"errors"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homerouter/homerouter/state"
)

// testSystem returns a System that logs to t and whose kexec loader
// fails the test: no test may load a kernel into the host.
func testSystem(t *testing.T) *System {
	s := NewSystem()
	s.logger = log.New(tWriter{t}, "platform: ", log.Lmsgprefix)
	s.kexecLoad = func(kernel, _, _ string) error {
		t.Errorf("kexec load %s: the test did not expect a load", kernel)
		return errors.New("no load in tests")
	}
	return s
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// TestRequestInvalid: a request Validate refuses reaches neither the
// kexec loader nor the services' context.
func TestRequestInvalid(t *testing.T) {
	s := testSystem(t)
	ctx := s.StopOnRequest(context.Background())
	for _, r := range []state.PlatformRequest{
		{},
		{Action: "halt"},
		{Action: state.Kexec},
		{Action: state.Kexec, Initramfs: "/boot/initrd", Cmdline: "console=ttyS0"},
		{Action: state.Reboot, Kernel: "/boot/vmlinuz"},
		{Action: state.PowerOff, Cmdline: "quiet"},
	} {
		if err := s.Request(context.Background(), r); err == nil {
			t.Errorf("Request(%+v) = nil, want an error", r)
		}
	}
	if ctx.Err() != nil {
		t.Errorf("an invalid request stopped the services: %v", context.Cause(ctx))
	}
	if got := s.Action(); got != state.Reboot {
		t.Errorf("Action() after invalid requests = %q, want the default %q", got, state.Reboot)
	}
}

// TestRequestAccepted: an accepted reboot, power-off or kexec cancels the
// services' context before Request returns, with a cause that names it,
// and Action then says what Shutdown does; a second request is refused
// and changes nothing.
func TestRequestAccepted(t *testing.T) {
	dir := t.TempDir()
	for _, r := range []state.PlatformRequest{
		{Action: state.Reboot},
		{Action: state.PowerOff},
		{Action: state.Kexec, Kernel: filepath.Join(dir, "vmlinuz"), Initramfs: filepath.Join(dir, "initrd"), Cmdline: "console=ttyS0"},
		{Action: state.Kexec, Kernel: filepath.Join(dir, "vmlinuz")},
	} {
		t.Run(string(r.Action), func(t *testing.T) {
			s := testSystem(t)
			var loaded []string
			s.kexecLoad = func(kernel, initramfs, cmdline string) error {
				loaded = append(loaded, kernel, initramfs, cmdline)
				return nil
			}
			ctx := s.StopOnRequest(context.Background())
			if err := s.Request(context.Background(), r); err != nil {
				t.Fatalf("Request(%+v): %v", r, err)
			}
			if ctx.Err() == nil {
				t.Fatal("the services' context is not cancelled")
			}
			if cause := context.Cause(ctx); !strings.Contains(cause.Error(), string(r.Action)) {
				t.Errorf("cause %q does not name %s", cause, r.Action)
			}
			if got := s.Action(); got != r.Action {
				t.Errorf("Action() = %q, want %q", got, r.Action)
			}
			want := []string(nil)
			if r.Action == state.Kexec {
				want = []string{r.Kernel, r.Initramfs, r.Cmdline}
			}
			if strings.Join(loaded, "|") != strings.Join(want, "|") {
				t.Errorf("kexec loaded %q, want %q", loaded, want)
			}
			// A context asked for after the request is stopped at once.
			if late := s.StopOnRequest(context.Background()); late.Err() == nil {
				t.Error("StopOnRequest after an accepted request: context not cancelled")
			}

			loaded = nil
			for _, second := range []state.PlatformRequest{
				{Action: state.Reboot},
				{Action: state.PowerOff},
				{Action: state.Kexec, Kernel: filepath.Join(dir, "other")},
			} {
				err := s.Request(context.Background(), second)
				if !errors.Is(err, errUnderWay) {
					t.Errorf("second Request(%+v) = %v, want %v", second, err, errUnderWay)
				}
			}
			if loaded != nil {
				t.Errorf("a refused kexec loaded %q", loaded)
			}
			if got := s.Action(); got != r.Action {
				t.Errorf("Action() after refused requests = %q, want %q", got, r.Action)
			}
		})
	}
}

// TestRequestKexecLoadFails: a kernel that does not load (a missing
// file, a missing initramfs, or the kernel refusing it) is the caller's
// error, and the router keeps running: nothing is cancelled, the action
// stays the default, and a later request is still accepted.
func TestRequestKexecLoadFails(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		r    state.PlatformRequest
		load func(kernel, initramfs, cmdline string) error
		want string
	}{
		// The real loader: both fail at open, before any syscall.
		{"no kernel", state.PlatformRequest{Action: state.Kexec, Kernel: filepath.Join(dir, "missing")}, kexecFileLoad, "kexec load " + filepath.Join(dir, "missing")},
		{"no initramfs", state.PlatformRequest{Action: state.Kexec, Kernel: kernel, Initramfs: filepath.Join(dir, "missing.img")}, kexecFileLoad, "missing.img"},
		{"refused", state.PlatformRequest{Action: state.Kexec, Kernel: kernel}, func(string, string, string) error { return os.ErrPermission }, "kexec load " + kernel + ": permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testSystem(t)
			s.kexecLoad = tc.load
			ctx := s.StopOnRequest(context.Background())
			err := s.Request(context.Background(), tc.r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Request(%+v) = %v, want an error with %q", tc.r, err, tc.want)
			}
			if ctx.Err() != nil {
				t.Fatalf("a failed kexec load stopped the services: %v", context.Cause(ctx))
			}
			if got := s.Action(); got != state.Reboot {
				t.Errorf("Action() = %q, want the default %q", got, state.Reboot)
			}
			if err := s.Request(context.Background(), state.PlatformRequest{Action: state.Reboot}); err != nil {
				t.Errorf("reboot after a failed kexec: %v", err)
			}
			if ctx.Err() == nil {
				t.Error("reboot after a failed kexec: the services' context is not cancelled")
			}
		})
	}
}

// TestRequestCancelled: a caller that has given up asks for nothing.
func TestRequestCancelled(t *testing.T) {
	s := testSystem(t)
	stop := s.StopOnRequest(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Request(ctx, state.PlatformRequest{Action: state.Reboot}); !errors.Is(err, context.Canceled) {
		t.Errorf("Request with a cancelled context = %v, want %v", err, context.Canceled)
	}
	if stop.Err() != nil {
		t.Error("a cancelled request stopped the services")
	}
}

// TestPowerButtonStops: the power button stops the services as a
// request does, wins over a request under way (Shutdown powers off),
// and a later request is refused.
func TestPowerButtonStops(t *testing.T) {
	s := testSystem(t)
	s.kexecLoad = func(string, string, string) error { return nil }
	ctx := s.StopOnRequest(context.Background())
	if err := s.Request(context.Background(), state.PlatformRequest{Action: state.Kexec, Kernel: "/k"}); err != nil {
		t.Fatal(err)
	}
	s.powerButton()
	if ctx.Err() == nil {
		t.Error("the power button did not stop the services")
	}
	if got := s.Action(); got != state.PowerOff {
		t.Errorf("Action() after the power button = %q, want %q", got, state.PowerOff)
	}
	if err := s.Request(context.Background(), state.PlatformRequest{Action: state.Reboot}); !errors.Is(err, errUnderWay) {
		t.Errorf("Request after the power button = %v, want %v", err, errUnderWay)
	}

	s = testSystem(t)
	ctx = s.StopOnRequest(context.Background())
	s.powerButton()
	if ctx.Err() == nil || s.Action() != state.PowerOff {
		t.Errorf("power button alone: stopped %v, Action() = %q, want stopped and %q", ctx.Err() != nil, s.Action(), state.PowerOff)
	}
}
