package update

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/homerouter/homerouter/services"
)

// Client updates a router from a workstation: `homerouter update`.
type Client struct {
	// RouterClient is the connection that the update shares with the
	// other workstation commands. Its nil HTTP is http.DefaultClient:
	// each request but the upload has its own timeout.
	services.RouterClient
	// Force updates a router that is not healthy.
	Force bool
	// Deadline is the trial's (0: the router's default).
	Deadline time.Duration
	// BackupDir, when not empty, is where the router's backup
	// (GET /backup.tar.gz) is saved first, if the router has one.
	BackupDir string
	// Log gets the progress, for a person.
	Log io.Writer
	// Poll is how often the router is asked while it switches; 0: 250 ms.
	Poll time.Duration
}

// pollTimeout bounds each question while the router switches: one that
// is down does not answer, and the next poll asks again.
const pollTimeout = time.Second

// Result is how an update ended.
type Result struct {
	// Committed: the router runs the new image, committed; otherwise it
	// rolled back, and Last says why.
	Committed bool
	// Version and Slot are what the router runs at the end.
	Version, Slot string
	// Last is the router's word on the trial (state.json's last).
	Last string
	// Downtime is how long the router did not answer, or answered
	// unhealthy, after the switch.
	Downtime time.Duration
}

func (c *Client) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

func (c *Client) health(ctx context.Context, timeout time.Duration) (services.Health, int, error) {
	var h services.Health
	code, b, err := c.Get(ctx, "/health.json", false, timeout)
	if err != nil {
		return h, 0, err
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, code, fmt.Errorf("/health.json: %w", err)
	}
	return h, code, nil
}

// Status asks the router for GET /update/status: the version and slot it
// runs, and its update state.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	code, b, err := c.Get(ctx, "/update/status", false, pollTimeout)
	if err != nil {
		return s, err
	}
	if code != http.StatusOK {
		return s, fmt.Errorf("/update/status: %d %s", code, strings.TrimSpace(string(b)))
	}
	return s, json.Unmarshal(b, &s)
}

// Update uploads kernel and initramfs, switches to them and waits until
// the router has committed them or rolled back.
func (c *Client) Update(ctx context.Context, kernel, initramfs string) (Result, error) {
	h, code, err := c.health(ctx, 10*time.Second)
	switch {
	case err != nil:
		return Result{}, fmt.Errorf("the router at %s: %w", c.Router, err)
	case code != http.StatusOK && !c.Force:
		return Result{}, fmt.Errorf("the router is not healthy (%s): not updating it (-force to update anyway)", h.FirstError)
	}
	if code == http.StatusOK {
		c.logf("the router runs version %s (slot %q), healthy", h.Version, h.Slot)
	} else {
		c.logf("the router runs version %s (slot %q), unhealthy: %s", h.Version, h.Slot, h.FirstError)
	}
	if c.BackupDir != "" {
		if err := c.backup(ctx); err != nil {
			return Result{}, err
		}
	}
	before, err := c.Status(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("the router's update status: %w", err)
	}
	up, err := c.upload(ctx, kernel, initramfs)
	if err != nil {
		return Result{}, err
	}
	c.logf("uploaded into slot %s; switching", up.Slot)
	form := url.Values{"slot": {up.Slot}, "kernel_sha256": {up.KernelSHA256}, "initramfs_sha256": {up.InitramfsSHA256}}
	deadline := DefaultDeadline
	if c.Deadline > 0 {
		form.Set("deadline", c.Deadline.String())
		deadline = c.Deadline
	}
	req, err := http.NewRequestWithContext(ctx, "POST", c.URL("/update/switch"), strings.NewReader(form.Encode()))
	if err != nil {
		return Result{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req, true)
	switch {
	case err != nil:
		// The router may have gone into its kexec before the answer
		// reached us: what it does next tells.
		c.logf("the switch got no answer (%v): following the router", err)
	default:
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return Result{}, fmt.Errorf("switch: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
		c.logf("%s", strings.TrimSpace(string(b)))
	}
	// The trial's deadline, and time for two boots (into the trial and
	// back) and a watchdog's reset, even under emulation.
	wctx, cancel := context.WithTimeout(ctx, deadline+5*time.Minute)
	defer cancel()
	return c.wait(wctx, up.Slot, before.State.TrialStarted)
}

// backup saves the router's /backup.tar.gz into BackupDir, if it has
// one, as `homerouter backup` does (services.RouterClient.SaveBackup).
func (c *Client) backup(ctx context.Context) error {
	path := filepath.Join(c.BackupDir, services.BackupFileName(time.Now()))
	n, err := c.SaveBackup(ctx, path, nil)
	switch {
	case errors.Is(err, services.ErrNoBackup):
		c.logf("%v: nothing saved", err)
		return nil
	case err != nil:
		return err
	}
	c.logf("saved the router's backup in %s (%d bytes)", path, n)
	return nil
}

// upload streams the form, with the files' SHA-256 first, and shows its
// progress.
func (c *Client) upload(ctx context.Context, kernel, initramfs string) (Uploaded, error) {
	var u Uploaded
	type file struct {
		field, path string
		size        int64
		sum         string
	}
	files := []*file{{field: "kernel", path: kernel}, {field: "initramfs", path: initramfs}}
	var total int64
	for _, f := range files {
		fi, err := os.Stat(f.path)
		if err != nil {
			return u, err
		}
		if f.sum, err = fileSum(f.path); err != nil {
			return u, err
		}
		f.size = fi.Size()
		total += f.size
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			for _, f := range files {
				if err := mw.WriteField(f.field+"_sha256", f.sum); err != nil {
					return err
				}
			}
			p := &progress{log: c.Log, total: total}
			for _, f := range files {
				w, err := mw.CreateFormFile(f.field, filepath.Base(f.path))
				if err != nil {
					return err
				}
				in, err := os.Open(f.path)
				if err != nil {
					return err
				}
				_, err = io.Copy(io.MultiWriter(w, p), in)
				in.Close()
				if err != nil {
					return err
				}
			}
			p.done()
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(ctx, "POST", c.URL("/update"), pr)
	if err != nil {
		return u, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.Do(req, true)
	if err != nil {
		return u, fmt.Errorf("upload: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return u, fmt.Errorf("upload: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, &u); err != nil {
		return u, fmt.Errorf("upload: %w: %s", err, b)
	}
	for _, f := range files {
		if got := map[string]string{"kernel": u.KernelSHA256, "initramfs": u.InitramfsSHA256}[f.field]; got != f.sum {
			return u, fmt.Errorf("upload: the router kept a %s with SHA-256 %s, not %s", f.field, got, f.sum)
		}
	}
	return u, nil
}

// progress writes an upload's progress on one line.
type progress struct {
	log       io.Writer
	total, n  int64
	lastShown int64
}

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if p.log != nil && (p.n-p.lastShown >= p.total/50 || p.n == p.total) {
		fmt.Fprintf(p.log, "\rupload: %3d%% (%.1f of %.1f MB)", p.n*100/max(p.total, 1), float64(p.n)/1e6, float64(p.total)/1e6)
		p.lastShown = p.n
	}
	return len(b), nil
}

func (p *progress) done() {
	if p.log != nil {
		fmt.Fprintln(p.log)
	}
}

// wait follows the router through the switch until its trial of slot
// has ended: a trial newer than the one of before (the TrialStarted of
// state.json before the switch) with no trial under way, and the router
// running what was decided: the slot after a commit, another one (or
// none, booted over the network) after a rollback. Health does not
// decide it (a router whose ISP is down is unhealthy on either image);
// it measures the downtime: every poll not answered healthy.
func (c *Client) wait(ctx context.Context, slot string, before time.Time) (Result, error) {
	poll := c.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	var res Result
	var downSince time.Time
	var last string // what was last seen, for a timeout
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("the router has not decided its trial of slot %s (%v); last seen: %s", slot, ctx.Err(), last)
		case <-t.C:
		}
		h, code, err := c.health(ctx, pollTimeout)
		now := time.Now()
		switch {
		case (err != nil || code != http.StatusOK) && downSince.IsZero():
			downSince = now
			last = describe(err, h)
			c.logf("the router is switching (%s)", last)
		case err == nil && code == http.StatusOK && !downSince.IsZero():
			res.Downtime += now.Sub(downSince)
			downSince = time.Time{}
			c.logf("the router answers again: version %s, slot %q", h.Version, h.Slot)
		}
		s, err := c.Status(ctx)
		if err != nil {
			continue
		}
		last = fmt.Sprintf("version %s, slot %q, %+v", s.Version, s.Slot, s.State)
		if s.State.Trial != "" || !s.State.TrialStarted.After(before) {
			continue
		}
		committed := strings.HasPrefix(s.State.Last, "committed slot "+slot)
		if committed != (s.Slot == slot) {
			continue // the trial image, about to kexec back
		}
		if !downSince.IsZero() {
			res.Downtime += now.Sub(downSince)
		}
		res.Committed = committed
		res.Version, res.Slot, res.Last = s.Version, s.Slot, s.State.Last
		return res, nil
	}
}

func describe(err error, h services.Health) string {
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err.Error()
	}
	return h.FirstError
}
