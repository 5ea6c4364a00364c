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
// it does, it does on its own. Ctrl-C stops the statement that runs, and
// nothing the shell starts outlives it (see Shell.shell and feed).
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
	// guessing; Idle ends a shell nobody types into, at the prompt or
	// while a statement runs (a forgotten cat, read or loop, or a
	// command running longer than Idle with nobody there), so a
	// forgotten shell does not silence the console's log for good (and
	// does not keep a core busy); Backoff is the
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
	defaultStopGrace       = 2 * time.Second
)

// Shell serves the breakglass shell on one console.
type Shell struct {
	opt      Options
	console  string
	commands map[string]Command
	// waiting, when set (by tests), is told of each wait before the
	// console is opened again.
	waiting func(time.Duration)
	// prompting, when set (by tests), is called as the password prompt
	// is about to be written.
	prompting func()
	// stopGrace is how long a stopped statement's command may take to
	// return before the shell goes on without it (see exec).
	stopGrace time.Duration
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
	return &Shell{opt: opt, console: filepath.Base(opt.TTY), commands: Commands(opt), stopGrace: defaultStopGrace}
}

// Serve attends the console until ctx is done, like a getty: it waits
// for Enter, asks for the password, runs a shell, and starts over. The
// console failing (no such port, a read error, a line that hangs up and
// reads as end of file for ever) closes it and opens it again after a
// backoff that doubles, so a broken port costs a few wake-ups an hour
// rather than a spinning goroutine. Each failure is logged once, not at
// every try: a router without ttyS0 says so once, not every minute for
// ever; a different error is logged again, and so is the console
// reading a line again after it failed. A panic in the shell is caught
// and treated as such a failure: the shell runs inside PID 1, where an
// uncaught panic would bring the router down.
func (s *Shell) Serve(ctx context.Context) {
	backoff := s.opt.Backoff
	failing := "" // the error logged last, while the console fails
	works := func() {
		if failing != "" {
			s.opt.Logf("%s: the console works again", s.console)
			failing = ""
		}
	}
	for ctx.Err() == nil {
		start := time.Now()
		err := s.attend(ctx, works)
		if ctx.Err() != nil {
			return
		}
		// A console that worked for a while before it failed starts
		// the backoff over.
		if time.Since(start) > s.opt.MaxBackoff {
			backoff = s.opt.Backoff
		}
		if msg := err.Error(); msg != failing {
			s.opt.Logf("%s: %v (trying again in %v, then less often up to every %v; logged again if the error changes)", s.console, err, backoff, s.opt.MaxBackoff)
			failing = msg
		}
		if s.waiting != nil {
			s.waiting(backoff)
		}
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
// It calls works when the console has read a line.
func (s *Shell) attend(ctx context.Context, works func()) (err error) {
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
		works()
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
	// Echo goes off before the prompt shows, so that nothing typed in
	// answer to it is echoed.
	if err := t.setEcho(false); err != nil {
		return err
	}
	if s.prompting != nil {
		s.prompting()
	}
	fmt.Fprintf(t.f, "\nhomerouter breakglass shell on %s: the log is paused on this console while you log in.\npassword: ", s.console)
	line, err := t.readLine(s.opt.PasswordTimeout)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// A half-typed password must not stay in the line, where echo
		// (or Ctrl-R, which reprints the line) would show it.
		t.flushInput()
		if err := t.setEcho(true); err != nil {
			return err
		}
		fmt.Fprintf(t.f, "\nno password within %v.\n", s.opt.PasswordTimeout)
		s.resumed(t, resume)
		return nil
	case err != nil:
		return err
	case strings.ContainsRune(line, ctrlC):
		// Ctrl-C (which ends a line, see termiosFor): no guess, and
		// what was typed after it is no password to show once echo
		// is back (Ctrl-R reprints the line).
		t.flushInput()
		if err := t.setEcho(true); err != nil {
			return err
		}
		fmt.Fprintf(t.f, "^C\n")
		s.resumed(t, resume)
		return nil
	}
	if ok, why := s.check(line); !ok {
		s.opt.Logf("%s: no shell: %s", s.console, why)
		fmt.Fprintf(t.f, "%s: no shell.\n", why)
		if why != noPassword {
			// Slow guessing down; input typed meanwhile is thrown
			// away, unechoed, so guesses typed ahead are neither
			// tried nor shown.
			select {
			case <-ctx.Done():
			case <-time.After(s.opt.WrongDelay):
			}
		}
		// What was typed after the line is no password to show once
		// echo is back.
		t.flushInput()
		if err := t.setEcho(true); err != nil {
			return err
		}
		s.resumed(t, resume)
		return nil
	}
	if err := t.setEcho(true); err != nil {
		return err
	}
	s.opt.Logf("%s: shell started", s.console)
	err = s.shell(ctx, t)
	// What was typed ahead and not run is forgotten, in t.pending and
	// in the console: the next login's Enter and password are typed
	// after this.
	t.flushInput()
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

// errInterrupt is Ctrl-C: at the prompt it forgets the statement being
// typed, while a statement runs it stops it.
var errInterrupt = errors.New("interrupted")

// shell runs the interpreter on t until exit, Ctrl-D, the idle timeout
// or ctx. Nothing it starts outlives it: each statement runs with a
// context that ends with the statement (or Ctrl-C), its commands read
// the console only through that statement's feed, and background jobs,
// which would outlive their statement, are refused.
func (s *Shell) shell(ctx context.Context, t *terminal) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	host, _ := os.Hostname()
	r, err := interp.New(
		// Each statement gets its own standard input (see runStmt).
		interp.StdIO(nil, t.f, t.f),
		interp.Env(expand.ListEnviron("HOME=/", "PATH=", "TERM=vt100", "HOSTNAME="+host)),
		interp.Dir(s.opt.Dir),
		// The table replaces the default handler, which runs programs.
		interp.ExecHandlers(func(interp.ExecHandlerFunc) interp.ExecHandlerFunc { return s.exec }),
		// Redirections read no terminal (see refuseTerminal).
		interp.OpenHandler(open),
		interp.Interactive(true),
	)
	if err != nil {
		return fmt.Errorf("shell: %w", err)
	}
	fmt.Fprintf(t.f, "Commands run inside the router; help lists them. Ctrl-C stops one; exit or Ctrl-D ends the shell, and the log resumes here.\n")
	prompt := func() { fmt.Fprintf(t.f, "%s:%s# ", host, r.Dir) }
	in := &shellInput{t: t, idle: s.opt.Idle}
	parser := syntax.NewParser()
	for {
		prompt()
	lines:
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
			if why := refused(stmts); why != "" {
				fmt.Fprintf(t.f, "%s\n", why)
				prompt()
				continue
			}
			for _, st := range stmts {
				err, end := s.runStmt(ctx, r, in, st)
				switch {
				case end != nil:
					in.err = end
					break lines
				case ctx.Err() != nil:
					return nil
				}
				if _, ok := exitStatus(err); err != nil && !ok {
					fmt.Fprintf(t.f, "%v\n", err)
				}
				if r.Exited() {
					return nil
				}
			}
			prompt()
		}
		switch {
		case in.err == nil:
			// A parse error: the next line starts afresh.
		case errors.Is(in.err, errInterrupt):
			// Ctrl-C, shown as ^C: the statement, being typed or
			// running, is forgotten, and so is what was typed before
			// the ^C (the rest of the line, lines typed ahead), as a
			// shell flushes its input at an interrupt.
			fmt.Fprintln(t.f)
			t.pending = ""
			in.err = nil
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

// refused says why the shell does not run stmts, if it does not: a
// background job (cmd &) or a process substitution would run on after
// its statement, where neither Ctrl-C nor the shell's end could stop it
// (the commands are goroutines of PID 1, not processes to kill), and a
// leftover reader of the console would read the next login's password.
func refused(stmts []*syntax.Stmt) string {
	why := ""
	for _, st := range stmts {
		syntax.Walk(st, func(n syntax.Node) bool {
			switch n := n.(type) {
			case *syntax.Stmt:
				if n.Background || n.Coprocess || n.Disown {
					why = "background jobs (&) are not supported: they would run on inside the router after the shell, where nothing can stop them."
				}
			case *syntax.ProcSubst:
				why = "process substitution is not supported: it would run on inside the router after the statement."
			}
			return why == ""
		})
	}
	return why
}

// runStmt runs st with a context of its own, which Ctrl-C (or the
// shell's end) cancels, and a feed of the console as its commands'
// standard input. It returns Run's error, and why the shell must stop
// taking statements: errInterrupt for Ctrl-C (the rest of the line and
// what was typed ahead are forgotten, see shell), os.ErrDeadlineExceeded for nobody typing for Idle (a
// forgotten cat or read waits for no one), or the console's error.
func (s *Shell) runStmt(ctx context.Context, r *interp.Runner, in *shellInput, st *syntax.Stmt) (runErr, end error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f, err := startFeed(in.t, in.idle, cancel)
	if err != nil {
		return nil, err
	}
	interp.StdIO(f.pr, in.t.f, in.t.f)(r)
	runErr = r.Run(ctx, st)
	interp.StdIO(nil, in.t.f, in.t.f)(r)
	return runErr, f.stop()
}

// shellInput feeds the interpreter's parser the console's lines, ends
// at Ctrl-D (errEOF) or after idle without a line, and ends at Ctrl-C
// too (errInterrupt), which forgets what was being typed. With ISIG off
// (see termiosFor), Ctrl-C is a character, which ends a line as Enter
// does (VEOL), and a person typing it means "forget this".
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
	if strings.ContainsRune(line, ctrlC) {
		in.err = errInterrupt
		return 0, io.EOF
	}
	// A canonical-mode line is at most 4 KiB; the parser reads 1 KiB at
	// a time, so keep the rest for the next Read.
	n := copy(p, line)
	in.t.pending = line[n:]
	return n, nil
}
