package backup

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/homerouter/homerouter/state"
)

// Limits of an archive. /perm's config and state files are JSON of a few
// KB each (a big LAN's lease table a few hundred KB), so 16 MiB is
// generous, and it bounds what a restore holds in memory and writes:
// both the archive as sent and its files unpacked (a small gzip stream
// can unpack to gigabytes).
const (
	MaxArchiveSize = 16 << 20
	maxFiles       = 1000
	maxNameLen     = 255 // a file name on ext4
)

// File is one file of a backup: a top-level file of /perm.
type File struct {
	Name    string
	Mode    fs.FileMode
	ModTime time.Time
	Data    []byte
}

// Included reports whether a top-level regular file of /perm named name
// belongs in a backup. Everything the router and its user keep there
// does: the config files, the state files (leases, DUID, ULA), the
// password, the hostname, and files the router does not know (a person's
// notes, a file of a newer version), so that a restore onto new hardware
// gives back the router as it was. Left out:
//
//   - dot files: the temp files of atomic writes (".NAME.tmp*") and a
//     restore's staging directories, which are half-written by nature;
//   - the packet captures (state.CaptureFile, state.CapturePreviousFile):
//     large, and of the moment, not of the router's setup.
//
// Subdirectories are left out too (the update's image slots in update/
// are tens of MB, and belong to the image, which `homerouter update`
// installs): a backup is flat, and a restore refuses subdirectories.
//
// Included judges a name only, so it holds for "update" or "lost+found"
// too: what reads or changes /perm takes regular files alone (Files,
// ToRemove, Complete), and a restore refuses an archive file whose name
// /perm has as a directory or anything else but a regular file
// (Conflicts).
func Included(name string) bool {
	if name == "" || strings.HasPrefix(name, ".") || strings.ContainsAny(name, `/\`) {
		return false
	}
	return name != state.CaptureFile && name != state.CapturePreviousFile
}

// fileMode is the mode a backed-up or restored file gets: what it had,
// at most rw-r--r--, always readable and writable by its owner (root),
// and rw------- for the password. The archive's own modes are not
// trusted: an archive made elsewhere may carry setuid bits or 0777.
func fileMode(name string, m fs.FileMode) fs.FileMode {
	if name == state.PasswordFile {
		return 0o600
	}
	return m.Perm()&0o644 | 0o600
}

// Files returns the files of dir that a backup holds (see Included),
// sorted by name. It fails when they are over MaxArchiveSize together:
// a restore would refuse that backup, and a person should know now.
func Files(dir string) ([]File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	var files []File
	var total int64
	for _, e := range entries {
		// Type() is from the directory entry: a symlink is not followed.
		if !e.Type().IsRegular() || !Included(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since ReadDir (a temp file renamed)
		}
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		if total += fi.Size(); total > MaxArchiveSize {
			return nil, fmt.Errorf("backup: the files in %s are over %d MiB together (%s is %d bytes): a restore would refuse the backup", dir, MaxArchiveSize>>20, e.Name(), fi.Size())
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		files = append(files, File{Name: e.Name(), Mode: fileMode(e.Name(), fi.Mode()), ModTime: fi.ModTime(), Data: data})
	}
	return files, nil
}

// WriteArchive writes files as a gzip-compressed tar: one regular file
// per entry, named without a directory, owned by root.
func WriteArchive(w io.Writer, files []File) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	for _, f := range files {
		h := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.Name,
			Mode:     int64(fileMode(f.Name, f.Mode)),
			Size:     int64(len(f.Data)),
			ModTime:  f.ModTime.Truncate(time.Second),
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("backup: %s: %w", f.Name, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return fmt.Errorf("backup: %s: %w", f.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// Archive returns the backup of dir: its Files as a gzip tar.
func Archive(dir string) ([]byte, error) {
	files, err := Files(dir)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := WriteArchive(&b, files); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Refused is why an archive cannot be restored: every problem found,
// one per line, the config files' as `homerouter check` prints them
// (file:line:col: field: message).
type Refused []error

func (r Refused) Error() string {
	lines := make([]string, len(r))
	for i, err := range r {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// errTooBig is the archive's own size over MaxArchiveSize.
var errTooBig = fmt.Errorf("the archive is over %d MiB", MaxArchiveSize>>20)

// limitedReader fails with errTooBig past its limit, rather than
// ending quietly (io.LimitReader), so that a cut archive is not taken
// for a malformed one.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Is there more? Then it is too big.
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			return 0, errTooBig
		}
		return l.r.Read(p)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// ReadArchive reads a backup: a gzip tar of regular files at its top
// level, named as Included allows, each once, MaxArchiveSize at most as
// sent and unpacked. A "./" before a name is allowed (tar -C DIR . makes
// it). It reads the whole archive and returns every problem it finds,
// as Refused; a stream that is not gzip or tar ends the reading there.
// It does not look inside the files: Stage and Validate do.
func ReadArchive(r io.Reader) ([]File, error) {
	var problems Refused
	refuse := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf(format, args...))
	}
	zr, err := gzip.NewReader(&limitedReader{r: r, n: MaxArchiveSize})
	switch {
	case errors.Is(err, errTooBig):
		return nil, Refused{err}
	case errors.Is(err, io.EOF):
		return nil, Refused{errors.New("the archive is empty")}
	case err != nil:
		return nil, Refused{fmt.Errorf("not a gzip file: %v", err)}
	}
	tr := tar.NewReader(zr)
	var files []File
	seen := map[string]bool{}
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			refuse("%s", streamError(err))
			return nil, problems
		}
		name := h.Name
		clean := strings.TrimPrefix(name, "./")
		switch {
		case (clean == "" || clean == ".") && h.Typeflag == tar.TypeDir:
			continue // "./", the directory the files are in
		case len(problems) >= maxFiles:
			refuse("more than %d problems: the rest are not shown", maxFiles)
			return nil, problems
		case len(files) >= maxFiles:
			refuse("more than %d files", maxFiles)
			return nil, problems
		case strings.HasPrefix(name, "/"):
			refuse("%s: an absolute path: a backup holds the files of /perm by name only", name)
			continue
		case slices.Contains(strings.Split(name, "/"), ".."):
			refuse("%s: has \"..\": a backup holds the files of /perm by name only", name)
			continue
		case h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink:
			refuse("%s: a link (to %q): a backup holds regular files only", name, h.Linkname)
			continue
		case h.Typeflag == tar.TypeDir || strings.Contains(strings.TrimSuffix(clean, "/"), "/"):
			refuse("%s: a subdirectory: a backup holds the top-level files of /perm only", name)
			continue
		case h.Typeflag != tar.TypeReg: // the reader turns the old TypeRegA into TypeReg
			refuse("%s: not a regular file (tar type %q)", name, h.Typeflag)
			continue
		case len(clean) > maxNameLen:
			refuse("%.40s...: a name over %d bytes", name, maxNameLen)
			continue
		case !Included(clean):
			refuse("%s: not a file a backup holds (dot files and packet captures are left out)", name)
			continue
		case seen[clean]:
			refuse("%s: in the archive twice", name)
			continue
		case h.Size < 0 || total+h.Size > MaxArchiveSize:
			refuse("the files are over %d MiB unpacked (at %s)", MaxArchiveSize>>20, name)
			return nil, problems
		}
		seen[clean] = true
		data := make([]byte, h.Size)
		if _, err := io.ReadFull(tr, data); err != nil {
			refuse("%s: %s", name, streamError(err))
			return nil, problems
		}
		total += h.Size
		files = append(files, File{Name: clean, Mode: fileMode(clean, h.FileInfo().Mode()), ModTime: h.ModTime, Data: data})
	}
	// The gzip stream's end, with its checksum: a cut or corrupted
	// archive whose tar part happened to end well is refused here.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		refuse("%s", streamError(err))
	}
	if len(problems) > 0 {
		return nil, problems
	}
	if len(files) == 0 {
		return nil, Refused{errors.New("the archive holds no files")}
	}
	return files, nil
}

// streamError says what broke in the gzip or tar stream.
func streamError(err error) string {
	switch {
	case errors.Is(err, errTooBig):
		return err.Error()
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the archive is cut short"
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		return "malformed gzip: " + err.Error()
	}
	var ce flate.CorruptInputError
	if errors.As(err, &ce) {
		return "malformed gzip: " + err.Error()
	}
	return "malformed tar: " + err.Error()
}
