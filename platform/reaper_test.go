package platform

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseProcStat(t *testing.T) {
	tail := " 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 4242 1 2 3\n"
	for _, tc := range []struct {
		line string
		want procStat
		ok   bool
	}{
		{"123 (sleep) Z 1" + tail, procStat{comm: "sleep", state: 'Z', ppid: 1, startTime: 4242}, true},
		{"7 (a) b) Z (c) S 99" + tail, procStat{comm: "a) b) Z (c", state: 'S', ppid: 99, startTime: 4242}, true},
		{"8 (x y) R 5" + tail, procStat{comm: "x y", state: 'R', ppid: 5, startTime: 4242}, true},
		{"123 (sleep) Z 1 0 0", procStat{}, false},
		{"123 sleep Z 1" + tail, procStat{}, false},
		{"123 (sleep) Z x" + tail, procStat{}, false},
		{"", procStat{}, false},
	} {
		got, err := parseProcStat(tc.line)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseProcStat(%q) = %+v, %v; want %+v, ok %v", tc.line, got, err, tc.want, tc.ok)
		}
	}
}

// reaperChildEnv makes the test binary, started again by TestReaper, run
// the reaper's checks in itself.
const reaperChildEnv = "HOMEROUTER_REAPER_CHILD"

// TestReaper runs the reaper in a child process (the test binary again)
// made a child subreaper, so that orphans come to it as they come to PID
// 1, while the test process and its other tests' children are left
// alone: the reaper waits for the children of the process it runs in.
func TestReaper(t *testing.T) {
	if os.Getenv(reaperChildEnv) != "" {
		reaperChecks(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReaper$", "-test.v", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), reaperChildEnv+"=1")
	// If this test process dies, so does the child.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestReaper")) {
		t.Fatalf("the reaper's checks in a child process: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("child:\n%s", out)
	}
}

// reaperChecks is TestReaper in the child process.
func reaperChecks(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	var logMu sync.Mutex
	logDone := false
	r := newReaper("/proc", os.Getpid(), func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		if !logDone {
			t.Logf(format, args...)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		r.run(ctx)
		close(stopped)
	}()
	defer func() {
		cancel()
		<-stopped
		logMu.Lock()
		logDone = true
		logMu.Unlock()
	}()

	// An orphan: sh's background sleep outlives sh, comes to us, and
	// once it exits the reaper must wait for it.
	t.Run("orphan", func(t *testing.T) {
		var out bytes.Buffer
		cmd := exec.Command("sh", "-c", "sleep 0.2 & echo $!; exit 0")
		cmd.Stdout = &out
		if err := r.start(cmd); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("sh: %v", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatalf("sh printed %q, not the sleep's pid", out.String())
		}
		if st, err := readProcStat("/proc", pid); err == nil && st.ppid != os.Getpid() {
			t.Fatalf("orphan %d has parent %d, not this subreaper %d", pid, st.ppid, os.Getpid())
		}
		st, gone := waitProc(pid, func(procStat) bool { return false })
		if !gone {
			t.Errorf("orphan %d (%s) not reaped: state %c", pid, st.comm, st.state)
		}
	})

	// A child started through start that exits with 3 gives cmd.Wait
	// exit status 3, while the reaper runs on each of those exits and on
	// a stream of orphans' (the race that wait4(-1) would lose).
	t.Run("started", func(t *testing.T) {
		orphansCtx, stopOrphans := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			for orphansCtx.Err() == nil {
				cmd := exec.Command("sh", "-c", "true & true & exit 0")
				if err := r.start(cmd); err != nil {
					t.Error(err)
					return
				}
				cmd.Wait()
			}
		})
		defer wg.Wait()
		defer stopOrphans()
		for i := range 200 {
			cmd := exec.Command("sh", "-c", "exit 3")
			if err := r.start(cmd); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != 3 {
				t.Fatalf("run %d: cmd.Wait() = %v, want exit status 3", i, err)
			}
		}
	})

	// A started child's zombie survives a pass however long its Wait
	// takes to come, and once waited for, the reaper forgets it.
	t.Run("started zombie", func(t *testing.T) {
		cmd := exec.Command("sh", "-c", "exit 3")
		if err := r.start(cmd); err != nil {
			t.Fatal(err)
		}
		st, gone := waitProc(cmd.Process.Pid, func(st procStat) bool { return st.state == 'Z' })
		if gone || st.state != 'Z' {
			t.Fatalf("child %d: gone %v, state %c; want a zombie", cmd.Process.Pid, gone, st.state)
		}
		if err := r.pass(); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != 3 {
			t.Fatalf("cmd.Wait() after a pass = %v, want exit status 3", err)
		}
		if err := r.pass(); err != nil {
			t.Fatal(err)
		}
		r.mu.Lock()
		_, still := r.started[cmd.Process.Pid]
		r.mu.Unlock()
		if still {
			t.Errorf("child %d is waited for but still registered", cmd.Process.Pid)
		}
	})

	// The control: a child started with cmd.Start, not start, is the
	// reaper's, and its Wait loses the exit status. Without this, the
	// checks above could pass with a reaper that reaps nothing.
	t.Run("unregistered", func(t *testing.T) {
		cmd := exec.Command("sh", "-c", "exit 3")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if _, gone := waitProc(cmd.Process.Pid, func(procStat) bool { return false }); !gone {
			t.Fatalf("child %d not reaped", cmd.Process.Pid)
		}
		if err := cmd.Wait(); err == nil || errors.As(err, new(*exec.ExitError)) {
			t.Errorf("cmd.Wait() of a child the reaper took = %v, want an error that is no exit status", err)
		}
	})
}

// waitProc waits up to 10 s until process pid is gone (it returns true)
// or until done accepts its /proc stat.
func waitProc(pid int, done func(procStat) bool) (procStat, bool) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := readProcStat("/proc", pid)
		if err != nil {
			return procStat{}, true
		}
		if done(st) || time.Now().After(deadline) {
			return st, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}
