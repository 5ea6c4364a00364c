package platform

import (
	"io"
	"os"
	"slices"
	"strings"
	"sync"

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

// consoles writes the log to every console the kernel uses, without
// ever blocking: the fds are non-blocking and a write that would block is
// dropped. A serial line stopped by XOFF (Ctrl-S, or line noise), a
// screen held by Scroll Lock or a slow baud rate must not stall the
// services that log, DHCP among them. Until open, it writes to fallback.
type consoles struct {
	mu       sync.Mutex
	fds      []int
	fallback io.Writer
}

func (c *consoles) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.fds) == 0 && c.fallback != nil {
		c.fallback.Write(p)
	}
	for _, fd := range c.fds {
		for b := p; len(b) > 0; {
			n, err := unix.Write(fd, b)
			if err != nil || n <= 0 {
				break // EAGAIN: the console is full; drop the rest
			}
			b = b[n:]
		}
	}
	return len(p), nil
}

// open opens the consoles listed in /proc/consoles (what console= on the
// kernel command line chose: ttyS0 and tty0 in the image's boot configs,
// ttyS1 or another on some boards), else ttyS0 and tty0.
func (c *consoles) open(logger interface{ Printf(string, ...any) }) {
	names := consoleNames("/proc/consoles")
	if len(names) == 0 {
		names = []string{"ttyS0", "tty0"}
	}
	var fds []int
	for _, n := range names {
		fd, err := unix.Open("/dev/"+n, unix.O_WRONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			logger.Printf("console /dev/%s: %v", n, err)
			continue
		}
		fds = append(fds, fd)
	}
	c.mu.Lock()
	c.fds = fds
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
