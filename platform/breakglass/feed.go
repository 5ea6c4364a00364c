package breakglass

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// feed is the console's input while a statement runs. The statement's
// commands never read the console: they read a pipe, which the feed
// fills with the lines typed, so that the feed, the only reader of the
// console, sees Ctrl-C (a line of its own, see termiosFor) and cancels
// the statement, and so that nothing the commands left reading can
// read the console after the statement, let alone the next login's
// password. What the commands did not read (type-ahead) goes back to
// the prompt, in the order it was typed, unless Ctrl-C stopped the
// statement: then the shell forgets it (see Shell.shell).
//
// Ctrl-D closes the pipe (the commands read end of file); a second one
// stops the statement, as Ctrl-C does, and stops the feed, so a line
// that hung up and reads as end of file for ever does not spin. A
// statement that reads nothing for idle is stopped too, and ends the
// shell: a forgotten cat must not pause the log for good.
type feed struct {
	t      *terminal
	cancel context.CancelFunc // the statement's
	pr, pw *os.File

	mu        sync.Mutex
	queue     []byte // typed, for the commands, not yet in the pipe
	closing   bool   // Ctrl-D: the pipe closes once queue is in it
	unwritten []byte // what the pump could not write when stopped
	after     []byte // typed once the commands' input was closed
	end       error  // why the statement stopped early, if it did

	wake        chan struct{} // queue or closing changed; capacity 1
	done        chan struct{} // closed by stop
	read, pumps sync.WaitGroup
}

// startFeed starts feeding t to a new pipe; cancel stops the statement.
// Only the feed reads t until stop returns.
func startFeed(t *terminal, idle time.Duration, cancel context.CancelFunc) (*feed, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	// Clear the deadline the prompt's read left.
	if err := t.f.SetReadDeadline(time.Time{}); err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	f := &feed{t: t, cancel: cancel, pr: pr, pw: pw, wake: make(chan struct{}, 1), done: make(chan struct{})}
	// A line left over from the prompt's read (the parser takes 1 KiB
	// at a time) is the parser's, and stays in t.pending.
	f.read.Go(func() { f.readConsole(idle) })
	f.pumps.Go(f.pump)
	return f, nil
}

// readConsole reads t's lines until stop, or the console fails.
func (f *feed) readConsole(idle time.Duration) {
	timer := time.AfterFunc(idle, func() { f.stopWith(os.ErrDeadlineExceeded) })
	defer timer.Stop()
	buf := make([]byte, 4096)
	eofs := 0
	for {
		n, err := f.t.f.Read(buf)
		if n > 0 {
			timer.Reset(idle)
			if bytes.IndexByte(buf[:n], ctrlC) >= 0 {
				// The line Ctrl-C ended is forgotten.
				f.stopWith(errInterrupt)
			} else {
				f.add(buf[:n])
			}
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return // stop
		case err != nil && !errors.Is(err, io.EOF):
			f.stopWith(err)
			return
		case n == 0:
			if eofs++; eofs > 1 {
				f.stopWith(errInterrupt)
				return
			}
			f.closeInput()
		}
	}
}

// add gives p to the commands, or, once their input is closed, to the
// prompt.
func (f *feed) add(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		f.after = append(f.after, p...)
		return
	}
	f.queue = append(f.queue, p...)
	f.signal()
}

// closeInput closes the commands' input once what was typed is in it.
func (f *feed) closeInput() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closing = true
	f.signal()
}

func (f *feed) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// stopWith stops the statement for why: the first reason is kept.
// The commands' input is closed too: a cat reading it returns.
func (f *feed) stopWith(why error) {
	f.mu.Lock()
	if f.end == nil {
		f.end = why
	}
	f.mu.Unlock()
	f.closeInput()
	f.cancel()
}

// pump writes the queue to the pipe, apart from the reader, so that a
// pipe nobody reads never keeps the reader from seeing Ctrl-C.
func (f *feed) pump() {
	defer f.pw.Close()
	for {
		f.mu.Lock()
		q, closing := f.queue, f.closing
		f.queue = nil
		f.mu.Unlock()
		if len(q) > 0 {
			if n, err := f.pw.Write(q); err != nil {
				f.mu.Lock()
				f.unwritten = q[n:]
				f.mu.Unlock()
				return
			}
			continue
		}
		if closing {
			return
		}
		select {
		case <-f.wake:
		case <-f.done:
			return
		}
	}
}

// stop ends the feed once the statement is done: the console is the
// prompt's again, with what the commands did not read in t.pending. It
// returns why the statement stopped early, if it did.
func (f *feed) stop() error {
	// A read pending on the console returns at once: the deadline
	// has passed. What it had not read stays in the console.
	f.t.f.SetReadDeadline(time.Now())
	f.read.Wait()
	close(f.done)
	f.pw.SetWriteDeadline(time.Now())
	f.pumps.Wait()
	// The pipe is closed: what is in it reads, then end of file. A
	// command that did not stop (see Shell.exec) may still read it; a
	// deadline keeps this read from waiting on it.
	f.pr.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	left, _ := io.ReadAll(f.pr)
	f.pr.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	left = append(left, f.unwritten...)
	left = append(left, f.queue...)
	left = append(left, f.after...)
	f.t.pending += string(left)
	return f.end
}
