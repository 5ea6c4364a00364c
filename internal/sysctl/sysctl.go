// Package sysctl reads and writes kernel settings under /proc/sys. The
// files there belong to the network namespace of the process that opens
// them, so under `homerouter run` they configure the router's namespace,
// not the host's.
package sysctl

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Root is where the kernel's settings are.
const Root = "/proc/sys"

// Name returns path as sysctl(8) writes it: net.ipv4.ip_forward.
func Name(path []string) string { return strings.Join(path, ".") }

// Get returns the value of the setting at path under root (normally
// Root; a path element may hold dots, as a link name can).
func Get(root string, path []string) (string, error) {
	b, err := os.ReadFile(filepath.Join(append([]string{root}, path...)...))
	if err != nil {
		return "", fmt.Errorf("sysctl %s: %w", Name(path), err)
	}
	return string(bytes.TrimSpace(b)), nil
}

// Set writes value to the setting at path under root unless it already
// has it, and reports whether it wrote.
func Set(root string, path []string, value string) (bool, error) {
	cur, err := Get(root, path)
	if err != nil {
		return false, err
	}
	if cur == value {
		return false, nil
	}
	if err := os.WriteFile(filepath.Join(append([]string{root}, path...)...), []byte(value+"\n"), 0o644); err != nil {
		return false, fmt.Errorf("sysctl %s=%s: %w", Name(path), value, err)
	}
	return true, nil
}
