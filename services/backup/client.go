package backup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/homerouter/homerouter/services"
)

// Client backs up and restores a router from a workstation: `homerouter
// backup` and `homerouter restore`.
type Client struct {
	services.RouterClient
}

// requestTimeout bounds a restore's upload and answer: the archive is
// at most MaxArchiveSize, over the LAN.
const requestTimeout = time.Minute

// Save downloads the router's backup into path, as
// services.RouterClient.SaveBackup does (atomically, mode 0600: it holds
// the router's password), once ReadArchive has read it. It returns the
// archive's size.
func (c *Client) Save(ctx context.Context, path string) (int, error) {
	return c.SaveBackup(ctx, path, func(archive []byte) error {
		// What a restore would refuse is worth knowing now, not on the
		// day it is needed.
		if _, err := ReadArchive(bytes.NewReader(archive)); err != nil {
			return fmt.Errorf("the router sent an archive a restore would refuse:\n%w", err)
		}
		return nil
	})
}

// Restore uploads the archive at path to the router, which checks it
// and puts it in force, or refuses it. It returns the router's answer;
// a refusal is an error that holds every problem, one per line.
func (c *Client) Restore(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	if fi.Size() > MaxArchiveSize {
		return "", fmt.Errorf("restore: %s: %v: the router would refuse it", path, errTooBig)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", c.URL("/restore"), f)
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	req.ContentLength = fi.Size()
	req.Header.Set("Content-Type", "application/gzip")
	resp, err := c.Do(req, true)
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	answer := strings.TrimSpace(string(b))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("restore: %s: %d %s", path, resp.StatusCode, answer)
	}
	return answer, nil
}
