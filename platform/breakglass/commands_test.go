package breakglass

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jsimonetti/rtnetlink/v2"
	"golang.org/x/sys/unix"
)

// TestCommands runs commands of the table as the shell would, in a
// directory of their own: what they print, and their exit status.
func TestCommands(t *testing.T) {
	var homerouterArgs []string
	opt := Options{
		Log: func() []byte { return []byte("one\ntwo\nthree\n") },
		Homerouter: func(args []string, stdout, stderr io.Writer) error {
			homerouterArgs = args
			fmt.Fprintln(stdout, "ran", args)
			return nil
		},
	}
	cmds := Commands(opt)
	cmds["panics"] = func(context.Context, Env, []string) error { panic("boom") }
	for _, tc := range []struct {
		args       []string
		wantStatus uint8
		wantOut    string // a substring of stdout
		wantErr    string // a substring of stderr
		wantArgs   []string
	}{
		{args: []string{"ls"}, wantOut: "a.json"},
		{args: []string{"cat", "a.json"}, wantOut: `{"a":1}`},
		{args: []string{"cat", "missing"}, wantStatus: 1, wantErr: "missing"},
		{args: []string{"mkdir", "d"}},
		{args: []string{"cp", "a.json", "d/b.json"}},
		{args: []string{"ls", "d"}, wantOut: "b.json"},
		{args: []string{"mv", "d/b.json", "c.json"}},
		{args: []string{"rm", "c.json"}},
		{args: []string{"shasum", "-a", "256", "a.json"}, wantOut: "a.json"},
		{args: []string{"log", "-n", "2"}, wantOut: "two\nthree\n"},
		{args: []string{"help"}, wantOut: "commands: base64 cat chmod"},
		{args: []string{"homerouter", "check"}, wantOut: "ran", wantArgs: []string{"check", "-perm", "/perm"}},
		{args: []string{"homerouter", "check", "-perm", "/x"}, wantArgs: []string{"check", "-perm", "/x"}},
		{args: []string{"homerouter", "version"}, wantArgs: []string{"version"}},
		// version -router asks a router over the network.
		{args: []string{"homerouter", "version", "-router", "192.168.1.1"}, wantStatus: 2, wantErr: "usage: homerouter check"},
		{args: []string{"homerouter", "run", "-perm", "/perm"}, wantStatus: 2, wantErr: "usage: homerouter check"},
		{args: []string{"homerouter"}, wantStatus: 2, wantErr: "usage"},
		{args: []string{"xargs"}, wantStatus: 127, wantErr: "xargs: command not found"},
		{args: []string{"sh"}, wantStatus: 127, wantErr: "command not found"},
		{args: []string{"panics"}, wantStatus: 2, wantErr: "panics: panic: boom"},
		{args: []string{"ip", "bogus"}, wantStatus: 2, wantErr: "usage: ip"},
		{args: []string{"ip", "link"}, wantOut: "lo: <UP,LOOPBACK"},
		{args: []string{"ps"}, wantOut: "goroutines"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "a.json"), []byte(`{"a":1}`), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.args[0] == "ls" && len(tc.args) > 1 || tc.args[0] == "mv" || tc.args[0] == "rm" || tc.args[0] == "cp" {
				// These rows need the earlier rows' files.
				os.MkdirAll(filepath.Join(dir, "d"), 0o755)
				os.WriteFile(filepath.Join(dir, "d", "b.json"), nil, 0o644)
				os.WriteFile(filepath.Join(dir, "c.json"), nil, 0o644)
			}
			var stdout, stderr bytes.Buffer
			homerouterArgs = nil
			env := Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Dir: dir, Getenv: func(string) string { return "" }}
			err := runCommand(context.Background(), cmds, env, tc.args)
			status, ok := exitStatus(err)
			if err != nil && !ok {
				t.Fatalf("error %v, want an exit status", err)
			}
			if status != tc.wantStatus {
				t.Errorf("status %d, want %d; stderr %q", status, tc.wantStatus, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.wantOut) {
				t.Errorf("stdout %q, want it to contain %q", stdout.String(), tc.wantOut)
			}
			if !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tc.wantErr)
			}
			if tc.wantArgs != nil && !slices.Equal(homerouterArgs, tc.wantArgs) {
				t.Errorf("homerouter ran with %q, want %q", homerouterArgs, tc.wantArgs)
			}
		})
	}
}

// TestCommandTable checks the table's names: u-root's core utilities
// but xargs, the router's own, and log and homerouter only when their
// Options are there.
func TestCommandTable(t *testing.T) {
	core := []string{"base64", "cat", "chmod", "cp", "find", "gunzip", "gzcat", "gzip", "ls", "mkdir", "mktemp", "mv", "rm", "shasum", "tar", "touch"}
	own := []string{"dmesg", "help", "ip", "ps"}
	for _, tc := range []struct {
		name string
		opt  Options
		want []string
	}{
		{name: "bare", want: slices.Concat(core, own)},
		{name: "all", opt: Options{Log: func() []byte { return nil }, Homerouter: func([]string, io.Writer, io.Writer) error { return nil }},
			want: slices.Concat(core, own, []string{"homerouter", "log"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for n := range Commands(tc.opt) {
				got = append(got, n)
			}
			slices.Sort(got)
			slices.Sort(tc.want)
			if !slices.Equal(got, tc.want) {
				t.Errorf("commands %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\nc\n", 5, "a\nb\nc\n"},
		{"a\nb\nc\n", 0, "a\nb\nc\n"},
		{"", 3, ""},
		{"partial line at the ring's start\nb\n", 1, "b\n"},
	} {
		if got := string(lastLines([]byte(tc.in), tc.n)); got != tc.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestStripLevels(t *testing.T) {
	in := "<6>[    0.000000] Linux version 6.1\n<4>[    1.2] warn\nno level\n<12>[ 2.0] user\n"
	want := "[    0.000000] Linux version 6.1\n[    1.2] warn\nno level\n[ 2.0] user\n"
	if got := string(stripLevels([]byte(in))); got != want {
		t.Errorf("stripLevels = %q, want %q", got, want)
	}
}

func TestParseStat(t *testing.T) {
	fields := func(n int) string { return strings.Repeat(" 0", n) }
	for _, tc := range []struct {
		name    string
		in      string
		want    procStat
		wantErr bool
	}{
		{name: "init", in: "1 (init) S 0" + fields(15) + " 9" + fields(3) + " 2048" + fields(20),
			want: procStat{pid: 1, ppid: 0, threads: 9, rssPages: 2048, comm: "init", state: "S"}},
		{name: "kthread with spaces and parens", in: "42 (kworker/0:1 (x)) I 2" + fields(15) + " 1" + fields(3) + " 0" + fields(20),
			want: procStat{pid: 42, ppid: 2, threads: 1, comm: "kworker/0:1 (x)", state: "I"}},
		{name: "short", in: "1 (init) S 0 0", wantErr: true},
		{name: "no name", in: "1 init S", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseStat = %+v, %v; want %+v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestFormatRoute(t *testing.T) {
	names := map[uint32]string{2: "uplink0", 3: "lan0"}
	for _, tc := range []struct {
		name string
		r    rtnetlink.RouteMessage
		want string
	}{
		{name: "default", r: rtnetlink.RouteMessage{Family: unix.AF_INET, Table: unix.RT_TABLE_MAIN,
			Attributes: rtnetlink.RouteAttributes{Gateway: net.ParseIP("10.0.2.2"), OutIface: 2, Priority: 1024}},
			want: "default via 10.0.2.2 dev uplink0 metric 1024"},
		{name: "on link", r: rtnetlink.RouteMessage{Family: unix.AF_INET, DstLength: 24, Table: unix.RT_TABLE_MAIN,
			Attributes: rtnetlink.RouteAttributes{Dst: net.ParseIP("192.168.42.0"), OutIface: 3, Src: net.ParseIP("192.168.42.1")}},
			want: "192.168.42.0/24 dev lan0 src 192.168.42.1"},
		{name: "IPv6, other table, unknown link", r: rtnetlink.RouteMessage{Family: unix.AF_INET6, DstLength: 64, Table: unix.RT_TABLE_UNSPEC,
			Attributes: rtnetlink.RouteAttributes{Dst: net.ParseIP("fd00::"), OutIface: 9, Table: 300}},
			want: "fd00::/64 (IPv6) dev if9 table 300"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := formatRoute(tc.r, names); got != tc.want {
				t.Errorf("formatRoute = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestIsTerminal says which paths the shell's commands may not open.
func TestIsTerminal(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		dir, path string
		want      bool
	}{
		{dir: "/", path: "/dev/null"},
		{dir: "/", path: "/dev/zero"},
		{dir: dir, path: "file"},
		{dir: "/", path: ""},
		{dir: "/", path: "/dev/ttyS0", want: true}, // by name, even where it is missing
		{dir: "/", path: "/dev/console", want: true},
		{dir: "/dev", path: "tty", want: true},
		{dir: "/", path: "/dev/../dev/./ttyS1", want: true},
	} {
		if got := isTerminal(tc.dir, tc.path); got != tc.want {
			t.Errorf("isTerminal(%q, %q) = %v, want %v", tc.dir, tc.path, got, tc.want)
		}
	}
}
