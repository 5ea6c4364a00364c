package update

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homerouter/homerouter/state"
)

// fakeKernel is enough of a bzImage for checkKernel.
func fakeKernel(tag string) []byte {
	b := make([]byte, 0x400)
	copy(b[0x202:], "HdrS")
	copy(b[0x300:], tag)
	return b
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// requests records the platform requests a test's service makes.
type requests struct {
	mu  sync.Mutex
	got []state.PlatformRequest
	err error
}

func (r *requests) request(_ context.Context, req state.PlatformRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, req)
	return r.err
}

func (r *requests) all() []state.PlatformRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]state.PlatformRequest(nil), r.got...)
}

func newTestService(t *testing.T, boot Boot) (*Service, *requests, string) {
	t.Helper()
	dir := t.TempDir()
	st := state.NewStore(dir)
	s := New(st, log.New(io.Discard, "", 0), dir, boot)
	s.hold = 200 * time.Millisecond
	r := &requests{}
	s.request = r.request
	return s, r, dir
}

// bootDir is a boot partition holding image tag.
func bootDir(t *testing.T, tag string) string {
	t.Helper()
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, kernelFile), fakeKernel(tag), 0o644)
	os.WriteFile(filepath.Join(d, initramfsFile), []byte("initramfs "+tag), 0o644)
	return d
}

// form is a multipart upload.
func form(t *testing.T, fields map[string]string, files map[string][]byte) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for _, k := range []string{"kernel", "initramfs"} {
		if data, ok := files[k]; ok {
			fw, _ := mw.CreateFormFile(k, k)
			fw.Write(data)
		}
	}
	mw.Close()
	return &b, mw.FormDataContentType()
}

// run starts s.Run and returns a function that stops it and waits.
func run(t *testing.T, s *Service) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// waitFor waits for cond, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5s", what)
		}
	}
}

// TestFirstBootFromDisk: the image on the boot partition becomes slot a.
func TestFirstBootFromDisk(t *testing.T) {
	boot := bootDir(t, "A")
	s, _, dir := newTestService(t, Boot{Cmdline: "BOOT_IMAGE=/vmlinuz console=ttyS0 panic=10 initrd=/initramfs.cpio.gz", BootDir: boot})
	stop := run(t, s)
	waitFor(t, "slot a", func() bool { return s.st.Update.Value().Slot == "a" })
	stop()
	if err := s.slots.verify("a"); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.slots.cmdline("a"); c != "console=ttyS0 panic=10" {
		t.Errorf("slot a's command line %q", c)
	}
	us, err := s.slots.load()
	if err != nil || us.Active != "a" {
		t.Errorf("state %+v, %v", us, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "update", "a", kernelFile)); err != nil {
		t.Error(err)
	}
}

// TestUpload: a good upload lands in the inactive slot; a wrong password
// is httpd's (see its tests); a truncated upload, a checksum mismatch, a
// missing sum or something that is not a kernel are refused with a clear
// error, and leave both slots as they were.
func TestUpload(t *testing.T) {
	kernel, initramfs := fakeKernel("B"), []byte("initramfs B")
	good := map[string]string{"kernel_sha256": sum(kernel), "initramfs_sha256": sum(initramfs), "cmdline": "console=ttyS0 homerouter.trial=a"}
	files := map[string][]byte{"kernel": kernel, "initramfs": initramfs}
	for _, tc := range []struct {
		name     string
		fields   map[string]string
		files    map[string][]byte
		wantCode int
		want     string
	}{
		{"good", good, files, 200, `"slot":"b"`},
		{"checksum mismatch", map[string]string{"kernel_sha256": sum(kernel), "initramfs_sha256": sum([]byte("other"))}, files, 400,
			"checksum mismatch: the initramfs received has SHA-256 " + sum(initramfs) + ", initramfs_sha256 says " + sum([]byte("other"))},
		{"no sum", map[string]string{"kernel_sha256": sum(kernel)}, files, 400, "no initramfs_sha256 in the form"},
		{"no kernel", good, map[string][]byte{"initramfs": initramfs}, 400, "no kernel in the form"},
		{"not a kernel", map[string]string{"kernel_sha256": sum(initramfs), "initramfs_sha256": sum(initramfs)},
			map[string][]byte{"kernel": initramfs, "initramfs": initramfs}, 400, "the kernel is not a Linux kernel image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, _ := newTestService(t, Boot{Cmdline: "console=ttyS0", BootDir: bootDir(t, "A")})
			stop := run(t, s)
			defer stop()
			waitFor(t, "slot a", func() bool { return s.st.Update.Value().Slot == "a" })
			// An earlier upload in slot b, which a refused one must
			// not damage either.
			if tc.name != "good" {
				os.MkdirAll(s.slots.path("b"), 0o755)
				os.WriteFile(s.slots.path("b", kernelFile), []byte("earlier"), 0o644)
			}

			body, ctype := form(t, tc.fields, tc.files)
			req := httptest.NewRequest("POST", "/update", body)
			req.Header.Set("Content-Type", ctype)
			rec := httptest.NewRecorder()
			s.upload(rec, req)
			if rec.Code != tc.wantCode || !strings.Contains(rec.Body.String(), tc.want) {
				t.Errorf("%d %q, want %d with %q", rec.Code, rec.Body, tc.wantCode, tc.want)
			}
			if err := s.slots.verify("a"); err != nil {
				t.Errorf("the active slot: %v", err)
			}
			if _, err := os.Stat(s.slots.path("b.new")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the upload's temporary slot is left: %v", err)
			}
			if tc.wantCode != 200 {
				if b, _ := os.ReadFile(s.slots.path("b", kernelFile)); string(b) != "earlier" {
					t.Errorf("slot b changed by a refused upload: %q", b)
				}
				return
			}
			if err := s.slots.verify("b"); err != nil {
				t.Error(err)
			}
			if c, _ := s.slots.cmdline("b"); c != "console=ttyS0" {
				t.Errorf("slot b's command line %q: the trial flag belongs to the switch only", c)
			}
		})
	}
}

// TestUploadTruncated: a client that goes away mid-upload (its
// Content-Length promised more) is refused as a truncated upload, at any
// point of the form, and the slots stay as they were.
func TestUploadTruncated(t *testing.T) {
	s, _, _ := newTestService(t, Boot{Cmdline: "console=ttyS0", BootDir: bootDir(t, "A")})
	stop := run(t, s)
	defer stop()
	waitFor(t, "slot a", func() bool { return s.st.Update.Value().Slot == "a" })
	srv := httptest.NewServer(http.HandlerFunc(s.upload))
	defer srv.Close()
	kernel, initramfs := fakeKernel("B"), []byte("initramfs B")
	body, ctype := form(t, map[string]string{"kernel_sha256": sum(kernel), "initramfs_sha256": sum(initramfs)},
		map[string][]byte{"kernel": kernel, "initramfs": initramfs})
	full := body.Bytes()
	for _, cut := range []int{10, 300, len(full) / 2, len(full) - 100, len(full) - 3} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /update HTTP/1.1\r\nHost: router\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", ctype, len(full))
		conn.Write(full[:cut])
		conn.(*net.TCPConn).CloseWrite()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		b, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "truncated upload") {
			t.Errorf("cut at %d of %d: %d %q, want 400, truncated upload", cut, len(full), resp.StatusCode, b)
		}
		if _, err := os.Stat(s.slots.path("b")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cut at %d: slot b exists after a truncated upload", cut)
		}
	}
	if err := s.slots.verify("a"); err != nil {
		t.Error(err)
	}
}

// upload puts kernel tag into the inactive slot through the handler.
func uploadImage(t *testing.T, s *Service, tag string) string {
	t.Helper()
	kernel, initramfs := fakeKernel(tag), []byte("initramfs "+tag)
	body, ctype := form(t, map[string]string{"kernel_sha256": sum(kernel), "initramfs_sha256": sum(initramfs)},
		map[string][]byte{"kernel": kernel, "initramfs": initramfs})
	req := httptest.NewRequest("POST", "/update", body)
	req.Header.Set("Content-Type", ctype)
	rec := httptest.NewRecorder()
	s.upload(rec, req)
	var u Uploaded
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &u) != nil {
		t.Fatalf("upload: %d %s", rec.Code, rec.Body)
	}
	return u.Slot
}

func switchTo(s *Service, slot, deadline string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/update/switch", strings.NewReader("slot="+slot+"&deadline="+deadline))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.switchTo(rec, req)
	return rec
}

// TestSwitch: the switch records the trial and asks for a kexec of the
// slot with the trial flag; when PID 1 refuses (under run, a kernel that
// does not load), the state is as before and the router runs on.
func TestSwitch(t *testing.T) {
	s, reqs, _ := newTestService(t, Boot{Cmdline: "console=ttyS0", BootDir: bootDir(t, "A")})
	stop := run(t, s)
	defer stop()
	waitFor(t, "slot a", func() bool { return s.st.Update.Value().Slot == "a" })
	slot := uploadImage(t, s, "B")

	for _, tc := range []struct{ slot, deadline, want string }{
		{"a", "", "switch to the slot the upload named (not the active one"},
		{"c", "", `slot "c"`},
		{"b", "5s", "want a duration from 10s to 1h"},
	} {
		if rec := switchTo(s, tc.slot, tc.deadline); rec.Code != 400 || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("switch to %q, deadline %q: %d %q, want 400 with %q", tc.slot, tc.deadline, rec.Code, rec.Body, tc.want)
		}
	}

	reqs.err = errors.New("platform request: not PID 1")
	if rec := switchTo(s, slot, "30s"); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "not PID 1 (the router runs on as it was)") {
		t.Errorf("refused kexec: %d %q", rec.Code, rec.Body)
	}
	if us, _ := s.slots.load(); us.Trial != "" || us.Active != "a" {
		t.Errorf("after a refused kexec the state is %+v, want no trial", us)
	}

	reqs.err = nil
	if rec := switchTo(s, slot, "30s"); rec.Code != http.StatusAccepted {
		t.Fatalf("switch: %d %q", rec.Code, rec.Body)
	}
	us, _ := s.slots.load()
	if us.Trial != "b" || us.Active != "a" || time.Duration(us.Deadline) != 30*time.Second || us.Attempts != 1 {
		t.Errorf("state after the switch: %+v", us)
	}
	got := reqs.all()
	want := state.PlatformRequest{Action: state.Kexec, Kernel: s.slots.path("b", kernelFile), Initramfs: s.slots.path("b", initramfsFile),
		Cmdline: "console=ttyS0 homerouter.trial=b"}
	if len(got) != 2 || got[1] != want {
		t.Errorf("platform requests %+v, want the last %+v", got, want)
	}

	// A slot damaged after its upload is not switched to.
	os.WriteFile(s.slots.path("b", initramfsFile), []byte("bit rot"), 0o644)
	if err := s.slots.save(state.UpdateState{Active: "a"}); err != nil {
		t.Fatal(err)
	}
	if rec := switchTo(s, slot, ""); rec.Code != 400 || !strings.Contains(rec.Body.String(), "initramfs.cpio.gz has SHA-256") {
		t.Errorf("a damaged slot: %d %q", rec.Code, rec.Body)
	}
}

// fakeClock is a trial's clock that a test steps: its timers fire in
// advance, not in real time.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]bool
	set    int // timers set so far
}

type fakeTimer struct {
	at time.Time
	n  int // set's count when it was set
	f  func()
}

// useFakeClock makes s's trial run on a fake clock.
func useFakeClock(s *Service) *fakeClock {
	c := &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), timers: map[*fakeTimer]bool{}}
	s.now, s.afterFunc = c.Now, c.AfterFunc
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set++
	t := &fakeTimer{at: c.now.Add(d), n: c.set, f: f}
	c.timers[t] = true
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		pending := c.timers[t]
		delete(c.timers, t)
		return pending
	}
}

// advance steps the clock by d and fires the timers that are due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for t := range c.timers {
		if !t.at.After(c.now) {
			due = append(due, t)
			delete(c.timers, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// timersSet is how many timers have been set so far.
func (c *fakeClock) timersSet() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set
}

// pending reports whether the one timer (the trial waits with one at a
// time) fires at at and was set after the first n.
func (c *fakeClock) pending(at time.Time, n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) != 1 {
		return false
	}
	for t := range c.timers {
		return t.at.Equal(at) && t.n > n
	}
	return false
}

// healthy publishes what makes services.CurrentHealth pass.
func healthy(st *state.Store) {
	st.Router.Publish(state.RouterInfo{Version: "vB"})
	st.Diagnosis.Publish(state.Diagnosis{Checked: time.Now(), Checks: []state.HealthCheck{{Name: "link/uplink0", OK: true}}})
}

// trialSetup is a router booted from disk that switched to slot b.
func trialSetup(t *testing.T, deadline time.Duration) (*Service, *requests, string) {
	t.Helper()
	boot := bootDir(t, "A")
	s, _, _ := newTestService(t, Boot{Cmdline: "console=ttyS0", BootDir: boot})
	stop := run(t, s)
	waitFor(t, "slot a", func() bool { return s.st.Update.Value().Slot == "a" })
	uploadImage(t, s, "B")
	if rec := switchTo(s, "b", "10s"); rec.Code != http.StatusAccepted {
		t.Fatalf("switch: %d %q", rec.Code, rec.Body)
	}
	stop()
	us, _ := s.slots.load()
	us.Deadline = state.Duration(deadline)
	s.slots.save(us)
	// The trial boot: a new Service on the same /perm, as the kexec'd
	// image has.
	trial, reqs, _ := newTestService(t, Boot{Cmdline: "console=ttyS0 homerouter.trial=b", BootDir: boot})
	trial.slots = s.slots
	return trial, reqs, boot
}

// TestTrialCommits: healthy within the deadline, the trial slot becomes
// active and goes onto the boot partition.
func TestTrialCommits(t *testing.T) {
	s, reqs, boot := trialSetup(t, time.Minute)
	s.hold = DefaultHold
	clock := useFakeClock(s)
	start := clock.Now()
	stop := run(t, s)
	defer stop()
	committed := func() bool { return s.st.Update.Value().State.Active == "b" }
	// do does what, and waits until the trial has seen it: it waits
	// on a new timer, at at; or it has committed.
	do := func(what string, at time.Time, f func()) {
		t.Helper()
		n := clock.timersSet()
		f()
		waitFor(t, "the trial past "+what, func() bool { return clock.pending(at, n) || committed() })
	}
	do("its start", start.Add(time.Minute), func() {})
	if got := s.st.Update.Value(); got.Slot != "b" || got.State.Trial != "b" || got.State.Active != "a" {
		t.Errorf("while on trial: %+v", got)
	}
	// Healthy for just under the hold (and woken then, by a new
	// diagnosis), then not: no commit.
	do("healthy", start.Add(s.hold), func() { healthy(s.st) })
	clock.advance(s.hold - time.Millisecond)
	do("a diagnosis just before the hold's end", start.Add(s.hold), func() { healthy(s.st) })
	if committed() {
		t.Fatalf("committed while healthy for less than the hold: %+v", s.st.Update.Value().State)
	}
	do("a problem", start.Add(time.Minute), func() {
		s.st.ReportProblem("dns", errors.New("crashed soon after the start"))
	})
	// Past the end of that hold, and healthy again: the hold starts
	// over.
	clock.advance(s.hold + time.Millisecond)
	do("healthy again", start.Add(3*s.hold), func() { s.st.ReportProblem("dns", nil) })
	if committed() {
		t.Fatalf("committed when healthy again after a problem, before a new hold: %+v", s.st.Update.Value().State)
	}
	clock.advance(s.hold - time.Millisecond)
	do("a diagnosis just before the new hold's end", start.Add(3*s.hold), func() { healthy(s.st) })
	if committed() {
		t.Fatalf("committed while healthy for less than the hold: %+v", s.st.Update.Value().State)
	}
	// Healthy for the hold: the commit.
	clock.advance(time.Millisecond)
	waitFor(t, "the commit", committed)
	us, _ := s.slots.load()
	if us.Active != "b" || us.Trial != "" || us.Last != "committed slot b, version vB: healthy 45s after it started" {
		t.Errorf("state %+v", us)
	}
	if k, _ := os.ReadFile(filepath.Join(boot, kernelFile)); !bytes.Equal(k, fakeKernel("B")) {
		t.Errorf("the boot partition's kernel is not slot b's")
	}
	if len(reqs.all()) != 0 {
		t.Errorf("a commit asked PID 1 for %+v", reqs.all())
	}
}

// TestTrialRollsBack: not healthy by the deadline, the trial kexecs into
// the active slot without the trial flag, and the boot partition keeps
// the old image.
func TestTrialRollsBack(t *testing.T) {
	s, reqs, boot := trialSetup(t, 100*time.Millisecond)
	stop := run(t, s)
	defer stop()
	waitFor(t, "the rollback", func() bool { return len(reqs.all()) > 0 })
	want := state.PlatformRequest{Action: state.Kexec, Kernel: s.slots.path("a", kernelFile), Initramfs: s.slots.path("a", initramfsFile), Cmdline: "console=ttyS0"}
	if got := reqs.all(); got[0] != want {
		t.Errorf("rollback asked %+v, want %+v", got[0], want)
	}
	us, _ := s.slots.load()
	if us.Active != "a" || us.Trial != "" || !strings.Contains(us.Last, "rolled back from slot b to slot \"a\": not healthy within 100ms: homerouter/internet: not checked yet") {
		t.Errorf("state %+v", us)
	}
	if k, _ := os.ReadFile(filepath.Join(boot, kernelFile)); !bytes.Equal(k, fakeKernel("A")) {
		t.Errorf("the boot partition changed")
	}
}

// TestTrialNeverDecided: a cold boot (the watchdog reset a hung image)
// finds the trial in state.json and records that it failed.
func TestTrialNeverDecided(t *testing.T) {
	s, _, boot := trialSetup(t, time.Minute)
	cold, _, _ := newTestService(t, Boot{Cmdline: "console=ttyS0", BootDir: boot})
	cold.slots = s.slots
	stop := run(t, cold)
	defer stop()
	waitFor(t, "the failed trial recorded", func() bool { return cold.st.Update.Value().State.Last != "" })
	us, _ := cold.slots.load()
	if us.Active != "a" || us.Trial != "" || !strings.HasPrefix(us.Last, "the trial of slot b failed: the router restarted before it was healthy") {
		t.Errorf("state %+v", us)
	}
	if got := cold.st.Update.Value().Slot; got != "a" {
		t.Errorf("running slot %q, want a", got)
	}
}

// TestPowerCutAfterBootWrite: power lost after a commit wrote the boot
// partition but before it recorded the commit: the cold boot finds the
// trial's image on the boot partition and records the commit.
func TestPowerCutAfterBootWrite(t *testing.T) {
	s, _, boot := trialSetup(t, time.Minute)
	if err := s.slots.toBoot("b", boot); err != nil {
		t.Fatal(err)
	}
	cold, _, _ := newTestService(t, Boot{Cmdline: "console=ttyS0", BootDir: boot})
	cold.slots = s.slots
	stop := run(t, cold)
	defer stop()
	waitFor(t, "the boot recorded", func() bool { return cold.st.Update.Value().Slot != "" })
	us, _ := cold.slots.load()
	if got := cold.st.Update.Value().Slot; got != "b" || us.Active != "b" || us.Trial != "" || us.Last != "committed slot b: found on the boot partition after a restart" {
		t.Errorf("slot %q, state %+v", got, us)
	}
}

// TestTrialWithoutState: a trial boot whose state.json is gone does not
// take the boot partition's image for a first boot (which would put the
// old image into the slot on trial and commit it).
func TestTrialWithoutState(t *testing.T) {
	s, _, boot := trialSetup(t, time.Minute)
	os.Remove(filepath.Join(s.slots.dir, stateFile))
	stop := run(t, s)
	defer stop()
	waitFor(t, "the trial under way", func() bool { return s.st.Update.Value().Slot == "b" })
	healthy(s.st)
	waitFor(t, "the commit", func() bool { return s.st.Update.Value().State.Active == "b" })
	if k, _ := os.ReadFile(filepath.Join(boot, kernelFile)); !bytes.Equal(k, fakeKernel("B")) {
		t.Errorf("the boot partition's kernel is not the trial's")
	}
}

// TestReadSums: a slot's sums, and the errors of a slot without them or
// with a damaged file, which verify and holding see alike.
func TestReadSums(t *testing.T) {
	s := slots{dir: t.TempDir()}
	boot := bootDir(t, "A")
	if err := s.fromBoot(boot, "a", "console=ttyS0"); err != nil {
		t.Fatal(err)
	}
	got, err := s.readSums("a")
	want := sums{kernelFile: sum(fakeKernel("A")), initramfsFile: sum([]byte("initramfs A"))}
	if err != nil || len(got) != len(want) || got[kernelFile] != want[kernelFile] || got[initramfsFile] != want[initramfsFile] {
		t.Errorf("readSums(a) = %v, %v; want %v", got, err, want)
	}
	if got := s.holding(boot); got != "a" {
		t.Errorf("holding = %q, want a", got)
	}
	if _, err := s.readSums("b"); !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "slot b: ") {
		t.Errorf("readSums(b), no slot: %v", err)
	}
	os.WriteFile(s.path("a", sumsFile), []byte("not a sum  "+kernelFile+"\n"), 0o644)
	if _, err := s.readSums("a"); err == nil || !strings.HasPrefix(err.Error(), "slot a: sha256: ") {
		t.Errorf("readSums(a), damaged: %v", err)
	}
	if err := s.verify("a"); err == nil || !strings.HasPrefix(err.Error(), "slot a: sha256: ") {
		t.Errorf("verify(a), damaged: %v", err)
	}
	if got := s.holding(boot); got != "" {
		t.Errorf("holding, damaged sums = %q, want none", got)
	}
}
