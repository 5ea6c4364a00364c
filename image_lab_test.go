package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
	"github.com/homerouter/homerouter/platform"
	"github.com/homerouter/homerouter/services/firewall"
	"github.com/homerouter/homerouter/services/httpd"
	"github.com/homerouter/homerouter/state"
)

// The image tests boot what `make image`, `make pxe` and `make disk`
// build (make test builds the first two; disk images are made here with
// the same script) under QEMU: the router as PID 1 on Debian's kernel.
const (
	imageKernel = "build/vmlinuz"
	imageInitrd = "build/initramfs.cpio.gz"
	imagePXEDir = "build/pxe"
	diskScript  = "initramfs/disk.sh"
)

// vmBootTimeout bounds one boot, to the LAN lease, under TCG.
const vmBootTimeout = 3 * time.Minute

// imageArtifacts skips the test (fails it with HOMEROUTER_LAB=required)
// unless the image is built and QEMU and the clients are installed.
func imageArtifacts(t *testing.T) {
	t.Helper()
	lab.Require(t, "qemu-system-x86_64", "udhcpc", "curl", "debugfs", "mke2fs", "mkfs.vfat", "mcopy", "syslinux", "sfdisk")
	// The image comes from make image pxe (make test runs them first).
	lab.RequireFiles(t, imageKernel, imageInitrd, filepath.Join(imagePXEDir, "boot.ipxe"), "/dev/net/tun")
}

// permInterfaces is interfaces.json for the VM's NICs with lan0 at lanAddr.
func permInterfaces(lanAddr string) string {
	return `{"interfaces": [
  {"hardware_addr": "` + lab.VMUplinkMAC + `", "name": "uplink0"},
  {"hardware_addr": "` + lab.VMLANMAC + `", "name": "lan0", "addr": "` + lanAddr + `"}
]}
`
}

// vmLAN is the LAN side of a VM: a namespace with a tap, where QEMU runs
// and the DHCP client asks.
type vmLAN struct {
	l  *lab.Lab
	ns *lab.Netns
}

const lanTap = "tap0"

func newVMLAN(t *testing.T, l *lab.Lab) *vmLAN {
	t.Helper()
	ns, err := l.Netns("lan")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Tap(ns, lanTap); err != nil {
		t.Fatal(err)
	}
	return &vmLAN{l: l, ns: ns}
}

// lease runs udhcpc on the tap until the router answers, and returns its
// address; then it puts that address on the tap and fetches /health.json
// from routerIP, returning the body.
func (v *vmLAN) lease(ctx context.Context, t *testing.T, vm *lab.VM, start time.Time, routerIP string) (addr, health string) {
	t.Helper()
	for {
		// Many tries in one run, so the time to the lease is not rounded
		// up to udhcpc restarts.
		env, err := v.l.UDHCPC(ctx, v.ns, lanTap, "-t", "120")
		if err == nil {
			t.Logf("power-on to first LAN lease: %d ms (%s, router %s)", time.Since(start).Milliseconds(), env["ip"], env["router"])
			addr = env["ip"]
			if env["router"] != routerIP || env["serverid"] != routerIP {
				t.Errorf("lease %v: router %q, server %q, want %s", env["ip"], env["router"], env["serverid"], routerIP)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no LAN lease from the VM: %v", err)
		case <-vm.Exited():
			t.Fatalf("VM exited: %v", vm.Err())
		case <-time.After(time.Second): // udhcpc failed at once (tap not up yet)
		}
	}
	for _, args := range [][]string{
		{"addr", "flush", "dev", lanTap},
		{"addr", "add", addr + "/24", "dev", lanTap},
	} {
		if _, err := v.ns.Run(ctx, "ip", args...); err != nil {
			t.Fatal(err)
		}
	}
	// Healthy but for the uplink, which has no ISP here: every service
	// runs and no boot step failed (a tmpfs /perm is a notice, not a
	// failure). The diagnostics may not have seen lan0's carrier yet
	// when the lease comes: wait a little.
	var out string
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := lab.WaitFor(wctx, "/health.json failing at most on the uplink", func() error {
		var err error
		out, err = v.ns.Run(wctx, "curl", "-sS", "--max-time", "20", "-w", "\nHTTP %{http_code}", "http://"+routerIP+"/health.json")
		if err != nil {
			return err
		}
		body, _, _ := strings.Cut(out, "\nHTTP ")
		return lab.UplinkOnly(body)
	})
	t.Logf("GET http://%s/health.json:\n%s", routerIP, out)
	if err != nil {
		t.Errorf("/health.json from %s: %v", routerIP, err)
	}
	return addr, out
}

// consoleHas fails the test unless the VM's console output matches re.
func consoleHas(t *testing.T, vm *lab.VM, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindString(vm.Output())
	if m == "" {
		t.Errorf("console lacks %q", re)
	}
	return m
}

// consoleClean fails the test if the console shows a kernel panic, a
// fatal error of PID 1, a boot problem or a service that failed or
// panicked (and was restarted by the supervisor).
func consoleClean(t *testing.T, vm *lab.VM) {
	t.Helper()
	for _, bad := range []string{"Kernel panic", "platform: fatal", "platform: modules: ", "platform: coldplug: ", "panic:", "panicked", "restarting", "homerouter: stopping:"} {
		for _, line := range strings.Split(vm.Output(), "\n") {
			if strings.Contains(line, bad) && !strings.Contains(line, "platform: modules: loaded") {
				t.Errorf("console: %s", line)
			}
		}
	}
}

// permPartition copies the perm partition (the second) out of a disk
// image, for debugfs, using the partition table sfdisk reads.
func permPartition(t *testing.T, disk, out string) {
	t.Helper()
	b, err := exec.Command("sfdisk", "--json", disk).Output()
	if err != nil {
		t.Fatalf("sfdisk --json %s: %v", disk, err)
	}
	var table struct {
		PartitionTable struct {
			Partitions []struct{ Start, Size int64 }
		}
	}
	if err := json.Unmarshal(b, &table); err != nil || len(table.PartitionTable.Partitions) != 2 {
		t.Fatalf("partition table of %s: %v: %s", disk, err, b)
	}
	p := table.PartitionTable.Partitions[1]
	dd := exec.Command("dd", "if="+disk, "of="+out, "bs=512", fmt.Sprintf("skip=%d", p.Start), fmt.Sprintf("count=%d", p.Size), "conv=sparse", "status=none")
	if b, err := dd.CombinedOutput(); err != nil {
		t.Fatalf("dd: %v: %s", err, b)
	}
}

// debugfsCat reads a file from an ext4 image without mounting it.
func debugfsCat(t *testing.T, img, name string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "cat /"+name, img).Output()
	if err != nil || len(out) == 0 {
		t.Errorf("debugfs cat /%s in %s: %v (empty: %v)", name, img, err, len(out) == 0)
	}
	return string(out)
}

// TestImageDirectBoot boots the kernel and initramfs directly, with the
// uplink on QEMU's user network and /perm on a virtio disk, then powers
// off cleanly (the power button), reads the state files off the disk and
// boots again from it.
func TestImageDirectBoot(t *testing.T) {
	imageArtifacts(t)
	if fi, err := os.Stat(imageInitrd); err == nil {
		t.Logf("initramfs size: %d bytes (%s)", fi.Size(), imageInitrd)
	}
	l := lab.NewT(t)
	lan := newVMLAN(t, l)

	img, err := lab.PermImage(t.TempDir(), map[string]string{
		"interfaces.json": permInterfaces("192.168.42.1/24"),
		"hostname":        "gateway7\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	opt := lab.VMOptions{Kernel: imageKernel, Initrd: imageInitrd, Append: "console=ttyS0 panic=-1", Disk: img, LANTap: lanTap}

	ctx, cancel := context.WithTimeout(context.Background(), vmBootTimeout)
	defer cancel()
	start := time.Now()
	vm, err := l.StartVM(lan.ns, opt)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := lan.lease(ctx, t, vm, start, "192.168.42.1")
	if !strings.HasPrefix(addr, "192.168.42.") {
		t.Errorf("LAN lease %s, want 192.168.42.0/24", addr)
	}
	if err := vm.WaitOutput(ctx, "dhcp4: bound to 10.0.2.15/24"); err != nil {
		t.Fatalf("uplink lease: %v", err)
	}
	loaded := consoleHas(t, vm, `platform: modules: loaded .*`)
	for _, m := range []string{"virtio_net", "e1000e", "ext4"} {
		if !strings.Contains(loaded+" ", " "+m+" ") {
			t.Errorf("coldplug did not load %s: %s", m, loaded)
		}
	}
	consoleHas(t, vm, `perm: mounted /dev/vda on /perm \(labelled "perm"\)`)
	consoleHas(t, vm, `platform: hostname: gateway7`)

	// A clean power-off: the ACPI power button.
	if err := vm.PowerDown(time.Minute); err != nil {
		t.Fatal(err)
	}
	consoleHas(t, vm, `power button pressed: powering off`)
	consoleHas(t, vm, `perm: unmounted /dev/vda`)
	consoleHas(t, vm, `platform: powering off`)
	consoleClean(t, vm)

	// The state written during the boot is on the disk.
	uplinkLease := debugfsCat(t, img, "dhcp4-lease.json")
	if !strings.Contains(uplinkLease, `"10.0.2.15/24"`) {
		t.Errorf("dhcp4-lease.json on the disk lacks 10.0.2.15:\n%s", uplinkLease)
	}
	lanLeases := debugfsCat(t, img, "dhcp4d-leases.json")
	if !strings.Contains(lanLeases, `"`+addr+`"`) {
		t.Errorf("dhcp4d-leases.json on the disk lacks the LAN client's %s:\n%s", addr, lanLeases)
	}
	duid := debugfsCat(t, img, "dhcp6-duid.json")
	t.Logf("after the first boot: dhcp4-lease.json %s; dhcp6-duid.json %s", strings.Join(strings.Fields(uplinkLease), " "), strings.TrimSpace(duid))

	// The second boot starts from them: the uplink asks to keep its
	// persisted address, the LAN client gets its address back, the DUID
	// stays. This time the command line names the device.
	ctx2, cancel2 := context.WithTimeout(context.Background(), vmBootTimeout)
	defer cancel2()
	start = time.Now()
	opt.Append += " homerouter.perm=/dev/vda"
	vm2, err := l.StartVM(lan.ns, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := vm2.WaitOutput(ctx2, "dhcp4: asking to keep 10.0.2.15/24 (persisted lease"); err != nil {
		t.Fatalf("second boot did not reuse the uplink lease: %v", err)
	}
	consoleHas(t, vm2, `perm: mounted /dev/vda on /perm \(homerouter.perm\)`)
	addr2, _ := lan.lease(ctx2, t, vm2, start, "192.168.42.1")
	if addr2 != addr {
		t.Errorf("second boot gave the LAN client %s, first %s", addr2, addr)
	}
	// This time Ctrl-Alt-Del: a clean reboot, which -no-reboot turns
	// into QEMU's exit.
	if err := vm2.Shutdown(time.Minute); err != nil {
		t.Fatal(err)
	}
	consoleHas(t, vm2, `perm: unmounted /dev/vda`)
	consoleHas(t, vm2, `platform: rebooting`)
	consoleClean(t, vm2)
	if duid2 := debugfsCat(t, img, "dhcp6-duid.json"); duid2 != duid {
		t.Errorf("DUID changed across boots: %s, then %s", duid, duid2)
	}
}

// TestImagePXE boots the `make pxe` output over QEMU's TFTP with the
// uplink NIC's iPXE, with no disk: /perm is a tmpfs, the first-boot
// default interfaces.json takes effect, and /health.json says that
// nothing will survive a reboot.
func TestImagePXE(t *testing.T) {
	imageArtifacts(t)
	l := lab.NewT(t)
	lan := newVMLAN(t, l)
	pxe, err := filepath.Abs(imagePXEDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), vmBootTimeout)
	defer cancel()
	start := time.Now()
	vm, err := l.StartVM(lan.ns, lab.VMOptions{TFTPDir: pxe, BootFile: "boot.ipxe", NetBoot: true, LANTap: lanTap})
	if err != nil {
		t.Fatal(err)
	}
	_, health := lan.lease(ctx, t, vm, start, "192.168.42.1")
	consoleClean(t, vm)
	consoleHas(t, vm, `first boot: no interfaces.json, wrote the default`)
	consoleHas(t, vm, `platform: hostname: homerouter`)
	// The command line is boot.ipxe's.
	consoleHas(t, vm, `command line "console=tty0 console=ttyS0,115200 panic=10"`)
	if !strings.Contains(health, "nothing will survive a reboot") {
		t.Errorf("/health.json does not say that /perm is a tmpfs:\n%s", health)
	}
	// The log since boot, kept in memory by PID 1.
	logText, err := lan.ns.Run(ctx, "curl", "-sS", "--max-time", "20", "http://192.168.42.1/log")
	if err != nil || !strings.Contains(logText, "platform: modules: loaded") || !strings.Contains(logText, "dhcp4d: serving") {
		t.Errorf("GET /log: %v:\n%s", err, logText)
	}
}

// TestImageDisk boots `make disk` images from the disk alone (BIOS,
// syslinux): one seeded from a perm dir whose lan0 is 10.42.5.1/24, on a
// SATA disk behind AHCI, and one with an empty perm partition on virtio, where the first boot writes the
// default (lan0 192.168.42.1/24) onto the disk.
func TestImageDisk(t *testing.T) {
	imageArtifacts(t)
	for _, tc := range []struct {
		name, lanAddr, router string
		ahci                  bool
	}{
		{"SeededAHCI", "10.42.5.1/24", "10.42.5.1", true},
		{"Empty", "", "192.168.42.1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := lab.NewT(t)
			lan := newVMLAN(t, l)
			dir := t.TempDir()
			disk := filepath.Join(dir, "disk.img")
			args := []string{diskScript, disk, imageKernel, imageInitrd}
			if tc.lanAddr != "" {
				seed := filepath.Join(dir, "perm")
				if err := os.Mkdir(seed, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(seed, "interfaces.json"), []byte(permInterfaces(tc.lanAddr)), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, seed)
			}
			cmd := exec.Command("sh", args...)
			cmd.Env = append(os.Environ(), "BOOT_MB=64", "PERM_MB=64")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("disk.sh: %v\n%s", err, out)
			}

			ctx, cancel := context.WithTimeout(context.Background(), vmBootTimeout)
			defer cancel()
			start := time.Now()
			vm, err := l.StartVM(lan.ns, lab.VMOptions{Disk: disk, AHCI: tc.ahci, LANTap: lanTap})
			if err != nil {
				t.Fatal(err)
			}
			addr, _ := lan.lease(ctx, t, vm, start, tc.router)
			if !strings.HasPrefix(addr, strings.TrimSuffix(tc.router, "1")) {
				t.Errorf("LAN lease %s, want one in %s/24", addr, tc.router)
			}
			consoleHas(t, vm, `SYSLINUX`)
			if tc.ahci {
				consoleHas(t, vm, `perm: mounted /dev/sda2 on /perm \(labelled "perm"\)`)
			} else {
				consoleHas(t, vm, `perm: mounted /dev/vda2 on /perm \(labelled "perm"\)`)
			}
			if err := vm.Shutdown(time.Minute); err != nil {
				t.Fatal(err)
			}
			consoleClean(t, vm)
			if tc.lanAddr == "" {
				consoleHas(t, vm, `first boot: no interfaces.json, wrote the default`)
				// The default is on the disk for the next boot.
				part := filepath.Join(dir, "perm.img")
				permPartition(t, disk, part)
				ifs := debugfsCat(t, part, "interfaces.json")
				for _, want := range []string{lab.VMUplinkMAC, `"uplink0"`, lab.VMLANMAC, `"192.168.42.1/24"`} {
					if !strings.Contains(ifs, want) {
						t.Errorf("default interfaces.json on the disk lacks %s:\n%s", want, ifs)
					}
				}
			}
		})
	}
}

// imageHomeArtifacts skips the test (fails it with
// HOMEROUTER_LAB=required) unless the image is built and QEMU, the ISP's
// peers, the client and the servers are installed.
func imageHomeArtifacts(t *testing.T, binaries ...string) {
	t.Helper()
	lab.Require(t, append([]string{"qemu-system-x86_64", "mke2fs", "dnsmasq", "dhcpd", "radvd", "udhcpc", "curl", "busybox", "ss"}, binaries...)...)
	lab.RequireFiles(t, imageKernel, imageInitrd, "/dev/net/tun")
}

// imageRouterLAN is lan0's address in the image home tests.
const imageRouterLAN = "192.168.42.1"

// imageHome is the image booted as the router between the lab's ISP and
// a LAN client (lab.ImageHome), with the client configured from its
// lease.
type imageHome struct {
	*lab.ImageHome
	vm *lab.VM
	// start is when QEMU was started.
	start time.Time
	// uplink is the router's uplink address (its DHCPv4 lease from the
	// ISP); client the LAN client's (its lease from the router).
	uplink, client netip.Addr
}

var imageBoundRE = regexp.MustCompile(`dhcp4: bound to ([0-9.]+)/`)

// bootImageHome boots the image directly (kernel and initramfs) in an
// ImageHome, with /perm on a virtio disk that holds interfaces.json
// (lan0 192.168.42.1/24), and waits for the LAN client's lease, which it
// configures on the client's eth0 with a default route through the
// router, and for the uplink's. perm holds more files for /perm, by name.
func bootImageHome(ctx context.Context, t *testing.T, l *lab.Lab, perm map[string]string) *imageHome {
	t.Helper()
	h, err := lab.NewImageHome(l, lab.HomeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"interfaces.json": permInterfaces(imageRouterLAN + "/24")}
	maps.Copy(files, perm)
	img, err := lab.PermImage(t.TempDir(), files)
	if err != nil {
		t.Fatal(err)
	}
	return startImageHome(ctx, t, l, h, lab.VMOptions{Kernel: imageKernel, Initrd: imageInitrd, Append: "console=ttyS0 panic=-1", Disk: img})
}

// startImageHome boots the VM of opt in h, and waits for the LAN
// client's lease, which it configures on the client's eth0 with a
// default route through the router, and for the uplink's.
func startImageHome(ctx context.Context, t *testing.T, l *lab.Lab, h *lab.ImageHome, opt lab.VMOptions) *imageHome {
	t.Helper()
	var err error
	r := &imageHome{ImageHome: h, start: time.Now()}
	r.vm, err = h.StartVM(opt)
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]string
	for {
		// Many tries in one run, so the time to the lease is not rounded
		// up to udhcpc restarts.
		if env, err = l.UDHCPC(ctx, h.LAN, "eth0", "-t", "120"); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no LAN lease from the VM: %v", err)
		case <-r.vm.Exited():
			t.Fatalf("VM exited: %v", r.vm.Err())
		case <-time.After(time.Second): // udhcpc failed at once
		}
	}
	t.Logf("power-on to first LAN lease: %d ms (%s/%s, router %s)", time.Since(r.start).Milliseconds(), env["ip"], env["mask"], env["router"])
	if env["router"] != imageRouterLAN || env["serverid"] != imageRouterLAN {
		t.Errorf("lease %v: router %q, server %q, want %s", env["ip"], env["router"], env["serverid"], imageRouterLAN)
	}
	if r.client, err = netip.ParseAddr(env["ip"]); err != nil {
		t.Fatalf("lease: %v", err)
	}
	for _, args := range [][]string{
		{"addr", "add", env["ip"] + "/" + env["mask"], "dev", "eth0"},
		{"route", "add", "default", "via", imageRouterLAN},
	} {
		if _, err := h.LAN.Run(ctx, "ip", args...); err != nil {
			t.Fatal(err)
		}
	}
	// The whole line: the console delivers it in pieces.
	at, err := r.vm.WaitOutputAfter(ctx, 0, "dhcp4: bound to ")
	if err == nil {
		_, err = r.vm.WaitOutputAfter(ctx, at, "\n")
	}
	if err != nil {
		t.Fatalf("uplink lease: %v", err)
	}
	m := imageBoundRE.FindStringSubmatch(r.vm.Output())
	if m == nil {
		t.Fatalf("no uplink address on the console")
	}
	r.uplink = netip.MustParseAddr(m[1])
	if !netip.MustParsePrefix(lab.ISPPrefix4).Contains(r.uplink) {
		t.Errorf("uplink address %s, want one in the ISP's %s", r.uplink, lab.ISPPrefix4)
	}
	return r
}

// waitThrough waits (up to within) until the LAN client fetches web's
// index through the router and returns the time since power-on. It does
// not fail the test: the caller says what a failure means.
func (r *imageHome) waitThrough(ctx context.Context, web *lab.WebServer, within time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	err := lab.WaitFor(ctx, "LAN client to fetch "+web.URL("/")+" through the router", func() error {
		select {
		case <-r.vm.Exited():
			return lab.Abort(fmt.Errorf("VM exited: %v", r.vm.Err()))
		default:
		}
		body, err := r.LAN.HTTPGet(ctx, web.URL("/"), 2*time.Second)
		if err != nil {
			return err
		}
		if body != web.Body+"\n" {
			return lab.Abort(fmt.Errorf("body %q, want %q", body, web.Body+"\n"))
		}
		return nil
	})
	return time.Since(r.start), err
}

// health fetches /health.json from the router's LAN address, as the LAN
// client, and returns the HTTP status, the body and the body decoded.
func (r *imageHome) health(ctx context.Context, t *testing.T) (int, string, httpd.Health) {
	t.Helper()
	out, err := r.LAN.Run(ctx, "curl", "-sS", "--max-time", "20", "-w", "\n%{http_code}", "http://"+imageRouterLAN+"/health.json")
	if err != nil {
		t.Fatalf("health from %s: %v", imageRouterLAN, err)
	}
	out = strings.TrimRight(out, "\n")
	i := strings.LastIndex(out, "\n")
	code, err := strconv.Atoi(out[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("health from %s: no status in %q", imageRouterLAN, out)
	}
	body := out[:i]
	var h httpd.Health
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("health from %s: %v:\n%s", imageRouterLAN, err, body)
	}
	return code, body, h
}

// imageChecks returns every check of the tree under c (c included),
// each with its path ("homerouter/services/firewall").
func imageChecks(c state.HealthCheck, parent string) map[string]state.HealthCheck {
	path := c.Name
	if parent != "" {
		path = parent + "/" + c.Name
	}
	all := map[string]state.HealthCheck{path: c}
	for _, ch := range c.Children {
		maps.Copy(all, imageChecks(ch, path))
	}
	return all
}

// imageJSONBools returns the values of every boolean named key anywhere
// in the JSON text, however deep: where /health.json shows the
// firewall's status may change without this test knowing.
func imageJSONBools(text, key string) []bool {
	var v any
	if json.Unmarshal([]byte(text), &v) != nil {
		return nil
	}
	var found []bool
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if b, ok := x.(bool); ok && k == key {
					found = append(found, b)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return found
}

// imageFirewallModules are the netfilter modules PID 1 loads by name
// (platform.NamedModules without crc32c and ext4).
func imageFirewallModules() []string {
	var mods []string
	for _, m := range platform.NamedModules() {
		if strings.HasPrefix(m, "nf") {
			mods = append(mods, m)
		}
	}
	return mods
}

// imageFlowtableRE is the firewall's log line when its ruleset with a
// flowtable came into force.
const imageFlowtableRE = `firewall: ruleset (in force|replaced): .*flowtable true`

// imageWebBody is what the ISP's web server serves in the image tests.
const imageWebBody = "homerouter image test: the ISP's web server"

// TestImageFirewall boots the image as the router between the lab's ISP
// (dnsmasq, dhcpd -6, radvd and a web server) and a LAN client, both on
// taps bridged into their namespaces, and checks the firewall there, on
// Debian's kernel: the LAN client reaches the ISP's web server through
// the router, masqueraded to the uplink address, and /health.json shows
// the firewall running and healthy with its flowtable (no flowtable
// notice, as the lab's kernel gives).
func TestImageFirewall(t *testing.T) {
	imageHomeArtifacts(t)
	l := lab.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), vmBootTimeout)
	defer cancel()
	r := bootImageHome(ctx, t, l, nil)
	web, err := l.StartWebServer(ctx, r.ISP, netip.AddrPortFrom(netip.MustParseAddr(lab.ISPAddr4), 80), imageWebBody)
	if err != nil {
		t.Fatal(err)
	}

	// The firewall switches forwarding on once its ruleset is in force,
	// and the ISP has no route to the LAN's subnet: only a masqueraded
	// connection gets through.
	took, err := r.waitThrough(ctx, web, time.Minute)
	if err != nil {
		t.Errorf("LAN to the ISP's web server through the router: %v", err)
	} else {
		t.Logf("power-on to LAN client fetching the ISP's web page through the router: %d ms", took.Milliseconds())
		remote, err := r.LAN.HTTPGet(ctx, web.URL(lab.RemotePath), 10*time.Second)
		if got := strings.TrimSpace(remote); err != nil || got != r.uplink.String() {
			t.Errorf("the ISP's web server saw the LAN client %s as %q (%v), want the router's uplink address %s (masquerade)", r.client, got, err, r.uplink)
		}
	}

	imageIPv6(ctx, t, r)

	// The diagnostics service looks again at each change of a link or
	// lease, and every 10 s: the uplink's tree passes soon after the
	// traffic above did.
	var code int
	var body string
	var h httpd.Health
	if err := lab.WaitFor(ctx, "200 from /health.json", func() error {
		if code, body, h = r.health(ctx, t); code != 200 || h.FirstError != "" {
			return fmt.Errorf("%d, first_error %q", code, h.FirstError)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	t.Logf("GET http://%s/health.json: %d\n%s", imageRouterLAN, code, body)
	checks := imageChecks(h.Checks, "")
	if fw, ok := checks["homerouter/services/firewall"]; !ok {
		t.Errorf("/health.json has no firewall service")
	} else if !fw.OK || fw.Error != "" {
		t.Errorf("/health.json: the firewall is not healthy: %+v", fw)
	}
	// Debian's kernel has flowtables: the firewall has no reason for a
	// notice (the lab's kernel gives one: no flowtable).
	for path, c := range checks {
		if strings.HasPrefix(c.Name, "firewall") && c.Notice != "" {
			t.Errorf("/health.json: %s has a notice: %s", path, c.Notice)
		}
	}
	// Wherever /health.json shows the firewall's status, its flowtable
	// is in force; and the firewall's log says so.
	if fts := imageJSONBools(body, "flowtable"); len(fts) == 0 {
		t.Logf("/health.json does not show whether the flowtable is in force; no notice says it is not")
	} else if slices.Contains(fts, false) {
		t.Errorf("/health.json: flowtable %v, want true", fts)
	}
	t.Logf("console: %s", consoleHas(t, r.vm, imageFlowtableRE))

	// PID 1 loaded the firewall's modules at boot (consoleClean below:
	// without a problem).
	loaded := strings.TrimSpace(consoleHas(t, r.vm, `platform: modules: loaded .*`))
	for _, m := range imageFirewallModules() {
		if !strings.Contains(loaded+" ", " "+m+" ") {
			t.Errorf("PID 1 did not load %s: %s", m, loaded)
		}
	}
	if err := r.vm.Shutdown(time.Minute); err != nil {
		t.Fatal(err)
	}
	consoleClean(t, r.vm)
}

// imageIPv6 checks, in a booted image, the LAN's IPv6 as the router's
// advertisements give it on Debian's kernel: rdisc6 sees the delegated
// /64 and the ULA with a router lifetime, the LAN client takes an
// address in the /64 and reaches the ISP over IPv6 through the
// firewall.
func imageIPv6(ctx context.Context, t *testing.T, r *imageHome) {
	t.Helper()
	var delegated netip.Prefix
	ra := advertised(ctx, t, r.LAN, "an advertisement of a delegated /64 and the ULA, with a router lifetime", func(ra lab.RouterAdvert) error {
		var ok bool
		delegated, ok = ra.Delegated()
		if _, hasULA := ulaOf(ra); !hasULA || !ok || ra.RouterLifetime == 0 || len(ra.RDNSS) != 1 {
			return fmt.Errorf("got %+v", ra)
		}
		return nil
	})
	t.Logf("the image's advertisement: %+v", ra)
	client := slaac(ctx, t, r.LAN, delegated).Prefix.Addr()
	ll, err := lab.LinkLocal(lab.VMUplinkMAC)
	if err != nil {
		t.Fatal(err)
	}
	site := netip.PrefixFrom(delegated.Addr(), lab.ISPPDLen).Masked()
	if err := r.ISP.RouteVia(ctx, site, ll, "isp0"); err != nil {
		t.Fatal(err)
	}
	if err := settle(ctx, "ping from the LAN client's SLAAC address "+client.String()+" to the ISP", func(ctx context.Context) error {
		_, err := r.LAN.Run(ctx, "ping", "-6", "-c", "1", "-W", "2", "-I", client.String(), lab.ISPAddr6)
		return err
	}); err != nil {
		t.Error(err)
	}
}

// imageBenchConfigs are the firewall's configurations that
// TestBenchImageFirewall measures, in this order; the first is the one
// the image boots with.
var imageBenchConfigs = []struct {
	name string
	// mode is what setImageFirewallMode takes.
	mode string
}{
	{"full ruleset with flowtable", "full"},
	{"full ruleset, no flowtable", "noflowtable"},
	{"no ruleset", "off"},
}

// imageBenchPerm are the /perm files TestBenchImageFirewall boots with:
// firewall-bench turns on the firewall's bench mode switch.
var imageBenchPerm = map[string]string{firewall.BenchFile: ""}

// setImageFirewallMode puts the running image's firewall in mode: "full"
// (what it boots with: the full ruleset and, on Debian's kernel, its
// flowtable), "noflowtable" (the same ruleset without the flowtable) or
// "off" (no ruleset at all, with forwarding on), through the firewall's
// bench switch (the image has no nft). It returns once /health.json
// shows the mode in force.
func setImageFirewallMode(ctx context.Context, t *testing.T, r *imageHome, mode string) error {
	t.Helper()
	if out, err := r.LAN.Run(ctx, "curl", "-sSf", "--max-time", "10", "-X", "POST", "-H", firewall.BenchHeader+": 1", "--data", mode, "http://"+imageRouterLAN+"/firewall/mode"); err != nil {
		return fmt.Errorf("POST /firewall/mode %s: %v: %s", mode, err, out)
	}
	want := "bench mode " + mode + " in force"
	if err := lab.WaitFor(ctx, "/health.json: "+want, func() error {
		_, body, _ := r.health(ctx, t)
		if !strings.Contains(body, want) {
			return fmt.Errorf("no %q in:\n%s", want, body)
		}
		return nil
	}); err != nil {
		return err
	}
	if mode == "full" && !regexp.MustCompile(imageFlowtableRE).MatchString(r.vm.Output()) {
		return fmt.Errorf("the console lacks %q", imageFlowtableRE)
	}
	return nil
}

// imageBenchDuration is how long each iperf3 run measures, after
// imageBenchOmit seconds of TCP ramp-up that it leaves out.
const (
	imageBenchDuration = 10 * time.Second
	imageBenchOmit     = "2"
)

// TestBenchImageFirewall is the image's part of the firewall benchmark:
// in one boot of the image under QEMU, iperf3 TCP from the LAN client to
// the ISP host through the router with the full ruleset and its
// flowtable, with the full ruleset only, and with no ruleset, printed
// with their ratios. Under TCG the absolute figures mean little; the
// ratios show what the ruleset costs and what the flowtable gains. It
// runs only with HOMEROUTER_BENCH=1.
func TestBenchImageFirewall(t *testing.T) {
	if os.Getenv("HOMEROUTER_BENCH") != "1" {
		t.Skip("set HOMEROUTER_BENCH=1 (make bench) to run the image's firewall benchmark")
	}
	imageHomeArtifacts(t, "iperf3")
	l := lab.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r := bootImageHome(ctx, t, l, imageBenchPerm)
	isp := netip.MustParseAddr(lab.ISPAddr4)
	web, err := l.StartWebServer(ctx, r.ISP, netip.AddrPortFrom(isp, 80), imageWebBody)
	if err != nil {
		t.Fatal(err)
	}
	server := netip.AddrPortFrom(isp, 5201)
	if _, err := l.StartIPerf3Server(ctx, r.ISP, server); err != nil {
		t.Fatal(err)
	}
	if _, err := r.waitThrough(ctx, web, time.Minute); err != nil {
		t.Fatalf("LAN to the ISP through the router: %v", err)
	}
	// With no ruleset there is no NAT either: the ISP routes the home's
	// subnet to the uplink address, as a routed ISP would, so that the
	// three differ only in the ruleset.
	if _, err := r.ISP.Run(ctx, "ip", "route", "replace", netip.MustParsePrefix(imageRouterLAN+"/24").Masked().String(), "via", r.uplink.String()); err != nil {
		t.Fatal(err)
	}

	bps := map[string]float64{}
	for _, c := range imageBenchConfigs {
		if err := setImageFirewallMode(ctx, t, r, c.mode); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		res, err := r.LAN.IPerf3(ctx, server, imageBenchDuration, "-O", imageBenchOmit)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		bps[c.name] = res.ReceivedBPS
		t.Logf("%s: iperf3 TCP LAN -> ISP through the router: %.0f Mbit/s received (%.0f sent, %d retransmits)",
			c.name, res.ReceivedBPS/1e6, res.SentBPS/1e6, res.Retransmits)
	}
	full, flow, none := bps[imageBenchConfigs[1].name], bps[imageBenchConfigs[0].name], bps[imageBenchConfigs[2].name]
	ratio := func(a, b float64) string {
		if a == 0 || b == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	t.Logf("image under QEMU (TCG), iperf3 TCP LAN -> ISP: full ruleset / no ruleset %s; with flowtable / no ruleset %s; with flowtable / without %s",
		ratio(full, none), ratio(flow, none), ratio(flow, full))
	if err := r.vm.Shutdown(time.Minute); err != nil {
		t.Fatal(err)
	}
	consoleClean(t, r.vm)
}
