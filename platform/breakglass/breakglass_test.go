package breakglass

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	for _, tc := range []struct {
		name  string
		opt   Options
		steps []step
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
			opt.WrongDelay = 50 * time.Millisecond
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); New(opt).Serve(ctx) }()
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
// opened: it logs each failure and waits longer each time, up to the
// maximum, rather than spinning.
func TestServeBacksOff(t *testing.T) {
	var mu sync.Mutex
	var logged []string
	s := New(Options{
		TTY:      filepath.Join(t.TempDir(), "ttyS0"),
		Password: func() (string, error) { return "", errors.New("unused") },
		Pause:    func(string) func() int { return func() int { return 0 } },
		Logf: func(f string, a ...any) {
			mu.Lock()
			logged = append(logged, fmt.Sprintf(f, a...))
			mu.Unlock()
		},
		Backoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	s.Serve(ctx)
	mu.Lock()
	defer mu.Unlock()
	// 10+20+40+40+... ms in 300 ms: about 9 tries.
	if len(logged) < 4 || len(logged) > 12 {
		t.Errorf("%d failures logged in 300ms, want about 9: %q", len(logged), logged)
	}
	for i, want := range []string{"trying again in 10ms", "trying again in 20ms", "trying again in 40ms", "trying again in 40ms"} {
		if i < len(logged) && !strings.Contains(logged[i], want) {
			t.Errorf("failure %d: %q, want %q", i, logged[i], want)
		}
	}
	if len(logged) > 0 && !strings.Contains(logged[0], "no such file") {
		t.Errorf("failure 0: %q, want the open's error", logged[0])
	}
}
