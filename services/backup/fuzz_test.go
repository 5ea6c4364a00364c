package backup

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// seeds are archives of each shape ReadArchive meets: testdata/fuzz
// holds them as the fuzzer's seed corpus (HOMEROUTER_WRITE_SEEDS=1
// writes them again).
func seeds(t testing.TB) map[string][]byte {
	good := entry{name: "interfaces.json", data: goodInterfaces}
	valid := makeArchive(t, good, entry{name: "http-password.txt", data: "pw\n"}, entry{name: "dhcp4-lease.json", data: "{}\n"})
	return map[string][]byte{
		"valid":        valid,
		"dot-slash":    makeArchive(t, entry{name: "./", typ: tar.TypeDir}, entry{name: "./interfaces.json", data: goodInterfaces}),
		"absolute":     makeArchive(t, good, entry{name: "/etc/passwd", data: "x"}),
		"dotdot":       makeArchive(t, entry{name: "../x", data: "x"}),
		"symlink":      makeArchive(t, good, entry{name: "dns.json", typ: tar.TypeSymlink, link: "/etc/shadow"}),
		"subdirectory": makeArchive(t, good, entry{name: "update/", typ: tar.TypeDir}, entry{name: "update/state.json", data: "{}"}),
		"twice":        makeArchive(t, good, good),
		"cut":          valid[:len(valid)/2],
		"not-gzip":     []byte(goodInterfaces),
	}
}

// TestSeedCorpus: testdata/fuzz holds a seed of each shape, which
// ReadArchive takes or refuses as it does the seed made here; with
// HOMEROUTER_WRITE_SEEDS=1 it writes them again first.
func TestSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReadArchive")
	write := os.Getenv("HOMEROUTER_WRITE_SEEDS") != ""
	if write {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range seeds(t) {
		path := filepath.Join(dir, name)
		if write {
			if err := os.WriteFile(path, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("seed %s: %v (HOMEROUTER_WRITE_SEEDS=1 writes it)", name, err)
			continue
		}
		lines := strings.SplitN(string(b), "\n", 3)
		if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
			t.Errorf("seed %s is not a corpus entry of one []byte", name)
			continue
		}
		q, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Errorf("seed %s: %v", name, err)
			continue
		}
		_, errDisk := ReadArchive(bytes.NewReader([]byte(q)))
		_, errHere := ReadArchive(bytes.NewReader(want))
		if (errDisk == nil) != (errHere == nil) {
			t.Errorf("seed %s: ReadArchive says %v of the file, %v of the seed made here", name, errDisk, errHere)
		}
	}
}

// FuzzReadArchive feeds ReadArchive anything: it never panics, it
// refuses with at least one reason, or it returns files that a backup
// could hold, within the limits, which write and read back the same.
func FuzzReadArchive(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		files, err := ReadArchive(bytes.NewReader(data))
		if err != nil {
			var refused Refused
			if !errors.As(err, &refused) || len(refused) == 0 || strings.TrimSpace(err.Error()) == "" {
				t.Fatalf("ReadArchive: %#v, want a refusal with reasons", err)
			}
			return
		}
		seen := map[string]bool{}
		total := 0
		for _, f := range files {
			if !Included(f.Name) || seen[f.Name] {
				t.Fatalf("ReadArchive returned %q (twice: %v)", f.Name, seen[f.Name])
			}
			if f.Mode != fileMode(f.Name, f.Mode) {
				t.Fatalf("%s: mode %v", f.Name, f.Mode)
			}
			seen[f.Name] = true
			total += len(f.Data)
		}
		if total > MaxArchiveSize || len(files) == 0 {
			t.Fatalf("ReadArchive returned %d files, %d bytes", len(files), total)
		}
		var b bytes.Buffer
		if err := WriteArchive(&b, files); err != nil {
			t.Fatal(err)
		}
		again, err := ReadArchive(&b)
		if err != nil {
			t.Fatalf("a written archive does not read back: %v", err)
		}
		type nameData struct {
			Name string
			Mode uint32
			Data string
		}
		flat := func(fs []File) (out []nameData) {
			for _, f := range fs {
				out = append(out, nameData{f.Name, uint32(f.Mode), string(f.Data)})
			}
			return out
		}
		if diff := cmp.Diff(flat(files), flat(again)); diff != "" {
			t.Errorf("written and read back (-first +again):\n%s", diff)
		}
	})
}
