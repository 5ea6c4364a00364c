package update

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/homerouter/homerouter/state"
)

// The files of a slot, and of the boot partition (initramfs/disk.sh
// names them so; syslinux.cfg boots them).
const (
	kernelFile    = "vmlinuz"
	initramfsFile = "initramfs.cpio.gz"
	cmdlineFile   = "cmdline"
	sumsFile      = "sha256"
	stateFile     = "state.json"
)

// imageFiles are a slot's image files, in the order of its sha256 file.
var imageFiles = []string{kernelFile, initramfsFile}

// slots is the update directory, /perm/update: the slots a and b and
// state.json.
type slots struct {
	dir string
}

func (s slots) path(slot string, file ...string) string {
	return filepath.Join(append([]string{s.dir, slot}, file...)...)
}

// other is the slot an update goes into: the one that is not active.
func other(active string) string {
	if active == "a" {
		return "b"
	}
	return "a"
}

func validSlot(slot string) bool { return slot == "a" || slot == "b" }

// load reads state.json; a missing file is the zero state.
func (s slots) load() (state.UpdateState, error) {
	var us state.UpdateState
	b, err := os.ReadFile(filepath.Join(s.dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return us, nil
	}
	if err != nil {
		return us, err
	}
	if err := json.Unmarshal(b, &us); err != nil {
		return state.UpdateState{}, fmt.Errorf("%s: %w", filepath.Join(s.dir, stateFile), err)
	}
	if (us.Active != "" && !validSlot(us.Active)) || (us.Trial != "" && !validSlot(us.Trial)) {
		return state.UpdateState{}, fmt.Errorf("%s: slots are a or b, not %q and %q", filepath.Join(s.dir, stateFile), us.Active, us.Trial)
	}
	return us, nil
}

// save writes state.json atomically, synced: the next step may be a
// kexec.
func (s slots) save(us state.UpdateState) error {
	b, err := json.MarshalIndent(us, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	return state.WriteFileAtomic(filepath.Join(s.dir, stateFile), append(b, '\n'), 0o644)
}

// sums are the SHA-256 of the image files, by file name.
type sums map[string]string

// String is the sha256 file: sha256sum's format, so that `sha256sum -c
// sha256` in the slot checks it too.
func (m sums) String() string {
	var b strings.Builder
	for _, f := range imageFiles {
		fmt.Fprintf(&b, "%s  %s\n", m[f], f)
	}
	return b.String()
}

func parseSums(b []byte) (sums, error) {
	m := sums{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		sum, file, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != sha256.Size*2 {
			return nil, fmt.Errorf("%q is not a sha256sum line", sc.Text())
		}
		m[file] = sum
	}
	return m, sc.Err()
}

// readSums reads and parses slot's sha256 file.
func (s slots) readSums(slot string) (sums, error) {
	b, err := os.ReadFile(s.path(slot, sumsFile))
	if err != nil {
		return nil, fmt.Errorf("slot %s: %w", slot, err)
	}
	m, err := parseSums(b)
	if err != nil {
		return nil, fmt.Errorf("slot %s: %s: %w", slot, sumsFile, err)
	}
	return m, nil
}

// verify checks the slot's image files against its sha256 file: what was
// uploaded is what boots, and a slot damaged since (a bad sector, a hand
// edit) is refused rather than booted.
func (s slots) verify(slot string) error {
	want, err := s.readSums(slot)
	if err != nil {
		return err
	}
	for _, f := range imageFiles {
		got, err := fileSum(s.path(slot, f))
		if err != nil {
			return fmt.Errorf("slot %s: %w", slot, err)
		}
		if got != want[f] {
			return fmt.Errorf("slot %s: %s has SHA-256 %s, its %s file says %s", slot, f, got, sumsFile, want[f])
		}
	}
	return nil
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cmdline is the slot's kernel command line.
func (s slots) cmdline(slot string) (string, error) {
	b, err := os.ReadFile(s.path(slot, cmdlineFile))
	return strings.TrimSpace(string(b)), err
}

// replace makes the directory tmp, holding a complete slot, the slot
// slot: the old one goes first, so that a power cut leaves either the
// old slot, no slot, or the new one, never a mix.
func (s slots) replace(tmp, slot string) error {
	if err := os.RemoveAll(s.path(slot)); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path(slot)); err != nil {
		return err
	}
	return state.SyncDir(s.dir)
}

// holding returns the slot whose image is the boot partition's, by
// their SHA-256, or "" when no slot holds it.
func (s slots) holding(bootDir string) string {
	boot := sums{}
	for _, f := range imageFiles {
		sum, err := fileSum(filepath.Join(bootDir, f))
		if err != nil {
			return ""
		}
		boot[f] = sum
	}
	for _, slot := range []string{"a", "b"} {
		// A slot with no sums to compare (none yet, or damaged) does
		// not hold it: the image is copied into a slot anew.
		if m, err := s.readSums(slot); err == nil && m[kernelFile] == boot[kernelFile] && m[initramfsFile] == boot[initramfsFile] {
			return slot
		}
	}
	return ""
}

// fromBoot copies the image that booted (the boot partition's kernel and
// initramfs) into slot, with cmdline, so that a failed trial has an image
// to return to.
func (s slots) fromBoot(bootDir, slot, cmdline string) error {
	tmp := s.path(slot + ".new")
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	m := sums{}
	for _, f := range imageFiles {
		sum, err := copyFile(filepath.Join(bootDir, f), filepath.Join(tmp, f))
		if err != nil {
			os.RemoveAll(tmp)
			return err
		}
		m[f] = sum
	}
	if err := state.WriteFileSynced(filepath.Join(tmp, cmdlineFile), []byte(cmdline+"\n"), 0o644); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := state.WriteFileSynced(filepath.Join(tmp, sumsFile), []byte(m.String()), 0o644); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return s.replace(tmp, slot)
}

// toBoot installs slot's image on the boot partition, so that a cold
// boot runs it: both files are written beside the old ones and checked
// against the slot's sums first, then renamed over them, and the
// filesystem is synced before the commit is recorded: a reset right
// after must find the new image whole (a FAT directory cannot be
// fsynced, so only syncfs makes the renames durable). A power cut
// between the two renames would leave a mixed pair; writing the pair
// under new names and switching syslinux.cfg would close that window.
func (s slots) toBoot(slot, bootDir string) error {
	if err := s.verify(slot); err != nil {
		return err
	}
	for _, f := range imageFiles {
		if _, err := copyFile(s.path(slot, f), filepath.Join(bootDir, f+".new")); err != nil {
			return err
		}
	}
	for _, f := range imageFiles {
		if err := os.Rename(filepath.Join(bootDir, f+".new"), filepath.Join(bootDir, f)); err != nil {
			return err
		}
	}
	return syncFS(bootDir)
}

// syncFS writes everything of the filesystem holding dir to its disk.
func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}

// copyFile copies src to dst, synced, and returns its SHA-256.
func copyFile(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
