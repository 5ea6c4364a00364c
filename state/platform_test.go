package state

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestPlatformRequestUnderRun: without PID 1 (homerouter run sets no
// platform) every valid request is refused with ErrNotPID1, an invalid
// one with what is wrong with it, and commands still start.
func TestPlatformRequestUnderRun(t *testing.T) {
	st := NewStore(t.TempDir())
	for _, tc := range []struct {
		req     PlatformRequest
		wantErr string
		notPID1 bool
	}{
		{PlatformRequest{Action: Reboot}, "platform request reboot: not PID 1", true},
		{PlatformRequest{Action: PowerOff}, "platform request poweroff: not PID 1", true},
		{PlatformRequest{Action: Kexec, Kernel: "/perm/update/vmlinuz", Initramfs: "/perm/update/initramfs.cpio.gz", Cmdline: "console=ttyS0"}, "platform request kexec: not PID 1", true},
		{PlatformRequest{Action: Kexec}, "platform request kexec: no kernel", false},
		{PlatformRequest{Action: Reboot, Kernel: "/vmlinuz"}, "only for kexec", false},
		{PlatformRequest{Action: "halt"}, `platform request "halt": not reboot, poweroff or kexec`, false},
	} {
		err := st.RequestPlatform(context.Background(), tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.Is(err, ErrNotPID1) != tc.notPID1 {
			t.Errorf("RequestPlatform(%+v) = %v, want %q (ErrNotPID1: %v)", tc.req, err, tc.wantErr, tc.notPID1)
		}
	}

	cmd := exec.Command("sh", "-c", "exit 3")
	if err := st.StartCommand(cmd); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Wait = %v, want exit status 3", err)
	}
}

// fakePlatform records what it is asked.
type fakePlatform struct {
	reqs    []PlatformRequest
	started int
}

func (f *fakePlatform) Request(_ context.Context, r PlatformRequest) error {
	f.reqs = append(f.reqs, r)
	return nil
}

func (f *fakePlatform) Start(cmd *exec.Cmd) error {
	f.started++
	return cmd.Start()
}

// TestPlatformRequestAsPID1: with a platform set, valid requests and
// commands go to it; invalid ones never reach it.
func TestPlatformRequestAsPID1(t *testing.T) {
	st := NewStore(t.TempDir())
	p := &fakePlatform{}
	st.SetPlatform(p)
	if err := st.RequestPlatform(context.Background(), PlatformRequest{Action: Kexec}); err == nil {
		t.Error("a kexec without a kernel was accepted")
	}
	if err := st.RequestPlatform(context.Background(), PlatformRequest{Action: Reboot}); err != nil {
		t.Fatal(err)
	}
	if len(p.reqs) != 1 || p.reqs[0].Action != Reboot {
		t.Errorf("the platform got %+v, want one reboot", p.reqs)
	}
	cmd := exec.Command("true")
	if err := st.StartCommand(cmd); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if p.started != 1 {
		t.Errorf("the platform started %d commands, want 1", p.started)
	}
}
