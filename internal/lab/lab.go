// Package lab builds throw-away network-namespace labs for tests and demos.
//
// A Lab owns everything it creates: network namespaces (each with its own
// /etc/netns/NAME/resolv.conf), veth pairs, background processes and a temp
// dir. Close undoes all of it, so a test can run real peers (dnsmasq, ISC
// dhcpd, radvd) and real clients (udhcpc, dhclient, rdisc6, dig) against the
// router without touching the host. The Go process never switches namespaces
// itself: every command runs through `ip netns exec`, because a Go thread
// left in the wrong namespace silently breaks unrelated code.
package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// etcNetns is where `ip netns exec` looks for per-namespace /etc overrides.
const etcNetns = "/etc/netns"

// namePrefix starts every namespace, temp dir and build dir this package
// creates, so that Sweep can recognise (and only touch) its own leftovers.
const namePrefix = "hr"

// labNameRE matches a lab id: the creating pid and a random suffix. Sweep
// uses the pid to decide whether the owner is gone.
var labNameRE = regexp.MustCompile(`^hr([0-9]+)x[0-9a-f]{6}(-|$)`)

// sbinDirs are searched after PATH, because root's tools live in sbin and a
// test's PATH often lacks it.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"}

// LookPath finds a binary in PATH or the sbin directories. The lab resolves
// every command to an absolute path before handing it to `ip netns exec`, so
// a short PATH in the test environment cannot change which binary runs.
func LookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("lab: %s not found in PATH or %s", name, strings.Join(sbinDirs, ", "))
}

// Lab owns namespaces, links, processes and a temp dir; Close undoes all of
// it. It is safe for concurrent use.
type Lab struct {
	id   string
	dir  string
	ip   string
	logf func(format string, args ...any)

	mu      sync.Mutex
	closed  bool
	netns   []*Netns
	procs   []*Process
	counter int
}

// New creates an empty lab with its own temp dir. The lab's id holds the
// current pid so that Sweep can remove what a crashed test left behind.
// logf receives one line per action (nil discards); tests pass t.Logf.
func New(logf func(format string, args ...any)) (*Lab, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ip, err := LookPath("ip")
	if err != nil {
		return nil, err
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("lab: random id: %w", err)
	}
	id := fmt.Sprintf("%s%dx%s", namePrefix, os.Getpid(), hex.EncodeToString(b[:]))
	dir := filepath.Join(os.TempDir(), id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: temp dir: %w", err)
	}
	l := &Lab{id: id, dir: dir, ip: ip, logf: logf}
	logf("lab %s: temp dir %s", id, dir)
	return l, nil
}

// ID is the lab's unique prefix, used in namespace names.
func (l *Lab) ID() string { return l.id }

// Dir is the lab's temp dir: every config, lease, pid and log file of the
// lab's daemons goes here, so that nothing writes to /etc or /var.
func (l *Lab) Dir() string { return l.dir }

// Logf logs through the lab's logger, so helpers built on the lab log in the
// same place as the lab itself.
func (l *Lab) Logf(format string, args ...any) { l.logf(format, args...) }

// Processes returns the processes started so far, so that a failing test
// can print their output.
func (l *Lab) Processes() []*Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Process(nil), l.procs...)
}

// host runs ip (or another tool) on the host, for the few steps that must
// happen outside any namespace (creating and deleting namespaces and veths).
func (l *Lab) host(ctx context.Context, name string, args ...string) (string, error) {
	path, err := LookPath(name)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("lab: %s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Netns is one network namespace of a lab. Everything run in it goes
// through `ip netns exec`, which also bind-mounts its own resolv.conf.
type Netns struct {
	lab  *Lab
	name string
	role string
}

// Name is the namespace name as `ip netns` knows it.
func (n *Netns) Name() string { return n.name }

// Role is the short name the namespace was created with ("isp", "lan", ...).
func (n *Netns) Role() string { return n.role }

// String returns the namespace name, for log lines.
func (n *Netns) String() string { return n.name }

// Netns creates a namespace named after the lab and role, with lo up and
// /etc/netns/NAME/resolv.conf set to "nameserver 127.0.0.1" so that nothing
// inside ever queries the host's resolvers. The resolv.conf exists before
// anything runs in the namespace.
func (l *Lab) Netns(role string) (*Netns, error) {
	if role == "" || strings.ContainsAny(role, "/ \t\n") {
		return nil, fmt.Errorf("lab: bad namespace role %q", role)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("lab: closed")
	}
	l.counter++
	name := fmt.Sprintf("%s-%d%s", l.id, l.counter, role)
	n := &Netns{lab: l, name: name, role: role}
	// Registered before creation, so Close cleans up after a partial failure.
	l.netns = append(l.netns, n)
	l.mu.Unlock()

	if err := n.SetResolvConf("nameserver 127.0.0.1\n"); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.host(ctx, "ip", "netns", "add", name); err != nil {
		return nil, fmt.Errorf("lab: create namespace %s: %w", name, err)
	}
	if _, err := n.Run(ctx, "ip", "link", "set", "lo", "up"); err != nil {
		return nil, fmt.Errorf("lab: lo up in %s: %w", name, err)
	}
	l.logf("lab: namespace %s (%s)", name, role)
	return n, nil
}

// SetResolvConf replaces the namespace's resolv.conf. `ip netns exec` binds
// it over /etc/resolv.conf, so it takes effect for commands started later.
func (n *Netns) SetResolvConf(content string) error {
	dir := filepath.Join(etcNetns, n.name)
	var err error
	// Another lab may remove an empty /etc/netns between our MkdirAll's
	// steps; retry once.
	for range 3 {
		if err = os.MkdirAll(dir, 0o755); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lab: resolv.conf for %s: %w", n.name, err)
	}
	path := filepath.Join(dir, "resolv.conf")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return fmt.Errorf("lab: resolv.conf for %s: %w", n.name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("lab: resolv.conf for %s: %w", n.name, err)
	}
	return nil
}

// Command returns `ip netns exec NAME name args...`, with name resolved to
// an absolute path. ip execs the command directly, so the returned process
// is the command itself and signals reach it.
func (n *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	path, err := LookPath(name)
	if err != nil {
		path = name // let exec report the missing binary
	}
	cmd := exec.CommandContext(ctx, n.lab.ip, append([]string{"netns", "exec", n.name, path}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs a command in the namespace and returns its combined output. The
// error includes the output, which is what a failing test wants to see.
func (n *Netns) Run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := n.Command(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("lab: in %s: %s %s: %w: %s", n.name, name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// WaitLinkLocal waits until iface has a usable (non-tentative) IPv6
// link-local address: DHCPv6, RA and ND tools fail or send from :: before
// duplicate address detection finishes.
func (n *Netns) WaitLinkLocal(ctx context.Context, iface string) error {
	return WaitFor(ctx, fmt.Sprintf("link-local address on %s in %s", iface, n.name), func() error {
		out, err := n.Run(ctx, "ip", "-6", "-o", "addr", "show", "dev", iface, "scope", "link")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "inet6 fe80:") && !strings.Contains(line, "tentative") {
				return nil
			}
		}
		return fmt.Errorf("no usable link-local address yet: %q", strings.TrimSpace(out))
	})
}

// Veth creates a veth pair with one end in each namespace, named and with
// the MACs given (empty MAC: kernel's choice), and brings both ends up. The
// ends are created directly inside their namespaces, so short names like
// "wan" never appear (or collide) on the host. No addresses are assigned:
// that is the test's (or the router's) job.
func (l *Lab) Veth(a *Netns, aName, aMAC string, b *Netns, bName, bMAC string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	args := []string{"link", "add", aName}
	if aMAC != "" {
		args = append(args, "address", aMAC)
	}
	args = append(args, "netns", a.name, "type", "veth", "peer", "name", bName)
	if bMAC != "" {
		args = append(args, "address", bMAC)
	}
	args = append(args, "netns", b.name)
	if _, err := l.host(ctx, "ip", args...); err != nil {
		return fmt.Errorf("lab: veth %s/%s <-> %s/%s: %w", a.name, aName, b.name, bName, err)
	}
	for _, end := range []struct {
		n     *Netns
		iface string
	}{{a, aName}, {b, bName}} {
		if _, err := end.n.Run(ctx, "ip", "link", "set", end.iface, "up"); err != nil {
			return fmt.Errorf("lab: veth up: %w", err)
		}
	}
	l.logf("lab: veth %s/%s (%s) <-> %s/%s (%s)", a.name, aName, aMAC, b.name, bName, bMAC)
	return nil
}

// WriteFile writes a file into the lab's temp dir and returns its path;
// daemons get their configs this way.
func (l *Lab) WriteFile(name, content string, perm fs.FileMode) (string, error) {
	path := filepath.Join(l.dir, name)
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		return "", fmt.Errorf("lab: write %s: %w", name, err)
	}
	return path, nil
}

// abortError marks a condition error that waiting longer cannot fix.
type abortError struct{ err error }

func (e abortError) Error() string { return e.err.Error() }
func (e abortError) Unwrap() error { return e.err }

// Abort wraps an error returned by a WaitFor condition to stop waiting at
// once, e.g. when the process that should become ready has exited.
func Abort(err error) error { return abortError{err} }

// WaitFor polls cond about every 50ms until it returns nil. On ctx's end it
// returns the last error from cond, labelled with what, so a timeout says
// what was being waited for and how it looked at the end. A condition error
// wrapped with Abort ends the wait immediately.
func WaitFor(ctx context.Context, what string, cond func() error) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		var ae abortError
		if errors.As(err, &ae) {
			return fmt.Errorf("lab: waiting for %s: %w", what, ae.err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: waiting for %s: %w (last error: %v)", what, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Close stops every process (SIGTERM, SIGKILL after 3s, and waits), kills
// anything else left in the namespaces, deletes them and their /etc/netns
// dirs, and removes the temp dir. It is safe to call more than once and
// after a partial setup failure; it returns all errors joined.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := l.procs
	nss := l.netns
	l.mu.Unlock()

	var errs []error
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(3 * time.Second)
		}()
	}
	wg.Wait()
	for i := len(nss) - 1; i >= 0; i-- {
		if err := deleteNetns(nss[i].name); err != nil {
			errs = append(errs, err)
		}
	}
	removeEtcNetnsIfEmpty()
	if err := os.RemoveAll(l.dir); err != nil {
		errs = append(errs, fmt.Errorf("lab: remove temp dir: %w", err))
	}
	l.logf("lab %s: closed", l.id)
	return errors.Join(errs...)
}

// deleteNetns kills whatever still runs in the namespace (only processes in
// that namespace, which the lab created), deletes it and its /etc/netns dir.
// A namespace that does not exist is not an error.
func deleteNetns(name string) error {
	ip, err := LookPath("ip")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if _, err := os.Stat(filepath.Join("/run/netns", name)); err == nil {
		killNetnsPids(ctx, ip, name)
		out, err := exec.CommandContext(ctx, ip, "netns", "delete", name).CombinedOutput()
		if _, statErr := os.Stat(filepath.Join("/run/netns", name)); err != nil && !errors.Is(statErr, fs.ErrNotExist) {
			// Gone anyway is fine: another test process's Sweep may
			// have deleted it at the same time.
			errs = append(errs, fmt.Errorf("lab: delete namespace %s: %w: %s", name, err, bytes.TrimSpace(out)))
		}
	}
	if err := os.RemoveAll(filepath.Join(etcNetns, name)); err != nil {
		errs = append(errs, fmt.Errorf("lab: remove %s/%s: %w", etcNetns, name, err))
	}
	return errors.Join(errs...)
}

// killNetnsPids SIGKILLs the processes inside a lab namespace and waits
// (briefly) until none is left, so no daemon outlives its namespace.
func killNetnsPids(ctx context.Context, ip, name string) {
	pids := func() []int {
		out, _ := exec.CommandContext(ctx, ip, "netns", "pids", name).Output()
		var r []int
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				r = append(r, pid)
			}
		}
		return r
	}
	for _, pid := range pids() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	WaitFor(wctx, "processes in "+name+" to exit", func() error {
		if p := pids(); len(p) > 0 {
			return fmt.Errorf("still running: %v", p)
		}
		return nil
	})
}

// removeEtcNetnsIfEmpty removes /etc/netns once no namespace needs it, so a
// lab run leaves /etc as it found it (Remove fails on a non-empty dir).
func removeEtcNetnsIfEmpty() {
	os.Remove(etcNetns)
}

// Sweep removes what labs of dead processes left behind: namespaces (and
// anything running in them), /etc/netns dirs, temp dirs and build dirs
// whose name carries a pid that no longer runs. A test binary killed by a
// timeout never runs Close; the next run calls Sweep.
func Sweep() error {
	dead := func(name string) bool {
		m := labNameRE.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid <= 0 {
			return false
		}
		return syscall.Kill(pid, 0) == syscall.ESRCH
	}
	var errs []error
	seen := map[string]bool{}
	for _, dir := range []string{"/run/netns", etcNetns} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if seen[e.Name()] || !dead(e.Name()) {
				continue
			}
			seen[e.Name()] = true
			if err := deleteNetns(e.Name()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	removeEtcNetnsIfEmpty()
	entries, _ := os.ReadDir(os.TempDir())
	for _, e := range entries {
		if e.IsDir() && dead(e.Name()) {
			if err := os.RemoveAll(filepath.Join(os.TempDir(), e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("lab: sweep: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}
