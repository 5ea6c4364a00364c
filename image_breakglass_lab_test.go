package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
	"github.com/homerouter/homerouter/state"
)

// breakglassPrompt is the shell's prompt in the image: the hostname
// (no /perm/hostname: homerouter) and the working directory.
const breakglassPrompt = "homerouter:/# "

// breakglassPermDisk is an ext4 image labelled perm with interfaces.json
// for the VM's NICs and the router's password, so that the test knows
// it without reading the console.
func breakglassPermDisk(t *testing.T, password string) string {
	t.Helper()
	img, err := lab.PermImage(t.TempDir(), map[string]string{
		"interfaces.json":  permInterfaces("192.168.42.1/24"),
		state.PasswordFile: password + "\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// waitConsole waits until the console shows want after offset from,
// and returns the offset after it.
func waitConsole(ctx context.Context, t *testing.T, vm *lab.VM, from int, want string) int {
	t.Helper()
	at, err := vm.WaitOutputAfter(ctx, from, want)
	if err != nil {
		t.Fatalf("console: %v", err)
	}
	return at
}

// TestImageBreakglass boots the image once, its serial console (ttyS0)
// on a socket, and types on it as a person with the cable would: Enter
// asks for the password, a wrong one gets no shell, the right one a
// prompt where ls and cat read /perm. While the shell is open the LAN
// client gets a new lease and the router's log ring, served on the LAN,
// has lines the paused console did not show; after exit the log resumes
// on the console. The password never shows there.
func TestImageBreakglass(t *testing.T) {
	lab.Require(t, "qemu-system-x86_64", "udhcpc", "curl", "mke2fs")
	lab.RequireFiles(t, imageKernel, imageInitrd, "/dev/net/tun")
	const password = "breakglass-test-password"
	l := lab.NewT(t)
	lan := newVMLAN(t, l)
	opt := lab.VMOptions{
		Kernel: imageKernel, Initrd: imageInitrd, Disk: breakglassPermDisk(t, password), LANTap: lanTap,
		Append: "console=ttyS0 panic=-1", SerialSocket: true,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*vmBootTimeout)
	defer cancel()
	start := time.Now()
	vm, err := l.StartVM(lan.ns, opt)
	if err != nil {
		t.Fatal(err)
	}
	lan.lease(ctx, t, vm, start, "192.168.42.1")
	typ := func(s string) {
		t.Helper()
		if err := vm.Type(s); err != nil {
			t.Fatal(err)
		}
	}

	// A wrong password: no shell, and the log resumes.
	at := len(vm.Output())
	sessionAt := at
	typ("\r")
	at = waitConsole(ctx, t, vm, at, "password: ")
	wrongAt := at
	typ("not-the-password\r")
	at = waitConsole(ctx, t, vm, at, "wrong password: no shell.")
	at = waitConsole(ctx, t, vm, at, "The log resumes on ttyS0")
	if strings.Contains(vm.Output()[wrongAt:at], breakglassPrompt) {
		t.Errorf("a wrong password got a prompt:\n%s", vm.Output()[wrongAt:at])
	}
	t.Logf("power-on to a wrong password refused: %d ms", time.Since(start).Milliseconds())

	// The right one: a prompt where /perm can be read.
	typ("\r")
	at = waitConsole(ctx, t, vm, at, "password: ")
	shellAt := at
	typ(password + "\r")
	at = waitConsole(ctx, t, vm, at, breakglassPrompt)
	t.Logf("power-on to the breakglass prompt: %d ms", time.Since(start).Milliseconds())
	typ("ls /perm\r")
	at = waitConsole(ctx, t, vm, at, "ls /perm") // the echo
	for _, f := range []string{"interfaces.json", state.PasswordFile} {
		waitConsole(ctx, t, vm, at, f)
	}
	at = waitConsole(ctx, t, vm, at, breakglassPrompt)
	typ("cat /perm/interfaces.json\r")
	at = waitConsole(ctx, t, vm, at, lab.VMLANMAC)
	at = waitConsole(ctx, t, vm, at, breakglassPrompt)
	// The router's own commands, each with what it must show.
	for _, c := range []struct{ cmd, want string }{
		{"ip addr", "inet 192.168.42.1/24"},
		{"ip route", "192.168.42.0/24 dev lan0"},
		{"ps", "(this router, "},
		{"dmesg", "Linux version "},
		{"homerouter check", "/perm: "},
	} {
		typ(c.cmd + "\r")
		at = waitConsole(ctx, t, vm, at, c.cmd+"\r\n") // the echo
		at = waitConsole(ctx, t, vm, at, c.want)
		at = waitConsole(ctx, t, vm, at, breakglassPrompt)
	}

	// Ctrl-C stops a loop, which would otherwise spin in PID 1 for ever.
	typ("while :; do :; done\r")
	at = waitConsole(ctx, t, vm, at, "done\r\n") // the echo
	typ("\x03")
	at = waitConsole(ctx, t, vm, at, "^C\r\n"+breakglassPrompt)

	// The router goes on meanwhile: a LAN client gets a lease again, and
	// the log ring (/log) has the shell's start, which the console,
	// paused, did not show.
	leaseStart := time.Now()
	if env, err := l.UDHCPC(ctx, lan.ns, lanTap, "-t", "30"); err != nil {
		t.Errorf("no LAN lease while the shell is open: %v", err)
	} else {
		t.Logf("LAN lease while the shell is open: %s in %d ms", env["ip"], time.Since(leaseStart).Milliseconds())
	}
	const started = "breakglass: ttyS0: shell started"
	logText, err := lan.ns.Run(ctx, "curl", "-sS", "--max-time", "20", "http://192.168.42.1/log")
	if err != nil {
		t.Errorf("GET /log while the shell is open: %v", err)
	}
	for _, want := range []string{"breakglass: ttyS0: no shell: wrong password", started} {
		if !strings.Contains(logText, want) {
			t.Errorf("/log lacks %q", want)
		}
	}
	if out := vm.Output()[shellAt:]; strings.Contains(out, started) {
		t.Errorf("the paused console showed the log: %q", started)
	}

	// The shell's log command shows what the console did not.
	typ("log -n 20\r")
	at = waitConsole(ctx, t, vm, at, "log -n 20\r\n")
	at = waitConsole(ctx, t, vm, at, started)
	at = waitConsole(ctx, t, vm, at, breakglassPrompt)

	// exit: the log resumes on the console, with the shell's end.
	typ("exit\r")
	at = waitConsole(ctx, t, vm, at, "The log resumes on ttyS0")
	waitConsole(ctx, t, vm, at, "breakglass: ttyS0: shell ended")
	if strings.Contains(vm.Output(), password) {
		t.Errorf("the console showed the password")
	}
	t.Logf("the console from the first Enter:\n%s", vm.Output()[sessionAt:])
	consoleClean(t, vm)
	if err := vm.PowerDown(time.Minute); err != nil {
		t.Errorf("power-off after the shell: %v", err)
	}
	t.Logf("power-on to power-off: %d ms", time.Since(start).Milliseconds())
}
