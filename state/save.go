package state

import (
	"context"
	"errors"
	"fmt"
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

// FlushState writes every persistent topic whose file is older than its
// value, and returns the errors, one per file that failed.
func (s *Store) FlushState() error {
	var errs []error
	for _, p := range s.persistent {
		if err := p.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", p.File(), err))
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
	ws := make([]Watcher, len(s.persistent))
	for i, p := range s.persistent {
		ws[i] = p
	}
	var retry time.Duration
	last := ""
	for {
		w := WatchAll(ws...)
		err := s.FlushState()
		msg := ""
		if err != nil {
			msg = err.Error() + " (kept in memory; retrying)"
		}
		if msg != last {
			if msg != "" {
				logf("%s", msg)
			} else {
				logf("written again")
			}
			last = msg
			s.ReportProblem(SaveProblem, errorOrNil(msg))
		}
		if ctx.Err() != nil {
			return // that was the last write
		}
		if err == nil {
			retry = 0
			w.Wait(ctx)
			continue
		}
		retry = min(max(2*retry, saveRetryMin), saveRetryMax)
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
