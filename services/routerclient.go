package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/homerouter/homerouter/state"
)

// RouterClient is a workstation's connection to a router's endpoints:
// what the workstation commands (`homerouter update`, `backup`, `restore`,
// `version -router`) share, so that the address forms and the password
// are handled in one place.
type RouterClient struct {
	// Router is the router's address: "192.168.42.1", "host:port", or a
	// URL ("http://127.0.0.1:8080", as the tests' servers have).
	Router string
	// Password is the router's (its /perm/http-password.txt), sent in
	// HTTP basic auth to the endpoints that need it.
	Password string
	// HTTP is the client to use; nil: http.DefaultClient.
	HTTP *http.Client
}

// URL returns the address of path (which begins with "/") on the router.
func (c *RouterClient) URL(path string) string {
	if strings.Contains(c.Router, "://") {
		return strings.TrimSuffix(c.Router, "/") + path
	}
	return "http://" + c.Router + path
}

// Do sends req, with the password when auth is set.
func (c *RouterClient) Do(req *http.Request, auth bool) (*http.Response, error) {
	if auth {
		// Any user name: the router has one password.
		req.SetBasicAuth("homerouter", c.Password)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	return hc.Do(req)
}

// Get fetches path within timeout: the error of a router that does not
// answer, and the status and whole body of one that does.
func (c *RouterClient) Get(ctx context.Context, path string, auth bool, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", c.URL(path), nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req, auth)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// BackupFileName is the name of a backup saved at t: what `homerouter
// backup` writes without -o, what `homerouter update` saves before it
// updates, and what the router suggests for GET /backup.tar.gz.
func BackupFileName(t time.Time) string {
	return "homerouter-backup-" + t.Format("20060102-150405") + ".tar.gz"
}

// ErrNoBackup is SaveBackup's error for a router that answers GET
// /backup.tar.gz with 404: a version from before backups.
var ErrNoBackup = errors.New("the router has no backup (GET /backup.tar.gz: 404)")

// backupTimeout bounds a backup's download: 16 MiB at most over the LAN,
// and time to spare for a router under emulation.
const backupTimeout = 5 * time.Minute

// SaveBackup downloads the router's backup (GET /backup.tar.gz) into
// path, which it replaces atomically (a temp file renamed: an
// interrupted download leaves no half archive), readable by its owner
// only, whatever path's mode was: the backup holds the router's
// password. check, when not nil, is run on the archive first, and what
// it refuses is not written. It returns the archive's size.
//
// `homerouter backup` and `homerouter update` both save backups with it,
// so that they are written alike.
func (c *RouterClient) SaveBackup(ctx context.Context, path string, check func(archive []byte) error) (int, error) {
	code, b, err := c.Get(ctx, "/backup.tar.gz", true, backupTimeout)
	switch {
	case err != nil:
		return 0, fmt.Errorf("backup: %w", err)
	case code == http.StatusNotFound:
		return 0, fmt.Errorf("backup: %w", ErrNoBackup)
	case code != http.StatusOK:
		return 0, fmt.Errorf("backup: GET /backup.tar.gz: %d %s", code, strings.TrimSpace(string(b)))
	}
	if check != nil {
		if err := check(b); err != nil {
			return 0, fmt.Errorf("backup: %w", err)
		}
	}
	if err := state.WriteFileAtomic(path, b, 0o600); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	return len(b), nil
}
