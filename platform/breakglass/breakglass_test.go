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
}

func newPTY(t *testing.T) *pty {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	p := &pty{master: m}
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := p.output()
		if i := strings.Index(out[from:], want); i >= 0 {
			return from + i + len(want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console did not show %q; after offset %d it shows:\n%s", want, from, out[from:])
		}
		time.Sleep(10 * time.Millisecond)
	}
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
		// not be over (a wrong password's delay), so it is not checked.
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
				{send: "echo multi; fi\r", want: "multi", paused: true},
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
				{send: "echo forgotten\x03\r", want: prompt("/"), paused: true},
				{send: "echo kept\r", want: "kept", paused: true},
				{send: "\x04", want: "exit\r\n"},
				{want: "The log resumes on "},
			},
		},
		{
			name: "nobody answers the password prompt",
			opt:  Options{PasswordTimeout: 200 * time.Millisecond},
			steps: []step{
				{send: "\r", want: "password: ", paused: true},
				{want: "no password within 200ms"},
				{want: "The log resumes on "},
			},
		},
		{
			name: "an idle shell ends",
			opt:  Options{Idle: 300 * time.Millisecond},
			steps: []step{
				{send: "\r", want: "password: ", paused: true},
				{send: password + "\r", want: prompt("/"), paused: true},
				{want: "idle for 300ms: the shell ends"},
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
				{want: "idle for 300ms: the shell ends"},
				{want: "The log resumes on "},
			}...),
		},
		{
			name: "a half-typed password does not stay in the line",
			opt:  Options{PasswordTimeout: 300 * time.Millisecond},
			steps: []step{
				{send: "\r", want: "password: ", paused: true},
				{send: "half-typed", paused: true},
				{want: "no password within 300ms"},
				{want: "The log resumes on "},
				// Ctrl-R reprints the line being typed.
				{send: "\x12", want: "^R\r\n"},
				{send: "\r", want: "password: ", paused: true},
				{want: "no password within 300ms"},
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
				{send: "\rhalf-typed", want: "no password given: no shell."},
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
				{send: "\r", want: "no password given: no shell."},
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
			// Serve has opened the console once it echoes.
			for i := 0; !strings.Contains(p.output(), "ready"); i++ {
				if i%50 == 0 {
					p.master.Write([]byte("ready\x15")) // echoed, then erased (Ctrl-U)
				}
				if i > 500 {
					t.Fatal("the shell never opened the console")
				}
				time.Sleep(10 * time.Millisecond)
			}
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
// opened: it waits longer after each failure, up to the maximum, rather
// than spinning, and logs the failure once, not at each try. When the
// console appears and reads a line, it says so.
func TestServeBacksOff(t *testing.T) {
	p := newPTY(t)
	var mu sync.Mutex
	var logged []string
	var waits []time.Duration
	tty := filepath.Join(t.TempDir(), "ttyS0")
	s := New(Options{
		TTY:      tty,
		Password: func() (string, error) { return "", errors.New("unused") },
		Pause:    func(string) func() int { return func() int { return 0 } },
		Logf: func(f string, a ...any) {
			mu.Lock()
			logged = append(logged, fmt.Sprintf(f, a...))
			mu.Unlock()
		},
		Backoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
	})
	s.waiting = func(d time.Duration) {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(300 * time.Millisecond)

	mu.Lock()
	// 10+20+40+40+... ms in 300 ms: about 9 tries.
	if len(waits) < 4 || len(waits) > 12 {
		t.Errorf("%d tries in 300ms, want about 9: %v", len(waits), waits)
	}
	for i, want := range []time.Duration{10, 20, 40, 40} {
		if i < len(waits) && waits[i] != want*time.Millisecond {
			t.Errorf("wait %d: %v, want %v", i, waits[i], want*time.Millisecond)
		}
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "no such file") {
		t.Errorf("logged %q, want the open's error once", logged)
	}
	mu.Unlock()

	// The port appears; a line read on it means it works.
	if err := os.Symlink(p.slave, tty); err != nil {
		t.Fatal(err)
	}
	for i := 0; !strings.Contains(p.output(), "password: "); i++ {
		if i%20 == 0 {
			p.master.Write([]byte("\r"))
		}
		if i > 500 {
			t.Fatal("the shell never opened the console")
		}
		time.Sleep(10 * time.Millisecond)
	}
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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	for i := 0; !strings.Contains(p.output(), "ready"); i++ {
		if i%50 == 0 {
			p.master.Write([]byte("ready\x15"))
		}
		if i > 500 {
			t.Fatal("the shell never opened the console")
		}
		time.Sleep(10 * time.Millisecond)
	}
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
	deadline := time.Now().Add(2 * time.Second)
	for echo() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if echo() {
		t.Error("echo is still on while the password prompt waits to be shown")
	}
	p.master.Write([]byte("\x11")) // Ctrl-Q
	p.waitFor(t, 0, "password: ")
}
