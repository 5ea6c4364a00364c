package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"

	"github.com/homerouter/homerouter/state"
)

// PermDir is where PID 1 mounts the persistent partition.
const PermDir = "/perm"

// System is PID 1's view of the machine: where /perm is, what went wrong
// while booting, and the log every service writes to.
type System struct {
	// PermDevice is the block device mounted on PermDir, "" when PermDir
	// is a tmpfs.
	PermDevice string
	// Notice, when not empty, is what a person should know about the boot
	// (a /perm that will not survive a reboot); main shows it on
	// /health.json without making the router unhealthy.
	Notice string
	// Problems are the boot steps that failed but did not stop the boot
	// (a module the firewall needs, the first-boot file); main reports
	// them on /health.json.
	Problems []string
	// Watchdog describes the hardware watchdog PID 1 keeps armed
	// ("i6300esb, timeout 1m0s"), "" when there is none (see
	// armWatchdog).
	Watchdog string
	// WatchdogNotice, when not empty, says what a person should know
	// about the watchdog: that there is none, so a hung image needs a
	// power cycle, or that it reset the router before this boot. Like
	// Notice, main shows it on /health.json without making the router
	// unhealthy.
	WatchdogNotice string
	// WatchdogReset is true when the watchdog's driver says it reset
	// the box before this boot: the boot before this one hung.
	WatchdogReset bool
	// Log writes to the consoles and to Ring.
	Log io.Writer
	// Ring holds the log since boot, for the status page.
	Ring *Ring

	consoles *consoles
	coldplug *Coldplug
	logger   *log.Logger
	reaper   *reaper
	// kexecLoad loads the kernel of a kexec request: kexecFileLoad, a
	// fake in tests, which must not load anything into the host.
	kexecLoad func(kernel, initramfs, cmdline string) error
	loadMu    sync.Mutex // one kexec load at a time

	// openWatchdog opens the hardware watchdog at watchdogDev, which
	// sysfs, mounted on watchdogSys, describes: openHardwareWatchdog, a
	// fake in tests, which must not touch the host's watchdog. watchdog
	// is the one armed, nil without one.
	openWatchdog func(dev string) (watchdogDevice, error)
	watchdogDev  string
	watchdogSys  string
	watchdog     *runningWatchdog

	// requestMu guards the platform request (see Request): the action
	// Shutdown takes, "" until one is accepted, why it stopped the
	// services, and the cancel functions of StopOnRequest.
	requestMu sync.Mutex
	action    state.PlatformAction
	stopCause error
	stops     []context.CancelCauseFunc
}

// ringSize is the log kept in memory: about a day of a quiet router's log.
const ringSize = 1 << 20

// NewSystem returns a System that logs to stderr (the kernel's
// /dev/console) and the ring, before Boot has done anything: whatever
// happens next can be logged.
func NewSystem() *System {
	s := &System{
		Ring: NewRing(ringSize), consoles: &consoles{}, kexecLoad: kexecFileLoad,
		openWatchdog: openHardwareWatchdog, watchdogDev: watchdogDev, watchdogSys: "/sys",
	}
	s.consoles.fallback = os.Stderr
	s.Log = io.MultiWriter(s.consoles, s.Ring)
	s.logger = log.New(s.Log, "platform: ", log.LstdFlags|log.Lmsgprefix)
	s.reaper = newReaper("/proc", os.Getpid(), s.logger.Printf)
	return s
}

// Console writes to the consoles only, not to Ring: for what must not
// be served on the LAN by /log and the status page, such as the router's
// password at its first boot.
func (s *System) Console() io.Writer { return s.consoles }

// PauseConsole stops the log on the console named name ("ttyS0") until
// resume is called, which says how many lines it dropped: for the
// breakglass shell, whose screen the log would scramble. The log still
// goes to Ring and to the other consoles, and the router never waits
// for the paused one.
func (s *System) PauseConsole(name string) (resume func() (dropped int)) {
	return s.consoles.pause(name)
}

// problem logs a failed boot step and keeps it for /health.json.
func (s *System) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.logger.Print(msg)
	s.Problems = append(s.Problems, msg)
}

// Boot does what PID 1 must before the router's services can run:
// mount the kernel's filesystems, open the consoles, bring up loopback,
// load the kernel modules for the hardware found (coldplug) and for the
// firewall, arm the hardware watchdog, mount /perm, write the first-boot
// interfaces.json, set the hostname and start reaping orphans. An error
// means the router cannot run; the caller logs it and reboots.
//
// The caller must already handle SIGINT, SIGTERM and SIGHUP (see
// Signals): for PID 1, a signal Go does not expect ends the process, and
// the kernel panics.
func (s *System) Boot() error {
	// Signals nothing asks for are ignored rather than fatal.
	signal.Ignore(unix.SIGUSR1, unix.SIGUSR2, unix.SIGQUIT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU)

	if err := mountKernelFilesystems(); err != nil {
		return err
	}
	s.consoles.open(s.logger)
	// A panic in any goroutine but the main one ends PID 1, and then the
	// kernel panics: make sure that reboots the box whatever the boot
	// loader's command line says (panic=0 would hang it for good).
	if b, err := os.ReadFile("/proc/sys/kernel/panic"); err == nil && strings.TrimSpace(string(b)) == "0" {
		if err := os.WriteFile("/proc/sys/kernel/panic", []byte("10"), 0o644); err != nil {
			s.logger.Printf("kernel.panic: %v", err)
		}
	}

	// Ctrl-Alt-Del sends SIGINT to PID 1 (a clean shutdown) instead of
	// resetting the machine with /perm mounted.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		s.logger.Printf("ctrl-alt-del: %v", err)
	}
	// PID 1 reaps for as long as it runs, through Shutdown.
	go s.reaper.run(context.Background())

	cmdline, _ := os.ReadFile("/proc/cmdline")
	var uts unix.Utsname
	unix.Uname(&uts)
	s.logger.Printf("kernel %s, command line %q", unix.ByteSliceToString(uts.Release[:]), strings.TrimSpace(string(cmdline)))

	// Loopback is down in a new kernel: without it nothing can reach
	// 127.0.0.1, where httpd listens for tools on the box.
	if err := loopbackUp(); err != nil {
		s.problem("loopback: %v", err)
	}

	wdTimeout := s.watchdogTimeout(cmdlineParam(string(cmdline), WatchdogParam))
	start := time.Now()
	if loaded, err := s.loadModules(wdTimeout); err != nil {
		s.problem("modules: %v", err)
	} else {
		s.logger.Printf("modules: loaded %d in %v: %s", len(loaded), time.Since(start).Round(time.Millisecond), strings.Join(loaded, " "))
	}
	// As soon as coldplug has loaded its driver: the time from there
	// to the open is the only part of a boot no watchdog covers.
	s.armWatchdog(wdTimeout)

	s.watchPowerButton("/sys/class/input")
	s.mountPerm(cmdlineParam(string(cmdline), "homerouter.perm"))
	s.firstBoot()
	s.setHostname()
	return nil
}

// mountKernelFilesystems mounts what a Linux userland expects. Debian's
// kernel does not mount devtmpfs by itself (CONFIG_DEVTMPFS_MOUNT is off).
func mountKernelFilesystems() error {
	for _, m := range []struct {
		fstype, target, data string
		flags                uintptr
	}{
		{"proc", "/proc", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"sysfs", "/sys", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"devtmpfs", "/dev", "mode=0755", unix.MS_NOSUID},
		{"devpts", "/dev/pts", "gid=5,mode=0620,ptmxmode=0666", unix.MS_NOSUID | unix.MS_NOEXEC},
		{"tmpfs", "/run", "mode=0755", unix.MS_NOSUID | unix.MS_NODEV},
		{"tmpfs", "/tmp", "mode=1777", unix.MS_NOSUID | unix.MS_NODEV},
	} {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return fmt.Errorf("mount %s: %w", m.target, err)
		}
		if err := unix.Mount(m.fstype, m.target, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	return nil
}

// loadModules coldplugs the modules for the hardware present, then the
// firewall's and ext4 (for /perm), after the crc32c both need: the kernel
// asks for it only by alias ("crypto-crc32c") and fails the mount or the
// module's init when it is missing. A module of those that fails to load
// is a boot problem; a coldplugged one is only logged (a driver that
// finds no device it supports, say). Before coldplug, unless the
// watchdog is off (wdTimeout 0), it loads the watchdog core with the
// parameters of the hand-over across kexec (watchdogCoreParams): a
// watchdog driver coldplug loads would otherwise load it without them.
func (s *System) loadModules(wdTimeout time.Duration) ([]string, error) {
	prober, aliases, err := modprobeTables(kmodule.ProbeOpts{})
	if err != nil {
		return nil, err
	}
	var loaded []string
	if wdTimeout > 0 {
		if err := prober.Probe(watchdogCore, watchdogCoreParams(wdTimeout)); err != nil {
			s.logger.Printf("watchdog: %s: %v", watchdogCore, err)
		} else {
			loaded = append(loaded, watchdogCore)
		}
	}
	load := func(m string) error { return prober.Probe(m, "") }
	s.coldplug = &Coldplug{SysDevices: "/sys/devices", Aliases: aliases, Load: load, Logf: s.logger.Printf}
	loaded = append(loaded, s.coldplug.Run(200*time.Millisecond)...)
	for _, m := range NamedModules() {
		if err := load(m); err != nil {
			s.problem("modules: %s: %v", m, err)
			continue
		}
		loaded = append(loaded, m)
	}
	return loaded, nil
}

// modprobeTables reads modules.dep (through kmodule) and modules.alias for
// the running kernel, under opts.RootDir (tests set it, and DryRunCB).
func modprobeTables(opts kmodule.ProbeOpts) (*kmodule.Prober, *Aliases, error) {
	if opts.KVer == "" {
		var uts unix.Utsname
		if err := unix.Uname(&uts); err != nil {
			return nil, nil, err
		}
		opts.KVer = unix.ByteSliceToString(uts.Release[:])
	}
	dir := filepath.Join(opts.RootDir, "/lib/modules", opts.KVer)
	prober, err := kmodule.NewProber(opts)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(filepath.Join(dir, "modules.alias"))
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	aliases, err := ParseAliases(f)
	return prober, aliases, err
}

// Modprobe is /sbin/modprobe in the image (a link to /init): the kernel
// runs it to load a module on demand ("modprobe -q -- fs-ext4",
// "nft-expr-counter", "net-pf-10"...). A name is a module or an alias; as
// with kmod's modprobe, every module an alias names is loaded (both
// crc32c implementations, say), and the request succeeds if one did.
func Modprobe(args []string, stderr io.Writer) int {
	return modprobe(args, stderr, kmodule.ProbeOpts{})
}

func modprobe(args []string, stderr io.Writer, opts kmodule.ProbeOpts) int {
	var names []string
	quiet := false
	for _, a := range args {
		switch {
		case a == "-q":
			quiet = true
		case strings.HasPrefix(a, "-"):
		default:
			names = append(names, a)
		}
	}
	prober, aliases, err := modprobeTables(opts)
	if err != nil {
		fmt.Fprintln(stderr, "modprobe:", err)
		return 1
	}
	rc := 0
	for _, n := range names {
		mods := aliases.Modules(n)
		if len(mods) == 0 {
			mods = []string{n}
		}
		var err error
		ok := false
		for _, m := range mods {
			if e := prober.Probe(m, ""); e != nil {
				err = e
			} else {
				ok = true
			}
		}
		if !ok {
			if !quiet {
				fmt.Fprintf(stderr, "modprobe: %s: %v\n", n, err)
			}
			rc = 1
		}
	}
	return rc
}

// permWait is how long Boot waits for the perm partition to appear: disks
// behind AHCI or USB show up a while after their driver loads. Each
// module coldplug loads meanwhile (a disk driver on its way) restarts the
// wait, up to permWaitMax in all. With homerouter.perm= on the command
// line the disk is known to exist, so it waits permWaitMax.
const (
	permWait    = 5 * time.Second
	permWaitMax = 30 * time.Second
)

// mountPerm mounts the perm partition on PermDir: the device named by
// homerouter.perm=, else the ext4 filesystem labelled "perm". Without one
// it mounts a tmpfs so the router still runs, and sets Notice: a box
// booted over the network without a disk routes fine, it just forgets.
func (s *System) mountPerm(dev string) {
	if err := os.MkdirAll(PermDir, 0o755); err != nil {
		s.logger.Printf("perm: %v", err)
	}
	start := time.Now()
	deadline := start.Add(permWait)
	if dev != "" {
		deadline = start.Add(permWaitMax)
	}
	lastColdplug := time.Now()
	for {
		found := dev
		if dev == "" {
			found, _ = findLabelled("/sys/class/block", "/dev", PermLabel)
		} else if _, err := os.Stat(dev); err != nil {
			found = ""
		}
		if found != "" {
			err := unix.Mount(found, PermDir, "ext4", unix.MS_NOATIME|unix.MS_NOSUID|unix.MS_NODEV, "")
			if err == nil {
				s.PermDevice = found
				how := fmt.Sprintf("labelled %q", PermLabel)
				if dev != "" {
					how = "homerouter.perm"
				}
				s.logger.Printf("perm: mounted %s on %s (%s)", found, PermDir, how)
				return
			}
			s.Notice = fmt.Sprintf("cannot mount %s on %s (%v): using a tmpfs, nothing will survive a reboot", found, PermDir, err)
			break
		}
		if time.Now().After(deadline) {
			what := fmt.Sprintf("no ext4 partition labelled %q", PermLabel)
			if dev != "" {
				what = fmt.Sprintf("homerouter.perm=%s: no such device", dev)
			}
			s.Notice = what + ": " + PermDir + " is a tmpfs, nothing will survive a reboot"
			break
		}
		time.Sleep(250 * time.Millisecond)
		// The disk's own driver may need a device that appeared since
		// coldplug ran: sd_mod for the disks behind AHCI or USB.
		if s.coldplug != nil && time.Since(lastColdplug) >= time.Second {
			if loaded, _ := s.coldplug.Pass(); len(loaded) > 0 {
				s.logger.Printf("modules: loaded %s", strings.Join(loaded, " "))
				deadline = time.Now().Add(permWait)
				if limit := start.Add(permWaitMax); deadline.After(limit) {
					deadline = limit
				}
			}
			lastColdplug = time.Now()
		}
	}
	s.logger.Printf("perm: %s", s.Notice)
	if err := unix.Mount("tmpfs", PermDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		s.problem("perm: tmpfs: %v", err)
	}
}

// firstBoot writes the default interfaces.json when /perm has none, so a
// new box works when it is plugged in (see defaultInterfaces).
func (s *System) firstBoot() {
	path := filepath.Join(PermDir, "interfaces.json")
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return
	}
	nics, err := ethernetNICs("/sys/class/net")
	if err != nil {
		s.problem("first boot: %v", err)
		return
	}
	b, err := defaultInterfaces(nics)
	if err != nil {
		s.problem("first boot: no interfaces.json and %v", err)
		return
	}
	if err := state.WriteFileAtomic(path, b, 0o644); err != nil {
		s.problem("first boot: %v", err)
		return
	}
	s.logger.Printf("first boot: no interfaces.json, wrote the default: %s", strings.Join(strings.Fields(string(b)), " "))
}

// setHostname sets the hostname from /perm/hostname, "homerouter" when
// that is missing or not a valid DNS label.
func (s *System) setHostname() {
	name := "homerouter"
	if b, err := os.ReadFile(filepath.Join(PermDir, "hostname")); err == nil {
		if h := strings.TrimSpace(string(b)); state.ValidLabel(h) {
			name = h
		} else {
			s.logger.Printf("hostname: %q in %s/hostname is not a DNS label; using %s", h, PermDir, name)
		}
	}
	if err := unix.Sethostname([]byte(name)); err != nil {
		s.logger.Printf("hostname: %v", err)
		return
	}
	s.logger.Printf("hostname: %s", name)
}

// Shutdown ends PID 1 with action, once the services have stopped
// (Action says which): it flushes and unmounts /perm, then reboots,
// powers off, or jumps into the kernel that Request loaded for a kexec.
// A kexec that fails falls back to a reboot: a router that stays down
// is worse than one that comes back on its old image. The hardware
// watchdog stays armed across a kexec, for the next PID 1 to take over,
// and is disarmed before a reboot or power-off (see handOver and
// disarm). It never returns.
func (s *System) Shutdown(action state.PlatformAction) {
	unix.Sync()
	if s.PermDevice != "" {
		if err := unix.Unmount(PermDir, 0); err != nil {
			s.logger.Printf("perm: unmount: %v; remounting read-only", err)
			if err := unix.Mount("", PermDir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				s.logger.Printf("perm: remount read-only: %v", err)
			}
		} else {
			s.logger.Printf("perm: unmounted %s", s.PermDevice)
		}
	}
	unix.Sync()
	if action == state.Kexec {
		s.watchdog.handOver()
		s.logger.Printf("kexec: jumping into the loaded kernel")
		s.consoles.drain(2 * time.Second)
		// Returns only when the kernel refuses (no image loaded, say).
		err := unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC)
		s.logger.Printf("kexec: %v; rebooting instead", err)
	}
	s.watchdog.disarm()
	cmd, what := unix.LINUX_REBOOT_CMD_RESTART, "rebooting"
	if action == state.PowerOff {
		cmd, what = unix.LINUX_REBOOT_CMD_POWER_OFF, "powering off"
	}
	s.logger.Printf("%s", what)
	s.consoles.drain(2 * time.Second)
	for {
		if err := unix.Reboot(cmd); err != nil {
			s.logger.Printf("reboot: %v", err)
		}
		time.Sleep(time.Second)
	}
}

// fatalDelay is how long PID 1 shows a fatal error on the console before
// it reboots.
const fatalDelay = 10 * time.Second

// Fatal logs err and reboots after a delay: PID 1 must never exit (the
// kernel would panic), and a reboot is the best chance to come back.
// What was asked before it still holds: after the power button it powers
// off, and after an accepted kexec it jumps into the kernel already
// loaded (and checked) rather than the firmware's.
func (s *System) Fatal(err error) {
	action := s.Action()
	s.logger.Printf("fatal: %v; %s in %v", err, action, fatalDelay)
	time.Sleep(fatalDelay)
	s.Shutdown(action)
}

// loopbackUp sets lo up, as the init system does on any Linux box.
func loopbackUp() error {
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		return err
	}
	c, err := rtnetlink.Dial(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Link.Set(&rtnetlink.LinkMessage{
		Family: unix.AF_UNSPEC,
		Index:  uint32(ifi.Index),
		Flags:  unix.IFF_UP,
		Change: unix.IFF_UP,
	})
}
