// Package capture keeps the router's configuration packets in a ring in
// memory, for a person debugging an ISP's DHCP server or a LAN device:
// the DHCPv4, DHCPv6 and neighbour discovery frames on uplink0 and lan0,
// sent and received, selected in the kernel by a BPF filter. GET
// /capture.pcapng streams them to Wireshark, oldest first and then live.
//
// The ring is written to /perm (capture.pcapng) when the router stops
// cleanly, which includes the stop before an update's kexec, and moved
// aside (capture-previous.pcapng) at the next start, where GET
// /capture-previous.pcapng serves it: the packets that led up to a
// reboot are what a person wants to see after it. A run that crashed or
// lost power writes nothing, so the previous capture is then that of the
// last run that stopped cleanly.
package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/homerouter/homerouter/state"
)

// ServiceName is the capture's name in the supervisor and /health.json.
const ServiceName = "capture"

// The files in the perm directory: this run's packets, written at a
// clean stop, and the previous run's, moved aside at start.
const (
	File         = state.CaptureFile
	PreviousFile = state.CapturePreviousFile
)

// statsInterval is how often the kernel's drop counts are read and the
// counters published.
const statsInterval = 5 * time.Second

// Service is the capture.
type Service struct {
	st      *state.Store
	logger  *log.Logger
	dir     string
	version string
	ring    *Ring // outlives a restart of Run: the packets are the point
	counts  [len(Links)]linkCounts
	// socketDrops are the packets the kernel could not queue on the
	// capture's socket: one socket for every link, so the kernel does not
	// say on which link they were.
	socketDrops atomic.Uint64
	moved       sync.Once // the previous run's file, at the first Run
}

// linkCounts are one link's counters since the router started.
type linkCounts struct{ captured, dropped atomic.Uint64 }

// New returns the capture of the router whose perm directory is dir;
// version goes in the pcapng files' section header.
func New(st *state.Store, logger *log.Logger, dir, version string) *Service {
	packets, bytes := st.Capture.Value().Limits()
	return &Service{st: st, logger: logger, dir: dir, version: version, ring: NewRing(packets, bytes)}
}

// Run captures on uplink0 and lan0, follows capture.json's bounds, and
// when ctx is done writes the ring to the perm directory.
//
// It captures with one socket on every link, from the moment it starts,
// rather than one per link once netconfig has named it: the router's
// first DHCP packets go out the moment uplink0 has its name, and a
// socket opened then would race them. The socket is open before, and
// each packet is put down to uplink0 or lan0 by its interface index
// (which a rename keeps); packets on other links are not kept.
func (s *Service) Run(ctx context.Context) error {
	s.moved.Do(s.movePrevious)
	conn, err := packet.Listen(&net.Interface{Name: "any"}, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: Filter()})
	if err != nil {
		return fmt.Errorf("opening the capture socket: %w", err)
	}
	defer conn.Close()
	var wg sync.WaitGroup
	rctx, cancel := context.WithCancel(ctx)
	wg.Go(func() { s.follow(rctx, conn) })
	err = s.read(rctx, conn)
	cancel()
	wg.Wait()
	if ctx.Err() != nil {
		s.save()
		return nil
	}
	return err
}

// read reads conn until ctx is done, keeping what comes on uplink0 and
// lan0.
func (s *Service) read(ctx context.Context, conn *packet.Conn) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<16)
	var links [len(Links)]int // their interface indexes, as last looked up
	for {
		// recvfrom(2) by hand: packet.Conn's ReadFrom does not say on
		// which link a packet came, nor whether the router sent it.
		var n int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("capture: %w", err)
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok {
			continue
		}
		i := slices.Index(links[:], ll.Ifindex)
		if i < 0 {
			// A link not seen yet, or renamed: look again, now. The
			// Links topic has it before any service sends on it, as
			// they all wait for netconfig to publish it there.
			links = s.linkIndexes()
			if i = slices.Index(links[:], ll.Ifindex); i < 0 || ll.Ifindex == 0 {
				continue
			}
		}
		p := Packet{Time: time.Now(), Link: i, Outbound: ll.Pkttype == unix.PACKET_OUTGOING, Data: bytes.Clone(buf[:n])}
		if s.ring.Add(p) {
			s.counts[i].captured.Add(1)
		} else {
			s.counts[i].dropped.Add(1)
		}
	}
}

// linkIndexes returns the interface indexes of Links, 0 for one that
// netconfig has not named (yet).
func (s *Service) linkIndexes() [len(Links)]int {
	var idx [len(Links)]int
	links := s.st.Links.Value()
	for i, name := range Links {
		if l, ok := state.FindLink(links, name); ok {
			idx[i] = l.Index
		}
	}
	return idx
}

// follow applies capture.json's bounds as they change, reads the
// kernel's drop count and publishes the counters, until ctx is done.
func (s *Service) follow(ctx context.Context, conn *packet.Conn) {
	var applied state.Capture
	for {
		w := state.WatchAll(s.st.Capture)
		if cfg := s.st.Capture.Value(); cfg != applied {
			packets, bytes := cfg.Limits()
			s.ring.SetLimits(packets, bytes)
			applied = cfg
		}
		if st, err := conn.Stats(); err == nil {
			s.socketDrops.Add(uint64(st.Drops)) // the kernel's count starts over at each read
		}
		s.publish()
		wctx, cancel := context.WithTimeout(ctx, statsInterval)
		w.Wait(wctx)
		cancel()
		if ctx.Err() != nil {
			s.publish()
			return
		}
	}
}

// publish publishes the counters, when they changed.
func (s *Service) publish() {
	var status state.CaptureStatus
	for i, name := range Links {
		status.Links = append(status.Links, state.CaptureLink{
			Name:     name,
			Captured: s.counts[i].captured.Load(),
			Dropped:  s.counts[i].dropped.Load(),
		})
	}
	status.SocketDrops = s.socketDrops.Load()
	status.Buffered, status.BufferedBytes = s.ring.Len()
	s.st.CaptureStatus.PublishIfChanged(status)
}

// movePrevious moves the last clean stop's capture aside, for GET
// /capture-previous.pcapng, before this run's is written over it, and
// removes what a save cut short left (a stop that took longer than the
// supervisor waits, on a slow disk with a large ring).
func (s *Service) movePrevious() {
	err := os.Rename(filepath.Join(s.dir, File), filepath.Join(s.dir, PreviousFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.logger.Printf("keeping the previous run's capture: %v", err)
	}
	temps, _ := filepath.Glob(filepath.Join(s.dir, state.AtomicTempPattern(File)))
	for _, t := range temps {
		if err := os.Remove(t); err != nil {
			s.logger.Printf("removing a capture left half written: %v", err)
		}
	}
}

// save writes the ring to the perm directory, for the next run, a batch
// at a time.
func (s *Service) save() {
	path := filepath.Join(s.dir, File)
	var n int
	err := state.WriteAtomic(path, 0o600, func(w io.Writer) error {
		pw, err := newWriter(w, s.version)
		if err != nil {
			return err
		}
		for next := uint64(0); ; {
			pkts, after, _, _ := s.ring.Since(next, streamBatch)
			if len(pkts) == 0 {
				break
			}
			if err := pw.write(pkts, 0); err != nil {
				return err
			}
			n += len(pkts)
			next = after
		}
		return pw.flush()
	})
	if err != nil {
		s.logger.Printf("saving the capture for the next run: %v", err)
		return
	}
	s.logger.Printf("saved %d packets in %s, for the next run", n, path)
}
