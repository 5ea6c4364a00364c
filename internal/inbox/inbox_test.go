package inbox

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestInbox(t *testing.T) {
	errTimeout := errors.New("timeout")
	errClosed := errors.New("closed")
	feed := make(chan int)
	in := Start(func() (int, bool, error) {
		v, ok := <-feed
		if !ok {
			return 0, false, errClosed
		}
		return v, v < 0, nil // negative values are "malformed"
	})
	defer in.Close()
	ctx := context.Background()

	go func() { feed <- -1; feed <- 7 }()
	if v, err := in.Receive(ctx, time.Now().Add(10*time.Second), errTimeout); v != 7 || err != nil {
		t.Errorf("Receive = %d, %v; want 7 (the skipped -1 never delivered)", v, err)
	}
	if _, err := in.Receive(ctx, time.Now().Add(10*time.Millisecond), errTimeout); err != errTimeout {
		t.Errorf("Receive with nothing to read = %v, want the timeout error", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := in.Receive(cctx, time.Now().Add(10*time.Second), errTimeout); err != context.Canceled {
		t.Errorf("Receive with a cancelled ctx = %v", err)
	}
	close(feed)
	if _, err := in.Receive(ctx, time.Now().Add(10*time.Second), errTimeout); err != errClosed {
		t.Errorf("Receive after the reader failed = %v, want its error", err)
	}
}
