package services

import (
	"context"
	"errors"
	"fmt"
	"log"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/homerouter/homerouter/state"
)

// Backoff says how long the supervisor waits before restarting a failed
// service. The zero value means the defaults.
type Backoff struct {
	Min        time.Duration // first delay; default 100 ms
	Max        time.Duration // delays double up to this; default 30 s
	ResetAfter time.Duration // a run this long resets the delay to Min; default 1 min
}

func (b Backoff) withDefaults() Backoff {
	if b.Min <= 0 {
		b.Min = 100 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if b.ResetAfter <= 0 {
		b.ResetAfter = time.Minute
	}
	return b
}

// ShutdownTimeout is how long Supervise waits for services to return after
// its context is cancelled. A service that takes longer is abandoned, so
// that the router can still stop (or, as PID 1, reboot) in bounded time:
// 4 s, so that the whole process is gone within the 5 s it promises.
const ShutdownTimeout = 4 * time.Second

// Supervisor runs services and restarts the ones that fail or panic, so
// that one broken service never takes the others down. It publishes each
// service's status to the store's Services topic.
type Supervisor struct {
	st      *state.Store
	logger  *log.Logger
	backoff Backoff

	mu     sync.Mutex
	status []state.ServiceStatus // in the order of the services
}

// NewSupervisor returns a supervisor that reports to st and logs to logger.
func NewSupervisor(st *state.Store, logger *log.Logger, backoff Backoff) *Supervisor {
	return &Supervisor{st: st, logger: logger, backoff: backoff.withDefaults()}
}

// Supervise runs every service until ctx is cancelled, then waits up to
// ShutdownTimeout for them to return. It returns an error naming the
// services that did not stop in time.
func (s *Supervisor) Supervise(ctx context.Context, svcs []Service) error {
	now := time.Now()
	s.mu.Lock()
	s.status = make([]state.ServiceStatus, len(svcs))
	for i, svc := range svcs {
		s.status[i] = state.ServiceStatus{Name: svc.Name, State: "running", Since: now}
	}
	s.mu.Unlock()
	s.publish()

	var g errgroup.Group
	for i, svc := range svcs {
		g.Go(func() error {
			s.keepRunning(ctx, i, svc)
			return nil
		})
	}
	done := make(chan struct{})
	go func() {
		g.Wait()
		close(done)
	}()
	<-ctx.Done()
	select {
	case <-done:
		return nil
	case <-time.After(ShutdownTimeout):
	}
	var stuck []string
	s.mu.Lock()
	for _, st := range s.status {
		if st.State != "stopped" {
			stuck = append(stuck, st.Name)
		}
	}
	s.mu.Unlock()
	return fmt.Errorf("supervisor: %s did not stop within %v", strings.Join(stuck, ", "), ShutdownTimeout)
}

// keepRunning runs svc until ctx is done, restarting it with exponential
// backoff whenever it returns or panics.
func (s *Supervisor) keepRunning(ctx context.Context, i int, svc Service) {
	delay := s.backoff.Min
	for {
		s.update(i, func(st *state.ServiceStatus) {
			st.State, st.Since = "running", time.Now()
		})
		start := time.Now()
		err := s.runOnce(ctx, svc)
		if ctx.Err() != nil {
			s.update(i, func(st *state.ServiceStatus) {
				st.State, st.Since = "stopped", time.Now()
			})
			return
		}
		if err == nil {
			err = errors.New("returned before shutdown")
		}
		if time.Since(start) >= s.backoff.ResetAfter {
			delay = s.backoff.Min
		}
		s.logger.Printf("%s failed, restarting in %v: %v", svc.Name, delay, err)
		s.update(i, func(st *state.ServiceStatus) {
			st.State, st.Since, st.LastError = "restarting", time.Now(), err.Error()
			st.Restarts++
		})
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			s.update(i, func(st *state.ServiceStatus) {
				st.State, st.Since = "stopped", time.Now()
			})
			return
		}
		delay = min(2*delay, s.backoff.Max)
	}
}

// runOnce calls svc.Run, turning a panic into an error. The stack goes to
// the log, where a developer needs it; the error stays one line for
// /health.json.
func (s *Supervisor) runOnce(ctx context.Context, svc Service) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Printf("%s panicked: %v\n%s", svc.Name, r, debug.Stack())
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return svc.Run(ctx)
}

func (s *Supervisor) update(i int, f func(*state.ServiceStatus)) {
	s.mu.Lock()
	f(&s.status[i])
	s.mu.Unlock()
	s.publish()
}

func (s *Supervisor) publish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Services.Publish(slices.Clone(s.status))
}
