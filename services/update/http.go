package update

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/state"
)

// Limits of an upload: a kernel and an initramfs are a few MB each; a
// /perm partition holds two slots of them and the router's state.
const (
	maxImageFile = 256 << 20
	maxField     = 4 << 10
)

// Endpoints are the update's pages: the upload and the switch need the
// router's password; the status does not (it changes nothing).
//
//	POST /update         multipart form: kernel, initramfs (files),
//	                     kernel_sha256, initramfs_sha256, cmdline (optional)
//	POST /update/switch  form: slot, deadline (optional, e.g. 120s),
//	                     kernel_sha256, initramfs_sha256 (optional: the
//	                     slot must hold that image)
//	GET  /update/status  JSON: the running slot and state.json
func (s *Service) Endpoints() []services.Endpoint {
	return []services.Endpoint{
		{Pattern: "POST /update", Handler: http.HandlerFunc(s.upload), NeedsPassword: true},
		{Pattern: "POST /update/switch", Handler: http.HandlerFunc(s.switchTo), NeedsPassword: true},
		{Pattern: "GET /update/status", Handler: http.HandlerFunc(s.status)},
	}
}

// Uploaded is the answer to a good upload.
type Uploaded struct {
	Slot            string `json:"slot"`
	KernelSHA256    string `json:"kernel_sha256"`
	InitramfsSHA256 string `json:"initramfs_sha256"`
	Cmdline         string `json:"cmdline"`
}

// upload streams the new image into the slot that is not active,
// hashing it on the way, and keeps it only when the upload is whole and
// both files match the sums given with them. Whatever goes wrong, the
// running image and the active slot are never written.
func (s *Service) upload(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ready(w) {
		return
	}
	us, err := s.slots.load()
	if err != nil {
		http.Error(w, "update: "+err.Error(), http.StatusInternalServerError)
		return
	}
	slot := other(us.Active)
	tmp := s.slots.path(slot + ".new")
	u, err := s.receive(r, tmp)
	if err != nil {
		os.RemoveAll(tmp)
		s.logger.Printf("upload refused: %v", err)
		code := http.StatusBadRequest
		if errors.Is(err, errRouter) {
			code = http.StatusInternalServerError
		}
		http.Error(w, "update: "+err.Error(), code)
		return
	}
	if err := s.slots.replace(tmp, slot); err != nil {
		os.RemoveAll(tmp)
		http.Error(w, "update: "+err.Error(), http.StatusInternalServerError)
		return
	}
	u.Slot = slot
	s.logger.Printf("uploaded into slot %s: kernel %s, initramfs %s, command line %q", slot, u.KernelSHA256, u.InitramfsSHA256, u.Cmdline)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(u)
}

// ready says whether an upload or a switch may go ahead, and answers
// the request when not: not before Run has recorded what this boot is,
// and not during a trial. The caller holds mu.
func (s *Service) ready(w http.ResponseWriter) bool {
	st, published := s.st.Update.Get()
	switch {
	case published == 0:
		http.Error(w, "update: the router is starting: try again in a moment", http.StatusServiceUnavailable)
		return false
	case st.State.Trial != "":
		http.Error(w, fmt.Sprintf("update: a trial of slot %s is under way: try again once it has committed or rolled back", st.State.Trial), http.StatusConflict)
		return false
	}
	return true
}

// receive writes the form's files into dir, checks them and writes the
// slot's cmdline and sha256 files there.
func (s *Service) receive(r *http.Request, dir string) (Uploaded, error) {
	var u Uploaded
	mr, err := r.MultipartReader()
	if err != nil {
		return u, fmt.Errorf("not a multipart form: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return u, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return u, err
	}
	got, want := sums{}, sums{}
	cmdline, hasCmdline := "", false
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return u, truncated(err)
		}
		switch name := p.FormName(); name {
		case "kernel", "initramfs":
			file := kernelFile
			if name == "initramfs" {
				file = initramfsFile
			}
			sum, err := receiveFile(p, dir+"/"+file)
			if err != nil {
				return u, fmt.Errorf("%s: %w", name, err)
			}
			got[file] = sum
		case "kernel_sha256", "initramfs_sha256", "cmdline":
			v, err := readField(p)
			if err != nil {
				return u, fmt.Errorf("%s: %w", name, err)
			}
			switch name {
			case "kernel_sha256":
				want[kernelFile] = strings.ToLower(v)
			case "initramfs_sha256":
				want[initramfsFile] = strings.ToLower(v)
			default:
				if err := checkCmdline(v); err != nil {
					return u, err
				}
				cmdline, hasCmdline = withoutTrial(v), true
			}
		default:
			return u, fmt.Errorf("unknown form field %q (kernel, initramfs, kernel_sha256, initramfs_sha256, cmdline)", name)
		}
	}
	for _, f := range []struct{ file, field string }{{kernelFile, "kernel"}, {initramfsFile, "initramfs"}} {
		switch {
		case got[f.file] == "":
			return u, fmt.Errorf("no %s in the form", f.field)
		case want[f.file] == "":
			return u, fmt.Errorf("no %s_sha256 in the form: the router checks what it received against it", f.field)
		case got[f.file] != want[f.file]:
			return u, fmt.Errorf("checksum mismatch: the %s received has SHA-256 %s, %s_sha256 says %s", f.field, got[f.file], f.field, want[f.file])
		}
	}
	if err := checkKernel(dir + "/" + kernelFile); err != nil {
		return u, err
	}
	if !hasCmdline {
		// The new image boots as this one did.
		cmdline = withoutTrial(s.boot.Cmdline)
	}
	if err := state.WriteFileSynced(dir+"/"+cmdlineFile, []byte(cmdline+"\n"), 0o644); err != nil {
		return u, err
	}
	if err := state.WriteFileSynced(dir+"/"+sumsFile, []byte(got.String()), 0o644); err != nil {
		return u, err
	}
	return Uploaded{KernelSHA256: got[kernelFile], InitramfsSHA256: got[initramfsFile], Cmdline: cmdline}, nil
}

// maxCmdline leaves room, in the kernel's 2048 bytes, for the trial flag.
const maxCmdline = 2000

// checkCmdline refuses a command line the kernel would refuse at the
// switch, or that would swallow the trial flag (an open quote).
func checkCmdline(c string) error {
	if len(c) > maxCmdline {
		return fmt.Errorf("cmdline: %d bytes, at most %d", len(c), maxCmdline)
	}
	for _, r := range c {
		if r < ' ' || r > '~' || r == '"' {
			return fmt.Errorf("cmdline: %q: printable ASCII without quotes only", r)
		}
	}
	return nil
}

// truncated names what a body that ended early looks like to the
// multipart reader.
func truncated(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("truncated upload: the form ended before its last boundary (%v)", err)
	}
	return fmt.Errorf("reading the form: %w", err)
}

// receiveFile writes part to path, synced, and returns its SHA-256. A
// body that ends early is the client's error; a write that fails (a full
// /perm) is the router's, which errRouter marks.
func receiveFile(part *multipart.Part, path string) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", routerErr(err)
	}
	h := sha256.New()
	in := &readErr{r: io.LimitReader(part, maxImageFile+1)}
	n, err := io.Copy(io.MultiWriter(f, h), in)
	switch {
	case in.err != nil:
		err = truncated(in.err)
	case err != nil:
		err = routerErr(err)
	case n > maxImageFile:
		err = fmt.Errorf("larger than %d MiB", maxImageFile>>20)
	case n == 0:
		err = errors.New("empty")
	default:
		err = routerErr(f.Sync())
	}
	if cerr := f.Close(); err == nil {
		err = routerErr(cerr)
	}
	return hex.EncodeToString(h.Sum(nil)), err
}

// readErr remembers the error of the reader, to tell it from a write's.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// errRouter marks a failure of the router's own (its disk), which is not
// the client's: 500, not 400.
var errRouter = errors.New("the router failed")

func routerErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", errRouter, err)
}

func readField(p *multipart.Part) (string, error) {
	b, err := io.ReadAll(io.LimitReader(p, maxField+1))
	if err != nil {
		return "", truncated(err)
	}
	if len(b) > maxField {
		return "", fmt.Errorf("longer than %d bytes", maxField)
	}
	return strings.TrimSpace(string(b)), nil
}

// checkKernel refuses what is not an x86 Linux kernel (bzImage: "HdrS"
// at 0x202), the likeliest mistake being the initramfs given twice.
// kexec_file_load checks the rest at the switch, before anything stops.
func checkKernel(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := f.ReadAt(magic, 0x202); err != nil || string(magic) != "HdrS" {
		return errors.New("the kernel is not a Linux kernel image (bzImage)")
	}
	return nil
}

// switchTo records the trial of the uploaded slot and asks PID 1 to kexec
// it. Nothing stops when the kernel does not load: the router runs on.
func (s *Service) switchTo(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Body = http.MaxBytesReader(w, r.Body, maxField)
	slot := r.FormValue("slot")
	deadline := DefaultDeadline
	if v := r.FormValue("deadline"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Second || d > time.Hour {
			http.Error(w, fmt.Sprintf("update: deadline %q: want a duration from 10s to 1h", v), http.StatusBadRequest)
			return
		}
		deadline = d
	}
	if !s.ready(w) {
		return
	}
	us, err := s.slots.load()
	if err != nil {
		http.Error(w, "update: "+err.Error(), http.StatusInternalServerError)
		return
	}
	switch {
	case !validSlot(slot) || slot == us.Active:
		http.Error(w, fmt.Sprintf("update: slot %q: switch to the slot the upload named (not the active one, %q)", slot, us.Active), http.StatusBadRequest)
		return
	}
	if err := s.slots.verify(slot); err != nil {
		http.Error(w, "update: "+err.Error(), http.StatusBadRequest)
		return
	}
	// The image the client uploaded, not one another client put there
	// since: the sums, when given, must be the slot's.
	have, err := s.slots.readSums(slot)
	if err != nil {
		http.Error(w, "update: "+err.Error(), http.StatusInternalServerError)
		return
	}
	for field, file := range map[string]string{"kernel_sha256": kernelFile, "initramfs_sha256": initramfsFile} {
		if v := r.FormValue(field); v != "" && !strings.EqualFold(v, have[file]) {
			http.Error(w, fmt.Sprintf("update: slot %s holds another image than %s=%s (another upload?)", slot, field, v), http.StatusConflict)
			return
		}
	}
	cmdline, err := s.slots.cmdline(slot)
	if err != nil {
		http.Error(w, "update: "+err.Error(), http.StatusInternalServerError)
		return
	}
	before := us
	us.Trial, us.TrialStarted, us.Deadline, us.Attempts = slot, time.Now().UTC(), state.Duration(deadline), us.Attempts+1
	if err := s.slots.save(us); err != nil {
		http.Error(w, "update: "+err.Error(), http.StatusInternalServerError)
		return
	}
	req := state.PlatformRequest{Action: state.Kexec, Kernel: s.slots.path(slot, kernelFile), Initramfs: s.slots.path(slot, initramfsFile),
		Cmdline: strings.TrimSpace(cmdline + " " + TrialParam + "=" + slot)}
	if err := s.request(r.Context(), req); err != nil {
		if serr := s.slots.save(before); serr != nil {
			s.logger.Printf("switch: %v", serr)
		}
		s.logger.Printf("switch to slot %s refused: %v", slot, err)
		http.Error(w, fmt.Sprintf("update: switch to slot %s: %v (the router runs on as it was)", slot, err), http.StatusConflict)
		return
	}
	s.logger.Printf("switching to slot %s: a trial of %v", slot, deadline)
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, "switching to slot %s: it commits once healthy, or the router rolls back to slot %q after %v\n", slot, us.Active, deadline)
}

// Status is GET /update/status.
type Status struct {
	Version string `json:"version"`
	state.UpdateStatus
}

func (s *Service) status(w http.ResponseWriter, r *http.Request) {
	if _, published := s.st.Update.Get(); published == 0 {
		http.Error(w, "update: the router is starting", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(Status{Version: s.st.Router.Value().Version, UpdateStatus: s.st.Update.Value()})
}
