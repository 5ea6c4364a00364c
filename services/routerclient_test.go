package services

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSaveBackup: what `homerouter backup` and `homerouter update` save,
// and how. The file is replaced by a rename and is the owner's alone
// even when a file of that name was there, readable by all (a plain
// os.WriteFile keeps the old file's mode); a 404 is ErrNoBackup; what
// the check refuses, and an error page, are not written.
func TestSaveBackup(t *testing.T) {
	const archive = "the archive"
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, pw, ok := r.BasicAuth(); r.URL.Path != "/backup.tar.gz" || !ok || u != "homerouter" || pw != "pw" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		if status != http.StatusOK {
			http.Error(w, "not here", status)
			return
		}
		w.Write([]byte(archive))
	}))
	defer srv.Close()
	c := &RouterClient{Router: srv.URL, Password: "pw"}
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, BackupFileName(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)))
	if want := "homerouter-backup-20250102-030405.tar.gz"; filepath.Base(path) != want {
		t.Errorf("BackupFileName = %s, want %s", filepath.Base(path), want)
	}
	if err := os.WriteFile(path, []byte("an older backup"), 0o644); err != nil {
		t.Fatal(err)
	}
	var checked string
	n, err := c.SaveBackup(ctx, path, func(b []byte) error { checked = string(b); return nil })
	if err != nil || n != len(archive) || checked != archive {
		t.Fatalf("SaveBackup = %d, %v (checked %q); want %d, nil, the archive checked", n, err, checked, len(archive))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != archive || fi.Mode().Perm() != 0o600 {
		t.Errorf("the saved backup: %v %q; want -rw------- %q", fi.Mode(), b, archive)
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		entries, _ := os.ReadDir(dir)
		if b, _ := os.ReadFile(path); len(entries) != 1 || string(b) != archive {
			t.Errorf("the directory holds %d entries, the backup %q; want the one earlier backup", len(entries), b)
		}
	}
	unchanged(t) // and no temp file left

	t.Run("refused by the check", func(t *testing.T) {
		_, err := c.SaveBackup(ctx, path, func([]byte) error { return errors.New("malformed") })
		if err == nil || !strings.Contains(err.Error(), "malformed") {
			t.Errorf("SaveBackup = %v, want the check's error", err)
		}
		unchanged(t)
	})
	t.Run("404", func(t *testing.T) {
		status = http.StatusNotFound
		defer func() { status = http.StatusOK }()
		if _, err := c.SaveBackup(ctx, path, nil); !errors.Is(err, ErrNoBackup) {
			t.Errorf("SaveBackup = %v, want ErrNoBackup", err)
		}
		unchanged(t)
	})
	t.Run("500", func(t *testing.T) {
		status = http.StatusInternalServerError
		defer func() { status = http.StatusOK }()
		if _, err := c.SaveBackup(ctx, path, nil); err == nil || errors.Is(err, ErrNoBackup) || !strings.Contains(err.Error(), "500 not here") {
			t.Errorf("SaveBackup = %v, want the router's 500", err)
		}
		unchanged(t)
	})
}
