package state

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTopicLatestValue(t *testing.T) {
	topic := NewTopic[int]("n")
	if v, ver := topic.Get(); v != 0 || ver != 0 {
		t.Fatalf("new topic = %d (version %d), want 0 (version 0)", v, ver)
	}
	ch := topic.Changed()
	for i := 1; i <= 1000; i++ {
		topic.Publish(i)
	}
	select {
	case <-ch:
	default:
		t.Fatal("Changed channel not closed by Publish")
	}
	// A slow subscriber sees only the newest value; nothing queued.
	if v, ver := topic.Get(); v != 1000 || ver != 1000 {
		t.Errorf("after 1000 publications: %d (version %d), want 1000 (version 1000)", v, ver)
	}
	select {
	case <-topic.Changed():
		t.Error("Changed channel closed with no publication since")
	default:
	}
}

func TestWatchWakesOnAnyTopic(t *testing.T) {
	a, b := NewTopic[string]("a"), NewTopic[int]("b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	w := WatchAll(a, b)
	go b.Publish(1)
	if err := w.Wait(ctx); err != nil {
		t.Fatalf("Wait after publishing b: %v", err)
	}

	// A publication between taking the Watch and waiting is not missed.
	w = WatchAll(a, b)
	a.Publish("x")
	if err := w.Wait(ctx); err != nil {
		t.Fatalf("Wait after publishing a: %v", err)
	}

	// Cancelling ctx ends the wait.
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if err := WatchAll(a, b).Wait(cctx); err != context.Canceled {
		t.Errorf("Wait with cancelled ctx = %v, want context.Canceled", err)
	}
}

func TestTopicConcurrentSubscribers(t *testing.T) {
	topic := NewTopic[int]("n")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const last = 500
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				w := WatchAll(topic)
				if topic.Value() == last {
					return
				}
				if err := w.Wait(ctx); err != nil {
					t.Errorf("subscriber never saw %d: %v", last, err)
					return
				}
			}
		})
	}
	for i := 1; i <= last; i++ {
		topic.Publish(i)
	}
	wg.Wait()
}

func TestPersistent(t *testing.T) {
	type lease struct {
		Addr    string    `json:"addr"`
		Expires time.Time `json:"expires"`
	}
	dir := t.TempDir()
	p, err := loadPersistent[lease](dir, "lease.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, ver := p.Get(); ver != 0 {
		t.Errorf("missing file: version %d, want 0", ver)
	}
	want := lease{Addr: "10.77.0.100", Expires: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}

	// A subscriber sees the value at once; the file follows with Flush.
	ch := p.Changed()
	p.Publish(want)
	<-ch
	if got := p.Value(); got != want {
		t.Errorf("subscriber got %+v, want %+v", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "lease.json")); err == nil {
		t.Errorf("lease.json written before Flush")
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "lease.json")); !strings.Contains(string(got), "\n  \"addr\": \"10.77.0.100\"") {
		t.Errorf("lease.json = %q, want the new value pretty-printed", got)
	}

	p2, err := loadPersistent[lease](dir, "lease.json")
	if err != nil {
		t.Fatal(err)
	}
	if got, ver := p2.Get(); got != want || ver != 1 {
		t.Errorf("reloaded %+v (version %d), want %+v (version 1)", got, ver, want)
	}

	os.WriteFile(filepath.Join(dir, "lease.json"), []byte(`{"addr": "10.77.0.100", "expiry": ""}`), 0o644)
	if _, err := loadPersistent[lease](dir, "lease.json"); err == nil || !strings.Contains(err.Error(), "lease.json:1:25: expiry: unknown field") {
		t.Errorf("loadPersistent of a file with a typo: %v, want a positioned unknown-field error", err)
	}
}
