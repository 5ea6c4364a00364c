package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a background command in a lab namespace. Its output goes to a
// log file in the lab's dir and to memory, so tests can wait for a log line
// and print everything a daemon said when they fail.
type Process struct {
	name   string
	ns     *Netns
	cmd    *exec.Cmd
	log    *os.File
	stdin  io.WriteCloser // nil unless started with StartOptions.Stdin
	exited chan struct{}

	mu      sync.Mutex
	out     bytes.Buffer
	waitErr error
	// wrote is closed, and replaced, at each write to out: WaitOutputAfter
	// waits on it rather than polling.
	wrote chan struct{}
}

// procWriter collects a process's output in memory and in its log file.
type procWriter struct{ p *Process }

func (w procWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	w.p.out.Write(b)
	w.p.log.Write(b)
	close(w.p.wrote)
	w.p.wrote = make(chan struct{})
	return len(b), nil
}

// Start runs name in namespace n in the background, with stdout and stderr
// going to Dir()/NS-NAME-N.log and to Output. Close sends it SIGTERM, then
// SIGKILL after 3s, and waits for it, so daemons never outlive the lab.
// The process gets its own process group (so helpers it forks are killed
// too) and dies with the test binary (Pdeathsig).
func (l *Lab) Start(n *Netns, name string, args ...string) (*Process, error) {
	return l.StartWith(n, StartOptions{}, name, args...)
}

// StartOptions are what few processes need beyond Start. The zero value
// starts a process exactly as Start does.
type StartOptions struct {
	// Env is added to the test's environment (later entries win), e.g.
	// a fault-injection variable for the router.
	Env []string
	// Stdin gives the process a pipe as its standard input, written with
	// Process.Write (an interactive session such as nc). Without it the
	// process reads from /dev/null.
	Stdin bool
}

// StartWith is Start with options: extra environment, a stdin pipe.
func (l *Lab) StartWith(n *Netns, opt StartOptions, name string, args ...string) (*Process, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fmt.Errorf("lab: start %s: lab closed", name)
	}
	l.counter++
	seq := l.counter
	l.mu.Unlock()

	logPath := filepath.Join(l.dir, fmt.Sprintf("%s-%s-%d.log", n.role, filepath.Base(name), seq))
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("lab: start %s in %s: %w", name, n.name, err)
	}
	p := &Process{name: filepath.Base(name), ns: n, log: f, exited: make(chan struct{}), wrote: make(chan struct{})}
	// No context: the process lives until Close (or the test) stops it.
	cmd := n.Command(context.Background(), name, args...)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.Stdout = procWriter{p}
	cmd.Stderr = procWriter{p}
	if len(opt.Env) > 0 {
		cmd.Env = append(os.Environ(), opt.Env...)
	}
	if opt.Stdin {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			f.Close()
			return nil, fmt.Errorf("lab: start %s in %s: %w", name, n.name, err)
		}
	}
	p.cmd = cmd

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		f.Close()
		return nil, fmt.Errorf("lab: start %s: lab closed", name)
	}
	if err := cmd.Start(); err != nil {
		l.mu.Unlock()
		f.Close()
		return nil, fmt.Errorf("lab: start %s in %s: %w", name, n.name, err)
	}
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	env := ""
	if len(opt.Env) > 0 {
		env = " with " + strings.Join(opt.Env, " ")
	}
	l.logf("lab: started %s in %s (pid %d)%s: %s %s; log %s", p.name, n.name, cmd.Process.Pid, env, name, strings.Join(args, " "), logPath)

	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.log.Close()
		p.mu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// String names the process and its namespace, for test logs.
func (p *Process) String() string {
	return fmt.Sprintf("%s in %s", p.name, p.ns.name)
}

// Pid is the process id (ip netns exec execs the command, so this is the
// command itself).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process, e.g. SIGHUP to make it reload.
func (p *Process) Signal(sig os.Signal) error {
	select {
	case <-p.exited:
		return fmt.Errorf("lab: signal %s: already exited", p)
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("lab: signal %s: %w", p, err)
	}
	return nil
}

// Write sends s to the process's standard input, for a process started
// with StartOptions.Stdin.
func (p *Process) Write(s string) error {
	if p.stdin == nil {
		return fmt.Errorf("lab: write to %s: started without a stdin pipe", p)
	}
	select {
	case <-p.exited:
		return fmt.Errorf("lab: write to %s: already exited (%v)", p, p.Err())
	default:
	}
	if _, err := io.WriteString(p.stdin, s); err != nil {
		return fmt.Errorf("lab: write to %s: %w", p, err)
	}
	return nil
}

// Output is everything the process printed so far (stdout and stderr).
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Exited is closed once the process has exited and been waited for.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is the process's exit status once Exited is closed (nil before).
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// WaitOutput waits until the output contains substr. It fails early, with
// the output, if the process exits first, because a daemon that died on a
// bad flag will never print the line a test waits for.
func (p *Process) WaitOutput(ctx context.Context, substr string) error {
	_, err := p.WaitOutputAfter(ctx, 0, substr)
	return err
}

// WaitOutputAfter waits until the output after offset from (a byte offset
// in Output, such as a previous result) contains substr, and returns the
// offset just after it, so that a test can wait for a console's lines one
// after the other. It fails as WaitOutput does, with the output after from.
func (p *Process) WaitOutputAfter(ctx context.Context, from int, substr string) (int, error) {
	for {
		p.mu.Lock()
		out, wrote := p.out.String(), p.wrote
		p.mu.Unlock()
		if from < 0 || from > len(out) {
			return 0, fmt.Errorf("lab: waiting for %s to print %q: offset %d is outside its %d bytes of output", p, substr, from, len(out))
		}
		if i := strings.Index(out[from:], substr); i >= 0 {
			return from + i + len(substr), nil
		}
		select {
		case <-wrote:
		case <-p.exited:
			// The last output may have come with the exit.
			out := p.Output()
			if i := strings.Index(out[from:], substr); i >= 0 {
				return from + i + len(substr), nil
			}
			return 0, fmt.Errorf("lab: %s exited (%v) before printing %q after offset %d; output after it:\n%s", p, p.Err(), substr, from, out[from:])
		case <-ctx.Done():
			return 0, fmt.Errorf("lab: waiting for %s to print %q after offset %d: %w; output after it:\n%s", p, substr, from, ctx.Err(), p.Output()[from:])
		}
	}
}

// Stop ends the process like Close does (SIGTERM, SIGKILL after grace) and
// waits for it, for tests that need a peer gone before the lab closes.
func (p *Process) Stop(grace time.Duration) {
	p.stop(grace)
}

func (p *Process) stop(grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	pgid := p.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	}
	// Helpers that outlive the leader are killed with the namespace in
	// Close; signalling the group after the leader was reaped could hit a
	// recycled pid.
}
