package services

import (
	"context"
	"errors"
	"io"
	"log"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/homerouter/homerouter/state"
)

// TestSupervisorRestartsPanickingService: a service that panics is
// restarted with growing delays while a healthy one keeps publishing, and
// shutdown is prompt.
func TestSupervisorRestartsPanickingService(t *testing.T) {
	st := state.NewStore(t.TempDir())
	var logs syncBuffer
	logger := log.New(&logs, "", 0)
	sup := NewSupervisor(st, logger, Backoff{})

	var mu sync.Mutex
	var starts []time.Time
	panicker := Service{Name: "panicker", Run: func(ctx context.Context) error {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		panic("boom")
	}}
	ticks := state.NewTopic[int]("ticks")
	ticker := Service{Name: "ticker", Run: func(ctx context.Context) error {
		for i := 1; ; i++ {
			ticks.Publish(i)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Supervise(ctx, []Service{panicker, ticker}) }()

	// Wait (by condition, not by clock) for the fifth start of the
	// panicking service: that is 100+200+400+800 ms of backoff.
	deadline := time.After(30 * time.Second)
	for {
		w := state.WatchAll(st.Services)
		if statusOf(st, "panicker").Restarts >= 4 {
			break
		}
		select {
		case <-w[0]:
		case <-deadline:
			t.Fatalf("panicker did not restart 4 times: %+v", st.Services.Value())
		}
	}
	ticksBefore := ticks.Value()
	waitFor(t, "the ticker to keep publishing", func() bool { return ticks.Value() > ticksBefore+5 })

	mu.Lock()
	got := slices.Clone(starts)
	mu.Unlock()
	want := 100 * time.Millisecond
	for i := 1; i < len(got) && i < 5; i++ {
		if gap := got[i].Sub(got[i-1]); gap < want {
			t.Errorf("restart %d came %v after the previous one, want at least %v", i, gap, want)
		}
		want *= 2
	}
	if s := statusOf(st, "panicker"); s.LastError != "panic: boom" {
		t.Errorf("panicker last_error = %q, want %q", s.LastError, "panic: boom")
	}
	if s := statusOf(st, "ticker"); s.State != "running" || s.Restarts != 0 {
		t.Errorf("ticker status = %+v, want running with no restarts", s)
	}
	if !strings.Contains(logs.String(), "panicker panicked: boom\ngoroutine ") {
		t.Errorf("log does not hold the panic with its stack:\n%s", logs.String())
	}

	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Supervise: %v", err)
	}
	if took := time.Since(start); took > ShutdownTimeout {
		t.Errorf("shutdown took %v, want under %v", took, ShutdownTimeout)
	}
	for _, s := range st.Services.Value() {
		if s.State != "stopped" {
			t.Errorf("after shutdown %s is %q, want stopped", s.Name, s.State)
		}
	}
}

// TestSupervisorAbandonsStuckService: a service that ignores cancellation
// cannot hold the router hostage past ShutdownTimeout.
func TestSupervisorAbandonsStuckService(t *testing.T) {
	st := state.NewStore(t.TempDir())
	sup := NewSupervisor(st, log.New(io.Discard, "", 0), Backoff{})
	block := make(chan struct{})
	defer close(block)
	stuck := Service{Name: "stuck", Run: func(context.Context) error { <-block; return nil }}
	polite := Service{Name: "polite", Run: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Supervise(ctx, []Service{stuck, polite}) }()
	waitFor(t, "both running", func() bool { return len(st.Services.Value()) == 2 })
	start := time.Now()
	cancel()
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "stuck did not stop") || strings.Contains(err.Error(), "polite") {
		t.Errorf("Supervise = %v, want an error naming only the stuck service", err)
	}
	if took := time.Since(start); took < ShutdownTimeout || took > 2*ShutdownTimeout {
		t.Errorf("gave up after %v, want about %v", took, ShutdownTimeout)
	}
}

// TestSupervisorRestartsReturningService: returning an error, or returning
// at all before shutdown, counts as a failure.
func TestSupervisorRestartsReturningService(t *testing.T) {
	st := state.NewStore(t.TempDir())
	sup := NewSupervisor(st, log.New(io.Discard, "", 0), Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond})
	var runs atomic.Int32
	svc := Service{Name: "flaky", Run: func(ctx context.Context) error {
		if runs.Add(1)%2 == 0 {
			return nil
		}
		return errors.New("link vanished")
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sup.Supervise(ctx, []Service{svc})
	waitFor(t, "ten runs", func() bool { return runs.Load() >= 10 })
	s := statusOf(st, "flaky")
	if s.Restarts < 9 {
		t.Errorf("restarts = %d after %d runs", s.Restarts, runs.Load())
	}
	if s.LastError != "link vanished" && s.LastError != "returned before shutdown" {
		t.Errorf("last_error = %q", s.LastError)
	}
}

func statusOf(st *state.Store, name string) state.ServiceStatus {
	for _, s := range st.Services.Value() {
		if s.Name == name {
			return s
		}
	}
	return state.ServiceStatus{}
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSupervisorBackoffResets: delays double while a service keeps
// failing, and start again from Min once a run lasted ResetAfter. The
// delays are read from the log, so the test does not time anything.
func TestSupervisorBackoffResets(t *testing.T) {
	st := state.NewStore(t.TempDir())
	var logs syncBuffer
	sup := NewSupervisor(st, log.New(&logs, "", 0), Backoff{Min: time.Millisecond, Max: 4 * time.Millisecond, ResetAfter: 50 * time.Millisecond})
	var runs atomic.Int32
	svc := Service{Name: "flaky", Run: func(ctx context.Context) error {
		// Every run fails at once, but run 5 is healthy for a while first.
		if runs.Add(1) == 5 {
			time.Sleep(60 * time.Millisecond)
		}
		return errors.New("down")
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sup.Supervise(ctx, []Service{svc})
	waitFor(t, "eight runs", func() bool { return runs.Load() >= 8 })
	cancel()

	var delays []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if _, rest, ok := strings.Cut(line, "restarting in "); ok {
			d, _, _ := strings.Cut(rest, ":")
			delays = append(delays, d)
		}
	}
	want := []string{"1ms", "2ms", "4ms", "4ms", "1ms", "2ms", "4ms"}
	if len(delays) < len(want) || !slices.Equal(delays[:len(want)], want) {
		t.Errorf("restart delays %v, want %v first", delays, want)
	}
}

// syncBuffer is a strings.Builder safe for the supervisor's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
