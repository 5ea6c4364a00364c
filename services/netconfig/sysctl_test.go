package netconfig

import (
	"os"
	"path/filepath"
	"testing"
)

func TestApplySysctl(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "net", "ipv6", "conf", "eth0.10")
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(p, "accept_ra")
	if err := os.WriteFile(file, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := sysctl{[]string{"net", "ipv6", "conf", "eth0.10", "accept_ra"}, "2"}
	if got, want := s.String(), "net.ipv6.conf.eth0.10.accept_ra=2"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for i, wantWrote := range []bool{true, false} {
		wrote, err := applySysctl(root, s)
		if err != nil {
			t.Fatal(err)
		}
		if wrote != wantWrote {
			t.Errorf("apply #%d: wrote = %v, want %v", i+1, wrote, wantWrote)
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "2\n" {
		t.Errorf("file holds %q, want \"2\\n\"", b)
	}
	if _, err := applySysctl(root, sysctl{[]string{"net", "missing"}, "1"}); err == nil {
		t.Error("applySysctl on a missing file succeeded")
	}
}
