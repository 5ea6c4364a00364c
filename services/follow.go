package services

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"reflect"
	"sync"

	"github.com/homerouter/homerouter/state"
)

// Follow runs a function for as long as what it depends on stays the
// same, and starts it over when that changes: a DHCP client on uplink0
// (its index and MAC), a server on lan0's address, listeners on lan0's
// addresses. It is the loop every service on a link needs, written once.
//
// Key derives, from the topics in Watch, what Serve depends on; ok false
// means there is nothing to run on yet (uplink0 is absent, say). Keys are
// compared with reflect.DeepEqual, so a Key should keep only what matters
// to Serve: LinkKey trims a link to its identity and the addresses asked
// for, so that a renewed lease's lifetimes do not start a client over.
type Follow[K any] struct {
	// Watch are the topics Key reads (st.Links, say); at least one.
	Watch []state.Watcher
	Key   func() (k K, ok bool)
	// Serve serves k until ctx is done, which happens when the router stops
	// or the key changes. An error it returns after the key changed is
	// taken for a consequence of the change (a socket on a link that
	// went away) and dropped; otherwise Follow returns it, and the
	// supervisor restarts the service. A nil return before ctx is done
	// means Serve has nothing to do with k: Follow waits for the next key.
	Serve func(ctx context.Context, k K) error
	// Absent, when not nil, is called each time Key reports that there is
	// nothing to run on (to publish a "no link" status, say).
	Absent func()
	// Logger, when not nil, logs each start over, with the new key.
	Logger *log.Logger
}

// Run follows the key until ctx is done (then it returns nil) or Serve
// fails. Every goroutine it starts has ended when it returns.
func (f Follow[K]) Run(ctx context.Context) error {
	if len(f.Watch) == 0 {
		return errors.New("services: Follow without topics to Watch would never see a change")
	}
	for {
		w := state.WatchAll(f.Watch...)
		k, ok := f.Key()
		if !ok {
			if f.Absent != nil {
				f.Absent()
			}
			if w.Wait(ctx) != nil {
				return nil
			}
			continue
		}
		changed, err := f.runWith(ctx, k)
		switch {
		case ctx.Err() != nil:
			return nil
		case changed:
			if f.Logger != nil {
				if k2, ok := f.Key(); ok {
					f.Logger.Printf("now on %v; starting over", k2)
				}
			}
		case err != nil:
			return err
		default:
			// Serve had nothing to do: wait for another key.
			if err := f.waitChange(ctx, k); err != nil {
				return nil
			}
		}
	}
}

// runWith runs Serve with k, cancelling it when the key changes, and
// says whether it did.
func (f Follow[K]) runWith(ctx context.Context, k K) (changed bool, err error) {
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		if f.waitChange(rctx, k) == nil {
			changed = true
			cancel()
		}
	})
	err = f.Serve(rctx, k)
	cancel()
	wg.Wait() // before reading changed
	if !changed {
		// Serve may have failed because of the change (its socket went
		// with the link) before the watcher saw it.
		if k2, ok := f.Key(); !ok || !reflect.DeepEqual(k, k2) {
			changed = true
		}
	}
	return changed, err
}

// waitChange returns nil once the key is no longer k, or ctx.Err().
func (f Follow[K]) waitChange(ctx context.Context, k K) error {
	for {
		w := state.WatchAll(f.Watch...)
		if k2, ok := f.Key(); !ok || !reflect.DeepEqual(k, k2) {
			return nil
		}
		if err := w.Wait(ctx); err != nil {
			return err
		}
	}
}

// LinkKey returns the link named name as a key for Follow: its name,
// index and MAC, and of its addresses those for which keep reports true
// (none when keep is nil). The rest of a Link (up or down, the lifetimes
// of its addresses) is left out, so that it starts nothing over.
func LinkKey(links []state.Link, name string, keep func(netip.Prefix) bool) (Link, bool) {
	l, ok := state.FindLink(links, name)
	if !ok {
		return Link{}, false
	}
	k := Link{Name: l.Name, Index: l.Index, HardwareAddr: l.HardwareAddr}
	if keep != nil {
		for _, p := range l.Addrs {
			if keep(p) {
				k.Addrs = append(k.Addrs, p)
			}
		}
	}
	return k, true
}

// Link is a link as a service on it depends on it (see LinkKey).
type Link struct {
	Name         string
	Index        int
	HardwareAddr string
	Addrs        []netip.Prefix
}

func (l Link) String() string {
	s := fmt.Sprintf("%s (index %d, %s", l.Name, l.Index, l.HardwareAddr)
	for _, p := range l.Addrs {
		s += ", " + p.String()
	}
	return s + ")"
}
