package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
)

// StateFileNames returns the names of the persistent topics' files (the
// leases, the DUID, the ULA, ...), which the router writes itself: a
// restore treats them apart from the config files (see ReplaceState).
func (s *Store) StateFileNames() []string {
	names := make([]string, len(s.persistent))
	for i, p := range s.persistent {
		names[i] = p.File()
	}
	return names
}

// LiveStateFileNames returns the state files that describe the network
// as it is now rather than the router's setup: the uplink's DHCPv4 and
// DHCPv6 leases (the address, gateway and delegated prefix the ISP gave
// this router, this hour) and the LAN server's lease table (the addresses
// the LAN's devices hold now). A restore keeps the running router's: a
// backup's copies are of another day, and would configure a stale
// address and prefix, or hand out addresses that are in use.
func (s *Store) LiveStateFileNames() []string {
	return []string{s.DHCPv4Lease.File(), s.DHCPv6Lease.File(), s.DHCPv4ServerLeases.File()}
}

// CheckState validates the persistent topics' files in dir the way
// LoadState reads them (strictly, as their schema), without publishing
// anything. A missing file is fine. It returns every problem, one
// ConfigError per problem, like Check: a restore refuses a backup whose
// state files the router would ignore.
func CheckState(dir string) []error {
	var out []error
	for _, p := range NewStore(dir).persistent {
		if c, ok := p.(stateReplacer); ok {
			out = appendProblems(out, c.checkFile())
		}
	}
	return out
}

// ReplaceState runs replace, which puts new versions of persistent files
// into the perm directory (a restore) and returns the names of the files
// it replaced, and then loads each of those that is a persistent topic's
// file back into its topic, all with the topics' writes held.
//
// Why: a persistent topic's value lives in memory, and SaveState writes it
// whenever the file is older than the value, and once more at shutdown.
// A file replaced under a running router would be overwritten by the next
// such write with what the router had in memory. Holding the writes across
// the swap and loading the new files (recorded as written) makes them the
// topics' values: they stay, and subscribers see them at once. A value a
// service publishes afterwards (a lease renewed) is newer than any backup
// and is written as usual.
//
// Only the replaced files are loaded: another file may lag its topic (a
// value published since the last write), and loading it would put the
// older value back.
//
// The error joins replace's and every file that did not load; the files
// replace names are loaded even when it fails part way through, since
// they are in /perm then and must not be written over.
func (s *Store) ReplaceState(replace func() (replaced []string, err error)) error {
	var held []stateReplacer
	for _, p := range s.persistent {
		if r, ok := p.(stateReplacer); ok {
			r.holdWrites()
			held = append(held, r)
		}
	}
	defer func() {
		for _, r := range held {
			r.releaseWrites()
		}
	}()
	replaced, err := replace()
	errs := []error{err}
	for _, r := range held {
		if !slices.Contains(replaced, r.File()) {
			continue
		}
		if err := r.reloadHeld(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stateReplacer is what ReplaceState and CheckState need of a
// Persistent, whatever its type.
type stateReplacer interface {
	File() string
	holdWrites()
	releaseWrites()
	reloadHeld() error
	checkFile() error
}

var _ stateReplacer = (*Persistent[ULA])(nil)

func (p *Persistent[T]) holdWrites()    { p.mu.Lock() }
func (p *Persistent[T]) releaseWrites() { p.mu.Unlock() }

// decodeFile reads and strictly decodes the file; ok is false when there
// is none.
func (p *Persistent[T]) decodeFile() (v T, ok bool, err error) {
	data, err := os.ReadFile(p.path)
	if errors.Is(err, fs.ErrNotExist) {
		return v, false, nil
	}
	if err != nil {
		return v, false, fmt.Errorf("state: %w", err)
	}
	if _, err := decodeStrict(filepath.Base(p.path), data, &v); err != nil {
		return v, false, err
	}
	return v, true, nil
}

func (p *Persistent[T]) checkFile() error {
	_, _, err := p.decodeFile()
	return err
}

// reloadHeld publishes the file's value (if it differs) and records it as
// written, so that SaveState leaves the file as it is. The caller holds
// mu.
func (p *Persistent[T]) reloadHeld() error {
	v, ok, err := p.decodeFile()
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if !ok {
		return nil
	}
	// Publish and take the version in one step: a service that publishes
	// just after must not have its value counted as written.
	t := p.Topic
	t.mu.Lock()
	if t.version == 0 || !reflect.DeepEqual(t.val, v) {
		t.publishLocked(v)
	}
	p.written = t.version
	t.mu.Unlock()
	p.loadErr = nil
	return nil
}
