package backup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/homerouter/homerouter/state"
)

// A restore replaces several files, and a power cut may come at any
// moment, so it goes in steps that each leave /perm whole:
//
//  1. Stage: the archive's files are written into StagingDir, a
//     directory in /perm (the same filesystem, so that renames work and
//     are atomic), and fsynced. Nothing in /perm has changed yet.
//  2. Validate there, as `homerouter check` does. A refusal removes the
//     staging directory: /perm is as it was.
//  3. Commit: the list of files to remove is written into the staging
//     directory, which is fsynced and renamed to CommitDir, and /perm
//     is fsynced. That rename is the commit marker: from here on the
//     restore happens, whatever comes.
//  4. Complete: each staged file is renamed over its namesake in /perm
//     (each rename atomic), the files on the list are removed, /perm is
//     fsynced, and CommitDir is removed.
//
// Recover, at start, completes a committed restore (step 4 again: the
// files still in CommitDir were not moved yet, and removing what is gone
// is no error) and discards a staging directory that was never committed.
// So after a power cut /perm holds either the old files or the new ones,
// never half of each, from the router's first read of it.
const (
	StagingDir = ".restore.new"
	CommitDir  = ".restore"
	// removeList, in CommitDir, names the files the restore removes, one
	// per line. Archive names never begin with a dot, so it cannot clash
	// with a restored file.
	removeList = ".remove"
)

// Stage writes files into dir's StagingDir, replacing what a refused or
// interrupted restore may have left there, each file fsynced with its
// mode (see fileMode), and returns the staging directory.
func Stage(dir string, files []File) (string, error) {
	staging := filepath.Join(dir, StagingDir)
	if err := os.RemoveAll(staging); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	if err := os.Mkdir(staging, 0o700); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	for _, f := range files {
		if err := state.WriteFileSynced(filepath.Join(staging, f.Name), f.Data, fileMode(f.Name, f.Mode)); err != nil {
			os.RemoveAll(staging)
			return "", fmt.Errorf("restore: %w", err)
		}
	}
	return staging, nil
}

// Conflicts returns, as Refused, the archive's files whose names are
// taken in dir by something other than a regular file (a directory such
// as update/ or lost+found/, a symlink, a device): a restore replaces
// files only, and Complete's rename could not put a file over such an
// entry once the restore is committed. The caller holds the restore
// lock, so that nothing it does not know of changes dir until Commit.
func Conflicts(dir string, files []File) (Refused, error) {
	var problems Refused
	for _, f := range files {
		m, ok, err := lstatMode(filepath.Join(dir, f.Name))
		if err != nil {
			return nil, err
		}
		if ok && !m.IsRegular() {
			problems = append(problems, fmt.Errorf("%s: %s in the router's /perm, not a file: a restore replaces files only", f.Name, kind(m)))
		}
	}
	return problems, nil
}

// kind names a type of file that is not regular.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	default:
		return "a special file"
	}
}

// Validate checks the staged files as the router would read them: every
// config file as `homerouter check` does (interfaces.json must be there),
// the state files as their schemas, and the password, which must not be
// empty (httpd would refuse everyone, and the restore could not be
// undone from the LAN). It returns every problem, one per line.
func Validate(staging string) Refused {
	var problems Refused
	problems = append(problems, state.Check(staging)...)
	problems = append(problems, state.CheckState(staging)...)
	// An archive without the password keeps the router's (ToRemove).
	if _, err := state.ReadPassword(staging); err != nil && !errors.Is(err, fs.ErrNotExist) {
		problems = append(problems, fmt.Errorf("%s: %v: the router would refuse every password", state.PasswordFile, err))
	}
	return problems
}

// ToRemove returns the files of dir that a restore of files removes:
// those a backup holds (Included, and regular files: never a directory,
// a symlink or a device) that the archive does not, except what keep
// says to keep. The caller keeps the password (without
// one httpd refuses everyone) and the state files, whose values the
// running router holds in memory and would write back.
func ToRemove(dir string, files []File, keep func(name string) bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !Included(name) || keep(name) {
			continue
		}
		if !slices.ContainsFunc(files, func(f File) bool { return f.Name == name }) {
			out = append(out, name)
		}
	}
	return out, nil
}

// Commit makes the staged restore happen (step 3): after it returns
// nil, Complete or, after a power cut, Recover puts it in place.
func Commit(dir string, remove []string) error {
	staging := filepath.Join(dir, StagingDir)
	var list bytes.Buffer
	for _, name := range remove {
		fmt.Fprintln(&list, name)
	}
	if err := state.WriteFileSynced(filepath.Join(staging, removeList), list.Bytes(), 0o600); err != nil {
		return fmt.Errorf("restore: commit: %w", err)
	}
	if err := state.SyncDir(staging); err != nil {
		return fmt.Errorf("restore: commit: %w", err)
	}
	if err := os.Rename(staging, filepath.Join(dir, CommitDir)); err != nil {
		return fmt.Errorf("restore: commit: %w", err)
	}
	if err := state.SyncDir(dir); err != nil {
		return fmt.Errorf("restore: commit: %w", err)
	}
	return nil
}

// Result is what a restore changed in /perm, and what it did not.
type Result struct {
	Restored, Removed []string
	// Kept are the archive's files that describe the live network (see
	// state.Store.LiveStateFileNames): the running router's stay.
	Kept []string
	// Skipped are committed files that Complete did not put in place:
	// /perm has something other than a regular file by that name, which
	// Conflicts refuses before a commit (a restore committed by an
	// earlier version may hold one).
	Skipped []string
}

// Complete puts a committed restore in place (step 4), if there is one;
// it may be run again after it was cut short.
func Complete(dir string) (Result, error) {
	var res Result
	committed := filepath.Join(dir, CommitDir)
	entries, err := os.ReadDir(committed)
	if errors.Is(err, fs.ErrNotExist) {
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	list, err := os.ReadFile(filepath.Join(committed, removeList))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("restore: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == removeList {
			continue
		}
		// A rename cannot put a file over a directory, and must not over
		// a symlink or a device: such a file is left out (it goes with
		// CommitDir below), or this restore could never complete, and
		// every start and later restore would fail on it.
		if m, ok, err := lstatMode(filepath.Join(dir, name)); err != nil {
			return res, err
		} else if ok && !m.IsRegular() {
			res.Skipped = append(res.Skipped, name)
			continue
		}
		if err := os.Rename(filepath.Join(committed, name), filepath.Join(dir, name)); err != nil {
			return res, fmt.Errorf("restore: %w", err)
		}
		res.Restored = append(res.Restored, name)
	}
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		name := sc.Text()
		if !Included(name) {
			continue // never outside /perm, whatever the list says
		}
		m, ok, err := lstatMode(filepath.Join(dir, name))
		if err != nil {
			return res, err
		}
		if !ok || !m.IsRegular() {
			continue // gone already, or never a restore's to remove
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("restore: %w", err)
		}
		res.Removed = append(res.Removed, name)
	}
	if err := state.SyncDir(dir); err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	// The list last: until the renames and removals are on disk, a
	// repeat needs it.
	if err := os.RemoveAll(committed); err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	if err := state.SyncDir(dir); err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	return res, nil
}

// Recover completes a restore that was committed but cut short (a power
// cut, a crash), and discards one that was staged but not committed,
// logging what it did. main runs it at start, before the config and
// state files are read.
func Recover(dir string, logger *log.Logger) error {
	_, err := recoverRestore(dir, logger)
	return err
}

// recoverRestore is Recover, and says which files it put in place: a
// running router loads those it holds in memory (Store.ReplaceState).
func recoverRestore(dir string, logger *log.Logger) (Result, error) {
	var res Result
	if _, err := os.Stat(filepath.Join(dir, CommitDir)); err == nil {
		if res, err = Complete(dir); err != nil {
			return res, err
		}
		logger.Printf("completed an interrupted restore: %s", res)
	}
	staging := filepath.Join(dir, StagingDir)
	if _, err := os.Lstat(staging); err == nil {
		if err := os.RemoveAll(staging); err != nil {
			return res, fmt.Errorf("restore: %w", err)
		}
		logger.Printf("discarded a restore that was staged but never committed")
	}
	return res, nil
}

// lstatMode returns the mode of path, not following a symlink; ok is
// false when there is nothing there.
func lstatMode(path string) (m fs.FileMode, ok bool, err error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("restore: %w", err)
	}
	return fi.Mode(), true, nil
}

func (r Result) String() string {
	s := fmt.Sprintf("restored %d files", len(r.Restored))
	if len(r.Restored) > 0 {
		s += ": " + strings.Join(r.Restored, ", ")
	}
	if len(r.Removed) > 0 {
		s += fmt.Sprintf("; removed %s", strings.Join(r.Removed, ", "))
	}
	if len(r.Kept) > 0 {
		s += fmt.Sprintf("; kept the running router's %s (the live network's leases, not the backup's)", strings.Join(r.Kept, ", "))
	}
	if len(r.Skipped) > 0 {
		s += fmt.Sprintf("; left out %s: not a regular file in /perm", strings.Join(r.Skipped, ", "))
	}
	return s
}
