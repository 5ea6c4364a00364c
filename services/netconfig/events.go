package netconfig

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/homerouter/homerouter/state"
	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// linkEvents turns the kernel's link notifications (RTNLGRP_LINK: a link
// appeared, vanished, was renamed or changed state) and route
// notifications (RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE: the ISP's router
// advertisements gave uplink0 a default route, or it expired; st.Links
// shows the default routes) into publications on
// a topic, so that Run waits for them and for config changes in one
// state.Watch. The topic's value is nil, or the error that ended the
// subscription.
type linkEvents struct {
	conn   *netlink.Conn
	topic  *state.Topic[error]
	closed atomic.Bool
	done   chan struct{}
}

// subscribeLinks joins RTNLGRP_LINK and the route groups and starts
// reading notifications.
func subscribeLinks() (*linkEvents, error) {
	groups := uint32(1<<(unix.RTNLGRP_LINK-1) | 1<<(unix.RTNLGRP_IPV4_ROUTE-1) | 1<<(unix.RTNLGRP_IPV6_ROUTE-1))
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: groups})
	if err != nil {
		return nil, fmt.Errorf("netconfig: subscribe to link and route events: %w", err)
	}
	e := &linkEvents{conn: c, topic: state.NewTopic[error]("netconfig link events"), done: make(chan struct{})}
	go e.read()
	return e, nil
}

// read publishes once per batch of notifications that matter (wakes).
// Beyond that their content does not matter: the reconciler looks at the
// whole kernel state again.
func (e *linkEvents) read() {
	defer close(e.done)
	for {
		msgs, err := e.conn.Receive()
		switch {
		case e.closed.Load():
			return
		case err == nil:
			if slices.ContainsFunc(msgs, wakes) {
				e.topic.Publish(nil)
			}
		case errors.Is(err, unix.ENOBUFS):
			// The kernel dropped notifications because we were slow;
			// looking again covers whatever they said.
			e.topic.Publish(nil)
		default:
			e.topic.Publish(fmt.Errorf("netconfig: link events: %w", err))
			return
		}
	}
}

// wakes reports whether m is news for the reconciler: any link message,
// and a default route of the main table coming or going that netconfig
// did not make (the ISP's router advertisements give uplink0 one). Other
// routes change with every address and lease, and netconfig's own are
// the result of an apply, not a cause for one.
func wakes(m netlink.Message) bool {
	switch m.Header.Type {
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		var r rtnetlink.RouteMessage
		if err := r.UnmarshalBinary(m.Data); err != nil {
			return true // look again rather than miss something
		}
		return isDefaultRoute(r) && r.Protocol != Protocol && r.Protocol != LeaseProtocol
	}
	return true
}

// Err returns the error that ended the subscription, or nil.
func (e *linkEvents) Err() error { return e.topic.Value() }

// Changed implements state.Watcher.
func (e *linkEvents) Changed() <-chan struct{} { return e.topic.Changed() }

// Close ends the subscription and waits for the reader to stop.
func (e *linkEvents) Close() {
	e.closed.Store(true)
	e.conn.Close()
	<-e.done
}
