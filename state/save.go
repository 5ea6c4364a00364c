package state

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// SaveProblem is the key in Problems of persistent files that cannot be
// written: /health.json shows it until every file is written again.
const SaveProblem = "state"

// Retry delays of a failed write: quick at first (a full disk someone is
// cleaning up), then every few seconds for as long as it takes.
const (
	saveRetryMin = time.Second
	saveRetryMax = 4 * time.Second
)

// saving is SaveState's own state, in the Store for tests.
type saving struct {
	retryMin, retryMax time.Duration // zero: saveRetryMin, saveRetryMax
	attempts           atomic.Uint64 // writes tried
}

// FlushState writes every persistent topic whose file is older than its
// value, and returns the errors, one per file that failed.
func (s *Store) FlushState() error {
	var errs []error
	for _, p := range s.persistent {
		if err := p.Flush(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SaveState writes the persistent topics' files as they change, until ctx
// is done, and then once more, so that what the services published last
// is on disk. Writing in this one goroutine coalesces: a burst of
// publications during a write is one more write. A failed write is
// logged, reported in Problems under SaveProblem and retried; it clears
// when the files are written again. main runs it beside the supervisor
// and cancels it after the services have stopped.
func (s *Store) SaveState(ctx context.Context, logf func(format string, args ...any)) {
	// It runs outside the supervisor: a panic (a value that cannot be
	// encoded, say) must not end PID 1.
	defer func() {
		if r := recover(); r != nil {
			logf("panic: %v (state files are no longer written)", r)
			s.ReportProblem(SaveProblem, fmt.Errorf("panic: %v (state files are no longer written until a restart)", r))
		}
	}()
	ws := make([]Watcher, len(s.persistent))
	for i, p := range s.persistent {
		ws[i] = p
	}
	var retry time.Duration
	reported := ""
	for {
		w := WatchAll(ws...)
		// Done before this write: it is the last, and it reads every
		// topic after the services stopped publishing.
		last := ctx.Err() != nil
		err := s.FlushState()
		s.saving.attempts.Add(1)
		msg := ""
		if err != nil {
			msg = err.Error() + " (kept in memory; retrying)"
		}
		if msg != reported {
			if msg != "" {
				logf("%s", msg)
			} else {
				logf("written again")
			}
			reported = msg
			s.ReportProblem(SaveProblem, errorOrNil(msg))
		}
		if last {
			return
		}
		if err == nil {
			retry = 0
			w.Wait(ctx)
			continue
		}
		retryMin, retryMax := saveRetryMin, saveRetryMax
		if s.saving.retryMin > 0 {
			retryMin, retryMax = s.saving.retryMin, s.saving.retryMax
		}
		retry = min(max(2*retry, retryMin), retryMax)
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

func errorOrNil(msg string) error {
	if msg == "" {
		return nil
	}
	return errors.New(msg)
}
