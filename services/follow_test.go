package services

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/homerouter/homerouter/state"
)

// TestFollow: Serve starts once lan0 exists, starts over with the new
// link when its MAC or a kept address changes (not when something left
// out of the key does), stops when the link goes, and nothing is left
// running when Run returns.
func TestFollow(t *testing.T) {
	before := runtime.NumGoroutine()
	links := state.NewTopic[[]state.Link]("links")
	lan := func(mac string, addrs ...string) []state.Link {
		l := state.Link{Name: state.LAN, Index: 3, HardwareAddr: mac, Up: true}
		for _, a := range addrs {
			l.Addrs = append(l.Addrs, netip.MustParsePrefix(a))
		}
		return []state.Link{{Name: state.Uplink, Index: 2}, l}
	}
	type event struct {
		start bool // else stop
		link  Link
	}
	events := make(chan event, 10)
	absent := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Follow[Link]{
			Watch: []state.Watcher{links},
			Key: func() (Link, bool) {
				return LinkKey(links.Value(), state.LAN, func(p netip.Prefix) bool { return p.Addr().Is4() })
			},
			Serve: func(ctx context.Context, l Link) error {
				events <- event{true, l}
				<-ctx.Done()
				events <- event{false, l}
				return errors.New("socket closed") // dropped: the link changed
			},
			Absent: func() { absent <- struct{}{} },
		}.Run(ctx)
	}()
	next := func(what string) event {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(10 * time.Second):
			t.Fatalf("no event: %s", what)
		}
		return event{}
	}
	expect := func(what string, start bool, mac string, addrs ...string) {
		t.Helper()
		e := next(what)
		var got []string
		for _, p := range e.link.Addrs {
			got = append(got, p.String())
		}
		if e.start != start || e.link.HardwareAddr != mac || len(got) != len(addrs) || (len(addrs) > 0 && got[0] != addrs[0]) {
			t.Fatalf("%s: got start=%v %v, want start=%v %s %q", what, e.start, e.link, start, mac, addrs)
		}
	}

	select {
	case <-absent:
	case <-time.After(10 * time.Second):
		t.Fatal("Absent not called without lan0")
	}
	links.Publish(lan("02:00:00:00:00:01", "10.42.0.1/24"))
	expect("start", true, "02:00:00:00:00:01", "10.42.0.1/24")

	// Not in the key: an IPv6 address, the link going down.
	l := lan("02:00:00:00:00:01", "10.42.0.1/24", "fd00:42::1/64")
	l[1].Up = false
	links.Publish(l)
	// A MAC change starts it over.
	links.Publish(lan("02:00:00:00:00:02", "10.42.0.1/24"))
	expect("stop for the MAC", false, "02:00:00:00:00:01", "10.42.0.1/24")
	expect("start with the new MAC", true, "02:00:00:00:00:02", "10.42.0.1/24")
	// So does a kept address.
	links.Publish(lan("02:00:00:00:00:02", "10.42.7.1/24"))
	expect("stop for the address", false, "02:00:00:00:00:02", "10.42.0.1/24")
	expect("start with the new address", true, "02:00:00:00:00:02", "10.42.7.1/24")
	// The link goes: stopped, and Absent again.
	links.Publish(lan("02:00:00:00:00:02")[:1])
	expect("stop for the link gone", false, "02:00:00:00:00:02", "10.42.7.1/24")
	select {
	case <-absent:
	case <-time.After(10 * time.Second):
		t.Fatal("Absent not called after lan0 went")
	}
	links.Publish(lan("02:00:00:00:00:02", "10.42.7.1/24"))
	expect("start when it is back", true, "02:00:00:00:00:02", "10.42.7.1/24")

	cancel()
	expect("stop", false, "02:00:00:00:00:02", "10.42.7.1/24")
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after ctx is done", err)
	}
	select {
	case e := <-events:
		t.Errorf("event after Run returned: %+v", e)
	default:
	}
	// No goroutine of Follow's is left.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// TestFollowErrors: an error of Serve while the key holds ends Run with
// it (the supervisor restarts the service); a nil return waits for the
// next key rather than spinning.
func TestFollowErrors(t *testing.T) {
	links := state.NewTopic[[]state.Link]("links")
	links.Publish([]state.Link{{Name: state.Uplink, Index: 2, HardwareAddr: "02:00:00:00:00:01"}})
	key := func() (Link, bool) { return LinkKey(links.Value(), state.Uplink, nil) }
	boom := errors.New("boom")
	err := Follow[Link]{
		Watch: []state.Watcher{links},
		Key:   key,
		Serve: func(context.Context, Link) error { return boom },
	}.Run(context.Background())
	if !errors.Is(err, boom) {
		t.Errorf("Run = %v, want Serve's error", err)
	}

	// An error that comes with a change of the key, before the watcher
	// has seen it, is the change's: Serve starts over.
	served := make(chan Link, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Follow[Link]{
			Watch: []state.Watcher{links},
			Key:   key,
			Serve: func(ctx context.Context, l Link) error {
				served <- l
				if l.HardwareAddr == "02:00:00:00:00:01" {
					links.Publish([]state.Link{{Name: state.Uplink, Index: 2, HardwareAddr: "02:00:00:00:00:02"}})
					return errors.New("socket gone with the link")
				}
				<-ctx.Done()
				return nil
			},
		}.Run(ctx)
	}()
	if l := <-served; l.HardwareAddr != "02:00:00:00:00:01" {
		t.Fatalf("first Serve with %v", l)
	}
	select {
	case l := <-served:
		if l.HardwareAddr != "02:00:00:00:00:02" {
			t.Errorf("second Serve with %v, want the new MAC", l)
		}
	case err := <-done:
		t.Fatalf("Run = %v, want Serve started over", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v after ctx is done", err)
	}

	if err := (Follow[Link]{Key: key, Serve: func(context.Context, Link) error { return nil }}).Run(context.Background()); err == nil {
		t.Error("Follow without Watch: no error")
	}

	links.Publish([]state.Link{{Name: state.Uplink, Index: 2, HardwareAddr: "02:00:00:00:00:01"}})
	calls := make(chan Link, 10)
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		done <- Follow[Link]{
			Watch: []state.Watcher{links},
			Key:   key,
			Serve: func(_ context.Context, l Link) error { calls <- l; return nil },
		}.Run(ctx)
	}()
	if l := <-calls; l.HardwareAddr != "02:00:00:00:00:01" {
		t.Errorf("first call with %v", l)
	}
	// The same key again wakes it, but calls nothing.
	links.Publish([]state.Link{{Name: state.Uplink, Index: 2, HardwareAddr: "02:00:00:00:00:01", Up: true}})
	links.Publish([]state.Link{{Name: state.Uplink, Index: 2, HardwareAddr: "02:00:00:00:00:03"}})
	if l := <-calls; l.HardwareAddr != "02:00:00:00:00:03" {
		t.Errorf("second call with %v, want the new MAC", l)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v after ctx is done", err)
	}
	if len(calls) != 0 {
		t.Errorf("%d more calls", len(calls))
	}
}
