package platform

import (
	"bytes"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Ring keeps the last Size bytes written to it: the router's log since
// boot, for the status page, when no disk is there to hold a log file
// (and /perm is for state, not logs).
type Ring struct {
	mu   sync.Mutex
	buf  []byte
	next int  // where the next byte goes
	full bool // buf has wrapped at least once
}

// NewRing returns a Ring that keeps the last size bytes.
func NewRing(size int) *Ring {
	return &Ring{buf: make([]byte, size)}
}

// Write never fails and never blocks on a reader.
func (r *Ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(p)
	if len(p) >= len(r.buf) {
		p = p[len(p)-len(r.buf):]
	}
	for len(p) > 0 {
		c := copy(r.buf[r.next:], p)
		p = p[c:]
		r.next += c
		if r.next == len(r.buf) {
			r.next = 0
			r.full = true
		}
	}
	return n, nil
}

// Tail returns a copy of the last n bytes the ring holds (all of them
// when it holds fewer), oldest first, without copying the rest.
func (r *Ring) Tail(n int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	held := r.next
	if r.full {
		held = len(r.buf)
	}
	n = min(n, held)
	out := make([]byte, 0, n)
	start := r.next - n
	if start < 0 {
		out = append(out, r.buf[len(r.buf)+start:]...)
		start = 0
	}
	return append(out, r.buf[start:r.next]...)
}

// Bytes returns a copy of what the ring holds, oldest first.
func (r *Ring) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]byte(nil), r.buf[:r.next]...)
	}
	out := make([]byte, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

// consoles writes the log to every console the kernel uses without
// stalling the services that log, DHCP among them. A console that cannot
// take more (the serial transmit buffer holds 4 KiB, a third of a second
// at 115200 baud) gets up to consoleWait to drain; one that does not (a
// serial line stopped by XOFF, a screen held by Scroll Lock) is marked
// stalled and skipped, losing lines, until it can be written again.
// Until open, it writes to fallback.
//
// One console can be paused (see pause) while the breakglass shell runs
// on it: the log is then dropped there, not queued, so the shell's
// screen stays readable and the router never waits for a person.
type consoles struct {
	mu       sync.Mutex
	list     []console
	fallback io.Writer
}

type console struct {
	name    string // "ttyS0", as in /proc/consoles
	fd      int
	stalled bool
	// paused counts the pauses in force; dropped the log lines not
	// written meanwhile.
	paused  int
	dropped int
}

// consoleWait is the longest one Write waits for a console to drain.
const consoleWait = time.Second

// writable waits up to timeout for fd to take more output.
func writable(fd int, timeout time.Duration) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(pfd, int(timeout/time.Millisecond))
	return err == nil && n == 1 && pfd[0].Revents&unix.POLLOUT != 0
}

func (c *consoles) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.list) == 0 && c.fallback != nil {
		c.fallback.Write(p)
	}
	for i := range c.list {
		con := &c.list[i]
		if con.paused > 0 {
			con.dropped += bytes.Count(p, []byte{'\n'})
			continue
		}
		if con.stalled {
			if !writable(con.fd, 0) {
				continue
			}
			con.stalled = false
		}
		for b := p; len(b) > 0; {
			n, err := unix.Write(con.fd, b)
			if err == unix.EAGAIN {
				if writable(con.fd, consoleWait) {
					continue
				}
				con.stalled = true
				break
			}
			if err != nil || n <= 0 {
				break
			}
			b = b[n:]
		}
	}
	return len(p), nil
}

// pause stops the log on the console named name ("ttyS0") until the
// returned resume is called, which reports how many lines were dropped
// meanwhile. Pauses nest; resume is idempotent. A name that is not a
// console pauses nothing, and its resume reports 0.
func (c *consoles) pause(name string) (resume func() (dropped int)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.list, func(con console) bool { return con.name == name })
	if i < 0 {
		return func() int { return 0 }
	}
	c.list[i].paused++
	var once sync.Once
	return func() (dropped int) {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			i := slices.IndexFunc(c.list, func(con console) bool { return con.name == name })
			if i < 0 {
				return
			}
			con := &c.list[i]
			con.paused--
			dropped = con.dropped
			if con.paused == 0 {
				con.dropped = 0
			}
		})
		return dropped
	}
}

// drain waits up to timeout for the consoles to send what they hold, so
// the last lines before a reboot reach the serial line.
func (c *consoles) drain(timeout time.Duration) {
	c.mu.Lock()
	fds := make([]int, 0, len(c.list))
	for _, con := range c.list {
		fds = append(fds, con.fd)
	}
	c.mu.Unlock()
	done := make(chan struct{})
	go func() {
		for _, fd := range fds {
			unix.IoctlSetInt(fd, unix.TCSBRK, 1) // tcdrain
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// open opens the consoles listed in /proc/consoles (what console= on the
// kernel command line chose: ttyS0 and tty0 in the image's boot configs,
// ttyS1 or another on some boards), else ttyS0 and tty0.
func (c *consoles) open(logger interface{ Printf(string, ...any) }) {
	names := consoleNames("/proc/consoles")
	if len(names) == 0 {
		names = []string{"ttyS0", "tty0"}
	}
	var list []console
	for _, n := range names {
		fd, err := unix.Open("/dev/"+n, unix.O_WRONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			logger.Printf("console /dev/%s: %v", n, err)
			continue
		}
		list = append(list, console{name: n, fd: fd})
	}
	c.mu.Lock()
	c.list = list
	c.mu.Unlock()
}

// consoleNames reads the device names from /proc/consoles ("ttyS0
// -W- (EC p a) 4:64" lines).
func consoleNames(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !slices.Contains(names, f[0]) {
			names = append(names, f[0])
		}
	}
	return names
}
