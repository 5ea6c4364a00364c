// Command homerouter is a home internet router: one binary that runs every
// router service in-process. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/homerouter/homerouter/platform"
	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/services/backup"
	"github.com/homerouter/homerouter/services/capture"
	"github.com/homerouter/homerouter/services/dhcp4"
	"github.com/homerouter/homerouter/services/dhcp4d"
	"github.com/homerouter/homerouter/services/dhcp6"
	"github.com/homerouter/homerouter/services/diagnostics"
	"github.com/homerouter/homerouter/services/dns"
	"github.com/homerouter/homerouter/services/firewall"
	"github.com/homerouter/homerouter/services/httpd"
	"github.com/homerouter/homerouter/services/netconfig"
	"github.com/homerouter/homerouter/services/ra"
	"github.com/homerouter/homerouter/services/update"
	"github.com/homerouter/homerouter/state"
)

// version is set at build time with -ldflags "-X main.version=...".
var version string

// buildFault is set only by the fault_*.go files of the test images
// (make image FAULT=...): a problem the router reports for as long as it
// runs. It is empty in every other build.
var buildFault string

const usage = `homerouter: a home internet router

Usage:
  homerouter run -perm DIR [-http ADDR]   run every router service in this network namespace
  homerouter check -perm DIR              validate the config files in DIR, one line per problem
  homerouter update -router ADDR -kernel FILE -initramfs FILE
                                          install a new image on the router, from a workstation
  homerouter backup -router ADDR [-o FILE]
                                          save the router's /perm (config, state, password) into FILE
  homerouter restore -router ADDR FILE    check a backup on the router and put it in force, or refuse it
  homerouter version [-router ADDR]       print the version (and the router's, and the slot it runs)
  homerouter help                         print this

run logs to stderr and obeys SIGHUP (re-read the config files; a bad file is
reported and the last good one stays in force) and SIGTERM/SIGINT (stop).
`

func main() {
	switch {
	case os.Getpid() == 1 && os.Args[0] == "/init":
		// The kernel starts the initramfs's /init; `homerouter run` as
		// PID 1 of a container is not the machine's init.
		pid1() // never returns
	case filepath.Base(os.Args[0]) == "modprobe":
		// The image's /sbin/modprobe, which the kernel runs to load a
		// module on demand, with stdio on /dev/null: errors go to the
		// kernel's log, where dmesg and the console show them.
		var stderr io.Writer = os.Stderr
		if kmsg, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
			stderr = kmsg
		}
		os.Exit(platform.Modprobe(os.Args[1:], stderr))
	}
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintln(os.Stderr, "homerouter:", err)
		}
		os.Exit(1)
	}
}

// errReported means the problems were already printed.
var errReported = errors.New("reported")

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errReported
	}
	switch cmd, args := args[0], args[1:]; cmd {
	case "run":
		return runRouter(args, stderr)
	case "check":
		return check(args, stdout, stderr)
	case "update":
		return updateRouter(args, stdout, stderr)
	case "backup":
		return backupRouter(args, stdout, stderr)
	case "restore":
		return restoreRouter(args, stdout, stderr)
	case "version":
		return printVersion(args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "homerouter: unknown command %q\n\n%s", cmd, usage)
		return errReported
	}
}

// permFlag parses the flags shared by run and check.
func permFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (string, error) {
	fs := flag.NewFlagSet("homerouter "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	perm := fs.String("perm", "", "the perm `directory` holding the config and state files")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return "", errReported
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("%s: unexpected arguments %q", name, fs.Args())
	}
	if *perm == "" {
		return "", fmt.Errorf("%s: -perm DIR is required", name)
	}
	if fi, err := os.Stat(*perm); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%s: -perm %s is not a directory", name, *perm)
	}
	return *perm, nil
}

// printVersion is `homerouter version`: this binary's, and with -router
// the version and update slot a router runs.
func printVersion(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("homerouter version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	router := fs.String("router", "", "also ask the router at `address` (host or host:port)")
	if err := fs.Parse(args); err != nil {
		return errReported
	}
	fmt.Fprintln(stdout, "homerouter", versionString())
	if *router == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := (&update.Client{RouterClient: services.RouterClient{Router: *router}}).Status(ctx)
	if err != nil {
		return fmt.Errorf("version: %w", err)
	}
	slot := s.Slot
	if slot == "" {
		slot = "none (booted over the network, or run)"
	}
	fmt.Fprintf(stdout, "router %s: homerouter %s, slot %s\n", *router, s.Version, slot)
	return nil
}

// updateRouter is `homerouter update`: it uploads an image to a router,
// switches to it and says how that ended.
func updateRouter(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("homerouter update", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := update.Client{Log: stderr}
	rf := addRouterFlags(fs)
	kernel := fs.String("kernel", "build/vmlinuz", "the new kernel")
	initramfs := fs.String("initramfs", "build/initramfs.cpio.gz", "the new initramfs")
	fs.BoolVar(&c.Force, "force", false, "update a router that is not healthy")
	fs.DurationVar(&c.Deadline, "deadline", 0, "how long the new image has to become healthy (default the router's, 2m)")
	fs.StringVar(&c.BackupDir, "backup", ".", "the `directory` to save the router's backup in first, if it has one (\"\": none)")
	if err := fs.Parse(args); err != nil {
		return errReported
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("update: unexpected arguments %q", fs.Args())
	}
	rc, err := rf.client("update")
	if err != nil {
		return err
	}
	c.RouterClient = rc
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	res, err := c.Update(ctx, *kernel, *initramfs)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if !res.Committed {
		fmt.Fprintf(stdout, "rolled back: the router runs version %s (slot %s) again, %v without service; it says: %s\n", res.Version, res.Slot, res.Downtime.Round(100*time.Millisecond), res.Last)
		return errReported
	}
	fmt.Fprintf(stdout, "updated: the router runs version %s (slot %s), committed; %v without service\n", res.Version, res.Slot, res.Downtime.Round(100*time.Millisecond))
	return nil
}

func check(args []string, stdout, stderr io.Writer) error {
	dir, err := permFlags("check", args, stderr, nil)
	if err != nil {
		return err
	}
	errs := state.Check(dir)
	for _, err := range errs {
		fmt.Fprintln(stderr, err)
	}
	if len(errs) > 0 {
		return errReported
	}
	fmt.Fprintf(stdout, "%s: %s: ok\n", dir, strings.Join(state.ConfigFileNames(), ", "))
	return nil
}

// pid1 is the router as the init process of its own image: platform
// prepares the machine, then the services run as under `run -perm /perm`.
// It never returns: a clean stop (SIGTERM, SIGINT, ctrl-alt-del) reboots,
// the power button powers off, and a fatal error reboots after a delay.
// Arguments are ignored: the kernel passes init the command line's words
// it does not know ("splash", a typo), and a router must not refuse to
// boot over them.
func pid1() {
	sys := platform.NewSystem()
	defer func() {
		if r := recover(); r != nil {
			sys.Fatal(fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
		}
	}()
	// Signals before anything else, and for good: for PID 1 a SIGINT
	// (ctrl-alt-del) or SIGTERM that Go does not expect ends the process,
	// and the kernel panics. One that arrives while booting stops the
	// router as soon as the boot is done.
	ctx, reloads, _ := platform.Signals(context.Background())
	// A service's reboot, power-off or kexec request (and the power
	// button) stops the services as SIGTERM does; Shutdown then does
	// what was asked.
	ctx = sys.StopOnRequest(ctx)
	if len(os.Args) > 1 {
		fmt.Fprintf(sys.Log, "homerouter: ignoring arguments %q (as PID 1)\n", os.Args[1:])
	}
	if err := sys.Boot(); err != nil {
		sys.Fatal(err)
	}
	// The breakglass shell on the serial console, for when the network
	// cannot help (platform/breakglass).
	go sys.ServeBreakglass(ctx, run)
	if ctx.Err() == nil {
		err := serve(ctx, reloads, platform.PermDir, httpd.DefaultAddr, sys.Log, sys)
		if err != nil && ctx.Err() == nil {
			sys.Fatal(err)
		}
		if err != nil {
			// Asked to stop, and a service was slow to: stop anyway, as
			// asked (a power-off stays a power-off, a kexec a kexec).
			fmt.Fprintf(sys.Log, "homerouter: stopping: %v\n", err)
		}
	}
	sys.Shutdown(sys.Action())
}

func runRouter(args []string, stderr io.Writer) error {
	var httpAddr string
	dir, err := permFlags("run", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&httpAddr, "http", httpd.DefaultAddr, "listen `address` of the HTTP server: :PORT for lan0 and loopback, or HOST:PORT")
	})
	if err != nil {
		return err
	}
	// Signals first: a SIGHUP that arrives while the config loads must
	// not kill the router (the default action).
	ctx, reloads, stop := platform.Signals(context.Background())
	defer stop()
	return serve(ctx, reloads, dir, httpAddr, stderr, nil)
}

// serve runs every service on the perm directory dir until ctx is done,
// reloading the config on each receive from reloads, logging to logw.
// sys is what PID 1 set up, nil under `run`.
func serve(ctx context.Context, reloads <-chan struct{}, dir, httpAddr string, logw io.Writer, sys *platform.System) error {
	// The log since start, in memory, for /log and the status page: PID
	// 1's ring, or one of its own under run.
	var ring *platform.Ring
	// console is the log without the ring: for the password, which /log
	// would show to everyone on the LAN.
	console := logw
	if sys != nil {
		ring = sys.Ring
		console = sys.Console()
	} else {
		ring = platform.NewRing(logRingSize)
		logw = io.MultiWriter(logw, ring)
	}
	logger := func(prefix string) *log.Logger {
		return log.New(logw, prefix+": ", log.LstdFlags|log.Lmsgprefix)
	}
	mainLog := logger("homerouter")
	mainLog.Printf("%s starting, perm %s", versionString(), dir)
	st := state.NewStore(dir)
	st.Router.Publish(state.RouterInfo{Version: versionString(), Hostname: hostname(), Started: time.Now()})
	if buildFault != "" {
		st.ReportProblem("fault", errors.New(buildFault))
	}

	var endpoints []services.Endpoint
	if sys != nil {
		// Reboot, power-off and kexec requests go to PID 1; under run
		// the Store refuses them.
		st.SetPlatform(sys)
		if sys.Notice != "" {
			st.ReportNotice("perm", sys.Notice)
		}
		st.ReportNotice("watchdog", sys.WatchdogNotice)
		if len(sys.Problems) > 0 {
			st.ReportProblem("platform", errors.New(strings.Join(sys.Problems, "; ")))
		}
	}
	endpoints = append(endpoints, services.Endpoint{Pattern: "GET /log", Handler: textHandler(ring.Bytes)})

	// A restore cut short by a power cut is completed (or, if it was
	// never committed, discarded) before anything reads the files.
	if err := backup.Recover(dir, logger("backup")); err != nil {
		mainLog.Printf("%v (starting with /perm as it is)", err)
	}
	configLog := logger("config")
	reload := func() {
		for _, err := range st.Reload() {
			configLog.Printf("%s (the previous config stays in force)", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
	}
	reload()
	for _, err := range st.LoadState() {
		mainLog.Printf("%v (starting without it)", err)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-reloads:
				configLog.Printf("SIGHUP: reloading")
				reload()
			}
		}
	}()

	// A new service is one line here: its name, its Run and the pages
	// it serves, if any. The capture comes first, so that its socket is
	// open before netconfig names the links and the DHCP clients send
	// their first packets.
	capt := capture.New(st, logger("capture"), dir, versionString())
	svcs := []services.Service{
		{Name: capture.ServiceName, Run: capt.Run, Endpoints: capt.Endpoints()},
		{Name: netconfig.ServiceName, Run: netconfig.New(st, logger("netconfig")).Run},
		{Name: dhcp4.ServiceName, Run: dhcp4.New(st, logger("dhcp4"), hostname()).Run},
		{Name: dhcp6.ServiceName, Run: dhcp6.New(st, logger("dhcp6")).Run},
		{Name: dhcp4d.ServiceName, Run: dhcp4d.New(st, logger("dhcp4d")).Run},
		{Name: dns.ServiceName, Run: dns.New(st, logger("dns"), hostname()).Run},
		{Name: ra.ServiceName, Run: ra.New(st, logger("ra")).Run},
		{Name: diagnostics.ServiceName, Run: diagnostics.New(st, logger("diagnostics")).Run},
		backup.New(st, logger("backup")).Service(),
	}
	// The update: under PID 1 it knows this boot's command line (a
	// trial?) and the boot partition, if the router booted from disk.
	var boot update.Boot
	if sys != nil {
		cmdline, _ := os.ReadFile("/proc/cmdline")
		boot = update.Boot{Cmdline: strings.TrimSpace(string(cmdline)), BootDir: sys.MountBoot()}
	}
	up := update.New(st, logger("update"), dir, boot)
	svcs = append(svcs, services.Service{Name: update.ServiceName, Run: up.Run, Endpoints: up.Endpoints()})
	fw := newFirewall(st, logger("firewall"), dir)
	svcs = append(svcs, services.Service{Name: firewall.ServiceName, Run: fw.Run, Endpoints: fw.Endpoints()})
	for _, svc := range svcs {
		endpoints = append(endpoints, svc.Endpoints...)
	}
	// The password of the endpoints that change the router (an update, a
	// backup), made at the first start and shown once, on the console.
	if pw, created, err := state.EnsurePassword(dir); err != nil {
		mainLog.Printf("password: %v (the endpoints that need it refuse everyone)", err)
	} else if created {
		// On the console only: never in the log that /log serves.
		log.New(console, "homerouter: ", log.LstdFlags|log.Lmsgprefix).Printf("the router's password, for updates and backups, is %s (it is in %s; it is not in /log)", pw, filepath.Join(dir, state.PasswordFile))
		mainLog.Printf("made the router's password, in %s (shown on the console, not here)", filepath.Join(dir, state.PasswordFile))
	}
	web, err := httpd.New(st, logger("httpd"), httpd.Options{
		Addr:     httpAddr,
		Logs:     func() []byte { return ring.Tail(statusLogBytes) },
		Password: func() (string, error) { return state.ReadPassword(dir) },
	}, endpoints...)
	if err != nil {
		return err
	}
	svcs = slices.Insert(svcs, 1, services.Service{Name: httpd.ServiceName, Run: web.Run})

	// The state files are written beside the services and once more
	// after they have stopped, so that their last words are on disk.
	saveCtx, stopSaving := context.WithCancel(context.Background())
	saved := make(chan struct{})
	go func() {
		defer close(saved)
		st.SaveState(saveCtx, logger("state").Printf)
	}()

	err = services.NewSupervisor(st, logger("supervisor"), services.Backoff{}).Supervise(ctx, svcs)
	stopSaving()
	select {
	case <-saved:
	case <-time.After(saveTimeout):
		mainLog.Printf("state: the last write did not finish within %v", saveTimeout)
	}
	mainLog.Printf("stopped")
	return err
}

// newFirewall returns the firewall service. HOMEROUTER_FIREWALL_FAULT,
// when set, makes every ruleset fail to load with its value: the lab
// shows with it that forwarding then stays off. A file named
// firewall.BenchFile in the perm directory dir turns on its bench mode
// switch, for make bench.
func newFirewall(st *state.Store, logger *log.Logger, dir string) *firewall.Service {
	fw := firewall.New(st, logger)
	fw.Fault = os.Getenv("HOMEROUTER_FIREWALL_FAULT")
	if _, err := os.Stat(filepath.Join(dir, firewall.BenchFile)); err == nil {
		fw.Bench = true
		logger.Printf("%s: the bench mode switch is on (POST /firewall/mode)", firewall.BenchFile)
	}
	return fw
}

// saveTimeout bounds the last write of the state files at shutdown (it
// takes milliseconds): a /perm that hangs must not keep the router from
// stopping.
const saveTimeout = time.Second

// textHandler serves what text returns as plain text.
func textHandler(text func() []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff") // the log quotes what LAN clients sent
		w.Header().Set("Cache-Control", "no-store")
		w.Write(text())
	})
}

// logRingSize is how much of the log `run` keeps in memory (PID 1 has
// its own ring); statusLogBytes how much of its end the status page
// gets, for its last lines.
const (
	logRingSize    = 256 << 10
	statusLogBytes = 8 << 10
)

// hostname is the name the router gives its ISP (DHCP option 12).
func hostname() string {
	if h, err := os.Hostname(); err == nil && h != "" && h != "(none)" && h != "localhost" {
		return h
	}
	return "homerouter"
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}
