package capture

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/homerouter/homerouter/services"
)

// Endpoints are the capture's pages. Both need the router's password: the
// packets name every device on the LAN.
//
//	curl -N -u :PASSWORD http://192.168.42.1/capture.pcapng | wireshark -k -i -
func (s *Service) Endpoints() []services.Endpoint {
	return []services.Endpoint{
		{Pattern: "GET /capture.pcapng", Handler: http.HandlerFunc(s.serveCapture), NeedsPassword: true},
		{Pattern: "GET /capture-previous.pcapng", Handler: http.HandlerFunc(s.servePrevious), NeedsPassword: true},
	}
}

// serveCapture streams the ring as pcapng, oldest packet first, then
// each new packet as it comes, until the client goes away or the router
// stops; with ?live=0 it ends after the ring. It takes the ring in
// batches, so that a connection holds a batch's packets, not a copy of
// the ring, and gives each batch streamWriteTimeout to be sent: a client
// that stops reading is dropped rather than pinning the router's memory.
// One that reads too slowly to keep up misses packets, as the ring goes
// on without it; the packet after the gap carries the number missed
// (pcapng's drop count, which Wireshark shows).
func (s *Service) serveCapture(w http.ResponseWriter, r *http.Request) {
	live := r.URL.Query().Get("live") != "0"
	w.Header().Set("Content-Type", "application/x-pcapng")
	w.Header().Set("Content-Disposition", `attachment; filename="homerouter-capture.pcapng"`)
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	pw, err := newWriter(w, s.version)
	if err != nil {
		return
	}
	var next uint64
	for {
		pkts, n, missed, wake := s.ring.Since(next, streamBatch)
		next = n
		rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if pw.write(pkts, missed) != nil || pw.flush() != nil {
			return // the client went away, or stopped reading
		}
		if len(pkts) == streamBatch {
			continue // the ring holds more
		}
		if !live {
			return
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-wake:
		}
	}
}

// streamBatch is how many packets serveCapture takes from the ring at a
// time, and streamWriteTimeout how long a client has to take them.
const (
	streamBatch        = 256
	streamWriteTimeout = 30 * time.Second
)

// servePrevious serves the capture of the last run that stopped cleanly.
func (s *Service) servePrevious(w http.ResponseWriter, r *http.Request) {
	f, err := os.Open(filepath.Join(s.dir, PreviousFile))
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "no capture of a previous run: the router writes one when it stops cleanly (a reboot, a power-off or an update), not when it crashes or loses power", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-pcapng")
	w.Header().Set("Content-Disposition", `attachment; filename="homerouter-capture-previous.pcapng"`)
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}
