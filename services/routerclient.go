package services

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"
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
