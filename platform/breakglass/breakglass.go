// Package breakglass is the shell on the router's serial console, for
// when the network cannot help: a /perm file that keeps lan0 down, a
// firewall that locks the LAN out. Pressing Enter on the console asks
// for the router's password (the one updates and backups use), then
// starts a POSIX shell (mvdan.cc/sh's interpreter) whose commands are
// u-root's core utilities and a few of the router's own, all run inside
// the router's process: the image holds no other program, and no process
// is ever forked.
//
// Nothing listens on the network for it: whoever uses it holds the
// serial cable, and still needs the password, because a router is often
// in a shared hallway cupboard.
//
// While a shell runs, the router's log is paused on that console (and
// only there; the ring and the other consoles keep it), and the router
// never waits for the shell: the shell is one goroutine, and everything
// it does, it does on its own.
package breakglass

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

// Options says where the shell runs and what it may use. Password and
// Pause are required; the rest may be left zero.
type Options struct {
	// TTY is the serial console's device, /dev/ttyS0 when empty. Its
	// base name is the console to Pause.
	TTY string
	// Password returns the router's password, read at each attempt so
	// that a new /perm/http-password.txt takes effect at once. An error
	// (no password yet, a broken /perm) lets nobody in: an empty or
	// missing password must never mean an open shell.
	Password func() (string, error)
	// Pause stops the log on the named console until resume is called,
	// which says how many lines it dropped (platform.System.PauseConsole).
	Pause func(console string) (resume func() (dropped int))
	// Logf writes a line to the router's log: who logged in, who failed.
	Logf func(format string, args ...any)
	// Log returns the router's log ring, for the shell's log command.
	Log func() []byte
	// Homerouter runs the router's own subcommands (main's run), for
	// the shell's homerouter command, which lets only check and version
	// through.
	Homerouter func(args []string, stdout, stderr io.Writer) error
	// Dir is the shell's first working directory, / when empty.
	Dir string

	// The waits, zero for their defaults; tests shorten them.
	// PasswordTimeout ends a password prompt nobody answers (the log
	// resumes); WrongDelay is the pause after a wrong password, against
	// guessing; Idle ends a shell nobody types into, so a forgotten
	// shell does not silence the console's log for good; Backoff is the
	// first wait after the console fails, doubling up to MaxBackoff.
	PasswordTimeout, WrongDelay, Idle, Backoff, MaxBackoff time.Duration
}

// The defaults of Options' waits.
const (
	defaultPasswordTimeout = time.Minute
	defaultWrongDelay      = 3 * time.Second
	defaultIdle            = 30 * time.Minute
	defaultBackoff         = time.Second
	defaultMaxBackoff      = time.Minute
)

// Shell serves the breakglass shell on one console.
type Shell struct {
	opt      Options
	console  string
	commands map[string]Command
}

// New returns the Shell that opt describes.
func New(opt Options) *Shell {
	if opt.TTY == "" {
		opt.TTY = "/dev/ttyS0"
	}
	if opt.Dir == "" {
		opt.Dir = "/"
	}
	if opt.Logf == nil {
		opt.Logf = func(string, ...any) {}
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&opt.PasswordTimeout, defaultPasswordTimeout},
		{&opt.WrongDelay, defaultWrongDelay},
		{&opt.Idle, defaultIdle},
		{&opt.Backoff, defaultBackoff},
		{&opt.MaxBackoff, defaultMaxBackoff},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	return &Shell{opt: opt, console: filepath.Base(opt.TTY), commands: Commands(opt)}
}

// Serve attends the console until ctx is done, like a getty: it waits
// for Enter, asks for the password, runs a shell, and starts over. The
// console failing (no such port, a read error, a line that hangs up and
// reads as end of file for ever) closes it and opens it again after a
// backoff that doubles, so a broken port costs a few wake-ups an hour
// rather than a spinning goroutine. A panic in the shell is caught and
// treated as such a failure: the shell runs inside PID 1, where an
// uncaught panic would bring the router down.
func (s *Shell) Serve(ctx context.Context) {
	backoff := s.opt.Backoff
	for ctx.Err() == nil {
		start := time.Now()
		err := s.attend(ctx)
		if ctx.Err() != nil {
			return
		}
		// A console that worked for a while before it failed starts
		// the backoff over.
		if time.Since(start) > s.opt.MaxBackoff {
			backoff = s.opt.Backoff
		}
		s.opt.Logf("%s: %v (trying again in %v)", s.console, err, backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.opt.MaxBackoff)
	}
}

// errEOF is a read of nothing at all: Ctrl-D, or a line that hung up.
var errEOF = errors.New("end of file")

// attend opens the console and serves it until it fails or ctx is done.
func (s *Shell) attend(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	t, err := openTerminal(s.opt.TTY)
	if err != nil {
		return err
	}
	defer t.Close()
	stop := context.AfterFunc(ctx, func() { t.Close() })
	defer stop()
	if err := t.setEcho(true); err != nil {
		return err
	}
	for {
		// Whatever is typed before Enter is ignored: only a line
		// starts a login.
		if _, err := t.readLine(0); err != nil {
			return err
		}
		if err := s.login(ctx, t); err != nil {
			return err
		}
	}
}

// login asks for the password and runs a shell if it is right. Its
// error is the console's, not the person's: a wrong password, a timeout
// or a shell's end return nil.
func (s *Shell) login(ctx context.Context, t *terminal) error {
	resume := s.opt.Pause(s.console)
	defer resume() // also after a panic
	fmt.Fprintf(t.f, "\nhomerouter breakglass shell on %s: the log is paused on this console while you log in.\npassword: ", s.console)
	if err := t.setEcho(false); err != nil {
		return err
	}
	line, err := t.readLine(s.opt.PasswordTimeout)
	if err := t.setEcho(true); err != nil {
		return err
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		fmt.Fprintf(t.f, "\nno password within %v.\n", s.opt.PasswordTimeout)
		s.resumed(t, resume)
		return nil
	case err != nil:
		return err
	}
	if ok, why := s.check(line); !ok {
		s.opt.Logf("%s: no shell: %s", s.console, why)
		fmt.Fprintf(t.f, "%s: no shell.\n", why)
		if why != noPassword {
			// Slow guessing down; input typed meanwhile is thrown
			// away, so guesses typed ahead are not tried either.
			select {
			case <-ctx.Done():
			case <-time.After(s.opt.WrongDelay):
			}
			t.flushInput()
		}
		s.resumed(t, resume)
		return nil
	}
	s.opt.Logf("%s: shell started", s.console)
	err = s.shell(ctx, t)
	s.resumed(t, resume)
	s.opt.Logf("%s: shell ended", s.console)
	return err
}

// resumed resumes the log and says how much of it this console missed.
func (s *Shell) resumed(t *terminal, resume func() int) {
	lines := "lines were"
	if n := resume(); n == 1 {
		lines = "1 line was"
	} else {
		lines = fmt.Sprintf("%d %s", n, lines)
	}
	fmt.Fprintf(t.f, "The log resumes on %s (%s not shown here; the shell's log command shows the log). Press Enter for the breakglass shell.\n", s.console, lines)
}

// noPassword is check's reason for an empty line: someone pressed
// Enter twice, not a guess worth a delay.
const noPassword = "no password given"

// check says whether line is the router's password, and if not, why.
// The comparison takes the same time wherever the first difference is.
func (s *Shell) check(line string) (ok bool, why string) {
	got := strings.TrimSpace(line)
	if got == "" {
		return false, noPassword
	}
	want, err := s.opt.Password()
	if err != nil {
		return false, fmt.Sprintf("the router has no password (%v)", err)
	}
	if want == "" {
		return false, "the router's password is empty"
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return false, "wrong password"
	}
	return true, ""
}

// shell runs the interpreter on t until exit, Ctrl-D, the idle timeout
// or ctx.
func (s *Shell) shell(ctx context.Context, t *terminal) error {
	// The commands' standard input is a second open of the console: the
	// interpreter makes its stdin blocking (os.File.Fd) for read -s,
	// which would take the read deadlines away from the shell's own
	// reads of the first.
	stdin, err := openTerminal(s.opt.TTY)
	if err != nil {
		return err
	}
	defer stdin.Close()
	stop := context.AfterFunc(ctx, func() { stdin.Close() })
	defer stop()
	host, _ := os.Hostname()
	r, err := interp.New(
		interp.StdIO(stdin.f, t.f, t.f),
		interp.Env(expand.ListEnviron("HOME=/", "PATH=", "TERM=vt100", "HOSTNAME="+host)),
		interp.Dir(s.opt.Dir),
		// The table replaces the default handler, which runs programs.
		interp.ExecHandlers(func(interp.ExecHandlerFunc) interp.ExecHandlerFunc { return s.exec }),
		interp.Interactive(true),
	)
	if err != nil {
		return fmt.Errorf("shell: %w", err)
	}
	fmt.Fprintf(t.f, "Commands run inside the router; help lists them. exit or Ctrl-D ends the shell, and the log resumes here.\n")
	prompt := func() { fmt.Fprintf(t.f, "%s:%s# ", host, r.Dir) }
	in := &shellInput{t: t, idle: s.opt.Idle}
	parser := syntax.NewParser()
	for {
		prompt()
		for stmts, err := range parser.InteractiveSeq(in) {
			if err != nil {
				if in.err == nil {
					fmt.Fprintf(t.f, "%v\n", err)
				}
				break // a new parser state for the next line
			}
			if parser.Incomplete() {
				fmt.Fprint(t.f, "> ")
				continue
			}
			for _, st := range stmts {
				err := r.Run(ctx, st)
				if _, ok := exitStatus(err); err != nil && !ok {
					fmt.Fprintf(t.f, "%v\n", err)
				}
				if r.Exited() || ctx.Err() != nil {
					return nil
				}
			}
			prompt()
		}
		switch {
		case in.err == nil:
			// A parse error: the next line starts afresh.
		case errors.Is(in.err, errEOF):
			fmt.Fprintln(t.f, "exit")
			return nil
		case errors.Is(in.err, os.ErrDeadlineExceeded):
			fmt.Fprintf(t.f, "\nidle for %v: the shell ends.\n", s.opt.Idle)
			return nil
		default:
			return in.err
		}
	}
}

// shellInput feeds the interpreter's parser the console's lines, ends
// at Ctrl-D (errEOF) or after idle without a line, and turns a line with
// Ctrl-C in it into an empty one: with ISIG off (see termiosFor), Ctrl-C
// is a character, and a person typing it means "forget this line".
type shellInput struct {
	t    *terminal
	idle time.Duration
	err  error // the read that ended the input
}

func (in *shellInput) Read(p []byte) (int, error) {
	if in.err != nil {
		return 0, io.EOF
	}
	line, err := in.t.readLine(in.idle)
	if err != nil {
		in.err = err
		return 0, io.EOF
	}
	if strings.ContainsRune(line, '\x03') {
		line = "\n"
	}
	// A canonical-mode line is at most 4 KiB; the parser reads 1 KiB at
	// a time, so keep the rest for the next Read.
	n := copy(p, line)
	in.t.pending = line[n:]
	return n, nil
}
