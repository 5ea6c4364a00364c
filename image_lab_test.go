package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
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
	out, err := v.ns.Run(ctx, "curl", "-sS", "--max-time", "20", "-w", "\nHTTP %{http_code}", "http://"+routerIP+"/health.json")
	if err != nil {
		t.Fatalf("health from %s: %v: %s", routerIP, err, out)
	}
	t.Logf("GET http://%s/health.json:\n%s", routerIP, out)
	// Healthy: every service runs and no boot step failed (a tmpfs
	// /perm is a notice, not a failure).
	if !strings.Contains(out, `"first_error": ""`) || !strings.HasSuffix(out, "HTTP 200") {
		t.Errorf("/health.json from %s is not healthy:\n%s", routerIP, out)
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

	seed := t.TempDir()
	for name, content := range map[string]string{
		"interfaces.json": permInterfaces("192.168.42.1/24"),
		"hostname":        "gateway7\n",
	} {
		if err := os.WriteFile(filepath.Join(seed, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "perm.img")
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-L", "perm", "-d", seed, img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v: %s", err, out)
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
