// Package inbox turns a blocking read loop on a socket into receives with
// a deadline and a context, which is how the DHCP clients wait for
// answers: a reader goroutine per socket, and Receive picks up what it
// read, or gives up at the deadline.
package inbox

import (
	"context"
	"time"
)

// Inbox holds what a reader goroutine reads. Close stops the goroutine
// once the read it is blocked in returns (close the socket too).
type Inbox[T any] struct {
	msgs chan result[T]
	done chan struct{}
}

type result[T any] struct {
	v   T
	err error
}

// Start runs read in a goroutine until it fails or Close is called.
// read returns a value to deliver, or skip (a malformed packet, dropped),
// or an error, which Receive returns and which ends the reader.
func Start[T any](read func() (v T, skip bool, err error)) *Inbox[T] {
	in := &Inbox[T]{msgs: make(chan result[T]), done: make(chan struct{})}
	go func() {
		for {
			v, skip, err := read()
			if skip && err == nil {
				continue
			}
			select {
			case in.msgs <- result[T]{v, err}:
			case <-in.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return in
}

// Receive returns the next value, timeout once deadline passes, or ctx's
// error.
func (in *Inbox[T]) Receive(ctx context.Context, deadline time.Time, timeout error) (T, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	var zero T
	select {
	case r := <-in.msgs:
		return r.v, r.err
	case <-t.C:
		return zero, timeout
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Close stops delivering.
func (in *Inbox[T]) Close() { close(in.done) }
