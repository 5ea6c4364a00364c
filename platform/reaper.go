package platform

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// reaper waits for the orphaned processes the kernel gives PID 1, so that
// they do not stay zombies, and leaves alone the children PID 1 starts
// itself through start: their exec.Cmd.Wait must get their exit status.
//
// It cannot simply wait for any child (wait4(-1)): that takes the exit
// status of a child that exec.Cmd.Wait is about to ask for, and Wait then
// fails with ECHILD. So on each SIGCHLD it lists its zombie children in
// /proc and waits for each by pid, skipping the ones start registered.
type reaper struct {
	proc string // where procfs is mounted, "/proc"
	self int    // the pid whose children are reaped: ours
	logf func(format string, args ...any)

	// mu is held across a whole pass and across cmd.Start in start, so a
	// child that exits at once is registered before a pass can see its
	// zombie.
	mu sync.Mutex
	// started maps the pid of each child started through start to its
	// start time (/proc/PID/stat field 22, 0 when unknown): the start time
	// tells the child from a later process that got its pid once it was
	// waited for. A pass forgets the children that are gone.
	started map[int]uint64
}

func newReaper(proc string, self int, logf func(string, ...any)) *reaper {
	return &reaper{proc: proc, self: self, logf: logf, started: make(map[int]uint64)}
}

// start starts cmd as cmd.Start does, and registers it so that no pass
// reaps it: cmd.Wait does.
func (r *reaper) start(cmd *exec.Cmd) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	// The child is still there, if only as a zombie: nothing waits for
	// it before start returns.
	var since uint64
	if st, err := readProcStat(r.proc, cmd.Process.Pid); err == nil {
		since = st.startTime
	}
	r.started[cmd.Process.Pid] = since
	return nil
}

// run reaps on every SIGCHLD until ctx is done. It makes one pass first,
// for the orphans that died before it listened.
func (r *reaper) run(ctx context.Context) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, unix.SIGCHLD)
	defer signal.Stop(c)
	for {
		// One pass reaps every zombie there is, so SIGCHLDs that arrive
		// together and are delivered as one lose nothing.
		if err := r.pass(); err != nil {
			r.logf("reaper: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-c:
		}
	}
}

// pass reaps every zombie child that start did not register, and forgets
// the registered ones that are no longer our children.
func (r *reaper) pass() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, err := os.Open(r.proc)
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", r.proc, err)
	}
	children := make(map[int]uint64)
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue // not a process: /proc/self, /proc/sys...
		}
		st, err := readProcStat(r.proc, pid)
		if err != nil || st.ppid != r.self {
			continue // gone since the listing, or not ours
		}
		children[pid] = st.startTime
		if st.state != 'Z' || r.registered(pid, st.startTime) {
			continue
		}
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err != nil || got != pid {
			continue
		}
		delete(children, pid)
		r.logf("reaped orphan %d (%s): %s", pid, st.comm, describeWait(ws))
	}
	for pid, since := range r.started {
		if now, ok := children[pid]; !ok || !sameStart(since, now) {
			delete(r.started, pid)
		}
	}
	return nil
}

// registered reports whether pid, started at startTime, is a child that
// start registered.
func (r *reaper) registered(pid int, startTime uint64) bool {
	since, ok := r.started[pid]
	return ok && sameStart(since, startTime)
}

func sameStart(a, b uint64) bool { return a == 0 || b == 0 || a == b }

// describeWait says how a process ended, as a log line wants it.
func describeWait(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by %v", ws.Signal())
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

// procStat is what the reaper reads of /proc/PID/stat.
type procStat struct {
	comm      string
	state     byte
	ppid      int
	startTime uint64 // clock ticks after boot
}

func readProcStat(proc string, pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(string(b))
}

// parseProcStat parses a /proc/PID/stat line: "PID (COMM) STATE PPID ...".
// COMM may hold spaces and parentheses, so the fields are counted from
// the last ')'.
func parseProcStat(s string) (procStat, error) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("proc stat %q: no (comm)", s)
	}
	f := strings.Fields(s[end+1:])
	// f[0] is field 3 of proc(5): state, f[1] ppid, f[19] starttime.
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("proc stat %q: too short", s)
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return procStat{}, fmt.Errorf("proc stat: %w", err)
	}
	return procStat{comm: s[open+1 : end], state: f[0][0], ppid: ppid, startTime: start}, nil
}
