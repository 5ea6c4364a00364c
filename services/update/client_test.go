package update

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/state"
)

// router is one boot of a fake router for the client: its Store, its
// update service running, and its pages.
type router struct {
	s    *Service
	stop func()
	mux  *http.ServeMux
}

// routerFor boots a router with the update slots of dir (shared by every
// boot, as /perm is), boot's command line and partition; healthy or not,
// as version.
func routerFor(t *testing.T, dir string, boot Boot, version string, healthyBoot bool, request func(context.Context, state.PlatformRequest) error) *router {
	t.Helper()
	st := state.NewStore(t.TempDir())
	s := New(st, testLogger(t), "", boot)
	s.slots, s.request, s.hold = slots{dir: dir}, request, 50*time.Millisecond
	st.Router.Publish(state.RouterInfo{Version: version})
	if healthyBoot {
		healthy(st)
		st.Router.Publish(state.RouterInfo{Version: version})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health.json", func(w http.ResponseWriter, r *http.Request) {
		h := services.CurrentHealth(st)
		if h.FirstError != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(h)
	})
	for _, e := range s.Endpoints() {
		mux.Handle(e.Pattern, e.Handler)
	}
	return &router{s: s, stop: run(t, s), mux: mux}
}

// TestClient runs `homerouter update` against a fake router whose kexec
// boots the next fake router on the same slots: a good image commits; a
// bad one rolls back, and the client says which, with the downtime.
func TestClient(t *testing.T) {
	for _, tc := range []struct {
		name          string
		network       bool // booted over the network: no boot partition
		healthyB      bool
		unhealthyA    bool // the old image is unhealthy too (the ISP is down)
		wantCommitted bool
		wantVersion   string
		wantLast      string
	}{
		{name: "a good image", healthyB: true, wantCommitted: true, wantVersion: "vB", wantLast: "committed slot b, version vB"},
		{name: "an unhealthy image", wantVersion: "vA", wantLast: `rolled back from slot b to slot "a": not healthy within 200ms`},
		{name: "an unhealthy image, and the ISP down", unhealthyA: true, wantVersion: "vA", wantLast: `rolled back from slot b to slot "a": not healthy within 200ms`},
		{name: "booted over the network: a good image", network: true, healthyB: true, wantCommitted: true, wantVersion: "vB", wantLast: "committed slot a, version vB"},
		{name: "booted over the network: an unhealthy image", network: true, wantVersion: "vA", wantLast: `rolled back from slot a to slot "": not healthy within 200ms`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "update")
			bootPart := bootDir(t, "A")
			if tc.network {
				bootPart = ""
			}
			var current atomic.Pointer[router]
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if rt := current.Load(); rt != nil {
					rt.mux.ServeHTTP(w, r)
					return
				}
				http.Error(w, "down", http.StatusServiceUnavailable)
			}))
			defer srv.Close()

			// kexec: the router goes away, then the image of the
			// request boots with its command line.
			var kexec func(ctx context.Context, r state.PlatformRequest) error
			kexec = func(_ context.Context, r state.PlatformRequest) error {
				go func() {
					old := current.Swap(nil)
					old.stop()
					time.Sleep(50 * time.Millisecond)
					// A rollback's reboot (booted over the network):
					// the network's image, vA, with its command line.
					trial := strings.Contains(r.Cmdline, TrialParam)
					version, ok := "vA", !tc.unhealthyA
					if trial {
						version, ok = "vB", tc.healthyB
						// A shorter deadline than the switch allows,
						// so that the test does not wait 10 s.
						us, _ := (slots{dir: dir}).load()
						us.Deadline = state.Duration(200 * time.Millisecond)
						(slots{dir: dir}).save(us)
					}
					current.Store(routerFor(t, dir, Boot{Cmdline: r.Cmdline, BootDir: bootPart}, version, ok, kexec))
				}()
				return nil
			}
			current.Store(routerFor(t, dir, Boot{Cmdline: "console=ttyS0", BootDir: bootPart}, "vA", true, kexec))
			waitFor(t, "the router up", func() bool { _, v := current.Load().s.st.Update.Get(); return v > 0 })

			kernel, initramfs := filepath.Join(t.TempDir(), "vmlinuz"), filepath.Join(t.TempDir(), "initramfs")
			os.WriteFile(kernel, fakeKernel("B"), 0o644)
			os.WriteFile(initramfs, []byte("initramfs B"), 0o644)
			var log strings.Builder
			c := Client{RouterClient: services.RouterClient{Router: srv.URL, Password: "unused here"}, Deadline: 10 * time.Second, Log: &log, Poll: 10 * time.Millisecond}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := c.Update(ctx, kernel, initramfs)
			if err != nil {
				t.Fatalf("%v\n%s", err, log.String())
			}
			if res.Committed != tc.wantCommitted || res.Version != tc.wantVersion || !strings.HasPrefix(res.Last, tc.wantLast) || res.Downtime <= 0 {
				t.Errorf("result %+v, want committed %v, version %s, last %q\n%s", res, tc.wantCommitted, tc.wantVersion, tc.wantLast, log.String())
			}
			t.Logf("%+v\n%s", res, log.String())
			current.Load().stop()
		})
	}
}

func testLogger(t *testing.T) *log.Logger { return log.New(io.Discard, "", 0) }

// TestClientBackup: the backup `homerouter update` saves first is
// written as `homerouter backup` writes one (services.SaveBackup: named
// by its time, the owner's alone, by a rename), and a router without
// backups is no error.
func TestClientBackup(t *testing.T) {
	const archive = "the archive"
	found := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pw, _ := r.BasicAuth(); r.URL.Path != "/backup.tar.gz" || pw != "pw" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		if !found {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(archive))
	}))
	defer srv.Close()
	dir := t.TempDir()
	var logged strings.Builder
	c := &Client{RouterClient: services.RouterClient{Router: srv.URL, Password: "pw"}, BackupDir: dir, Log: &logged}
	before := time.Now()
	if err := c.backup(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("the backup directory holds %v, %v; want one backup", entries, err)
	}
	name := entries[0].Name()
	named := false
	for s := before.Truncate(time.Second); !s.After(after); s = s.Add(time.Second) {
		named = named || name == services.BackupFileName(s)
	}
	fi, _ := entries[0].Info()
	b, _ := os.ReadFile(filepath.Join(dir, name))
	if !named || fi.Mode().Perm() != 0o600 || string(b) != archive {
		t.Errorf("saved %s %v %q; want services.BackupFileName of now, -rw-------, %q", name, fi.Mode(), b, archive)
	}
	if !strings.Contains(logged.String(), "saved the router's backup in "+filepath.Join(dir, name)) {
		t.Errorf("the client said %q", logged.String())
	}

	found = false
	logged.Reset()
	if err := c.backup(context.Background()); err != nil {
		t.Errorf("a router without backups: %v, want no error", err)
	}
	if !strings.Contains(logged.String(), "no backup") {
		t.Errorf("the client said %q, want that the router has no backup", logged.String())
	}
}
