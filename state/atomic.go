package state

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// WriteFileAtomic replaces path with data so that a reader, or the next boot
// after a power cut, sees either the old complete file or the new complete
// file, never a mix: it writes a temporary file in the same directory, fsyncs
// it, renames it over path and fsyncs the directory so that the rename
// itself is durable.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteAtomic(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteAtomic is WriteFileAtomic for what is written piece by piece (a
// packet capture of many megabytes), without holding it all in memory:
// write writes the new file's content to w, buffered. When write fails,
// path is left as it was.
func WriteAtomic(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, AtomicTempPattern(base))
	if err != nil {
		return fmt.Errorf("write %s: create temp file: %w", path, withoutPath(err))
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 64<<10)
	if err := write(bw); err != nil {
		return fmt.Errorf("write %s: %w", path, withoutPath(err))
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, withoutPath(err))
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: chmod: %w", path, withoutPath(err))
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, withoutPath(err))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: close: %w", path, withoutPath(err))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: rename: %w", path, withoutPath(err))
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteFileSynced writes data to path with mode (past the umask), and
// fsyncs it: a file in a directory that is renamed into place as a
// whole (an update's slot, a restore's staging), which is synced once
// all its files are written.
func WriteFileSynced(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// SyncDir fsyncs a directory, so that the renames, creations and
// removals in it survive a power cut. Some filesystems (FAT, an update's
// boot partition) cannot sync a directory; their renames are as durable
// as they get there, and that is no error.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// AtomicTempPattern is the pattern (for os.CreateTemp and filepath.Glob)
// of the temp files WriteAtomic writes base through: a write cut short
// (the process killed) leaves one, which a writer of many megabytes
// removes at its next start.
func AtomicTempPattern(base string) string { return "." + base + ".tmp*" }

// withoutPath drops the path from an *os.PathError (or *os.LinkError):
// the temp file's name is random, and an error that reads the same on
// every retry is logged once (see Store.SaveState).
func withoutPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
