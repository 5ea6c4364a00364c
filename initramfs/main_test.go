package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/homerouter/homerouter/platform"
)

// fakeModules makes a modules dir like depmod leaves in build/kernel.
func fakeModules(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "6.1.0-99-amd64")
	files := map[string]string{
		"kernel/drivers/net/virtio_net.ko":                   "virtio_net",
		"kernel/drivers/net/net_failover.ko":                 "net_failover",
		"kernel/net/core/failover.ko":                        "failover",
		"kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko": "e1000e",
		"kernel/drivers/net/ethernet/intel/e100.ko":          "e100",
		"kernel/drivers/usb/storage/usb-storage.ko":          "usb-storage",
		"kernel/sound/snd.ko":                                "snd",
		"modules.builtin":                                    "kernel/drivers/virtio/virtio.ko\n",
		"modules.dep": `kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko:
kernel/drivers/net/ethernet/intel/e100.ko:
kernel/drivers/usb/storage/usb-storage.ko:
kernel/sound/snd.ko:
`,
		"modules.alias": `# Aliases extracted from modules themselves.
alias virtio:d00000001v* virtio_net
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage
alias pci:v00008086d00001229sv*sd*bc*sc*i* e100
alias snd-card-0 snd
`,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var testSet = []string{
	"kernel/drivers/net/virtio_net.ko",
	"kernel/drivers/net/ethernet/intel/*/*.ko",
	"kernel/drivers/usb/storage/usb-storage.ko",
}

// readImage returns the archive's records by name, with contents.
func readImage(t *testing.T, b []byte) (map[string]cpio.Record, map[string]string, []string) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	byName := make(map[string]cpio.Record)
	content := make(map[string]string)
	var order []string
	for _, r := range recs {
		byName[r.Name] = r
		order = append(order, r.Name)
		if r.ReaderAt != nil {
			c, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			content[r.Name] = string(c)
		}
	}
	return byName, content, order
}

func TestImage(t *testing.T) {
	dir := fakeModules(t)
	files, err := moduleFiles(dir, testSet)
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if err := write(&a, []byte("#!init"), files); err != nil {
		t.Fatal(err)
	}
	// Built again, from a map iterated in another order: the same bytes.
	files2, _ := moduleFiles(dir, testSet)
	if err := write(&b, []byte("#!init"), files2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two builds from the same inputs differ")
	}

	recs, content, order := readImage(t, a.Bytes())
	if !sort.StringsAreSorted(order) {
		t.Errorf("entries not sorted: %q", order)
	}
	const mods = "lib/modules/6.1.0-99-amd64/"
	for _, name := range []string{
		"init", "sbin/modprobe", "dev/console", "dev/null", "perm", "proc", "sys", "dev", "run", "tmp",
		mods + "kernel/drivers/net/virtio_net.ko",
		mods + "kernel/drivers/net/net_failover.ko", // a dependency
		mods + "kernel/net/core/failover.ko",        // a dependency's dependency
		mods + "kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko",
		mods + "kernel/drivers/usb/storage/usb-storage.ko",
		mods + "modules.builtin",
	} {
		if _, ok := recs[name]; !ok {
			t.Errorf("image lacks %s", name)
		}
	}
	for _, name := range []string{mods + "kernel/sound/snd.ko", mods + "kernel/drivers/net/ethernet/intel/e100.ko"} {
		if _, ok := recs[name]; ok {
			t.Errorf("image has %s, which nothing asked for", name)
		}
	}
	if r := recs["init"]; r.Mode != cpio.S_IFREG|0o755 || content["init"] != "#!init" || r.MTime != 0 {
		t.Errorf("init: mode %o, mtime %d, content %q", r.Mode, r.MTime, content["init"])
	}
	if r := recs["dev/console"]; r.Mode != cpio.S_IFCHR|0o600 || r.Rmajor != 5 || r.Rminor != 1 {
		t.Errorf("dev/console: mode %o, dev %d:%d", r.Mode, r.Rmajor, r.Rminor)
	}
	if got := content["sbin/modprobe"]; got != "/init" {
		t.Errorf("sbin/modprobe -> %q", got)
	}
	wantDep := `kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko:
kernel/drivers/usb/storage/usb-storage.ko:
`
	if got := content[mods+"modules.dep"]; got != wantDep {
		t.Errorf("modules.dep:\n%s\nwant:\n%s", got, wantDep)
	}
	wantAlias := `alias virtio:d00000001v* virtio_net
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage
`
	if got := content[mods+"modules.alias"]; got != wantAlias {
		t.Errorf("modules.alias:\n%s\nwant:\n%s", got, wantAlias)
	}
	var inos []uint64
	for _, r := range recs {
		inos = append(inos, r.Ino)
	}
	slices.Sort(inos)
	if len(slices.Compact(inos)) != len(recs) {
		t.Error("inode numbers repeat: the kernel would make hard links")
	}
}

func TestModuleFilesErrors(t *testing.T) {
	dir := fakeModules(t)
	if _, err := moduleFiles(dir, []string{"kernel/drivers/nothere/*.ko"}); err == nil {
		t.Error("a pattern that matches nothing did not fail")
	}
	if _, err := moduleFiles(t.TempDir(), testSet); err == nil {
		t.Error("a dir without modules.dep did not fail")
	}
}

func TestMissingModules(t *testing.T) {
	files, err := moduleFiles(fakeModules(t), testSet)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		names, want []string
	}{
		{[]string{"virtio_net", "failover", "e1000e"}, nil}, // failover: a dependency
		{[]string{"virtio"}, nil},                           // built in
		{[]string{"usb-storage", "usb_storage"}, nil},       // '-' and '_' are one
		{[]string{"e100", "snd", "virtio_net", "nf_tables"}, []string{"e100", "snd", "nf_tables"}},
	} {
		if got := missingModules(files, tc.names); !slices.Equal(got, tc.want) {
			t.Errorf("missingModules(%q) = %q, want %q", tc.names, got, tc.want)
		}
	}
}

// TestImageModules checks the module selection against the kernel `make
// image` unpacked, when it is there: PID 1's named modules (the
// firewall's among them) are in the image, with their dependencies.
func TestImageModules(t *testing.T) {
	versionFile := filepath.Join("..", "build", "kernel", "VERSION")
	v, err := os.ReadFile(versionFile)
	if err != nil {
		t.Skipf("no kernel unpacked (%v): run make kernel", err)
	}
	dir := filepath.Join("..", "build", "kernel", "lib", "modules", strings.TrimSpace(string(v)))
	files, err := moduleFiles(dir, moduleSet)
	if err != nil {
		t.Fatal(err)
	}
	if missing := missingModules(files, platform.NamedModules()); len(missing) > 0 {
		t.Errorf("the image lacks %q", missing)
	}
	// What the firewall's modules need, by name: dependencies that
	// modules.dep brings along.
	for _, m := range []string{"nfnetlink", "libcrc32c", "nf_defrag_ipv4", "nf_defrag_ipv6", "nft_fib_ipv4", "nft_fib_ipv6", "nf_reject_ipv4", "nf_reject_ipv6", "nft_reject", "nf_flow_table"} {
		if missing := missingModules(files, []string{m}); len(missing) > 0 {
			t.Errorf("the image lacks %s", m)
		}
	}
}
