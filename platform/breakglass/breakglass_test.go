package breakglass

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCheck compares what was typed with the router's password.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		line    string
		pw      string
		pwErr   error
		wantOK  bool
		wantWhy string
	}{
		{name: "right", line: "s3cret\n", pw: "s3cret", wantOK: true},
		{name: "right with CR and spaces", line: "  s3cret \r\n", pw: "s3cret", wantOK: true},
		{name: "wrong", line: "guess\n", pw: "s3cret", wantWhy: "wrong password"},
		{name: "prefix", line: "s3cre\n", pw: "s3cret", wantWhy: "wrong password"},
		{name: "longer", line: "s3crets\n", pw: "s3cret", wantWhy: "wrong password"},
		{name: "case", line: "S3CRET\n", pw: "s3cret", wantWhy: "wrong password"},
		{name: "empty line", line: "\n", pw: "s3cret", wantWhy: noPassword},
		{name: "no password file", line: "anything\n", pwErr: fs.ErrNotExist, wantWhy: "the router has no password (file does not exist)"},
		{name: "empty password", line: "x\n", pw: "", wantWhy: "the router's password is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Options{Password: func() (string, error) { return tc.pw, tc.pwErr }})
			ok, why := s.check(tc.line)
			if ok != tc.wantOK || why != tc.wantWhy {
				t.Errorf("check(%q) = %v, %q; want %v, %q", tc.line, ok, why, tc.wantOK, tc.wantWhy)
			}
		})
	}
}

// TestTermiosFor checks the console's mode, from the kernel's default
// for a tty and from a raw one.
func TestTermiosFor(t *testing.T) {
	kernelDefault := unix.Termios{
		Iflag: unix.ICRNL | unix.IXON, Oflag: unix.OPOST | unix.ONLCR,
		Cflag: unix.B115200 | unix.CS8 | unix.CREAD | unix.HUPCL,
		Lflag: unix.ISIG | unix.ICANON | unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHOCTL | unix.ECHOKE | unix.IEXTEN,
	}
	raw := unix.Termios{Iflag: unix.INLCR | unix.IGNCR, Cflag: unix.B9600 | unix.CS8}
	for _, tc := range []struct {
		name    string
		in      unix.Termios
		echo    bool
		set     map[string]bool // flag name: want it set
		keepSpd uint32
	}{
		{name: "default, echo", in: kernelDefault, echo: true, keepSpd: unix.B115200,
			set: map[string]bool{"ICANON": true, "ECHO": true, "ECHONL": false, "ISIG": false, "ICRNL": true, "ONLCR": true, "CLOCAL": true, "INLCR": false, "IGNCR": false}},
		{name: "default, password", in: kernelDefault, echo: false, keepSpd: unix.B115200,
			set: map[string]bool{"ICANON": true, "ECHO": false, "ECHONL": true, "ISIG": false}},
		{name: "raw, echo", in: raw, echo: true, keepSpd: unix.B9600,
			set: map[string]bool{"ICANON": true, "ECHO": true, "ICRNL": true, "INLCR": false, "IGNCR": false, "OPOST": true, "CREAD": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := termiosFor(tc.in, tc.echo)
			flags := map[string]bool{
				"ICANON": got.Lflag&unix.ICANON != 0, "ECHO": got.Lflag&unix.ECHO != 0,
				"ECHONL": got.Lflag&unix.ECHONL != 0, "ISIG": got.Lflag&unix.ISIG != 0,
				"ICRNL": got.Iflag&unix.ICRNL != 0, "INLCR": got.Iflag&unix.INLCR != 0,
				"IGNCR": got.Iflag&unix.IGNCR != 0, "ONLCR": got.Oflag&unix.ONLCR != 0,
				"OPOST": got.Oflag&unix.OPOST != 0, "CLOCAL": got.Cflag&unix.CLOCAL != 0,
				"CREAD": got.Cflag&unix.CREAD != 0,
			}
			for name, want := range tc.set {
				if flags[name] != want {
					t.Errorf("%s = %v, want %v", name, flags[name], want)
				}
			}
			if got.Cc[unix.VEOL] != ctrlC {
				t.Errorf("VEOL = %#x, want Ctrl-C, which ends a line at once", got.Cc[unix.VEOL])
			}
			if spd := got.Cflag & unix.CBAUD; spd != tc.keepSpd {
				t.Errorf("speed %#o, want %#o (kept)", spd, tc.keepSpd)
			}
		})
	}
}

// pty is a pseudo-terminal standing in for the serial console: the
// shell opens slave as it would /dev/ttyS0, the test types into master
// and reads what the shell wrote.
type pty struct {
	master *os.File
	slave  string

	mu  sync.Mutex
	out strings.Builder
	// wrote is closed, and replaced, when the shell writes: waitFor
	// waits on it.
	wrote chan struct{}
}

func newPTY(t *testing.T) *pty {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	p := &pty{master: m, wrote: make(chan struct{})}
	rc, err := m.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	rc.Control(func(fd uintptr) {
		if ierr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ierr == nil {
			n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	})
	if ierr != nil {
		t.Fatalf("pty: %v", ierr)
	}
	p.slave = fmt.Sprintf("/dev/pts/%d", n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			close(p.wrote)
			p.wrote = make(chan struct{})
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { m.Close(); <-done })
	return p
}

func (p *pty) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits until the output after from contains want, and
// returns where it ends.
func (p *pty) waitFor(t *testing.T, from int, want string) int {
	t.Helper()
	at, ok := p.waitWithin(10*time.Second, from, want)
	if !ok {
		t.Fatalf("the console did not show %q; after offset %d it shows:\n%s", want, from, p.output()[from:])
	}
	return at
}

// waitWithin waits at most d until the output after from contains
// want, and returns where it ends, and whether it showed.
func (p *pty) waitWithin(d time.Duration, from int, want string) (int, bool) {
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		p.mu.Lock()
		out, wrote := p.out.String(), p.wrote
		p.mu.Unlock()
		if i := strings.Index(out[from:], want); i >= 0 {
			return from + i + len(want), true
		}
		select {
		case <-wrote:
		case <-timeout.C:
			return 0, false
		}
	}
}

// typeUntil types send until the console shows want, and returns where
// it ends: what is typed before the shell opens the console may be
// lost (or, like Enter, read at once when it opens), so it is typed
// again each half second.
func (p *pty) typeUntil(t *testing.T, send, want string) int {
	t.Helper()
	for range 20 {
		if _, err := p.master.Write([]byte(send)); err != nil {
			t.Fatal(err)
		}
		if at, ok := p.waitWithin(500*time.Millisecond, 0, want); ok {
			return at
		}
	}
	t.Fatalf("the shell never opened the console: typing %q does not show %q; it shows:\n%s", send, want, p.output())
	return 0
}

// ready waits until Serve has opened the console: it then echoes what
// is typed (and Ctrl-U erases it again from the line).
func (p *pty) ready(t *testing.T) {
	t.Helper()
	p.typeUntil(t, "ready\x15", "ready")
}

// pauses counts the pauses of the log in force on each console.
type pauses struct {
	mu sync.Mutex
	n  map[string]int
}

func (p *pauses) pause(name string) func() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n[name]++
	var once sync.Once
	return func() int {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.n[name]--
		})
		return 7
	}
}

func (p *pauses) get(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[name]
}

// TestSession types into the shell's console (a pty) as a person would,
// one script per row: each step types send and waits for want to show;
// paused says whether the log is paused on the console then, and the
// password, typed without echo, must never show on it. The log
// must be resumed once every script is done.
func TestSession(t *testing.T) {
	const password = "pw-for-the-test"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "interfaces.json"), []byte(`{"interfaces":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	type step struct {
		send, want string
		paused     bool
		// during says the step ends while the log's pause may or may
		// not be over, so it is not checked: a wrong password's delay,
		// or what the shell writes just before it resumes the log
		// (which the next step, "The log resumes on", checks).
		during bool
	}
	host, _ := os.Hostname()
	prompt := func(d string) string { return host + ":" + d + "# " }
	// hang stands for a command that heeds neither its context nor
	// its standard streams (shasum /dev/zero).
	stuck := make(chan struct{})
	defer close(stuck)
	hang := func(ctx context.Context, env Env, args []string) error {
		fmt.Fprintln(env.Stdout, "hanging")
		<-stuck
		return nil
	}
	// pause stands for a command that runs a while and reads nothing
	// of what is typed meanwhile.
	pause := func(ctx context.Context, env Env, args []string) error {
		fmt.Fprintln(env.Stdout, "pausing")
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
		return nil
	}
	// login is the steps from Enter to the prompt.
	login := []step{
		{send: "\r", want: "password: ", paused: true},
		{send: password + "\r", want: prompt("/"), paused: true},
	}
	for _, tc := range []struct {
		name  string
		opt   Options
		cmds  map[string]Command // added to the shell's
		steps []step
		never []string // must never show on the console
	}{
		{
			name: "wrong password, then a shell",
			steps: []step{
				{send: "\r", want: "password: ", paused: true},
				{send: "guess\r", want: "wrong password: no shell.\r\n", during: true},
				{want: "The log resumes on " /* after WrongDelay */},
				{send: "\r", want: "password: ", paused: true},
				{send: password + "\r", want: prompt("/"), paused: true},
				{send: "ls " + dir + "\r", want: "interfaces.json", paused: true},
				{send: "cd " + dir + "\r", want: prompt(dir), paused: true},
				{send: "cat interfaces.json\r", want: `{"interfaces":[]}`, paused: true},
				{send: "echo $((6*7)) | cat\r", want: "42", paused: true},
				{send: "nosuchcommand\r", want: "nosuchcommand: command not found", paused: true},
				{send: "if true; then\r", want: "> ", paused: true},
				{send: "echo multi; fi\r", want: "multi\r\n" + prompt(dir), paused: true},
				{send: "echo 'unclosed\r", want: "> ", paused: true},
				{send: "'\r", want: prompt(dir), paused: true},
				{send: "exit\r", want: "The log resumes on "},
			},
		},
		{
			name: "Ctrl-D ends the shell, Ctrl-C forgets a line",
			steps: []step{
				{send: "\r", want: "password: ", paused: true},
				{send: password + "\r", want: prompt("/"), paused: true},
				{send: "echo forgotten-$((1+1))\x03\r", want: prompt("/"), paused: true},
				// The output, not the echo of what was typed, so that
				// Ctrl-D reaches the prompt, not the statement.
				{send: "echo kept-$((1+1))\r", want: "kept-2\r\n" + prompt("/"), paused: true},
				{send: "\x04", want: "exit\r\n", during: true},
				{want: "The log resumes on "},
			},
			never: []string{"forgotten-2"},
		},
		{
			name: "nobody answers the password prompt",
			opt:  Options{PasswordTimeout: 200 * time.Millisecond},
			steps: []step{
				{send: "\r", want: "password: ", paused: true},
				{want: "no password within 200ms", during: true},
				{want: "The log resumes on "},
			},
		},
		{
			name: "an idle shell ends",
			opt:  Options{Idle: 300 * time.Millisecond},
			steps: []step{
				{send: "\r", want: "password: ", paused: true},
				{send: password + "\r", want: prompt("/"), paused: true},
				{want: "idle for 300ms: the shell ends", during: true},
				{want: "The log resumes on "},
			},
		},
		{
			name: "Ctrl-C stops a loop, a read, a cat, and a cat writing for ever",
			steps: append(slices.Clone(login), []step{
				{send: "echo looping; while :; do :; done; echo not-$((1+1))-after\r", want: "looping\r\n", paused: true},
				{send: "\x03", want: "^C\r\n" + prompt("/"), paused: true},
				{send: "echo reading; read x; echo not-$((1+1))-after\r", want: "reading\r\n", paused: true},
				{send: "\x03", want: "^C\r\n" + prompt("/"), paused: true},
				{send: "cat\r", want: "cat\r\n", paused: true},
				{send: "\x03", want: "^C\r\n" + prompt("/"), paused: true},
				{send: "echo catting; cat /dev/zero > /dev/null\r", want: "catting\r\n", paused: true},
				{send: "\x03", want: "^C\r\n" + prompt("/"), paused: true},
				{send: "echo $((6*7))x\r", want: "42x", paused: true},
				{send: "exit\r", want: "The log resumes on "},
			}...),
			never: []string{"not-2-after"},
		},
		{
			name: "commands read what is typed; Ctrl-D ends their input; type-ahead reaches the prompt",
			steps: append(slices.Clone(login), []step{
				{send: "cat; echo cat-done\r", want: "cat; echo cat-done\r\n", paused: true},
				{send: "to-cat\r", want: "to-cat\r\nto-cat\r\n", paused: true}, // echoed, then cat's
				{send: "\x04", want: "cat-done\r\n" + prompt("/"), paused: true},
				{send: "read x; echo x=$x\r", want: "read x; echo x=$x\r\n", paused: true},
				{send: "typed\r", want: "x=typed\r\n" + prompt("/"), paused: true},
				// The second line arrives while the loop runs (or
				// before), and runs after it.
				{send: "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; echo loop-done\recho $((40+2))-typed-ahead\r", want: "loop-done\r\n", paused: true},
				{want: "42-typed-ahead\r\n" + prompt("/"), paused: true},
				{send: "exit\r", want: "The log resumes on "},
			}...),
		},
		{
			name: "Ctrl-C forgets what was typed ahead",
			steps: append(slices.Clone(login), []step{
				{send: "echo looping; while :; do :; done\r", want: "looping\r\n", paused: true},
				{send: "echo typed-$((1+1))-ahead\r", want: "echo typed-$((1+1))-ahead\r\n", paused: true},
				{send: "\x03", want: "^C\r\n" + prompt("/"), paused: true},
				{send: "echo after-$((1+1))\r", want: "after-2\r\n" + prompt("/"), paused: true},
				{send: "exit\r", want: "The log resumes on "},
			}...),
			never: []string{"typed-2-ahead"},
		},
		{
			name: "what was typed ahead when the shell ends is no password",
			cmds: map[string]Command{"pause": pause},
			steps: append(slices.Clone(login), []step{
				{send: "pause; exit\r", want: "pausing\r\n", paused: true},
				{send: "typed-ahead\r", want: "typed-ahead\r\n", paused: true},
				{want: "The log resumes on "},
				{send: "\r", want: "password: ", paused: true},
				{send: password + "\r", want: prompt("/"), paused: true},
				{send: "exit\r", want: "The log resumes on "},
			}...),
			never: []string{"no shell"},
		},
		{
			name: "the console is not a file for the commands",
			steps: append(slices.Clone(login), []step{
				{send: "cat {tty}\r", want: "cat: {tty}: refused: it is a terminal", paused: true},
				{send: "cat < {tty}\r", want: "{tty}: refused: it is a terminal", paused: true},
				{send: "shasum -- /dev/../{tty}\r", want: "refused: it is a terminal", paused: true},
				{send: "ls {tty}\r", want: "ls {tty}\r\n", paused: true}, // ls only looks
				{want: prompt("/"), paused: true},
				{send: "echo written > {tty}\r", want: "written\r\n" + prompt("/"), paused: true},
				{send: "exit\r", want: "The log resumes on "},
				{send: "\r", want: "password: ", paused: true},
				{send: password + "\r", want: prompt("/"), paused: true},
				{send: "exit\r", want: "The log resumes on "},
			}...),
			never: []string{"ls: "},
		},
		{
			name: "background jobs are refused: nothing reads the next login's password",
			steps: append(slices.Clone(login), []step{
				{send: "cat &\r", want: "background jobs (&) are not supported", paused: true},
				{send: "while :; do :; done & echo x\r", want: "background jobs (&) are not supported", paused: true},
				{send: "cat <(echo x)\r", want: "process substitution is not supported", paused: true},
				{send: "exit\r", want: "The log resumes on "},
				{send: "\r", want: "password: ", paused: true},
				{send: password + "\r", want: prompt("/"), paused: true},
				{send: "exit\r", want: "The log resumes on "},
			}...),
		},
		{
			name: "a command that does not stop is left behind",
			cmds: map[string]Command{"hang": hang},
			steps: append(slices.Clone(login), []step{
				{send: "hang; echo not-$((1+1))-after\r", want: "hanging\r\n", paused: true},
				{send: "\x03", want: "hang: does not stop; it runs on inside the router", paused: true},
				{want: prompt("/"), paused: true},
				{send: "echo alive\r", want: "alive\r\n", paused: true},
				{send: "exit\r", want: "The log resumes on "},
			}...),
			never: []string{"not-2-after"},
		},
		{
			name: "a forgotten cat ends the shell after the idle time",
			opt:  Options{Idle: 300 * time.Millisecond},
			steps: append(slices.Clone(login), []step{
				{send: "cat\r", want: "cat\r\n", paused: true},
				{want: "idle for 300ms: the shell ends", during: true},
				{want: "The log resumes on "},
			}...),
		},
		{
			name: "a half-typed password does not stay in the line",
			opt:  Options{PasswordTimeout: 300 * time.Millisecond},
			steps: []step{
				{send: "\r", want: "password: ", paused: true},
				{send: "half-typed", paused: true},
				{want: "no password within 300ms", during: true},
				{want: "The log resumes on "},
				// Ctrl-R reprints the line being typed.
				{send: "\x12", want: "^R\r\n"},
				{send: "\r", want: "password: ", paused: true},
				{want: "no password within 300ms", during: true},
				{want: "The log resumes on "},
			},
			never: []string{"half-typed"},
		},
		{
			name: "Ctrl-C at the password prompt is no guess",
			opt:  Options{WrongDelay: time.Hour},
			steps: []step{
				{send: "\r", want: "password: ", paused: true},
				{send: "gue\x03", want: "^C\r\nThe log resumes on "},
				{send: "\r", want: "password: ", paused: true},
				{send: password + "\r", want: prompt("/"), paused: true},
				{send: "exit\r", want: "The log resumes on "},
			},
			never: []string{"wrong password"},
		},
		{
			name: "Ctrl-C at the password prompt forgets what follows it",
			opt:  Options{WrongDelay: time.Hour},
			steps: []step{
				{send: "\r", want: "password: ", paused: true},
				{send: "gue\x03half-typed", want: "^C\r\nThe log resumes on "},
				// Ctrl-R reprints the line being typed.
				{send: "\x12", want: "^R\r\n"},
				{send: "\r", want: "password: ", paused: true},
				{send: password + "\r", want: prompt("/"), paused: true},
				{send: "exit\r", want: "The log resumes on "},
			},
			never: []string{"half-typed", "wrong password"},
		},
		{
			name: "an empty password forgets what follows it",
			steps: []step{
				{send: "\r", want: "password: ", paused: true},
				{send: "\rhalf-typed", want: "no password given: no shell.", during: true},
				{want: "The log resumes on "},
				{send: "\x12", want: "^R\r\n"},
				{send: "\r", want: "password: ", paused: true},
				{send: password + "\r", want: prompt("/"), paused: true},
				{send: "exit\r", want: "The log resumes on "},
			},
			never: []string{"half-typed"},
		},
		{
			name: "empty password",
			steps: []step{
				{send: "\r", want: "password: ", paused: true},
				{send: "\r", want: "no password given: no shell.", during: true},
				{want: "The log resumes on "},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPTY(t)
			ps := &pauses{n: map[string]int{}}
			var logMu sync.Mutex
			var logged []string
			opt := tc.opt
			opt.TTY = p.slave
			opt.Password = func() (string, error) { return password, nil }
			opt.Pause = ps.pause
			opt.Logf = func(f string, a ...any) {
				logMu.Lock()
				logged = append(logged, fmt.Sprintf(f, a...))
				logMu.Unlock()
			}
			if opt.WrongDelay == 0 {
				opt.WrongDelay = 50 * time.Millisecond
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			s := New(opt)
			s.stopGrace = 200 * time.Millisecond
			maps.Copy(s.commands, tc.cmds)
			go func() { defer close(done); s.Serve(ctx) }()
			defer func() { cancel(); <-done }()
			p.ready(t)
			at := len(p.output())
			console := filepath.Base(p.slave)
			for i, st := range tc.steps {
				// {tty} is the console's path.
				st.send = strings.ReplaceAll(st.send, "{tty}", p.slave)
				st.want = strings.ReplaceAll(st.want, "{tty}", p.slave)
				if st.send != "" {
					if _, err := p.master.Write([]byte(st.send)); err != nil {
						t.Fatal(err)
					}
				}
				at = p.waitFor(t, at, st.want)
				if got := ps.get(console); (got > 0) != st.paused && !st.during {
					t.Errorf("step %d (%q): log paused %d times, want paused %v", i, st.want, got, st.paused)
				}
			}
			if strings.Contains(p.output(), password) {
				t.Errorf("the password was echoed:\n%s", p.output())
			}
			for _, never := range tc.never {
				if strings.Contains(p.output(), never) {
					t.Errorf("the console shows %q:\n%s", never, p.output())
				}
			}
			if got := ps.get(console); got != 0 {
				t.Errorf("the log is still paused %d times", got)
			}
			logMu.Lock()
			defer logMu.Unlock()
			t.Logf("router log: %q", logged)
		})
	}
}

// TestServeBacksOff has the shell serve a console that cannot be
// opened: it waits longer after each failure, doubling up to the
// maximum, rather than spinning, and logs the failure once, not at each
// try. When the console appears and reads a line, it says so.
func TestServeBacksOff(t *testing.T) {
	p := newPTY(t)
	var mu sync.Mutex
	var logged []string
	tty := filepath.Join(t.TempDir(), "ttyS0")
	// MaxBackoff is also how long an open must take to count as a
	// console that worked, which starts the backoff over: far longer
	// than a failing open takes, even on a loaded machine.
	s := New(Options{
		TTY:      tty,
		Password: func() (string, error) { return "", errors.New("unused") },
		Pause:    func(string) func() int { return func() int { return 0 } },
		Logf: func(f string, a ...any) {
			mu.Lock()
			logged = append(logged, fmt.Sprintf(f, a...))
			mu.Unlock()
		},
		Backoff: 5 * time.Millisecond, MaxBackoff: 80 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	// Serve tells of each wait before it waits; the buffer keeps it from
	// waiting for the test.
	waits := make(chan time.Duration, 1000)
	s.waiting = func(d time.Duration) {
		select {
		case waits <- d:
		case <-ctx.Done():
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	want := []time.Duration{5, 10, 20, 40, 80, 80, 80}
	var got []time.Duration
	timeout := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case d := <-waits:
			got = append(got, d)
		case <-timeout:
			t.Fatalf("Serve waited %d times in 10s, want %d waits: %v", len(got), len(want), got)
		}
	}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(got, want) {
		t.Errorf("waits %v, want %v: doubling from Backoff up to MaxBackoff", got, want)
	}
	mu.Lock()
	// Serve logs a failure before it tells of its wait: seven failures,
	// logged once.
	if len(logged) != 1 || !strings.Contains(logged[0], "no such file") {
		t.Errorf("logged %q, want the open's error once", logged)
	}
	mu.Unlock()

	// The port appears; a line read on it means it works.
	if err := os.Symlink(p.slave, tty); err != nil {
		t.Fatal(err)
	}
	p.typeUntil(t, "\r", "password: ")
	mu.Lock()
	defer mu.Unlock()
	if len(logged) != 2 || !strings.Contains(logged[1], "works again") {
		t.Errorf("logged %q, want the error, then that the console works again", logged)
	}
}

// TestPasswordPromptNoEcho stops the console's output (Ctrl-S) before
// pressing Enter, so the shell's password prompt cannot be written
// until it is resumed: echo must already be off by then, or an answer
// typed as soon as the prompt shows could be echoed.
func TestPasswordPromptNoEcho(t *testing.T) {
	p := newPTY(t)
	s := New(Options{
		TTY:      p.slave,
		Password: func() (string, error) { return "pw", nil },
		Pause:    func(string) func() int { return func() int { return 0 } },
	})
	prompting := make(chan struct{}, 1)
	s.prompting = func() {
		select {
		case prompting <- struct{}{}:
		default: // told already
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	p.ready(t)
	echo := func() bool {
		// Termios ioctls on a pty's master act on its slave.
		rc, err := p.master.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var tio *unix.Termios
		var ierr error
		rc.Control(func(fd uintptr) { tio, ierr = unix.IoctlGetTermios(int(fd), unix.TCGETS) })
		if ierr != nil {
			t.Fatal(ierr)
		}
		return tio.Lflag&unix.ECHO != 0
	}
	if !echo() {
		t.Fatal("echo is off before Enter")
	}
	p.master.Write([]byte("\x13\r")) // Ctrl-S (IXON), Enter
	select {
	case <-prompting:
	case <-time.After(10 * time.Second):
		t.Fatal("the shell never wrote the password prompt")
	}
	// The prompt cannot show until Ctrl-Q: echo must be off already.
	if echo() {
		t.Error("echo is still on while the password prompt waits to be shown")
	}
	if strings.Contains(p.output(), "password: ") {
		t.Error("the password prompt showed while the console's output was stopped")
	}
	p.master.Write([]byte("\x11")) // Ctrl-Q
	p.waitFor(t, 0, "password: ")
}
