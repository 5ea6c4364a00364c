package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// atomicDoc is what the killed writer writes: large enough that a write
// takes long enough to be interrupted half-way, and self-checking.
type atomicDoc struct {
	Gen int    `json:"gen"`
	Pad string `json:"pad"`
	Sum int    `json:"sum"` // len(Pad) + Gen, to catch a mix of two files
}

// newAtomicDoc formats generation gen by hand rather than with
// encoding/json, so that the child spends its time writing, not encoding
// (the race detector makes encoding slow).
func newAtomicDoc(gen int) []byte {
	pad := strings.Repeat(strconv.Itoa(gen%10), 256<<10+gen%1000)
	return fmt.Appendf(nil, "{\n  \"gen\": %d,\n  \"pad\": %q,\n  \"sum\": %d\n}\n", gen, pad, len(pad)+gen)
}

func TestMain(m *testing.M) {
	if path := os.Getenv("HOMEROUTER_ATOMIC_CHILD"); path != "" {
		atomicWriterChild(path)
	}
	os.Exit(m.Run())
}

// atomicWriterChild runs in a child process started by
// TestWriteFileAtomicKilled: it writes generation after generation until it
// is killed.
func atomicWriterChild(path string) {
	gen, _ := strconv.Atoi(os.Getenv("HOMEROUTER_ATOMIC_GEN"))
	os.Stdout.WriteString("writing\n")
	for ; ; gen++ {
		if err := WriteFileAtomic(path, newAtomicDoc(gen), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

func TestWriteFileAtomicKilled(t *testing.T) {
	const rounds = 200
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := WriteFileAtomic(path, newAtomicDoc(0), 0o644); err != nil {
		t.Fatal(err)
	}
	seen := make(map[int]bool)
	for round := range rounds {
		cmd := exec.Command(os.Args[0])
		// If this test process dies, so does the writer.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Env = append(os.Environ(), "HOMEROUTER_ATOMIC_CHILD="+path, "HOMEROUTER_ATOMIC_GEN="+strconv.Itoa(round*1000+1))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until it writes, then kill it at a random point.
		buf := make([]byte, len("writing\n"))
		if _, err := out.Read(buf); err != nil {
			t.Fatalf("round %d: child did not start: %v", round, err)
		}
		time.Sleep(time.Duration(rand.IntN(20000)) * time.Microsecond)
		cmd.Process.Kill()
		cmd.Wait()

		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var d atomicDoc
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("round %d: file is not complete JSON (%d bytes): %v", round, len(data), err)
		}
		if d.Sum != len(d.Pad)+d.Gen || string(data) != string(newAtomicDoc(d.Gen)) {
			t.Fatalf("round %d: file is a mix, not generation %d", round, d.Gen)
		}
		seen[d.Gen] = true
	}
	// A temp file left behind is a kill that landed mid-write; without any,
	// the test proved nothing.
	temps, _ := filepath.Glob(filepath.Join(dir, ".state.json.tmp*"))
	if len(temps) == 0 {
		t.Errorf("no kill landed between creating the temp file and renaming it, in %d rounds", rounds)
	}
	t.Logf("%d rounds: %d distinct generations on disk, %d kills mid-write", rounds, len(seen), len(temps))
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.json")
	for _, content := range []string{"{}\n", `{"a": 1}` + "\n"} {
		if err := WriteFileAtomic(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if string(got) != content {
			t.Errorf("content = %q, want %q", got, content)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only x.json (no temp files left)", len(entries))
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x.json"), nil, 0o644); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

// TestWriteAtomicFails: a writer that fails half-way leaves the old file
// as it was, and no temp file.
func TestWriteAtomicFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "capture.pcapng")
	if err := WriteFileAtomic(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteAtomic(path, 0o644, func(w io.Writer) error {
		w.Write([]byte("new, half"))
		return errors.New("the source ran dry")
	})
	if err == nil || !strings.Contains(err.Error(), "the source ran dry") {
		t.Errorf("err = %v, want the writer's", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("content = %q, want the old file's", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (no temp file left)", len(entries))
	}
}
