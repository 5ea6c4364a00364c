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
// The file is written atomically and pretty-printed, so that a person can
// read and edit it, before subscribers are woken: whatever a subscriber
// acts on is already on disk.
type Persistent[T any] struct {
	*Topic[T]
	path string
	mu   sync.Mutex // orders writes with publications
}

// LoadPersistent returns the persistent topic stored in dir/file, holding
// the file's value if it exists (at version 1) or the zero value (at
// version 0). A file that does not parse is an error, and is left as it
// is for a person to look at.
func LoadPersistent[T any](dir, file string) (*Persistent[T], error) {
	p := newPersistent[T](dir, file)
	return p, p.load()
}

func newPersistent[T any](dir, file string) *Persistent[T] {
	return &Persistent[T]{Topic: NewTopic[T](file), path: filepath.Join(dir, file)}
}

// load publishes the file's value, if there is a file.
func (p *Persistent[T]) load() error {
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
	p.Topic.Publish(v)
	return nil
}

// Publish writes v to the file and then publishes it. When the write fails
// the topic keeps its old value and the error is returned.
func (p *Persistent[T]) Publish(v T) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("state: encode %s: %w", p.Name(), err)
	}
	if err := WriteFileAtomic(p.path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	p.Topic.Publish(v)
	return nil
}
