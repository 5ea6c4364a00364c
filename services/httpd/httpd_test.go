package httpd

import (
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/state"
)

// TestHealth: /health.json's status, first_error and tree from the
// topics, in the order that puts causes first: config, /perm, services,
// then the diagnostics service's checks, then notices.
func TestHealth(t *testing.T) {
	internet := []state.HealthCheck{{Name: "link/uplink0", OK: true, Summary: "02:77:00:00:00:01 up, carrier",
		Children: []state.HealthCheck{{Name: "dhcp4", OK: true}}}, {Name: "link/lan0", OK: true}}
	noCarrier := []state.HealthCheck{{Name: "link/uplink0", Error: "no carrier on uplink0",
		Children: []state.HealthCheck{{Name: "dhcp4", Error: "dependency link/uplink0 failed"}}}, {Name: "link/lan0", OK: true}}
	for _, tc := range []struct {
		name      string
		files     map[string]string
		services  []state.ServiceStatus
		problem   error // reported by netconfig, or by problemAs
		problemAs string
		notice    string              // reported as the "perm" notice
		diagnosis []state.HealthCheck // nil: the diagnostics service has not run
		wantCode  int
		wantFirst string
		wantTop   string // the names of the tree's top nodes
	}{
		{
			name:      "healthy",
			files:     map[string]string{"interfaces.json": `{"interfaces": []}`},
			services:  []state.ServiceStatus{{Name: "netconfig", State: "running", Restarts: 2}},
			diagnosis: internet,
			wantCode:  http.StatusOK,
			wantTop:   "config perm services link/uplink0 link/lan0",
		},
		{
			name:      "not checked yet",
			files:     map[string]string{"interfaces.json": `{"interfaces": []}`},
			services:  []state.ServiceStatus{{Name: "netconfig", State: "running"}},
			wantCode:  http.StatusServiceUnavailable,
			wantFirst: "homerouter/internet: not checked yet (the diagnostics service has not run)",
			wantTop:   "config perm services internet",
		},
		{
			name:      "the cable pulled",
			files:     map[string]string{"interfaces.json": `{"interfaces": []}`},
			services:  []state.ServiceStatus{{Name: "netconfig", State: "running"}},
			diagnosis: noCarrier,
			wantCode:  http.StatusServiceUnavailable,
			wantFirst: "homerouter/link/uplink0: no carrier on uplink0",
			wantTop:   "config perm services link/uplink0 link/lan0",
		},
		{
			name:      "broken config file: named before the internet it breaks",
			files:     map[string]string{"interfaces.json": `{"interfaces": [{"name": "lan0", "addr": "x"}]}`},
			services:  []state.ServiceStatus{{Name: "netconfig", State: "running"}},
			diagnosis: noCarrier,
			wantCode:  http.StatusServiceUnavailable,
			wantFirst: `homerouter/config/interfaces.json: interfaces.json:1:42: interfaces[0].addr: "x" is not an address/prefix`,
			wantTop:   "config perm services link/uplink0 link/lan0",
		},
		{
			name:      "restarting service",
			files:     map[string]string{"interfaces.json": `{"interfaces": []}`},
			services:  []state.ServiceStatus{{Name: "netconfig", State: "running"}, {Name: "httpd", State: "restarting", LastError: "httpd: address in use"}},
			diagnosis: internet,
			wantCode:  http.StatusServiceUnavailable,
			wantFirst: "homerouter/services/httpd: restarting after: httpd: address in use",
			wantTop:   "config perm services link/uplink0 link/lan0",
		},
		{
			name:      "service reporting a problem",
			files:     map[string]string{"interfaces.json": `{"interfaces": []}`},
			services:  []state.ServiceStatus{{Name: "netconfig", State: "running"}},
			problem:   errors.New("netconfig: rename eth1 to lan0: link 3 already has that name"),
			diagnosis: internet,
			wantCode:  http.StatusServiceUnavailable,
			wantFirst: "homerouter/services/netconfig: netconfig: rename eth1 to lan0: link 3 already has that name",
			wantTop:   "config perm services link/uplink0 link/lan0",
		},
		{
			name:      "problem under another name",
			files:     map[string]string{"interfaces.json": `{"interfaces": []}`},
			services:  []state.ServiceStatus{{Name: "dhcp4d", State: "running"}},
			problemAs: "dhcp4d dhcp4d-leases.json",
			problem:   errors.New("cannot read the lease table"),
			diagnosis: internet,
			wantCode:  http.StatusServiceUnavailable,
			wantFirst: "homerouter/services/dhcp4d dhcp4d-leases.json: cannot read the lease table",
			wantTop:   "config perm services link/uplink0 link/lan0",
		},
		{
			name:      "a state file that cannot be written is /perm's failure",
			files:     map[string]string{"interfaces.json": `{"interfaces": []}`},
			services:  []state.ServiceStatus{{Name: "dhcp4d", State: "running"}},
			problemAs: state.SaveProblem,
			problem:   errors.New("write dhcp4d-leases.json: no space left on device"),
			diagnosis: noCarrier,
			wantCode:  http.StatusServiceUnavailable,
			wantFirst: "homerouter/perm: write dhcp4d-leases.json: no space left on device",
			wantTop:   "config perm services link/uplink0 link/lan0",
		},
		{
			name:      "a notice is not a failure",
			files:     map[string]string{"interfaces.json": `{"interfaces": []}`},
			services:  []state.ServiceStatus{{Name: "netconfig", State: "running"}},
			notice:    "/perm is a tmpfs, nothing will survive a reboot",
			diagnosis: internet,
			wantCode:  http.StatusOK,
			wantTop:   "config perm services link/uplink0 link/lan0",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
			}
			st := state.NewStore(dir)
			st.Reload()
			st.Router.Publish(state.RouterInfo{Version: "v1.2.3"})
			st.Services.Publish(tc.services)
			name := "netconfig"
			if tc.problemAs != "" {
				name = tc.problemAs
			}
			st.ReportProblem(name, tc.problem)
			if tc.notice != "" {
				st.ReportNotice("perm", tc.notice)
			}
			if tc.diagnosis != nil {
				st.Diagnosis.Publish(state.Diagnosis{Checked: time.Now(), Checks: tc.diagnosis})
			}

			rec := httptest.NewRecorder()
			Handler(st).ServeHTTP(rec, httptest.NewRequest("GET", "/health.json", nil))
			if rec.Code != tc.wantCode {
				t.Errorf("status = %d, want %d", rec.Code, tc.wantCode)
			}
			// The shape that monitoring and the update read.
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
				t.Fatalf("body is not JSON: %v\n%s", err, rec.Body)
			}
			for _, k := range []string{"first_error", "version", "checks"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("no %q in %s", k, rec.Body)
				}
			}
			var h Health
			if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil {
				t.Fatalf("body is not a Health: %v\n%s", err, rec.Body)
			}
			if h.FirstError != tc.wantFirst {
				t.Errorf("first_error = %q, want %q", h.FirstError, tc.wantFirst)
			}
			if h.Version != "v1.2.3" {
				t.Errorf("version = %q", h.Version)
			}
			var top []string
			for _, c := range h.Checks.Children {
				top = append(top, c.Name)
			}
			if got := strings.Join(top, " "); got != tc.wantTop {
				t.Errorf("top of the tree: %s, want %s", got, tc.wantTop)
			}
			if perm := h.Checks.Children[1]; perm.Notice != tc.notice {
				t.Errorf("perm = %+v, want notice %q", perm, tc.notice)
			}
			if h.Checks.OK != (tc.wantFirst == "") {
				t.Errorf("check tree = %+v", h.Checks)
			}
		})
	}
}

func TestListenAddrs(t *testing.T) {
	links := []state.Link{
		{Name: "uplink0", Addrs: []netip.Prefix{netip.MustParsePrefix("10.77.0.100/24")}},
		{Name: "lan0", Addrs: []netip.Prefix{
			netip.MustParsePrefix("10.42.0.1/24"),
			netip.MustParsePrefix("fe80::1/64"),
			netip.MustParsePrefix("fd00:42::1/64"),
		}},
	}
	want := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:8080"),
		netip.MustParseAddrPort("[::1]:8080"),
		netip.MustParseAddrPort("10.42.0.1:8080"),
		netip.MustParseAddrPort("[fd00:42::1]:8080"),
	}
	if diff := cmp.Diff(want, listenAddrs(links, 8080), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("listenAddrs: -want +got:\n%s", diff)
	}
}

// TestEndpoints: what main contributes is served beside /health.json; an
// endpoint that needs the password takes it in basic auth (any user
// name) and is refused without it, or to everyone while the router has
// none; a pattern given twice is an error at New, not a panic.
func TestEndpoints(t *testing.T) {
	st := state.NewStore(t.TempDir())
	text := func(body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
	}
	endpoints := []services.Endpoint{
		{Pattern: "GET /log", Handler: text("platform: booted\n")},
		{Pattern: "POST /update", Handler: text("updating"), NeedsPassword: true},
	}
	password := func() (string, error) { return "s3cret", nil }
	noPassword := func() (string, error) { return "", errors.New("http-password.txt: permission denied") }
	for _, tc := range []struct {
		password     func() (string, error)
		method, path string
		user, pw     string // basic auth; "" none
		wantCode     int
		want         string
	}{
		{password, "GET", "/log", "", "", http.StatusOK, "platform: booted\n"},
		{password, "GET", "/health.json", "", "", http.StatusServiceUnavailable, `"first_error": "homerouter/internet: not checked yet`},
		{password, "POST", "/update", "", "", http.StatusUnauthorized, "needs the router's password (HTTP basic auth, any user name; it is in /perm/http-password.txt): wrong or missing"},
		{password, "POST", "/update", "admin", "wrong", http.StatusUnauthorized, "wrong or missing"},
		{password, "POST", "/update", "admin", "s3cret", http.StatusOK, "updating"},
		{password, "POST", "/update", "", "s3cret", http.StatusOK, "updating"},
		{noPassword, "POST", "/update", "admin", "", http.StatusForbidden, "there is none (http-password.txt: permission denied): refused"},
		{nil, "POST", "/update", "admin", "s3cret", http.StatusForbidden, "there is none (this router has no password set up): refused"},
		{password, "GET", "/nothing", "", "", http.StatusNotFound, ""},
	} {
		s, err := New(st, log.New(io.Discard, "", 0), Options{Password: tc.password}, endpoints...)
		if err != nil {
			t.Fatal(err)
		}
		h, err := s.handler()
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.user != "" || tc.pw != "" {
			req.SetBasicAuth(tc.user, tc.pw)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != tc.wantCode || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s %s (%q:%q) = %d %q, want %d with %q", tc.method, tc.path, tc.user, tc.pw, rec.Code, rec.Body, tc.wantCode, tc.want)
		}
		if rec.Code == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("401 without a WWW-Authenticate: %v", rec.Header())
		}
	}

	for _, bad := range [][]services.Endpoint{
		{{Pattern: "GET /log", Handler: text("a")}, {Pattern: "GET /log", Handler: text("b")}},
		{{Pattern: "GET /health.json", Handler: text("mine")}},
		{{Pattern: "GET /x"}},
	} {
		if _, err := New(st, log.New(io.Discard, "", 0), Options{}, bad...); err == nil || !strings.Contains(err.Error(), "httpd: endpoint") {
			t.Errorf("New with %d endpoints %q...: %v, want an endpoint error", len(bad), bad[len(bad)-1].Pattern, err)
		}
	}
}
