package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequiredEnv names the environment variable that turns missing lab
// prerequisites from a skip into a failure. CI sets HOMEROUTER_LAB=required
// so that a broken runner cannot pass by skipping every lab test.
const RequiredEnv = "HOMEROUTER_LAB"

// RouterPackage is the import path RouterBinary builds.
const RouterPackage = "github.com/homerouter/homerouter"

// missing skips the test, or fails it when the lab is required.
func missing(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(RequiredEnv) == "required" {
		t.Fatalf("lab prerequisite missing (%s=required): %s", RequiredEnv, reason)
	}
	t.Skipf("lab prerequisite missing: %s (set %s=required to fail instead)", reason, RequiredEnv)
}

// NewT returns a lab for a test, or skips the test when it cannot run here
// (not root, no `ip`); with HOMEROUTER_LAB=required it fails instead. The
// lab is closed in t.Cleanup; if the test failed, each process's output is
// logged first, because that is usually where the reason is.
func NewT(t *testing.T) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "not running as root")
	}
	if _, err := LookPath("ip"); err != nil {
		missing(t, err.Error())
	}
	if err := Sweep(); err != nil {
		t.Logf("lab: sweep leftovers: %v", err)
	}
	l, err := New(t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range l.Processes() {
				t.Logf("output of %s:\n%s", p, p.Output())
			}
		}
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	return l
}

// Require skips (or, with HOMEROUTER_LAB=required, fails) the test unless
// every binary is installed, looking in PATH and the sbin directories.
func Require(t *testing.T, binaries ...string) {
	t.Helper()
	var absent []string
	for _, b := range binaries {
		if _, err := LookPath(b); err != nil {
			absent = append(absent, b)
		}
	}
	if len(absent) > 0 {
		missing(t, "binaries not installed: "+strings.Join(absent, ", "))
	}
}

// RequireFiles skips (or, with HOMEROUTER_LAB=required, fails) the test
// unless every file exists: built artifacts such as the boot image, or
// devices such as /dev/net/tun.
func RequireFiles(t *testing.T, files ...string) {
	t.Helper()
	var absent []string
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			absent = append(absent, f)
		}
	}
	if len(absent) > 0 {
		missing(t, "files missing: "+strings.Join(absent, ", "))
	}
}

// routerBuild caches the router binary: one build per test process,
// done before any namespace exists (there is no network inside one).
var routerBuild struct {
	once sync.Once
	path string
	err  error
}

// RouterBinary builds the homerouter binary (CGO_ENABLED=0, like the
// image) once per test process and returns its path. The build dir carries
// the pid, so Sweep removes it after the process is gone.
func RouterBinary(t *testing.T) string {
	t.Helper()
	routerBuild.once.Do(func() {
		routerBuild.path, routerBuild.err = BuildBinary(context.Background(), buildDir(), "homerouter", RouterPackage)
	})
	if routerBuild.err != nil {
		t.Fatalf("lab: build router: %v", routerBuild.err)
	}
	return routerBuild.path
}

// BuildBinary runs `go build` for pkg (CGO_ENABLED=0) into dir/name and
// returns the path. Build before creating namespaces: a namespace has no
// network for the module proxy.
func BuildBinary(ctx context.Context, dir, name, pkg string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("lab: build %s: %w", pkg, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("lab: build %s: %w", pkg, err)
	}
	out := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("lab: go build %s: %w: %s", pkg, err, strings.TrimSpace(string(b)))
	}
	return out, nil
}

// buildDir holds this process's RouterBinary build. Its name carries the
// pid, so Sweep removes it if RemoveBuilds never ran.
func buildDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("%s%dx000000-build", namePrefix, os.Getpid()))
}

// RemoveBuilds deletes the binary RouterBinary built. Call it from TestMain
// after m.Run; otherwise the next lab's Sweep removes it.
func RemoveBuilds() error {
	if err := os.RemoveAll(buildDir()); err != nil {
		return fmt.Errorf("lab: remove build dir: %w", err)
	}
	return nil
}

// Main runs a package's tests and then removes the router build that
// RouterBinary made. Call it from TestMain in packages that use the lab.
func Main(m *testing.M) {
	code := m.Run()
	if err := RemoveBuilds(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}
