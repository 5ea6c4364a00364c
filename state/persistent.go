package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Persistent is a topic backed by one JSON file under the perm directory,
// for state that must survive a reboot (a DHCP lease, a delegated prefix).
//
// Publish reaches subscribers at once; the file follows. The Store's
// SaveState writes it, atomically and pretty-printed so that a person can
// read and edit it, coalescing a burst of publications into one write.
// The order is on purpose: when /perm is full, read-only or gone, the
// router must go on using its new lease and naming its LAN clients, and a
// reboot in that state loses only what it would have lost anyway. A write
// that fails is retried and shown on /health.json until one succeeds.
type Persistent[T any] struct {
	*Topic[T]
	path string

	mu      sync.Mutex // one write at a time, and guards written and loadErr
	written uint64     // the version on disk (or loaded from it)
	loadErr error      // why the file did not load, if it did not
}

// loadPersistent returns the persistent topic stored in dir/file, holding
// the file's value if it exists (at version 1) or the zero value (at
// version 0). A file that does not parse is an error, and is left as it
// is for a person to look at. Nothing writes it but Flush: the Store's
// persistent topics are declared with persist, and SaveState writes them.
func loadPersistent[T any](dir, file string) (*Persistent[T], error) {
	p := newPersistent[T](dir, file)
	return p, p.load()
}

func newPersistent[T any](dir, file string) *Persistent[T] {
	return &Persistent[T]{Topic: NewTopic[T](file), path: filepath.Join(dir, file)}
}

// LoadErr returns why the file did not load at start (it exists but does
// not parse), or nil. A service that would make a new value from nothing
// (a random prefix, an identity) checks it, so that it does not replace
// what a person may still mend.
func (p *Persistent[T]) LoadErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.loadErr
}

// load publishes the file's value, if there is a file.
func (p *Persistent[T]) load() error {
	err := p.read()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loadErr = err
	return err
}

// read publishes the file's value, if there is a file.
func (p *Persistent[T]) read() error {
	dir, file := filepath.Split(p.path)
	// Temp files of writes cut short by a crash or power cut are garbage:
	// the rename never happened.
	if stale, err := filepath.Glob(filepath.Join(dir, "."+file+".tmp*")); err == nil {
		for _, f := range stale {
			os.Remove(f)
		}
	}
	data, err := os.ReadFile(p.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	var v T
	if _, err := decodeStrict(file, data, &v); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Topic.Publish(v)
	_, p.written = p.Topic.Get()
	return nil
}

// Publish replaces the value and wakes every subscriber at once; the file
// is written after (see Persistent).
func (p *Persistent[T]) Publish(v T) { p.Topic.Publish(v) }

// Flush writes the current value to the file unless the file already
// holds it. On an error the file keeps its previous content and a later
// Flush tries again.
func (p *Persistent[T]) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, version := p.Topic.Get()
	if version == p.written {
		return nil
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", p.Name(), err)
	}
	if err := WriteFileAtomic(p.path, append(data, '\n'), 0o644); err != nil {
		return err
	}
	p.written = version
	return nil
}

// File returns the file's name in the perm directory.
func (p *Persistent[T]) File() string { return filepath.Base(p.path) }

// persistentFile is what the Store needs of every Persistent, whatever
// its type.
type persistentFile interface {
	Watcher
	File() string
	load() error
	Flush() error
}

// persist declares a persistent topic of s: it is loaded by LoadState and
// written by SaveState, so that a new one needs no other list.
func persist[T any](s *Store, file string) *Persistent[T] {
	p := newPersistent[T](s.dir, file)
	s.persistent = append(s.persistent, p)
	return p
}
