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
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/state"
)

// ServiceName is the capture's name in the supervisor and /health.json.
const ServiceName = "capture"

// The files in the perm directory: this run's packets, written at a
// clean stop, and the previous run's, moved aside at start. Backups
// leave both out.
const (
	File         = "capture.pcapng"
	PreviousFile = "capture-previous.pcapng"
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
	moved   sync.Once // the previous run's file, at the first Run
}

// linkCounts are one link's counters since the router started.
type linkCounts struct{ captured, dropped atomic.Uint64 }

// New returns the capture of the router whose perm directory is dir;
// version goes in the pcapng files' section header.
func New(st *state.Store, logger *log.Logger, dir, version string) *Service {
	packets, bytes := st.Capture.Value().Limits()
	return &Service{st: st, logger: logger, dir: dir, version: version, ring: NewRing(packets, bytes)}
}

// Run captures on uplink0 and lan0, each for as long as it exists,
// follows capture.json's bounds, and when ctx is done writes the ring to
// the perm directory.
func (s *Service) Run(ctx context.Context) error {
	s.moved.Do(s.movePrevious)
	g, gctx := errgroup.WithContext(ctx)
	for i, name := range Links {
		g.Go(func() error {
			return services.Follow[services.Link]{
				Watch: []state.Watcher{s.st.Links},
				Key: func() (services.Link, bool) {
					return services.LinkKey(s.st.Links.Value(), name, nil)
				},
				Serve:  func(ctx context.Context, k services.Link) error { return s.listen(ctx, i, k) },
				Logger: s.logger,
			}.Run(gctx)
		})
	}
	g.Go(func() error { s.follow(gctx); return nil })
	err := g.Wait()
	if ctx.Err() != nil {
		s.save()
		return nil
	}
	return err
}

// listen captures on link k, Links[i], until ctx is done.
func (s *Service) listen(ctx context.Context, i int, k services.Link) error {
	ifi := &net.Interface{Index: k.Index, Name: k.Name}
	conn, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: Filter()})
	if err != nil {
		return fmt.Errorf("capture on %s: %w", k.Name, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// Frames from the link's own address are the router's: the address
	// the socket is bound to is the link's, spoofed or not.
	var own net.HardwareAddr
	if a, ok := conn.LocalAddr().(*packet.Addr); ok {
		own = a.HardwareAddr
	}
	c := &s.counts[i]
	statsDone := make(chan struct{})
	defer func() { <-statsDone }()
	go func() {
		defer close(statsDone)
		t := time.NewTicker(statsInterval)
		defer t.Stop()
		for {
			if st, err := conn.Stats(); err == nil {
				c.dropped.Add(uint64(st.Drops)) // the kernel's count starts over at each read
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	buf := make([]byte, 1<<16)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("capture on %s: %w", k.Name, err)
		}
		data := bytes.Clone(buf[:n])
		out := n >= 12 && own != nil && bytes.Equal(data[6:12], own)
		if s.ring.Add(Packet{Time: time.Now(), Link: i, Outbound: out, Data: data}) {
			c.captured.Add(1)
		} else {
			c.dropped.Add(1)
		}
	}
}

// follow applies capture.json's bounds as they change and publishes the
// counters, until ctx is done.
func (s *Service) follow(ctx context.Context) {
	t := time.NewTicker(statsInterval)
	defer t.Stop()
	var applied state.Capture
	for {
		cfg, _ := s.st.Capture.Get()
		changed := s.st.Capture.Changed()
		if cfg != applied {
			packets, bytes := cfg.Limits()
			s.ring.SetLimits(packets, bytes)
			applied = cfg
		}
		s.publish()
		select {
		case <-ctx.Done():
			s.publish()
			return
		case <-changed:
		case <-t.C:
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
	status.Buffered, status.BufferedBytes = s.ring.Len()
	s.st.CaptureStatus.PublishIfChanged(status)
}

// movePrevious moves the last clean stop's capture aside, for GET
// /capture-previous.pcapng, before this run's is written over it.
func (s *Service) movePrevious() {
	err := os.Rename(filepath.Join(s.dir, File), filepath.Join(s.dir, PreviousFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.logger.Printf("keeping the previous run's capture: %v", err)
	}
}

// save writes the ring to the perm directory, for the next run.
func (s *Service) save() {
	pkts, _, _, _ := s.ring.Since(0)
	path := filepath.Join(s.dir, File)
	err := state.WriteAtomic(path, 0o600, func(w io.Writer) error {
		pw, err := newWriter(w, s.version)
		if err != nil {
			return err
		}
		if err := pw.write(pkts, 0); err != nil {
			return err
		}
		return pw.flush()
	})
	if err != nil {
		s.logger.Printf("saving the capture for the next run: %v", err)
		return
	}
	s.logger.Printf("saved %d packets in %s, for the next run", len(pkts), path)
}
