package platform

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"

	"github.com/homerouter/homerouter/state"
)

func TestMatchGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"pci:v00008086d000010D3sv*sd*bc*sc*i*", "pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00", true},
		{"pci:v00008086d000010D3sv*sd*bc*sc*i*", "pci:v00008086d000010D4sv00008086sd00000000bc02sc00i00", false},
		{"virtio:d00000001v*", "virtio:d00000001v00001AF4", true},
		{"virtio:d00000001v*", "virtio:d00000002v00001AF4", false},
		{"acpi*:PNP0C0C:*", "acpi:PNP0C0C:", true},
		{"acpi*:PNP0C0C:*", "acpi:LNXPWRBN:", false},
		{"*", "", true},
		{"a*b*c", "a/x/b/y/c", true}, // '*' crosses '/', unlike path.Match
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"dmi*:svn*[Ll][Ee][Nn]*", "dmi:bvnX:svnLEN:pn", true},
		{"dmi*:svn*[Ll][Ee][Nn]*", "dmi:bvnX:svnLAN:pn", false},
		{"x[!a-c]y", "xdy", true},
		{"x[!a-c]y", "xby", false},
		{"x[a-c", "x[a-c", false}, // unterminated class: nothing (glibc: literal)
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{"abc", "abcd", false},
		{"abc*", "abc", true},
	} {
		if got := matchGlob(tc.pattern, tc.s); got != tc.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

const aliasText = `# Aliases extracted from modules themselves.
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias virtio:d00000002v* virtio_blk
alias acpi*:PNP0C0C:* button
alias fs-ext4 ext4
alias crypto-crc32c crc32c_generic
alias crypto-crc32c crc32c_intel
`

func TestAliases(t *testing.T) {
	a, err := ParseAliases(strings.NewReader(aliasText))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		modalias string
		want     []string
	}{
		{"pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00", []string{"e1000e"}},
		{"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", []string{"virtio_pci"}},
		{"virtio:d00000001v00001AF4", []string{"virtio_net"}},
		{"acpi:PNP0C0C:", []string{"button"}},
		{"fs-ext4", []string{"ext4"}},
		{"crypto-crc32c", []string{"crc32c_generic", "crc32c_intel"}},
		{"pci:v000010ECd00008168sv*", nil},
		{"x", nil},
	} {
		if got := a.Modules(tc.modalias); !slices.Equal(got, tc.want) {
			t.Errorf("Modules(%q) = %q, want %q", tc.modalias, got, tc.want)
		}
	}
}

// TestColdplug fakes sysfs: loading virtio_pci makes a virtio device
// appear, as in a VM, but only after a moment, as drivers probe
// asynchronously; its modalias then loads virtio_net.
func TestColdplug(t *testing.T) {
	a, err := ParseAliases(strings.NewReader(aliasText))
	if err != nil {
		t.Fatal(err)
	}
	sys := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(sys, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Error(err)
		}
		if err := os.WriteFile(p, []byte(content+"\n"), 0o444); err != nil {
			t.Error(err)
		}
	}
	write("pci0000:00/0000:00:02.0/modalias", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00")
	write("pci0000:00/0000:00:03.0/modalias", "pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00")
	write("pci0000:00/0000:00:04.0/modalias", "pci:v000010ECd00008139sv00001AF4sd00001100bc02sc00i00") // no driver
	probed := make(chan struct{})
	var calls []string
	load := func(m string) error {
		calls = append(calls, m)
		switch m {
		case "virtio_pci":
			go func() {
				time.Sleep(20 * time.Millisecond)
				write("pci0000:00/0000:00:02.0/virtio0/modalias", "virtio:d00000001v00001AF4")
				close(probed)
			}()
		case "e1000e":
			return os.ErrInvalid // a failure is logged, not retried
		}
		return nil
	}
	var logged []string
	logf := func(f string, args ...any) { logged = append(logged, fmt.Sprintf(f, args...)) }
	c := &Coldplug{SysDevices: sys, Aliases: a, Load: load, Logf: logf}
	loaded := c.Run(500 * time.Millisecond)
	<-probed
	if want := []string{"virtio_pci", "virtio_net"}; !slices.Equal(loaded, want) {
		t.Errorf("loaded %q, want %q", loaded, want)
	}
	if want := []string{"virtio_pci", "e1000e", "virtio_net"}; !slices.Equal(calls, want) {
		t.Errorf("load calls %q, want %q (each module once)", calls, want)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "e1000e") {
		t.Errorf("logged %q, want the e1000e failure", logged)
	}
	// A later pass (the perm wait's) finds only what is new.
	write("pci0000:00/0000:00:02.0/virtio1/modalias", "virtio:d00000002v00001AF4")
	if loaded, tried := c.Pass(); !slices.Equal(loaded, []string{"virtio_blk"}) || tried != 1 {
		t.Errorf("second pass loaded %q (tried %d), want virtio_blk", loaded, tried)
	}
}

// ext4Image returns the first 2 KiB of an ext4 filesystem labelled label.
func ext4Image(label string) []byte {
	b := make([]byte, 2048)
	binary.LittleEndian.PutUint16(b[1024+0x38:], 0xEF53)
	copy(b[1024+0x78:], label)
	return b
}

func TestFindLabelled(t *testing.T) {
	sysBlock, dev := t.TempDir(), t.TempDir()
	for name, content := range map[string][]byte{
		"loop0": ext4Image("perm"), // skipped: loop devices are not disks
		"sda":   make([]byte, 4096),
		"sda1":  ext4Image("boot"),
		"sda2":  ext4Image("perm"),
		"sdb1":  ext4Image("perm"), // later in name order
		"sr0":   {1, 2, 3},         // short read
	} {
		if err := os.Mkdir(filepath.Join(sysBlock, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dev, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := findLabelled(sysBlock, dev, "perm")
	if err != nil || got != filepath.Join(dev, "sda2") {
		t.Errorf("findLabelled = %q, %v; want %s", got, err, filepath.Join(dev, "sda2"))
	}
	if got, _ := findLabelled(sysBlock, dev, "nothere"); got != "" {
		t.Errorf("findLabelled(nothere) = %q", got)
	}
	if ext4Label(ext4Image("perm")[:1100]) != "" || ext4Label(make([]byte, 2048)) != "" {
		t.Error("ext4Label found a label in a short or zero superblock")
	}
	full := ext4Image("0123456789abcdef") // 16 bytes, no NUL
	if got := ext4Label(full); got != "0123456789abcdef" {
		t.Errorf("ext4Label(16 bytes) = %q", got)
	}
}

// TestDefaultInterfaces fakes /sys/class/net: two PCI NICs whose names
// are in the opposite order of their slots, a bridge and loopback. The
// default must name the NICs by slot and pass the router's own check.
func TestDefaultInterfaces(t *testing.T) {
	root := t.TempDir()
	net := filepath.Join(root, "class/net")
	link := func(name, typ, mac, device string) {
		dir := filepath.Join(net, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "type"), []byte(typ+"\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "address"), []byte(mac+"\n"), 0o644)
		if device != "" {
			target := filepath.Join(root, "devices", device)
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(dir, "device")); err != nil {
				t.Fatal(err)
			}
		}
	}
	link("eth0", "1", "52:54:00:00:00:02", "pci0000:00/0000:00:03.0")
	link("eth1", "1", "52:54:00:00:00:01", "pci0000:00/0000:00:02.0/virtio0")
	link("br0", "1", "02:00:00:00:00:09", "")
	link("lo", "772", "00:00:00:00:00:00", "")
	nics, err := ethernetNICs(net)
	if err != nil {
		t.Fatal(err)
	}
	b, err := defaultInterfaces(nics)
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "interfaces": [
    {
      "hardware_addr": "52:54:00:00:00:01",
      "name": "uplink0"
    },
    {
      "hardware_addr": "52:54:00:00:00:02",
      "name": "lan0",
      "addr": "192.168.42.1/24"
    }
  ]
}
`
	if string(b) != want {
		t.Errorf("default interfaces.json:\n%s\nwant:\n%s", b, want)
	}
	perm := t.TempDir()
	if err := os.WriteFile(filepath.Join(perm, "interfaces.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if errs := state.Check(perm); len(errs) > 0 {
		t.Errorf("the default does not pass check: %v", errs)
	}
	if _, err := defaultInterfaces(nil); err == nil {
		t.Error("defaultInterfaces(no NICs) did not fail")
	}
	if b, _ := defaultInterfaces(nics[:1]); bytes.Contains(b, []byte("lan0")) {
		t.Errorf("one NIC got a lan0: %s", b)
	}
}

func TestCmdlineParam(t *testing.T) {
	cmdline := `BOOT_IMAGE=/vmlinuz console=ttyS0,115200 homerouter.perm=/dev/sdb2 quiet x="a b"`
	for key, want := range map[string]string{
		"homerouter.perm": "/dev/sdb2",
		"console":         "ttyS0,115200",
		"quiet":           "",
		"absent":          "",
	} {
		if got := cmdlineParam(cmdline, key); got != want {
			t.Errorf("cmdlineParam(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestRing(t *testing.T) {
	r := NewRing(8)
	if got := string(r.Bytes()); got != "" {
		t.Errorf("empty ring = %q", got)
	}
	for _, tc := range []struct{ write, want string }{
		{"abc", "abc"},
		{"defgh", "abcdefgh"},
		{"ij", "cdefghij"},
		{"0123456789", "23456789"},
		{"k", "3456789k"},
	} {
		if n, err := r.Write([]byte(tc.write)); n != len(tc.write) || err != nil {
			t.Errorf("Write(%q) = %d, %v", tc.write, n, err)
		}
		if got := string(r.Bytes()); got != tc.want {
			t.Errorf("after %q: %q, want %q", tc.write, got, tc.want)
		}
		// Any tail is the end of what Bytes returns.
		for n := range 10 {
			want := tc.want[len(tc.want)-min(n, len(tc.want)):]
			if got := string(r.Tail(n)); got != want {
				t.Errorf("after %q: Tail(%d) = %q, want %q", tc.write, n, got, want)
			}
		}
	}
}

// TestModprobe runs the kernel's /sbin/modprobe requests against a fake
// modules dir, recording what would be loaded: aliases resolve to
// modules, dependencies load first, and an unknown name fails unless -q
// keeps it quiet.
func TestModprobe(t *testing.T) {
	root := t.TempDir()
	const kver = "6.1.0-99-amd64"
	dir := filepath.Join(root, "lib/modules", kver)
	for name, content := range map[string]string{
		"modules.dep": "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko\n" +
			"kernel/fs/jbd2/jbd2.ko:\nkernel/fs/mbcache.ko:\nkernel/crypto/crc32c_generic.ko:\n" +
			"kernel/arch/x86/crypto/crc32c-intel.ko:\n",
		"modules.alias": aliasText,
	} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args   []string
		rc     int
		loaded []string
		stderr bool
	}{
		{[]string{"-q", "--", "fs-ext4"}, 0, []string{"jbd2.ko", "mbcache.ko", "ext4.ko"}, false},
		{[]string{"ext4"}, 0, []string{"jbd2.ko", "mbcache.ko", "ext4.ko"}, false},
		// Two modules claim the alias; both load, as with kmod.
		{[]string{"-q", "--", "crypto-crc32c"}, 0, []string{"crc32c_generic.ko", "crc32c-intel.ko"}, false},
		{[]string{"-q", "--", "net-pf-99"}, 1, nil, false},
		{[]string{"nothere"}, 1, nil, true},
	} {
		var mu sync.Mutex // kmodule loads dependencies in parallel
		var loaded []string
		var stderr bytes.Buffer
		rc := modprobe(tc.args, &stderr, kmoduleOpts(root, kver, func(p string) {
			mu.Lock()
			loaded = append(loaded, filepath.Base(p))
			mu.Unlock()
		}))
		// Dependencies load in parallel: compare as sets, with the
		// module itself last.
		if rc != tc.rc || len(loaded) != len(tc.loaded) ||
			(len(loaded) > 0 && loaded[len(loaded)-1] != tc.loaded[len(tc.loaded)-1]) {
			t.Errorf("modprobe %q = %d, loaded %q; want %d, %q", tc.args, rc, loaded, tc.rc, tc.loaded)
		}
		slices.Sort(loaded)
		want := slices.Clone(tc.loaded)
		slices.Sort(want)
		if !slices.Equal(loaded, want) {
			t.Errorf("modprobe %q loaded %q, want %q", tc.args, loaded, tc.loaded)
		}
		if (stderr.Len() > 0) != tc.stderr {
			t.Errorf("modprobe %q printed %q", tc.args, stderr.String())
		}
	}
}

// kmoduleOpts makes kmodule read root's modules dir and call record
// instead of loading; /proc/modules (the host's) is ignored.
func kmoduleOpts(root, kver string, record func(string)) kmodule.ProbeOpts {
	return kmodule.ProbeOpts{RootDir: root, KVer: kver, DryRunCB: record, IgnoreProcMods: true}
}

func TestPowerButton(t *testing.T) {
	for _, tc := range []struct {
		caps string
		want bool
	}{
		{"10000000000000 0\n", true}, // the ACPI power button: bit 116
		{"3 0 0 0 0 0 0 0", false},   // low keys only, 8 words
		{"10000000000000 0 0 0", false},
		{"40000800 10000000000000 0 0 0 0 0 0 0\n", false}, // bit 116 is in the second word from the end
		{"0 10000000000000 0", true},
		{"", false},
		{"zz 0", false},
	} {
		if got := hasKey(tc.caps, keyPower); got != tc.want {
			t.Errorf("hasKey(%q, KEY_POWER) = %v, want %v", tc.caps, got, tc.want)
		}
	}
	ev := func(typ, code uint16, value int32) []byte {
		b := make([]byte, inputEventSize)
		binary.NativeEndian.PutUint16(b[16:], typ)
		binary.NativeEndian.PutUint16(b[18:], code)
		binary.NativeEndian.PutUint32(b[20:], uint32(value))
		return b
	}
	for _, tc := range []struct {
		ev   []byte
		want bool
	}{
		{ev(evKey, keyPower, 1), true},
		{ev(evKey, keyPower, 0), false}, // release
		{ev(evKey, keyPower, 2), false}, // autorepeat
		{ev(evKey, 28, 1), false},       // Enter
		{ev(0, 0, 0), false},            // EV_SYN
	} {
		if got := isPowerPress(tc.ev); got != tc.want {
			t.Errorf("isPowerPress(% x) = %v, want %v", tc.ev[16:], got, tc.want)
		}
	}
}

// FuzzMatchGlob checks matchGlob against properties any glob matcher
// has: a string without metacharacters matches itself as a pattern, '*'
// around it matches it in any context, the empty pattern matches only the
// empty string, and nothing panics or hangs.
func FuzzMatchGlob(f *testing.F) {
	for _, s := range []string{"pci:v00008086d000010D3sv*sd*bc*sc*i*", "acpi*:PNP0C0C:*", "x[!a-c]y", "a\\*b", "[", "*?*?*", "dmi*:svn*[Ll][Ee]*"} {
		f.Add(s, "pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00")
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		if matchGlob(p, s) && p == "" && s != "" {
			t.Errorf("the empty pattern matched %q", s)
		}
		if !strings.ContainsAny(s, `*?[\`) {
			if !matchGlob(s, s) {
				t.Errorf("matchGlob(%q, itself) = false", s)
			}
			if !matchGlob("*"+s+"*", "x"+s+"y") {
				t.Errorf("matchGlob(*%s*, x%sy) = false", s, s)
			}
		}
	})
}

// TestConsolesStalled writes to a console that stops taking output (a
// full pipe stands in for a serial line stopped by XOFF): one Write
// waits at most consoleWait, later ones skip it at once, and output
// resumes once it drains.
func TestConsolesStalled(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	c := &consoles{list: []console{{fd: p[1]}}}
	chunk := bytes.Repeat([]byte("x"), 4096)
	for { // fill the pipe
		if _, err := unix.Write(p[1], chunk); err != nil {
			break
		}
	}
	start := time.Now()
	c.Write([]byte("lost\n"))
	if d := time.Since(start); d < consoleWait/2 || d > 3*consoleWait {
		t.Errorf("first Write to a full console took %v, want about %v", d, consoleWait)
	}
	start = time.Now()
	c.Write([]byte("lost too\n"))
	if d := time.Since(start); d >= consoleWait/2 {
		t.Errorf("Write to a stalled console took %v, want no wait", d)
	}
	buf := make([]byte, 1<<20)
	for { // drain
		if n, _ := unix.Read(p[0], buf); n <= 0 {
			break
		}
	}
	c.Write([]byte("back\n"))
	n, _ := unix.Read(p[0], buf)
	if got := string(buf[:max(n, 0)]); got != "back\n" {
		t.Errorf("after draining, the console got %q, want %q", got, "back\n")
	}
}

// TestFATLabel reads the label of the boot partition's FAT16 boot sector
// as mkfs.vfat writes it, and finds none in an MBR or a FAT32 one without.
func TestFATLabel(t *testing.T) {
	sector := func(labelAt, typeAt int, label, fstype string) []byte {
		b := make([]byte, 512)
		b[510], b[511] = 0x55, 0xAA
		copy(b[labelAt:], fmt.Sprintf("%-11s", label))
		copy(b[typeAt:], fstype)
		return b
	}
	mbr := make([]byte, 512)
	mbr[510], mbr[511] = 0x55, 0xAA
	for _, tc := range []struct {
		name   string
		sector []byte
		want   string
	}{
		{"FAT16", sector(43, 54, "HRBOOT", "FAT16   "), "HRBOOT"},
		{"FAT32", sector(71, 82, "HRBOOT", "FAT32   "), "HRBOOT"},
		{"an MBR", mbr, ""},
		{"no signature", make([]byte, 512), ""},
		{"short", []byte("FAT16"), ""},
	} {
		if got := fatLabel(tc.sector); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
