package state

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPassword(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadPassword(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no file: %v, want not exist", err)
	}
	pw, created, err := EnsurePassword(dir)
	if err != nil || !created || len(pw) != 20 || strings.ContainsAny(pw, "01lIO") {
		t.Fatalf("first: %q %v %v", pw, created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, PasswordFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the file: %v %v, want mode 0600", fi, err)
	}
	again, created, err := EnsurePassword(dir)
	if err != nil || created || again != pw {
		t.Errorf("second: %q %v %v, want %q kept", again, created, err, pw)
	}
	// A person's own, with a newline from their editor.
	os.WriteFile(filepath.Join(dir, PasswordFile), []byte("  correct horse\n"), 0o600)
	if got, err := ReadPassword(dir); got != "correct horse" || err != nil {
		t.Errorf("own password: %q %v", got, err)
	}
	os.WriteFile(filepath.Join(dir, PasswordFile), []byte("\n"), 0o600)
	if _, _, err := EnsurePassword(dir); err == nil {
		t.Errorf("an empty file: no error (and no new password over it)")
	}
}
