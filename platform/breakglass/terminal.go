package breakglass

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// terminal is the serial console, opened for the shell. Reads go
// through Go's poller (a tty is pollable), so they take deadlines and
// block a goroutine, never a thread; ioctls go through SyscallConn,
// because os.File.Fd would make the file blocking for good.
type terminal struct {
	f       *os.File
	pending string // what the last line left over (see shellInput)
}

// openTerminal opens the console read-write without making it the
// controlling terminal of anything: PID 1 must never get a terminal
// whose hang-up or Ctrl-C would signal it (SIGHUP reloads the router,
// SIGINT reboots it).
func openTerminal(path string) (*terminal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	return &terminal{f: f}, nil
}

// Close closes the console; a read blocked on it returns.
func (t *terminal) Close() error { return t.f.Close() }

// readLine reads one line (canonical mode gives one per read), waiting
// at most timeout, for ever when it is 0. A read of nothing is errEOF.
func (t *terminal) readLine(timeout time.Duration) (string, error) {
	if t.pending != "" {
		line := t.pending
		t.pending = ""
		return line, nil
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	if err := t.f.SetReadDeadline(deadline); err != nil {
		return "", fmt.Errorf("read deadline: %w", err)
	}
	buf := make([]byte, 4096)
	n, err := t.f.Read(buf)
	switch {
	case n > 0:
		return string(buf[:n]), nil
	case err == nil || errors.Is(err, io.EOF):
		return "", errEOF
	default:
		return "", err
	}
}

// setEcho puts the console in the mode termiosFor describes, echoing
// what is typed or not (for the password).
func (t *terminal) setEcho(echo bool) error {
	return t.control(func(fd int) error {
		tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return fmt.Errorf("termios: %w", err)
		}
		mode := termiosFor(*tio, echo)
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, &mode); err != nil {
			return fmt.Errorf("termios: %w", err)
		}
		return nil
	})
}

// flushInput throws away what was typed and not read yet, in the
// console and in t.pending.
func (t *terminal) flushInput() {
	t.pending = ""
	t.control(func(fd int) error { return unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH) })
}

func (t *terminal) control(f func(fd int) error) error {
	rc, err := t.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// termiosFor returns tio changed for the shell: canonical mode (the
// kernel edits the line: backspace, Ctrl-U, Ctrl-W; a read returns one
// line) with or without echo, and, without, the newline still echoed so
// the password prompt ends its line. Ctrl-C ends a line as Enter does
// (it is VEOL, an extra end of line), so that the shell reads it at
// once, at the prompt and while a statement runs. CR reads as NL (a terminal's Enter
// sends CR) and NL writes as CR NL (the router's log, the commands'
// output). ISIG is off: the shell's commands run inside PID 1, with no
// process to interrupt, and a Ctrl-C must never become a signal that
// could reach PID 1 (see shellInput and feed for what it does instead). CLOCAL
// ignores the modem lines, so a cable without carrier detect does not
// read as a hang-up. Speed and framing stay as console= set them.
func termiosFor(tio unix.Termios, echo bool) unix.Termios {
	tio.Lflag |= unix.ICANON | unix.ECHOE | unix.ECHOK | unix.ECHOKE | unix.ECHOCTL | unix.IEXTEN
	tio.Lflag &^= unix.ISIG | unix.ECHONL
	if echo {
		tio.Lflag |= unix.ECHO
	} else {
		tio.Lflag &^= unix.ECHO
		tio.Lflag |= unix.ECHONL
	}
	tio.Iflag |= unix.ICRNL
	tio.Iflag &^= unix.INLCR | unix.IGNCR
	tio.Oflag |= unix.OPOST | unix.ONLCR
	tio.Cflag |= unix.CLOCAL | unix.CREAD
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
	tio.Cc[unix.VEOL] = ctrlC
	return tio
}

// ctrlC is what Ctrl-C types.
const ctrlC = '\x03'
