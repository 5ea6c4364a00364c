// Command initramfs builds the router's boot image: a gzipped newc cpio
// archive holding the homerouter binary as /init and the kernel modules it
// may need, with their modules.dep and modules.alias.
//
//	go run ./initramfs -init build/homerouter -modules build/kernel/lib/modules/VERSION -o build/initramfs.cpio.gz
//
// The modules dir is the one Debian's linux-image .deb unpacks, after
// `depmod -b`. Only the modules listed in moduleSet (by path pattern) and
// their dependencies go in: all 4,000 would be 391 MB.
//
// The output is reproducible: the same inputs give the same bytes
// (entries sorted by name, mtimes, owners and inode numbers fixed, and a
// gzip header without a timestamp).
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/homerouter/homerouter/platform"
)

// moduleSet is what the image carries, as path.Match patterns relative to
// the modules dir: the NIC drivers of the boxes people use as routers
// (Intel, as in the apu2; Realtek; virtio for VMs), the disks /perm may be
// on, ext4, the firewall's netfilter modules, the watchdogs, and a few
// the router's later features need. Dependencies come along by themselves.
var moduleSet = []string{
	// NICs.
	"kernel/drivers/net/ethernet/intel/*.ko",
	"kernel/drivers/net/ethernet/intel/*/*.ko",
	"kernel/drivers/net/ethernet/realtek/*.ko",
	"kernel/drivers/net/virtio_net.ko",
	"kernel/drivers/virtio/*.ko",
	// Disks and /perm's filesystem.
	"kernel/drivers/block/virtio_blk.ko",
	"kernel/drivers/scsi/sd_mod.ko",
	"kernel/drivers/scsi/virtio_scsi.ko",
	"kernel/drivers/ata/ahci.ko",
	"kernel/drivers/ata/ata_piix.ko",
	"kernel/drivers/nvme/host/nvme.ko",
	"kernel/drivers/usb/storage/usb-storage.ko",
	"kernel/drivers/usb/host/*hci*.ko",
	"kernel/fs/ext4/ext4.ko",
	// The boot partition (FAT), where a committed update goes, with the
	// code page and character sets its mount asks for.
	"kernel/fs/fat/fat.ko",
	"kernel/fs/fat/vfat.ko",
	"kernel/fs/nls/nls_cp437.ko",
	"kernel/fs/nls/nls_ascii.ko",
	"kernel/fs/nls/nls_utf8.ko",
	// ext4's metadata checksums and nf_tables (through libcrc32c) need
	// a crc32c: the generic one, and the SSE4.2 one where the CPU has it.
	"kernel/crypto/crc32c_generic.ko",
	"kernel/arch/x86/crypto/crc32c-intel.ko",
	// Firewall and NAT: nf_tables and every nft_* expression,
	// nfnetlink, conntrack, NAT and the flowtable (nf_flow_table*), and
	// per family the defragmenters, reject, fib and dup. The ones PID 1
	// loads at boot are platform.NamedModules; the build fails if one
	// is missing. The rest are there for the kernel's on-demand
	// requests (through /sbin/modprobe) from rulesets that use them.
	"kernel/net/netfilter/nf*.ko",
	"kernel/net/ipv4/netfilter/nf*.ko",
	"kernel/net/ipv6/netfilter/nf*.ko",
	// Watchdogs: QEMU's, AMD boards' (apu2) and Intel's.
	"kernel/drivers/watchdog/i6300esb.ko",
	"kernel/drivers/watchdog/sp5100_tco.ko",
	"kernel/drivers/watchdog/iTCO_wdt.ko",
	// ... whose Intel TCO device only appears once the LPC bridge's or
	// the SMBus controller's driver has loaded.
	"kernel/drivers/mfd/lpc_ich.ko",
	"kernel/drivers/i2c/busses/i2c-i801.ko",
	// The power button (ACPI) and input event devices, for a clean
	// power-off when it is pressed.
	"kernel/drivers/acpi/button.ko",
	"kernel/drivers/input/evdev.ko",
	// Hardware random number generators. Without one the kernel's
	// entropy pool may take minutes to fill in a VM (QEMU's virtio-rng
	// fixes that), and DHCP transaction IDs come from crypto/rand,
	// which waits for it.
	"kernel/drivers/char/hw_random/*.ko",
	// Queueing, tunnels and VLANs.
	"kernel/net/sched/sch_cake.ko",
	"kernel/drivers/net/wireguard/wireguard.ko",
	"kernel/net/8021q/8021q.ko",
}

func main() {
	initPath := flag.String("init", "", "the homerouter `binary` (static), installed as /init")
	modDir := flag.String("modules", "", "the kernel's modules `dir`, lib/modules/VERSION, with modules.dep and modules.alias")
	out := flag.String("o", "", "output `file` (gzipped cpio)")
	flag.Parse()
	if *initPath == "" || *modDir == "" || *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := build(*initPath, *modDir, *out); err != nil {
		log.Fatalf("initramfs: %v", err)
	}
}

func build(initPath, modDir, out string) error {
	initBin, err := os.ReadFile(initPath)
	if err != nil {
		return err
	}
	files, err := moduleFiles(modDir, moduleSet)
	if err != nil {
		return err
	}
	if missing := missingModules(files, platform.NamedModules()); len(missing) > 0 {
		return fmt.Errorf("PID 1 loads %s by name, but the image lacks them (not matched by moduleSet, and not built into the kernel)", strings.Join(missing, ", "))
	}
	var buf bytes.Buffer
	if err := write(&buf, initBin, files); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Printf("initramfs: %s: %d bytes, %d files (%d modules)\n", out, buf.Len(), len(files)+1, countModules(files))
	return nil
}

func countModules(files map[string][]byte) int {
	n := 0
	for name := range files {
		if strings.HasSuffix(name, ".ko") {
			n++
		}
	}
	return n
}

// moduleFiles returns the image's files under lib/modules/VERSION (by
// their path in the image): the modules matching patterns with their
// dependencies, and modules.dep, modules.alias and modules.builtin cut
// down to them.
func moduleFiles(modDir string, patterns []string) (map[string][]byte, error) {
	version := filepath.Base(filepath.Clean(modDir))
	depText, err := os.ReadFile(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("%w (run depmod -b first)", err)
	}
	deps, order, err := parseDeps(depText)
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool)
	var add func(m string)
	add = func(m string) {
		if want[m] {
			return
		}
		want[m] = true
		for _, d := range deps[m] {
			add(d)
		}
	}
	for _, p := range patterns {
		matched := false
		for _, m := range order {
			if ok, _ := path.Match(p, m); ok {
				add(m)
				matched = true
			}
		}
		if !matched {
			return nil, fmt.Errorf("module pattern %q matches nothing in %s", p, modDir)
		}
	}

	prefix := path.Join("lib/modules", version)
	files := make(map[string][]byte)
	var dep bytes.Buffer
	names := make(map[string]bool) // module names, for modules.alias
	for _, m := range order {
		if !want[m] {
			continue
		}
		b, err := os.ReadFile(filepath.Join(modDir, m))
		if err != nil {
			return nil, err
		}
		files[path.Join(prefix, m)] = b
		fmt.Fprintf(&dep, "%s:", m)
		for _, d := range deps[m] {
			fmt.Fprintf(&dep, " %s", d)
		}
		dep.WriteByte('\n')
		names[moduleName(m)] = true
	}
	files[path.Join(prefix, "modules.dep")] = dep.Bytes()

	aliasText, err := os.ReadFile(filepath.Join(modDir, "modules.alias"))
	if err != nil {
		return nil, err
	}
	var alias bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(aliasText))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "alias" && names[f[2]] {
			alias.WriteString(sc.Text())
			alias.WriteByte('\n')
		}
	}
	files[path.Join(prefix, "modules.alias")] = alias.Bytes()

	// modules.builtin tells kmodule which dependencies need no loading.
	if b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		files[path.Join(prefix, "modules.builtin")] = b
	}
	return files, nil
}

// missingModules returns the names (as modprobe takes them) that are
// neither a module among files nor built into the kernel according to
// the modules.builtin among files.
func missingModules(files map[string][]byte, names []string) []string {
	have := make(map[string]bool)
	for name, b := range files {
		switch {
		case strings.HasSuffix(name, ".ko"):
			have[moduleName(name)] = true
		case path.Base(name) == "modules.builtin":
			for _, m := range strings.Fields(string(b)) {
				have[moduleName(m)] = true
			}
		}
	}
	var missing []string
	for _, n := range names {
		if !have[strings.ReplaceAll(n, "-", "_")] {
			missing = append(missing, n)
		}
	}
	return missing
}

// moduleName is the name modules.alias uses for the module at path p:
// its base name without .ko, '-' read as '_'.
func moduleName(p string) string {
	n := strings.TrimSuffix(path.Base(p), ".ko")
	return strings.ReplaceAll(n, "-", "_")
}

// parseDeps reads modules.dep ("path: dep dep..."), returning each
// module's dependencies and the modules in file order.
func parseDeps(text []byte) (map[string][]string, []string, error) {
	deps := make(map[string][]string)
	var order []string
	for i, line := range strings.Split(string(text), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		m, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, nil, fmt.Errorf("modules.dep:%d: no colon in %q", i+1, line)
		}
		deps[m] = strings.Fields(rest)
		order = append(order, m)
	}
	return deps, order, nil
}

// dirs are the mount points and directories PID 1 expects.
var dirs = []string{"dev", "proc", "sys", "run", "tmp", "perm", "sbin", "etc"}

// write writes the gzipped cpio archive: /init, /sbin/modprobe (a link
// to /init, which the kernel runs to load modules on demand),
// /dev/console (so the kernel can give PID 1 its stdio before devtmpfs
// is mounted), /dev/null (the Go runtime opens it for a process started
// without stdio, as the kernel starts modprobe), the mount points and
// files.
func write(w io.Writer, initBin []byte, files map[string][]byte) error {
	var recs []cpio.Record
	seenDir := make(map[string]bool)
	addDir := func(d string) {
		for ; d != "." && d != "/" && !seenDir[d]; d = path.Dir(d) {
			seenDir[d] = true
			recs = append(recs, cpio.Directory(d, 0o755))
		}
	}
	for _, d := range dirs {
		addDir(d)
	}
	recs = append(recs,
		cpio.StaticRecord(initBin, cpio.Info{Name: "init", Mode: cpio.S_IFREG | 0o755}),
		cpio.Symlink("sbin/modprobe", "/init"),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.CharDev("dev/null", 0o666, 1, 3),
	)
	for name, b := range files {
		addDir(path.Dir(name))
		recs = append(recs, cpio.StaticRecord(b, cpio.Info{Name: name, Mode: cpio.S_IFREG | 0o644}))
	}
	// Sorted by name, a directory comes before what it holds.
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })

	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	cw := cpio.Newc.Writer(zw)
	for i, r := range recs {
		r = cpio.MakeReproducible(r)
		r.Ino = uint64(i + 1)
		r.NLink = 1
		if err := cw.WriteRecord(r); err != nil {
			return fmt.Errorf("cpio %s: %w", r.Name, err)
		}
	}
	if err := cpio.WriteTrailer(cw); err != nil {
		return err
	}
	return zw.Close()
}
