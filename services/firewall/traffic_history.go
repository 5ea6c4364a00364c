package firewall

import (
	"slices"
	"time"

	"github.com/homerouter/homerouter/state"
)

// trafficWindow is how far back DeviceTraffic's UpMinute and DownMinute
// look.
const trafficWindow = time.Minute

// trafficMinGap is the shortest time between two samples the history
// keeps: in a burst of input changes (each one samples too) a sample
// too close to the one kept before it is replaced by the next, so the
// history holds at most about a minute's worth of seconds.
const trafficMinGap = time.Second

// trafficSample is the counters, in bytes by MAC, read at one time.
type trafficSample struct {
	at       time.Time
	up, down map[string]uint64
}

// trafficHistory turns samples of the kernel's running totals into
// st.Traffic: the totals, and what they grew by over the last minute.
// The kernel keeps only totals, so the minute's figure is the newest
// total minus an older one: that of the newest sample at least a minute
// old, or, while there is none, that of the oldest. The history keeps
// just the samples from that one on.
//
// It is pure: the caller passes the times (time.Now, whose monotonic
// reading makes a change of the wall clock harmless), and the tests step
// them.
type trafficHistory struct {
	samples []trafficSample // oldest first
}

// begin starts the history over at at with all counts zero: the sets
// were made then, so all they ever count is of the time since.
func (h *trafficHistory) begin(at time.Time) {
	h.samples = []trafficSample{{at: at}}
}

// add records s and returns the traffic it shows.
func (h *trafficHistory) add(s trafficSample) state.Traffic {
	if n := len(h.samples); n >= 2 && h.samples[n-1].at.Sub(h.samples[n-2].at) < trafficMinGap {
		// The newest sample is too close to the one before to keep
		// both. It is never the base, samples[0].
		h.samples[n-1] = s
	} else {
		h.samples = append(h.samples, s)
	}
	base := 0
	for i, p := range h.samples[:len(h.samples)-1] {
		if s.at.Sub(p.at) >= trafficWindow {
			base = i
		}
	}
	h.samples = slices.Delete(h.samples, 0, base)
	return traffic(h.samples[0], s)
}

// traffic is now's totals with what they grew by since base, for each
// device now has, sorted by MAC.
func traffic(base, now trafficSample) state.Traffic {
	var macs []string
	for mac := range now.up {
		macs = append(macs, mac)
	}
	for mac := range now.down {
		if _, ok := now.up[mac]; !ok {
			macs = append(macs, mac)
		}
	}
	// net.HardwareAddr.String has fixed width and lower case: sorting
	// the text sorts the addresses.
	slices.Sort(macs)
	t := state.Traffic{Sampled: now.at}
	for _, mac := range macs {
		up, down := now.up[mac], now.down[mac]
		t.Devices = append(t.Devices, state.DeviceTraffic{MAC: mac, Up: up, Down: down,
			UpMinute: since(base.up[mac], up), DownMinute: since(base.down[mac], down)})
	}
	return t
}

// since is what a total grew by from was to is. A total below what it
// was means its counter started over (its element or the whole table
// was deleted and made again): all of it is new.
func since(was, is uint64) uint64 {
	if is < was {
		return is
	}
	return is - was
}
