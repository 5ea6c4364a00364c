package sysctl

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSet(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "net", "ipv6", "conf", "eth0.10")
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(p, "accept_ra")
	if err := os.WriteFile(file, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := []string{"net", "ipv6", "conf", "eth0.10", "accept_ra"}
	if got, want := Name(path), "net.ipv6.conf.eth0.10.accept_ra"; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	for i, wantWrote := range []bool{true, false} {
		wrote, err := Set(root, path, "2")
		if err != nil {
			t.Fatal(err)
		}
		if wrote != wantWrote {
			t.Errorf("set #%d: wrote = %v, want %v", i+1, wrote, wantWrote)
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "2\n" {
		t.Errorf("file holds %q, want \"2\\n\"", b)
	}
	if v, err := Get(root, path); err != nil || v != "2" {
		t.Errorf("Get = %q, %v", v, err)
	}
	if _, err := Set(root, []string{"net", "missing"}, "1"); err == nil {
		t.Error("Set on a missing file succeeded")
	}
}
