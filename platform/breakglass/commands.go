package breakglass

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/u-root/u-root/pkg/core"
	"github.com/u-root/u-root/pkg/core/base64"
	"github.com/u-root/u-root/pkg/core/cat"
	"github.com/u-root/u-root/pkg/core/chmod"
	"github.com/u-root/u-root/pkg/core/cp"
	"github.com/u-root/u-root/pkg/core/find"
	"github.com/u-root/u-root/pkg/core/gzip"
	"github.com/u-root/u-root/pkg/core/ls"
	"github.com/u-root/u-root/pkg/core/mkdir"
	"github.com/u-root/u-root/pkg/core/mktemp"
	"github.com/u-root/u-root/pkg/core/mv"
	"github.com/u-root/u-root/pkg/core/rm"
	"github.com/u-root/u-root/pkg/core/shasum"
	"github.com/u-root/u-root/pkg/core/tar"
	"github.com/u-root/u-root/pkg/core/touch"
	"golang.org/x/sys/unix"
	"mvdan.cc/sh/v3/interp"
)

// Env is what a command gets from the shell: its standard streams,
// the shell's working directory (the shell's cd never changes PID 1's,
// which the router's services share) and its variables.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Dir            string
	Getenv         func(name string) string
}

// Command runs one of the shell's commands; args[0] is its name. An
// error is printed after the name and is exit status 1, unless it is an
// interp exit status already.
type Command func(ctx context.Context, env Env, args []string) error

// Commands is the shell's table: u-root's core utilities and the
// router's own. u-root's xargs is left out: it runs programs with
// os/exec, and the image has none. Commands whose Options field is nil
// (log, homerouter) are left out too.
func Commands(opt Options) map[string]Command {
	cmds := map[string]Command{
		"base64": coreCommand(base64.New),
		"cat":    coreCommand(cat.New),
		"chmod":  coreCommand(chmod.New),
		"cp":     coreCommand(cp.New),
		"find":   coreCommand(find.New),
		"gzip":   coreCommand(func() core.Command { return gzip.New("gzip") }),
		"gunzip": coreCommand(func() core.Command { return gzip.New("gunzip") }),
		"gzcat":  coreCommand(func() core.Command { return gzip.New("gzcat") }),
		"ls":     coreCommand(ls.New),
		"mkdir":  coreCommand(mkdir.New),
		"mktemp": coreCommand(mktemp.New),
		"mv":     coreCommand(mv.New),
		"rm":     coreCommand(rm.New),
		"shasum": coreCommand(shasum.New),
		"tar":    coreCommand(tar.New),
		"touch":  coreCommand(touch.New),

		"dmesg": dmesg,
		"ps":    ps,
		"ip":    ip,
	}
	if opt.Log != nil {
		cmds["log"] = logCommand(opt.Log)
	}
	if opt.Homerouter != nil {
		cmds["homerouter"] = homerouterCommand(opt.Homerouter)
	}
	cmds["help"] = func(ctx context.Context, env Env, args []string) error {
		fmt.Fprintf(env.Stdout, "%s\n", helpText(cmds))
		return nil
	}
	return cmds
}

// helpText lists the commands, the table's and the interpreter's
// builtins people reach for.
func helpText(cmds map[string]Command) string {
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range cmds {
			if !yield(n) {
				return
			}
		}
	})
	return "commands: " + strings.Join(names, " ") +
		"\nshell builtins: cd pwd echo printf test [ read export set unset exit ...; no programs are run, the commands live in the router" +
		"\nrouter: log [-n LINES] (the router's log), dmesg (the kernel's), ps, ip link|addr|route, homerouter check|version"
}

// coreCommand adapts a u-root core utility.
func coreCommand(newCmd func() core.Command) Command {
	return func(ctx context.Context, env Env, args []string) error {
		c := newCmd()
		c.SetIO(env.Stdin, env.Stdout, env.Stderr)
		c.SetWorkingDir(env.Dir)
		c.SetLookupEnv(func(name string) (string, bool) {
			v := env.Getenv(name)
			return v, v != ""
		})
		return c.RunContext(ctx, args[1:]...)
	}
}

// exec is the interpreter's exec handler: it runs a command of the
// table, or says there is none (status 127, as sh does), and never
// starts a program. A panic in a command ends the command, not PID 1.
// A command (but ls, which only looks) naming a terminal among its
// arguments is refused (see isTerminal).
//
// ctx is the statement's, which Ctrl-C and the shell's end cancel. Only
// find among u-root's commands heeds it, so the command's standard
// streams heed it for them: once ctx is done they read and write
// nothing, and a cat, a gzip or a shasum of a pipe ends at its next
// read or write. A command that still does not return (one reading a
// file of its own for ever, shasum /dev/zero) is left to run on, and
// the shell goes on: a goroutine cannot be killed, and the console
// must not wait on it for good.
func (s *Shell) exec(ctx context.Context, args []string) error {
	hc := interp.HandlerCtx(ctx)
	if args[0] != "ls" { // ls only looks
		for _, a := range args[1:] {
			// --file=PATH names PATH too.
			for _, p := range []string{a, a[strings.IndexByte(a, '=')+1:]} {
				if isTerminal(hc.Dir, p) {
					fmt.Fprintf(hc.Stderr, "%s: %s: %v\n", args[0], p, errTerminal)
					return interp.ExitStatus(1)
				}
			}
		}
	}
	env := Env{Stdin: ctxReader(ctx, hc.Stdin), Stdout: ctxWriter{ctx, hc.Stdout}, Stderr: ctxWriter{ctx, hc.Stderr}, Dir: hc.Dir,
		Getenv: func(name string) string { return hc.Env.Get(name).String() }}
	done := make(chan error, 1)
	go func() { done <- runCommand(ctx, s.commands, env, args) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done:
		return err
	case <-time.After(s.stopGrace):
		fmt.Fprintf(hc.Stderr, "\n%s: does not stop; it runs on inside the router until it is done\n", args[0])
		s.opt.Logf("%s: %q did not stop when interrupted; it runs on", s.console, strings.Join(args, " "))
		return ctx.Err()
	}
}

// open is the interpreter's open handler, for redirections: it refuses
// to read a terminal (see isTerminal); writing one (echo >
// /dev/console) is harmless.
func open(ctx context.Context, path string, flag int, perm os.FileMode) (io.ReadWriteCloser, error) {
	if flag&(os.O_WRONLY|os.O_RDWR) != os.O_WRONLY && isTerminal(interp.HandlerCtx(ctx).Dir, path) {
		return nil, &os.PathError{Op: "open", Path: path, Err: errTerminal}
	}
	return interp.DefaultOpenHandler()(ctx, path, flag, perm)
}

// errTerminal is why a command may not open a terminal.
var errTerminal = errors.New("refused: it is a terminal; commands read the console only through their standard input")

// isTerminal says whether path, relative to dir, is a terminal: the
// serial console (/dev/ttyS0, /dev/console, /dev/tty) or another. The
// shell's commands may not open one: a command reading the console
// itself would not see Ctrl-C's context while it blocks, would run on
// after the shell (see Shell.exec), and would read the next login's
// password; they read the console only through their feed.
func isTerminal(dir, path string) bool {
	if path == "" {
		return false
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	name := filepath.Clean(path)
	if real, err := filepath.EvalSymlinks(name); err == nil {
		name = real
	}
	base := filepath.Base(name)
	if filepath.Dir(name) == "/dev" && (strings.HasPrefix(base, "tty") || base == "console") {
		return true
	}
	var st unix.Stat_t
	return unix.Stat(name, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && ttyMajor(unix.Major(st.Rdev))
}

// ttyMajor says whether major numbers terminals (Linux's
// Documentation/admin-guide/devices.txt): pty masters and slaves (2,
// 3, 136-143), ttyN and ttyS (4), tty, console and ptmx (5), ttyACM
// (166), ttyUSB (188), ttyAMA and other low-density serial ports
// (204), hvc (229).
func ttyMajor(major uint32) bool {
	switch {
	case major >= 2 && major <= 5, major >= 136 && major <= 143:
		return true
	}
	switch major {
	case 166, 188, 204, 229:
		return true
	}
	return false
}

// ctxReader is r, reading nothing once ctx is done.
func ctxReader(ctx context.Context, r io.Reader) io.Reader {
	if r == nil {
		return nil
	}
	return readerFunc(func(p []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return r.Read(p)
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// ctxWriter is w, writing nothing once ctx is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// runCommand runs args with the table cmds; see Shell.exec.
func runCommand(ctx context.Context, cmds map[string]Command, env Env, args []string) (err error) {
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "%s: command not found (help lists the commands)\n", args[0])
		return interp.ExitStatus(127)
	}
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(env.Stderr, "%s: panic: %v\n", args[0], r)
			err = interp.ExitStatus(2)
		}
	}()
	if err := cmd(ctx, env, args); err != nil {
		if _, ok := exitStatus(err); ok {
			return err
		}
		fmt.Fprintf(env.Stderr, "%s: %v\n", args[0], err)
		return interp.ExitStatus(1)
	}
	return nil
}

// exitStatus returns the shell's exit status that err is, if it is one.
func exitStatus(err error) (uint8, bool) {
	var st interp.ExitStatus
	if errors.As(err, &st) {
		return uint8(st), true
	}
	return 0, false
}

// logCommand prints the end of the router's log ring: what the paused
// console did not show, and what /log serves on the LAN.
func logCommand(ring func() []byte) Command {
	return func(ctx context.Context, env Env, args []string) error {
		fs := flag.NewFlagSet("log", flag.ContinueOnError)
		fs.SetOutput(env.Stderr)
		n := fs.Int("n", 50, "print the last `lines` lines, 0 for all")
		if err := fs.Parse(args[1:]); err != nil {
			return interp.ExitStatus(2)
		}
		_, err := env.Stdout.Write(lastLines(ring(), *n))
		return err
	}
}

// lastLines returns the last n lines of b, all of it for n <= 0.
func lastLines(b []byte, n int) []byte {
	if n <= 0 {
		return b
	}
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	for i := 0; i < n; i++ {
		j := bytes.LastIndexByte(b[:end], '\n')
		if j < 0 {
			return b
		}
		end = j
	}
	return b[end+1:]
}

// homerouterCommand runs the router's check and plain version
// subcommands. The others would start a second router (run) or talk to
// one over the network (update, backup, restore, version -router),
// which is not what a breakglass shell is for. check reads /perm unless
// told otherwise.
func homerouterCommand(run func(args []string, stdout, stderr io.Writer) error) Command {
	return func(ctx context.Context, env Env, args []string) error {
		sub := args[1:]
		if len(sub) == 0 || (sub[0] != "check" && sub[0] != "version") || (sub[0] == "version" && len(sub) > 1) {
			fmt.Fprintln(env.Stderr, "usage: homerouter check [-perm DIR] | homerouter version")
			return interp.ExitStatus(2)
		}
		if sub[0] == "check" && !slices.ContainsFunc(sub, func(a string) bool { return strings.HasPrefix(strings.TrimLeft(a, "-"), "perm") }) {
			sub = append([]string{"check", "-perm", "/perm"}, sub[1:]...)
		}
		if err := run(sub, env.Stdout, env.Stderr); err != nil {
			// run has printed its problems.
			return interp.ExitStatus(1)
		}
		return nil
	}
}

// dmesg prints the kernel's log buffer.
func dmesg(ctx context.Context, env Env, args []string) error {
	size, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil {
		return fmt.Errorf("kernel log size: %w", err)
	}
	buf := make([]byte, size)
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		return fmt.Errorf("kernel log: %w", err)
	}
	_, err = env.Stdout.Write(stripLevels(buf[:n]))
	return err
}

// stripLevels drops the "<6>" level prefix of each kernel log line.
func stripLevels(b []byte) []byte {
	var out []byte
	for line := range bytes.Lines(b) {
		if len(line) > 2 && line[0] == '<' {
			if i := bytes.IndexByte(line[:min(len(line), 6)], '>'); i > 0 {
				line = line[i+1:]
			}
		}
		out = append(out, line...)
	}
	return out
}

// ps lists the processes: PID 1, the router, with its goroutines, and
// the kernel's threads.
func ps(ctx context.Context, env Env, args []string) error {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 8, 1, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "PID\tPPID\tS\tTHREADS\tRSS KiB\t COMMAND")
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	for _, pid := range pids {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			continue // it exited meanwhile
		}
		p, err := parseStat(string(b))
		if err != nil {
			return err
		}
		name := p.comm
		if p.pid == os.Getpid() {
			name += fmt.Sprintf(" (this router, %d goroutines)", runtime.NumGoroutine())
		}
		fmt.Fprintf(w, "%d\t%d\t%s\t%d\t%d\t %s\n", p.pid, p.ppid, p.state, p.threads, p.rssPages*os.Getpagesize()/1024, name)
	}
	return w.Flush()
}

// procStat is what ps shows of /proc/PID/stat.
type procStat struct {
	pid, ppid, threads, rssPages int
	comm, state                  string
}

// parseStat parses /proc/PID/stat, whose command name is in parentheses
// and may itself hold spaces and parentheses.
func parseStat(s string) (procStat, error) {
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return procStat{}, fmt.Errorf("stat %q: no command name", s)
	}
	var p procStat
	var err error
	if p.pid, err = strconv.Atoi(strings.TrimSpace(s[:open])); err != nil {
		return procStat{}, fmt.Errorf("stat %q: %w", s, err)
	}
	p.comm = s[open+1 : close]
	// After the name: state(3) ppid(4) ... num_threads(20) ... rss(24).
	f := strings.Fields(s[close+1:])
	if len(f) < 22 {
		return procStat{}, fmt.Errorf("stat %q: %d fields after the name, want 22 or more", s, len(f))
	}
	p.state = f[0]
	for _, v := range []struct {
		dst *int
		i   int
	}{{&p.ppid, 1}, {&p.threads, 17}, {&p.rssPages, 21}} {
		if *v.dst, err = strconv.Atoi(f[v.i]); err != nil {
			return procStat{}, fmt.Errorf("stat %q: field %d: %w", s, v.i+3, err)
		}
	}
	return p, nil
}

// ip lists links, addresses or routes, in the spirit of iproute2's
// ip, which the image does not have: "ip link", "ip addr", "ip route"
// (IPv4 and IPv6, every table), and their one-letter forms.
func ip(ctx context.Context, env Env, args []string) error {
	what := "addr"
	if len(args) > 1 {
		what = args[1]
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return err
	}
	switch {
	case strings.HasPrefix("link", what):
		for _, ifi := range ifaces {
			fmt.Fprintln(env.Stdout, formatLink(ifi))
		}
	case strings.HasPrefix("addr", what) || what == "a":
		for _, ifi := range ifaces {
			fmt.Fprintln(env.Stdout, formatLink(ifi))
			addrs, err := ifi.Addrs()
			if err != nil {
				return fmt.Errorf("%s: %w", ifi.Name, err)
			}
			for _, a := range addrs {
				family := "inet"
				if n, ok := a.(*net.IPNet); ok && n.IP.To4() == nil {
					family = "inet6"
				}
				fmt.Fprintf(env.Stdout, "    %s %s\n", family, a)
			}
		}
	case strings.HasPrefix("route", what):
		names := map[uint32]string{}
		for _, ifi := range ifaces {
			names[uint32(ifi.Index)] = ifi.Name
		}
		c, err := rtnetlink.Dial(nil)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		defer c.Close()
		routes, err := c.Route.List()
		if err != nil {
			return fmt.Errorf("routes: %w", err)
		}
		for _, r := range routes {
			if r.Type != unix.RTN_UNICAST {
				continue // local, broadcast, multicast: the kernel's own
			}
			fmt.Fprintln(env.Stdout, formatRoute(r, names))
		}
	default:
		fmt.Fprintln(env.Stderr, "usage: ip [link|addr|route]")
		return interp.ExitStatus(2)
	}
	return nil
}

// formatLink is one link as ip link shows it, more or less.
func formatLink(ifi net.Interface) string {
	s := fmt.Sprintf("%d: %s: <%s> mtu %d", ifi.Index, ifi.Name, strings.ToUpper(strings.ReplaceAll(ifi.Flags.String(), "|", ",")), ifi.MTU)
	if len(ifi.HardwareAddr) > 0 {
		s += " link/ether " + ifi.HardwareAddr.String()
	}
	return s
}

// formatRoute is one route as ip route shows it, more or less.
func formatRoute(r rtnetlink.RouteMessage, names map[uint32]string) string {
	var b strings.Builder
	switch {
	case r.DstLength == 0:
		b.WriteString("default")
	case r.Attributes.Dst != nil:
		fmt.Fprintf(&b, "%s/%d", r.Attributes.Dst, r.DstLength)
	default:
		b.WriteString("?")
	}
	if r.Family == unix.AF_INET6 {
		b.WriteString(" (IPv6)")
	}
	if gw := r.Attributes.Gateway; gw != nil {
		fmt.Fprintf(&b, " via %s", gw)
	}
	if oif := r.Attributes.OutIface; oif != 0 {
		name := names[oif]
		if name == "" {
			name = fmt.Sprintf("if%d", oif)
		}
		fmt.Fprintf(&b, " dev %s", name)
	}
	if src := r.Attributes.Src; src != nil {
		fmt.Fprintf(&b, " src %s", src)
	}
	if t := routeTable(r); t != unix.RT_TABLE_MAIN {
		fmt.Fprintf(&b, " table %d", t)
	}
	if p := r.Attributes.Priority; p != 0 {
		fmt.Fprintf(&b, " metric %d", p)
	}
	return b.String()
}

// routeTable is the route's table: the attribute when there is one
// (tables above 255), else the header's.
func routeTable(r rtnetlink.RouteMessage) uint32 {
	if r.Attributes.Table != 0 {
		return r.Attributes.Table
	}
	return uint32(r.Table)
}
