package platform

import (
	"io"
	"os"
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

// consoles writes to each console it could open and ignores their
// errors: a missing or stuck screen must not stop the log reaching the
// serial port, nor the other way round.
type consoles []io.Writer

func (c consoles) Write(p []byte) (int, error) {
	for _, w := range c {
		w.Write(p)
	}
	return len(p), nil
}

// openConsoles opens the serial console and the screen, the two places a
// person debugging a router looks. Without either, it falls back to
// /dev/console, the one the kernel gave PID 1.
func openConsoles() io.Writer {
	var c consoles
	for _, name := range []string{"/dev/ttyS0", "/dev/tty0"} {
		f, err := os.OpenFile(name, os.O_WRONLY|unix.O_NOCTTY, 0)
		if err != nil {
			continue
		}
		c = append(c, f)
	}
	if len(c) == 0 {
		if f, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
			c = append(c, f)
		}
	}
	return c
}
