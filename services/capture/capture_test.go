package capture

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/homerouter/homerouter/state"
)

// readBack reads a pcapng stream with pcapgo's reader and returns its
// interfaces' names and its packets.
func readBack(t *testing.T, r io.Reader, want int) ([]string, []Packet, []pcapgo.NgPacketOptions) {
	t.Helper()
	ng, err := pcapgo.NewNgReader(r, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("reading the pcapng header: %v", err)
	}
	var pkts []Packet
	var opts []pcapgo.NgPacketOptions
	for len(pkts) < want {
		data, ci, o, err := ng.ReadPacketDataWithOptions()
		if err != nil {
			t.Fatalf("reading packet %d of %d: %v", len(pkts)+1, want, err)
		}
		pkts = append(pkts, Packet{Time: ci.Timestamp, Link: ci.InterfaceIndex, Data: data, Outbound: o.Flags != nil && o.Flags.Direction == pcapgo.NgEpbFlagDirectionOutbound})
		opts = append(opts, o)
	}
	var names []string
	for i := range ng.NInterfaces() {
		intf, err := ng.Interface(i)
		if err != nil {
			t.Fatal(err)
		}
		if intf.LinkType != layers.LinkTypeEthernet {
			t.Errorf("interface %d has link type %v, want Ethernet", i, intf.LinkType)
		}
		if intf.TimestampResolution != 9 {
			t.Errorf("interface %d has timestamp resolution %v, want 9 (nanoseconds)", i, intf.TimestampResolution)
		}
		names = append(names, intf.Name)
	}
	return names, pkts, opts
}

func testPackets(t *testing.T) []Packet {
	base := time.Date(2026, 12, 6, 21, 0, 0, 123456789, time.UTC)
	return []Packet{
		{Time: base, Link: 0, Outbound: true, Data: frame(t, udp4(68, 67)...)},
		{Time: base.Add(1), Link: 0, Data: frame(t, udp4(67, 68)...)},
		{Time: base.Add(time.Millisecond), Link: 1, Data: frame(t, icmp6(134)...)},
		{Time: base.Add(time.Second), Link: 1, Outbound: true, Data: frame(t, udp6(547, 546)...)},
	}
}

func checkPackets(t *testing.T, got, want []Packet) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d packets, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Time.Equal(w.Time) || g.Link != w.Link || g.Outbound != w.Outbound || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("packet %d: time %v link %d outbound %v, %d bytes; want %v %d %v, %d bytes",
				i, g.Time, g.Link, g.Outbound, len(g.Data), w.Time, w.Link, w.Outbound, len(w.Data))
		}
	}
}

// TestPcapng: what the writer writes, pcapgo reads back the same, with
// nanosecond timestamps, both links named, directions and a drop count.
func TestPcapng(t *testing.T) {
	var buf bytes.Buffer
	w, err := newWriter(&buf, "test")
	if err != nil {
		t.Fatal(err)
	}
	want := testPackets(t)
	if err := w.write(want[:2], 0); err != nil {
		t.Fatal(err)
	}
	if err := w.write(want[2:], 7); err != nil {
		t.Fatal(err)
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	names, got, opts := readBack(t, &buf, len(want))
	if len(names) != 2 || names[0] != "uplink0" || names[1] != "lan0" {
		t.Errorf("interfaces %q, want uplink0 and lan0", names)
	}
	checkPackets(t, got, want)
	if opts[2].DropCount == nil || *opts[2].DropCount != 7 {
		t.Errorf("the packet after a gap has drop count %v, want 7", opts[2].DropCount)
	}
	if opts[0].DropCount != nil {
		t.Errorf("the first packet has a drop count %v, want none", *opts[0].DropCount)
	}
}

func newTestService(t *testing.T) *Service {
	dir := t.TempDir()
	return New(state.NewStore(dir), log.New(io.Discard, "", 0), dir, "test")
}

// TestServeCapture: ?live=0 returns the ring; without it the stream goes
// on with packets added after it began.
func TestServeCapture(t *testing.T) {
	s := newTestService(t)
	pkts := testPackets(t)
	for _, p := range pkts[:2] {
		s.ring.Add(p)
	}
	srv := httptest.NewServer(http.HandlerFunc(s.serveCapture))
	defer srv.Close()

	// More than a batch.
	big := NewRing(1000, 1<<20)
	var many []Packet
	for i := range 2*streamBatch + 3 {
		p := pkts[i%len(pkts)]
		p.Time = p.Time.Add(time.Duration(i) * time.Second)
		big.Add(p)
		many = append(many, p)
	}
	rec := httptest.NewRecorder()
	(&Service{ring: big, version: "test"}).serveCapture(rec, httptest.NewRequest("GET", "/capture.pcapng?live=0", nil))
	_, got, _ := readBack(t, rec.Body, len(many))
	checkPackets(t, got, many)
	if rest, _ := io.ReadAll(rec.Body); len(rest) != 0 {
		t.Errorf("%d bytes after the last packet", len(rest))
	}

	resp, err := http.Get(srv.URL + "?live=0")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body) // ends: not live
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-pcapng" {
		t.Errorf("Content-Type %q", ct)
	}
	_, got, _ = readBack(t, bytes.NewReader(body), 2)
	checkPackets(t, got, pkts[:2])

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	go func() {
		for _, p := range pkts[2:] {
			s.ring.Add(p)
		}
	}()
	_, got, _ = readBack(t, resp.Body, len(pkts))
	checkPackets(t, got, pkts)
}

// TestPrevious: a clean stop writes the ring, and the next start serves
// it as the previous run's capture, however often Run restarts.
func TestPrevious(t *testing.T) {
	s := newTestService(t)
	rec := httptest.NewRecorder()
	s.servePrevious(rec, httptest.NewRequest("GET", "/capture-previous.pcapng", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("with no previous run: %d, want 404", rec.Code)
	}
	pkts := testPackets(t)
	for _, p := range pkts {
		s.ring.Add(p)
	}
	s.save() // as Run does when the router stops
	if _, err := os.Stat(filepath.Join(s.dir, File)); err != nil {
		t.Fatalf("the stop wrote no capture: %v", err)
	}
	// A save cut short before: its temp file is gone after the start.
	halfWritten := filepath.Join(s.dir, ".capture.pcapng.tmp123")
	if err := os.WriteFile(halfWritten, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}

	next := New(s.st, s.logger, s.dir, "test")
	for range 2 { // a restart of Run moves nothing again
		next.moved.Do(next.movePrevious)
	}
	rec = httptest.NewRecorder()
	next.servePrevious(rec, httptest.NewRequest("GET", "/capture-previous.pcapng", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("previous run's capture: %d %s", rec.Code, rec.Body)
	}
	_, got, _ := readBack(t, rec.Body, len(pkts))
	checkPackets(t, got, pkts)
	if _, err := os.Stat(filepath.Join(s.dir, File)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after the start moved it: %v", File, err)
	}
	if _, err := os.Stat(halfWritten); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a half-written capture is still there after the start: %v", err)
	}
}
