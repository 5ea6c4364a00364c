package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/state"
)

const goodInterfaces = `{
  "interfaces": [
    {"hardware_addr": "02:77:00:00:00:01", "name": "uplink0"},
    {"hardware_addr": "02:77:00:00:00:02", "name": "lan0", "addr": "192.168.42.1/24"}
  ]
}
`

// brokenInterfaces has a typo'd field on line 4.
const brokenInterfaces = `{
  "interfaces": [
    {"hardware_addr": "02:77:00:00:00:01", "name": "uplink0"},
    {"hardware_addr": "02:77:00:00:00:02", "name": "lan0", "adr": "192.168.42.1/24"}
  ]
}
`

const ulaJSON = `{"prefix": "fd12:3456:789a::/48"}` + "\n"

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		mode := fs.FileMode(0o644)
		if name == state.PasswordFile {
			mode = 0o600
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot is every file under dir, by slash path, with its mode; for
// "nothing changed".
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			m[rel+"/"] = fi.Mode().String()
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil && d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		m[rel] = fi.Mode().String() + " " + string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func names(files []File) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Name)
	}
	return out
}

// TestFiles: what a backup holds and with which modes.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"interfaces.json":           goodInterfaces,
		"dhcp4-lease.json":          "{}\n",
		state.PasswordFile:          "secret\n",
		"hostname":                  "router\n",
		"notes.txt":                 "mine\n",
		".interfaces.json.tmp12345": "half",
		"capture.pcapng":            "pcap",
		state.CapturePreviousFile:   "pcap",
		"update/state.json":         "{}",
		"update/a/vmlinuz":          "kernel",
		".restore.new/x.json":       "{}",
	})
	os.Chmod(filepath.Join(dir, "notes.txt"), 0o666)
	if err := os.Symlink("interfaces.json", filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"dhcp4-lease.json", "hostname", "http-password.txt", "interfaces.json", "notes.txt"}
	if diff := cmp.Diff(want, names(files)); diff != "" {
		t.Errorf("backup files (-want +got):\n%s", diff)
	}
	// The archive reads back as the same files, with the modes a
	// restore gives them.
	var b bytes.Buffer
	if err := WriteArchive(&b, files); err != nil {
		t.Fatal(err)
	}
	got, err := ReadArchive(&b)
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]fs.FileMode{}
	for i, f := range got {
		modes[f.Name] = f.Mode
		if !bytes.Equal(f.Data, files[i].Data) {
			t.Errorf("%s: read back %q, want %q", f.Name, f.Data, files[i].Data)
		}
	}
	wantModes := map[string]fs.FileMode{"dhcp4-lease.json": 0o644, "hostname": 0o644, "http-password.txt": 0o600, "interfaces.json": 0o644, "notes.txt": 0o644}
	if diff := cmp.Diff(wantModes, modes); diff != "" {
		t.Errorf("modes (-want +got):\n%s", diff)
	}
}

// entry is one tar entry of a test archive.
type entry struct {
	name, data, link string
	typ              byte
	size             int64 // 0: len(data)
}

func makeArchive(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		size := e.size
		if size == 0 && typ == tar.TypeReg {
			size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Size: size, Mode: 0o644, ModTime: time.Unix(1e9, 0)}); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if e.size > 0 {
				// Zeros compress to nothing: an archive bomb.
				if _, err := io.CopyN(tw, zeroReader{}, e.size); err != nil {
					t.Fatal(err)
				}
			} else if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func gzipped(t testing.TB, data []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	zw.Close()
	return b.Bytes()
}

// TestReadArchiveRefusals: every reason an archive is refused, each
// named in its own line.
func TestReadArchiveRefusals(t *testing.T) {
	good := entry{name: "interfaces.json", data: goodInterfaces}
	valid := makeArchive(t, good)
	corrupt := bytes.Clone(valid)
	corrupt[len(corrupt)-6] ^= 0xff // the gzip trailer's CRC
	// Random data does not compress: under the limit unpacked, over it
	// as sent.
	random := make([]byte, MaxArchiveSize-1024)
	rand.Read(random)
	big := makeArchive(t, entry{name: "random", data: string(random)})
	for _, tc := range []struct {
		name    string
		archive []byte
		want    []string // one per problem line, as substrings
	}{
		{name: "empty", archive: nil, want: []string{"the archive is empty"}},
		{name: "not gzip", archive: []byte(goodInterfaces), want: []string{"not a gzip file"}},
		{name: "gzip of no tar", archive: gzipped(t, []byte(strings.Repeat("not a tar ", 100))), want: []string{"malformed tar"}},
		{name: "cut short", archive: valid[:len(valid)/2], want: []string{"cut short"}},
		{name: "bad checksum", archive: corrupt, want: []string{"malformed gzip"}},
		{name: "no files", archive: makeArchive(t), want: []string{"holds no files"}},
		{name: "absolute path", archive: makeArchive(t, good, entry{name: "/etc/passwd", data: "x"}), want: []string{"/etc/passwd: an absolute path"}},
		{name: "dot dot", archive: makeArchive(t, good, entry{name: "../interfaces.json", data: "x"}), want: []string{`../interfaces.json: has ".."`}},
		{name: "symlink", archive: makeArchive(t, good, entry{name: "dns.json", typ: tar.TypeSymlink, link: "/etc/shadow"}), want: []string{`dns.json: a link (to "/etc/shadow")`}},
		{name: "hard link", archive: makeArchive(t, good, entry{name: "dns.json", typ: tar.TypeLink, link: "interfaces.json"}), want: []string{"dns.json: a link"}},
		{name: "subdirectory", archive: makeArchive(t, good, entry{name: "update/", typ: tar.TypeDir}), want: []string{"update/: a subdirectory"}},
		{name: "file in a subdirectory", archive: makeArchive(t, good, entry{name: "update/state.json", data: "{}"}), want: []string{"update/state.json: a subdirectory"}},
		{name: "device", archive: makeArchive(t, good, entry{name: "sda", typ: tar.TypeBlock}), want: []string{"sda: not a regular file"}},
		{name: "dot file", archive: makeArchive(t, good, entry{name: ".restore", data: "x"}), want: []string{".restore: not a file a backup holds"}},
		{name: "capture", archive: makeArchive(t, good, entry{name: state.CapturePreviousFile, data: "x"}), want: []string{state.CapturePreviousFile + ": not a file a backup holds"}},
		{name: "twice", archive: makeArchive(t, good, good), want: []string{"interfaces.json: in the archive twice"}},
		{name: "over the size sent", archive: big, want: []string{"over 16 MiB"}},
		{name: "over the size unpacked", archive: makeArchive(t, good, entry{name: "big.json", size: MaxArchiveSize}), want: []string{"over 16 MiB unpacked (at big.json)"}},
		{name: "every problem", archive: makeArchive(t, entry{name: "/abs", data: "x"}, good, entry{name: "l", typ: tar.TypeSymlink, link: "x"}, entry{name: "d/", typ: tar.TypeDir}),
			want: []string{"/abs: an absolute path", "l: a link", "d/: a subdirectory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := ReadArchive(bytes.NewReader(tc.archive))
			var refused Refused
			if !errors.As(err, &refused) {
				t.Fatalf("ReadArchive = %v, %v; want refused", names(files), err)
			}
			if len(refused) != len(tc.want) {
				t.Fatalf("refused with %d problems, want %d:\n%v", len(refused), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.Contains(refused[i].Error(), w) {
					t.Errorf("problem %d = %q, want %q in it", i, refused[i], w)
				}
			}
		})
	}
	t.Run("./ names", func(t *testing.T) {
		files, err := ReadArchive(bytes.NewReader(makeArchive(t, entry{name: "./", typ: tar.TypeDir}, entry{name: "./interfaces.json", data: goodInterfaces})))
		if err != nil || len(files) != 1 || files[0].Name != "interfaces.json" {
			t.Errorf("ReadArchive = %v, %v; want interfaces.json", names(files), err)
		}
	})
}

func testLogger(t *testing.T) *log.Logger {
	return log.New(t.Output(), "backup: ", 0)
}

// newRouter is a Store on a perm directory with files, config and state
// loaded as at start, and its backup service.
func newRouter(t *testing.T, files map[string]string) (*Service, *state.Store) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	st := state.NewStore(dir)
	st.Reload()
	st.LoadState()
	return New(st, testLogger(t)), st
}

// TestRestore restores archives into a router's perm directory: a good
// one is in force (files, config topics, state topics), a bad one is
// refused with every problem and changes nothing.
func TestRestore(t *testing.T) {
	before := map[string]string{
		"interfaces.json":      goodInterfaces,
		"portforwardings.json": `{"forwardings": []}`,
		"ula.json":             `{"prefix": "fd99::/48"}`,
		"dhcp4-lease.json":     "{}\n",
		state.PasswordFile:     "old\n",
		"notes.txt":            "added since the backup\n",
		"capture.pcapng":       "pcap",
		"update/state.json":    "{}",
	}
	newInterfaces := strings.Replace(goodInterfaces, "192.168.42.1/24", "10.42.0.1/24", 1)
	for _, tc := range []struct {
		name    string
		archive []entry
		refused []string // substrings, one per problem line
		after   map[string]string
	}{
		{
			name:    "good",
			archive: []entry{{name: "interfaces.json", data: newInterfaces}, {name: "ula.json", data: ulaJSON}, {name: state.PasswordFile, data: "new\n"}, {name: "hostname", data: "r2\n"}},
			after: map[string]string{
				"interfaces.json":   newInterfaces,
				"ula.json":          ulaJSON,
				state.PasswordFile:  "new\n",
				"hostname":          "r2\n",
				"dhcp4-lease.json":  "{}\n", // a state file the archive lacks stays
				"capture.pcapng":    "pcap", // never in a backup: left alone
				"update/state.json": "{}",
				// portforwardings.json and notes.txt are removed: not in the backup
			},
		},
		{
			name:    "without a password, the router's stays",
			archive: []entry{{name: "interfaces.json", data: goodInterfaces}},
			after: map[string]string{
				"interfaces.json": goodInterfaces, "ula.json": `{"prefix": "fd99::/48"}`, "dhcp4-lease.json": "{}\n",
				state.PasswordFile: "old\n", "capture.pcapng": "pcap", "update/state.json": "{}",
			},
		},
		{name: "broken interfaces.json", archive: []entry{{name: "interfaces.json", data: brokenInterfaces}}, refused: []string{"interfaces.json:4:60: interfaces[1].adr: unknown field"}},
		{name: "no interfaces.json", archive: []entry{{name: "dns.json", data: "{}"}}, refused: []string{"interfaces.json: missing"}},
		{
			name:    "every config problem",
			archive: []entry{{name: "interfaces.json", data: brokenInterfaces}, {name: "dns.json", data: `{"cache_size": "big"}`}},
			refused: []string{"interfaces.json:4:", "dns.json:1:16: cache_size: expected a whole number"},
		},
		{name: "broken state file", archive: []entry{{name: "interfaces.json", data: goodInterfaces}, {name: "ula.json", data: `{"prefix": "nope"}`}}, refused: []string{"ula.json:1:12: prefix:"}},
		{name: "empty password", archive: []entry{{name: "interfaces.json", data: goodInterfaces}, {name: state.PasswordFile, data: "\n"}}, refused: []string{"http-password.txt: http-password.txt is empty"}},
		{name: "a link", archive: []entry{{name: "interfaces.json", data: goodInterfaces}, {name: "dns.json", typ: tar.TypeSymlink, link: "/etc/passwd"}}, refused: []string{"dns.json: a link"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, st := newRouter(t, before)
			was := snapshot(t, s.dir)
			res, err := s.Restore(bytes.NewReader(makeArchive(t, tc.archive...)))
			if tc.refused != nil {
				var refused Refused
				if !errors.As(err, &refused) {
					t.Fatalf("Restore = %v, %v; want refused", res, err)
				}
				if len(refused) != len(tc.refused) {
					t.Fatalf("refused with %d problems, want %d:\n%v", len(refused), len(tc.refused), err)
				}
				for i, w := range tc.refused {
					if !strings.Contains(refused[i].Error(), w) {
						t.Errorf("problem %d = %q, want %q in it", i, refused[i], w)
					}
				}
				if diff := cmp.Diff(was, snapshot(t, s.dir)); diff != "" {
					t.Errorf("a refused restore changed /perm (-before +after):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for p, c := range snapshot(t, s.dir) {
				if !strings.HasSuffix(p, "/") {
					got[p] = c[strings.IndexByte(c, ' ')+1:]
				}
			}
			if diff := cmp.Diff(tc.after, got); diff != "" {
				t.Errorf("/perm after the restore (-want +got):\n%s", diff)
			}
			if fi, err := os.Stat(filepath.Join(s.dir, state.PasswordFile)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("the password file: %v, %v; want mode 0600", fi.Mode(), err)
			}
			// In force: the config reloaded, the state loaded.
			wantAddr := "192.168.42.1/24"
			if strings.Contains(tc.after["interfaces.json"], "10.42.0.1/24") {
				wantAddr = "10.42.0.1/24"
			}
			if got := st.Interfaces.Value().Interfaces[1].Addr; got != wantAddr {
				t.Errorf("lan0's addr in force = %v, want %s", got, wantAddr)
			}
			if got, ok := st.PortForwardings.Get(); tc.name == "good" && (ok == 0 || got.Forwardings != nil) {
				t.Errorf("portforwardings in force = %+v, want none", got)
			}
			var u state.ULA
			if err := decodeJSON(tc.after["ula.json"], &u); err != nil {
				t.Fatal(err)
			}
			if got := st.ULA.Value().Prefix; got != u.Prefix {
				t.Errorf("the ULA in force = %v, want %v", got, u.Prefix)
			}
		})
	}
}

// TestRestoreStateNotOverwritten: a restored state file stays, though
// the running router held another value in memory and SaveState writes
// values out whenever they change and once more at shutdown. Each of
// those writes is a FlushState, which the test calls itself where
// SaveState would, rather than wait for SaveState's goroutine.
func TestRestoreStateNotOverwritten(t *testing.T) {
	s, st := newRouter(t, map[string]string{"interfaces.json": goodInterfaces})
	ula := filepath.Join(s.dir, "ula.json")
	// The running router made its ULA; it is on disk.
	st.ULA.Publish(state.ULA{Prefix: netip.MustParsePrefix("fd99::/48")})
	if err := st.FlushState(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(ula); !strings.Contains(string(b), "fd99::/48") {
		t.Fatalf("ula.json before the restore:\n%s", b)
	}

	if _, err := s.Restore(bytes.NewReader(makeArchive(t, entry{name: "interfaces.json", data: goodInterfaces}, entry{name: "ula.json", data: ulaJSON}))); err != nil {
		t.Fatal(err)
	}
	// Another topic changes: SaveState flushes everything that is
	// newer; and then the router stops: the last write.
	st.DHCPv6DUID.Publish(state.DUID{DUID: "00:04:01:02:03:04"})
	for range 2 {
		if err := st.FlushState(); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(s.dir, "dhcp6-duid.json")); !strings.Contains(string(b), "00:04:01:02:03:04") {
		t.Errorf("dhcp6-duid.json was not written after the restore:\n%s", b)
	}
	if b, _ := os.ReadFile(ula); string(b) != ulaJSON {
		t.Errorf("ula.json after the restore and the shutdown:\n%s\nwant the restored\n%s", b, ulaJSON)
	}
	if got := st.ULA.Value().Prefix.String(); got != "fd12:3456:789a::/48" {
		t.Errorf("the ULA in memory = %s, want the restored one", got)
	}
}

// TestRestoreKeepsLiveLeases: the leases that describe the network as
// it is now stay as the running router has them, on disk and in its
// topics (netconfig and DNS read them), whatever the archive holds; the
// answer says so. The DUID and the ULA, the router's setup, are
// restored.
func TestRestoreKeepsLiveLeases(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	lease4 := func(addr string) string {
		return mustJSON(t, state.DHCPv4Lease{Addr: netip.MustParsePrefix(addr), Router: netip.MustParseAddr("203.0.113.1"), ServerID: netip.MustParseAddr("203.0.113.1"),
			Duration: state.Duration(time.Hour), T1: state.Duration(30 * time.Minute), T2: state.Duration(52 * time.Minute), Acked: now, Expiry: now.Add(time.Hour)})
	}
	lease6 := func(prefix string) string {
		return mustJSON(t, state.DHCPv6Lease{Prefixes: []state.DelegatedPrefix{{Prefix: netip.MustParsePrefix(prefix), Preferred: state.Duration(time.Hour), Valid: state.Duration(2 * time.Hour), Given: now}},
			ServerDUID: "000100010203", T1: state.Duration(30 * time.Minute), T2: state.Duration(48 * time.Minute), Acked: now})
	}
	table := func(addr string) string {
		return mustJSON(t, state.DHCPv4ServerLeases{Leases: []state.DHCPv4ServerLease{{Addr: netip.MustParseAddr(addr), HardwareAddr: "02:77:00:00:00:12", Hostname: "laptop", Expiry: now.Add(time.Hour)}}})
	}
	running := map[string]string{
		"interfaces.json":    goodInterfaces,
		"dhcp4-lease.json":   lease4("203.0.113.10/24"),
		"dhcp6-lease.json":   lease6("2001:db8:1::/56"),
		"dhcp4d-leases.json": table("192.168.42.100"),
		"ula.json":           `{"prefix": "fd99::/48"}`,
	}
	s, st := newRouter(t, running)
	// A renewal since the last write: in memory, not yet on disk.
	renewed := st.DHCPv4Lease.Value()
	renewed.Acked = renewed.Acked.Add(30 * time.Minute)
	st.DHCPv4Lease.Publish(renewed)
	v4, v4Version := st.DHCPv4Lease.Get()
	v6, v6Version := st.DHCPv6Lease.Get()
	tbl, tblVersion := st.DHCPv4ServerLeases.Get()

	res, err := s.Restore(bytes.NewReader(makeArchive(t,
		entry{name: "interfaces.json", data: goodInterfaces},
		entry{name: "dhcp4-lease.json", data: lease4("198.51.100.77/24")},
		entry{name: "dhcp6-lease.json", data: lease6("2001:db8:bad::/56")},
		entry{name: "dhcp4d-leases.json", data: table("192.168.42.200")},
		entry{name: "dhcp6-duid.json", data: `{"duid": "00:04:aa:bb"}`},
		entry{name: "ula.json", data: ulaJSON},
	)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"dhcp4-lease.json", "dhcp6-lease.json", "dhcp4d-leases.json"}, res.Kept); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	if want := "kept the running router's dhcp4-lease.json, dhcp6-lease.json, dhcp4d-leases.json"; !strings.Contains(res.String(), want) {
		t.Errorf("the answer %q does not say %q", res, want)
	}
	if diff := cmp.Diff([]string{"dhcp6-duid.json", "interfaces.json", "ula.json"}, res.Restored); diff != "" {
		t.Errorf("restored (-want +got):\n%s", diff)
	}
	for _, name := range []string{"dhcp4-lease.json", "dhcp6-lease.json", "dhcp4d-leases.json"} {
		if b, _ := os.ReadFile(filepath.Join(s.dir, name)); string(b) != running[name] {
			t.Errorf("%s after the restore:\n%s\nwant the running router's\n%s", name, b, running[name])
		}
	}
	if got, version := st.DHCPv4Lease.Get(); version != v4Version || !reflect.DeepEqual(got, v4) {
		t.Errorf("the uplink's DHCPv4 lease in force = %+v (version %d), want the running router's %+v (version %d)", got, version, v4, v4Version)
	}
	if got, version := st.DHCPv6Lease.Get(); version != v6Version || !reflect.DeepEqual(got, v6) {
		t.Errorf("the uplink's DHCPv6 lease in force = %+v (version %d), want the running router's %+v", got, version, v6)
	}
	if got, version := st.DHCPv4ServerLeases.Get(); version != tblVersion || !reflect.DeepEqual(got, tbl) {
		t.Errorf("the LAN's lease table in force = %+v (version %d), want the running router's %+v", got, version, tbl)
	}
	if got := st.DHCPv6DUID.Value().DUID; got != "00:04:aa:bb" {
		t.Errorf("the DUID in force = %q, want the restored one", got)
	}
	if got := st.ULA.Value().Prefix.String(); got != "fd12:3456:789a::/48" {
		t.Errorf("the ULA in force = %s, want the restored one", got)
	}
	// The renewal is written as usual.
	if err := st.FlushState(); err != nil {
		t.Fatal(err)
	}
	var onDisk state.DHCPv4Lease
	if b, err := os.ReadFile(filepath.Join(s.dir, "dhcp4-lease.json")); err != nil || decodeJSON(string(b), &onDisk) != nil || !onDisk.Acked.Equal(renewed.Acked) {
		t.Errorf("dhcp4-lease.json after a flush: %+v, %v; want the renewal", onDisk, err)
	}
}

// TestRestoreConflicts: an archive file named like something in /perm
// that is not a regular file (the update's slots in update/, a
// symlink) could not be put in place once committed: it is refused
// before anything changes, and a later restore works.
func TestRestoreConflicts(t *testing.T) {
	s, st := newRouter(t, map[string]string{
		"interfaces.json":   goodInterfaces,
		"dns.json":          "{}",
		"update/state.json": `{"slot": "a"}`,
	})
	if err := os.Mkdir(filepath.Join(s.dir, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("dns.json", filepath.Join(s.dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	was := snapshot(t, s.dir)
	newIfaces := strings.Replace(goodInterfaces, "192.168.42.1/24", "10.42.0.1/24", 1)
	_, err := s.Restore(bytes.NewReader(makeArchive(t,
		entry{name: "interfaces.json", data: newIfaces},
		entry{name: "update", data: "a file"},
		entry{name: "lost+found", data: "a file"},
		entry{name: "link.json", data: "{}"},
	)))
	var refused Refused
	if !errors.As(err, &refused) {
		t.Fatalf("Restore = %v; want refused", err)
	}
	want := []string{
		"update: a directory in the router's /perm, not a file",
		"lost+found: a directory in the router's /perm, not a file",
		"link.json: a symlink in the router's /perm, not a file",
	}
	if len(refused) != len(want) {
		t.Fatalf("refused with %d problems, want %d:\n%v", len(refused), len(want), err)
	}
	for i, w := range want {
		if !strings.Contains(refused[i].Error(), w) {
			t.Errorf("problem %d = %q, want %q in it", i, refused[i], w)
		}
	}
	if diff := cmp.Diff(was, snapshot(t, s.dir)); diff != "" {
		t.Errorf("a refused restore changed /perm (-before +after):\n%s", diff)
	}
	if got := st.Interfaces.Value().Interfaces[1].Addr; got != "192.168.42.1/24" {
		t.Errorf("lan0's addr in force = %v after a refused restore", got)
	}

	res, err := s.Restore(bytes.NewReader(makeArchive(t, entry{name: "interfaces.json", data: newIfaces})))
	if err != nil {
		t.Fatalf("a good restore after the refused one: %v", err)
	}
	// dns.json goes: the archive lacks it. The directories and the
	// symlink stay: a restore removes regular files only.
	if diff := cmp.Diff(Result{Restored: []string{"interfaces.json"}, Removed: []string{"dns.json"}}, res); diff != "" {
		t.Errorf("the good restore (-want +got):\n%s", diff)
	}
	if got := st.Interfaces.Value().Interfaces[1].Addr; got != "10.42.0.1/24" {
		t.Errorf("lan0's addr in force = %v, want the restored 10.42.0.1/24", got)
	}
	for _, name := range []string{"update/state.json", "lost+found/", "link.json"} {
		if _, ok := snapshot(t, s.dir)[name]; !ok {
			t.Errorf("the good restore removed %s", name)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// TestInterruptedRestore cuts a restore at each step, as a power cut
// would, and starts again: Recover leaves /perm all old (before the
// commit) or all new (after it), and nothing behind.
func TestInterruptedRestore(t *testing.T) {
	old := map[string]string{"interfaces.json": goodInterfaces, "dns.json": "{}", "ra.json": "{}"}
	newIfaces := strings.Replace(goodInterfaces, "192.168.42.1/24", "10.42.0.1/24", 1)
	files := []File{{Name: "interfaces.json", Data: []byte(newIfaces), Mode: 0o644}, {Name: "dhcp6.json", Data: []byte("{}"), Mode: 0o644}, {Name: "ra.json", Data: []byte("{}"), Mode: 0o644}}
	want := map[string]string{"interfaces.json": newIfaces, "dhcp6.json": "{}", "ra.json": "{}"}
	for _, tc := range []struct {
		name string
		cut  func(t *testing.T, dir string) // leaves the restore as a power cut would
		new  bool
	}{
		{name: "nothing staged", cut: func(t *testing.T, dir string) {}},
		{name: "staged, half written", cut: func(t *testing.T, dir string) {
			stage(t, dir, files)
			os.WriteFile(filepath.Join(dir, StagingDir, "interfaces.json"), []byte("{\"inter"), 0o644)
		}},
		{name: "staged, list written, not renamed", cut: func(t *testing.T, dir string) {
			stage(t, dir, files)
			os.WriteFile(filepath.Join(dir, StagingDir, removeList), []byte("dns.json\n"), 0o600)
		}},
		{name: "committed", new: true, cut: func(t *testing.T, dir string) {
			stage(t, dir, files)
			if err := Commit(dir, []string{"dns.json"}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "committed, one file in place", new: true, cut: func(t *testing.T, dir string) {
			stage(t, dir, files)
			if err := Commit(dir, []string{"dns.json"}); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(dir, CommitDir, "dhcp6.json"), filepath.Join(dir, "dhcp6.json")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "committed, all in place, nothing removed", new: true, cut: func(t *testing.T, dir string) {
			stage(t, dir, files)
			if err := Commit(dir, []string{"dns.json"}); err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if err := os.Rename(filepath.Join(dir, CommitDir, f.Name), filepath.Join(dir, f.Name)); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{name: "committed by an earlier version: a file named like a directory", new: true, cut: func(t *testing.T, dir string) {
			// Before Conflicts, such a restore was committed, and its
			// completion failed on every start. The directory is
			// empty, and on the list of files to remove too: a
			// restore removes regular files only.
			if err := os.Mkdir(filepath.Join(dir, "lost+found"), 0o700); err != nil {
				t.Fatal(err)
			}
			stage(t, dir, append(slices.Clone(files), File{Name: "lost+found", Data: []byte("x"), Mode: 0o644}))
			if err := Commit(dir, []string{"dns.json", "lost+found"}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "committed, done, the commit directory left", new: true, cut: func(t *testing.T, dir string) {
			stage(t, dir, files)
			if err := Commit(dir, []string{"dns.json"}); err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				os.Rename(filepath.Join(dir, CommitDir, f.Name), filepath.Join(dir, f.Name))
			}
			os.Remove(filepath.Join(dir, "dns.json"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, old)
			tc.cut(t, dir)
			lostFound := filepath.Join(dir, "lost+found")
			_, err := os.Stat(lostFound)
			hadDir := err == nil
			var logged bytes.Buffer
			if err := Recover(dir, log.New(&logged, "", 0)); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for p, c := range snapshot(t, dir) {
				if p != "lost+found/" {
					got[p] = c[strings.IndexByte(c, ' ')+1:]
				}
			}
			if _, err := os.Stat(lostFound); hadDir && err != nil {
				t.Errorf("Recover removed the directory lost+found: %v", err)
			}
			w := old
			if tc.new {
				w = want
			}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("/perm after Recover (-want +got):\n%s\nlog: %s", diff, logged.String())
			}
			if errs := state.Check(dir); len(errs) > 0 {
				t.Errorf("check after Recover: %v", errs)
			}
		})
	}
}

func stage(t *testing.T, dir string, files []File) {
	t.Helper()
	staging, err := Stage(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	if problems := Validate(staging); len(problems) > 0 {
		t.Fatal(problems)
	}
}

// TestClient backs up and restores through the endpoints, with the
// workstation's client, as `homerouter backup` and `restore` do.
func TestClient(t *testing.T) {
	s, _ := newRouter(t, map[string]string{"interfaces.json": goodInterfaces, "dns.json": "{}\n", state.PasswordFile: "pw\n"})
	mux := http.NewServeMux()
	for _, e := range s.Endpoints() {
		if !e.NeedsPassword {
			t.Errorf("%s does not need the password", e.Pattern)
		}
		mux.Handle(e.Pattern, e.Handler)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := &Client{RouterClient: services.RouterClient{Router: srv.URL, Password: "pw"}}
	ctx := context.Background()

	path := filepath.Join(t.TempDir(), "b.tar.gz")
	if _, err := c.Save(ctx, path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the saved backup: %v, %v; want mode 0600 (it holds the password)", fi.Mode(), err)
	}
	was := snapshot(t, s.dir)
	writeFiles(t, s.dir, map[string]string{"dns.json": `{"cache_size": 5}`})
	answer, err := c.Restore(ctx, path)
	if err != nil || !strings.Contains(answer, "restored 3 files: dns.json, http-password.txt, interfaces.json") {
		t.Errorf("Restore = %q, %v", answer, err)
	}
	if diff := cmp.Diff(was, snapshot(t, s.dir)); diff != "" {
		t.Errorf("after backup, edit, restore (-backup +now):\n%s", diff)
	}

	bad := filepath.Join(t.TempDir(), "bad.tar.gz")
	os.WriteFile(bad, makeArchive(t, entry{name: "interfaces.json", data: brokenInterfaces}), 0o600)
	_, err = c.Restore(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), "400 restore refused, nothing changed:\ninterfaces.json:4:60: interfaces[1].adr: unknown field") {
		t.Errorf("Restore of a broken archive: %v", err)
	}
}

func decodeJSON(s string, v any) error {
	return json.Unmarshal([]byte(s), v)
}

// TestRestoreLoadsARecoveredOne: a restore committed but cut short
// before (a disk error mid-way) is completed by the next restore, and
// the state files it puts in place are loaded into the running router,
// which would otherwise write its older values over them.
func TestRestoreLoadsARecoveredOne(t *testing.T) {
	s, st := newRouter(t, map[string]string{"interfaces.json": goodInterfaces, "ula.json": `{"prefix": "fd99::/48"}`})
	stage(t, s.dir, []File{
		{Name: "interfaces.json", Mode: 0o644, Data: []byte(goodInterfaces)},
		{Name: "ula.json", Mode: 0o644, Data: []byte(ulaJSON)},
	})
	if err := Commit(s.dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Restore(bytes.NewReader(makeArchive(t, entry{name: "interfaces.json", data: goodInterfaces}))); err != nil {
		t.Fatal(err)
	}
	if got, want := st.ULA.Value().Prefix, netip.MustParsePrefix("fd12:3456:789a::/48"); got != want {
		t.Errorf("the ULA in force is %v, want the recovered restore's %v", got, want)
	}
	if err := st.FlushState(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.dir, "ula.json")); !strings.Contains(string(b), "fd12:3456:789a::/48") {
		t.Errorf("ula.json after the router's next write:\n%s\nwant the recovered restore's", b)
	}
}
