package state

// Capture is /perm/capture.json, the ring of configuration packets
// (services/capture) that GET /capture.pcapng streams to Wireshark. Every
// field is optional; a missing file means the defaults.
//
//	{
//	  "packets": 50000,
//	  "memory_mib": 32
//	}
//
// The ring drops its oldest packets when either bound is reached: the
// packet count is what a person thinks in, the memory bound is what
// keeps a flood of large packets from eating the router's RAM (which also
// holds its root filesystem).
type Capture struct {
	// Packets is how many packets the ring holds; default 50,000, 0
	// means the default.
	Packets int `json:"packets,omitempty"`
	// MemoryMiB bounds the packets' bytes in the ring, in MiB; default
	// 32.
	MemoryMiB int `json:"memory_mib,omitempty"`
}

// The capture's files in /perm: the ring as the last clean stop left it,
// and the run's before, moved aside at start (services/capture). Backups
// leave both out: they are large, and of the moment, not of the
// router's setup.
const (
	CaptureFile         = "capture.pcapng"
	CapturePreviousFile = "capture-previous.pcapng"
)

// The defaults and upper bounds of capture.json.
const (
	DefaultCapturePackets   = 50000
	DefaultCaptureMemoryMiB = 32
	maxCapturePackets       = 10000000
	// maxCaptureMemoryMiB keeps the save at a clean stop within the
	// seconds the supervisor waits, on a disk of 100 MB/s or so.
	maxCaptureMemoryMiB = 256
)

// Limits returns the ring's packet count and byte bound, defaults
// applied.
func (c Capture) Limits() (packets, bytes int) {
	packets, mib := c.Packets, c.MemoryMiB
	if packets == 0 {
		packets = DefaultCapturePackets
	}
	if mib == 0 {
		mib = DefaultCaptureMemoryMiB
	}
	return packets, mib << 20
}

func (c *Capture) validate(d *decoded) ConfigErrors {
	var errs ConfigErrors
	if c.Packets < 0 || c.Packets > maxCapturePackets {
		errs = append(errs, d.errorf("packets", "%d is not between 0 (the default, %d) and %d", c.Packets, DefaultCapturePackets, maxCapturePackets))
	}
	if c.MemoryMiB < 0 || c.MemoryMiB > maxCaptureMemoryMiB {
		errs = append(errs, d.errorf("memory_mib", "%d is not between 0 (the default, %d) and %d", c.MemoryMiB, DefaultCaptureMemoryMiB, maxCaptureMemoryMiB))
	}
	return errs
}

// CaptureStatus is what the capture counts, for the status page and
// metrics.
type CaptureStatus struct {
	// Links are uplink0's and lan0's counts, in that order.
	Links []CaptureLink `json:"links"`
	// SocketDrops counts the packets the kernel could not queue for the
	// capture (its socket's buffer was full): on which link they came,
	// the kernel does not say.
	SocketDrops uint64 `json:"socket_drops"`
	// Buffered and BufferedBytes are what the ring holds now.
	Buffered      int `json:"buffered"`
	BufferedBytes int `json:"buffered_bytes"`
}

// CaptureLink is one link's counts since the router started.
type CaptureLink struct {
	Name string `json:"name"`
	// Captured counts the packets the filter selected that reached the
	// ring (some may have been pushed out of it since).
	Captured uint64 `json:"captured"`
	// Dropped counts the packets that reached the capture but not the
	// ring: each was larger than the ring's whole memory bound.
	Dropped uint64 `json:"dropped"`
}
