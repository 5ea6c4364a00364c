package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckCommand(t *testing.T) {
	for _, tc := range []struct {
		name       string
		interfaces string
		wantErr    bool
		wantOut    string // substring of stdout
		wantStderr []string
	}{
		{
			name:       "missing comma",
			interfaces: "{\"interfaces\": [\n  {\"name\": \"lan0\" \"addr\": \"x\"}\n]}\n",
			wantErr:    true,
			wantStderr: []string{`interfaces.json:2:19: interfaces[0]: invalid character '"' after object key:value pair`},
		},
		{
			name:       "bad address",
			interfaces: "{\"interfaces\": [\n  {\"name\": \"lan0\", \"addr\": \"192.168.300.1/24\"}\n]}\n",
			wantErr:    true,
			wantStderr: []string{`interfaces.json:2:28: interfaces[0].addr: "192.168.300.1/24" is not an address/prefix`},
		},
		{
			name:       "valid",
			interfaces: `{"interfaces": [{"hardware_addr": "02:77:00:00:00:02", "name": "lan0", "addr": "192.168.42.1/24"}]}`,
			wantOut:    "interfaces.json, portforwardings.json, dhcp4d.json, dhcp6.json, dns.json, ra.json, capture.json: ok",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "interfaces.json"), []byte(tc.interfaces), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			err := run([]string{"check", "-perm", dir}, &stdout, &stderr)
			if (err != nil) != tc.wantErr {
				t.Fatalf("check: err = %v, want error %v; stderr:\n%s", err, tc.wantErr, stderr.String())
			}
			got := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(tc.wantStderr) > 0 && strings.Join(got, "\n") != strings.Join(tc.wantStderr, "\n") {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), strings.Join(tc.wantStderr, "\n"))
			}
			if !strings.Contains(stdout.String(), tc.wantOut) {
				t.Errorf("stdout = %q, want it to contain %q", stdout.String(), tc.wantOut)
			}
		})
	}
}

// TestExamplePerm keeps the example /perm in testdata (which the README
// points people at) valid.
func TestExamplePerm(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run([]string{"check", "-perm", "testdata/perm"}, &stdout, &stderr); err != nil {
		t.Fatalf("check testdata/perm: %v\n%s", err, stderr.String())
	}
}

func TestCommandLine(t *testing.T) {
	// run gets as far as the password before the bad -http: in a
	// directory of its own, never the source tree.
	perm := t.TempDir()
	for _, tc := range []struct {
		args    []string
		wantErr bool
		wantOut string // substring of stdout+stderr
	}{
		{args: []string{"help"}, wantOut: "homerouter check -perm DIR"},
		{args: []string{"version"}, wantOut: "homerouter "},
		{args: nil, wantErr: true, wantOut: "Usage:"},
		{args: []string{"frobnicate"}, wantErr: true, wantOut: `unknown command "frobnicate"`},
		{args: []string{"check"}, wantErr: true, wantOut: ""},
		{args: []string{"run", "-perm", "/nonexistent"}, wantErr: true},
		{args: []string{"run", "-bogus"}, wantErr: true, wantOut: "flag provided but not defined: -bogus"},
		{args: []string{"run", "-perm", perm, "-http", "localhost:80"}, wantErr: true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			err := run(tc.args, &out, &out)
			if (err != nil) != tc.wantErr {
				t.Errorf("err = %v, want error %v", err, tc.wantErr)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output %q does not contain %q", out.String(), tc.wantOut)
			}
		})
	}
}
