// Package state holds the router's typed topics: the in-process event bus
// over which services talk, and the schemas of the JSON files in /perm.
//
// A topic is a latest value, not a queue. Publishing replaces the value and
// wakes every subscriber; a subscriber that is slow only ever sees the newest
// value when it looks again. This is what level-triggered reconcilers want:
// they never need the history, only "something changed, look again", and a
// burst of publications cannot grow memory.
package state

import (
	"context"
	"reflect"
	"sync"
)

// Topic is a typed latest value with change notification. The zero value is
// not usable; use NewTopic.
//
// Values are shared between publisher and subscribers: treat a published
// value as immutable and publish a fresh copy instead of mutating it.
type Topic[T any] struct {
	name string

	mu      sync.Mutex
	val     T
	version uint64        // 0 until the first Publish
	changed chan struct{} // closed and replaced on every Publish
}

// NewTopic returns a topic named name holding the zero value of T, at
// version 0.
func NewTopic[T any](name string) *Topic[T] {
	return &Topic[T]{name: name, changed: make(chan struct{})}
}

// Name returns the topic's name, as used in logs and diagnostics.
func (t *Topic[T]) Name() string { return t.name }

// Publish replaces the value and wakes every subscriber.
func (t *Topic[T]) Publish(v T) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.publishLocked(v)
}

func (t *Topic[T]) publishLocked(v T) {
	t.val = v
	t.version++
	close(t.changed)
	t.changed = make(chan struct{})
}

// PublishIfChanged publishes v unless the topic already holds a deeply
// equal value, and reports whether it published. Reconcilers use it so
// that re-deriving the same output wakes nobody.
func (t *Topic[T]) PublishIfChanged(v T) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.version > 0 && reflect.DeepEqual(t.val, v) {
		return false
	}
	t.publishLocked(v)
	return true
}

// Get returns the current value and its version (0 when never published).
func (t *Topic[T]) Get() (T, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.val, t.version
}

// Value returns the current value.
func (t *Topic[T]) Value() T {
	v, _ := t.Get()
	return v
}

// Changed returns a channel that is closed by the next Publish. Take it
// before reading the value, so that a publication between the read and the
// wait is not missed.
func (t *Topic[T]) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

// Watcher is anything with a Changed channel, usually a *Topic.
type Watcher interface {
	Changed() <-chan struct{}
}

// Watch is a snapshot of the change channels of several topics. The
// reconciler pattern is:
//
//	for {
//		w := state.WatchAll(a, b)
//		apply(a.Value(), b.Value())
//		if err := w.Wait(ctx); err != nil {
//			return err
//		}
//	}
type Watch []<-chan struct{}

// WatchAll takes the change channels of ws.
func WatchAll(ws ...Watcher) Watch {
	w := make(Watch, len(ws))
	for i, x := range ws {
		w[i] = x.Changed()
	}
	return w
}

// Wait blocks until any of the watched topics has been published since the
// Watch was taken, or ctx is done (then it returns ctx.Err()).
func (w Watch) Wait(ctx context.Context) error {
	cases := make([]reflect.SelectCase, 0, len(w)+1)
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())})
	for _, c := range w {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
	}
	if i, _, _ := reflect.Select(cases); i == 0 {
		return ctx.Err()
	}
	return nil
}
