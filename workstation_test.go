package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRouterFlags: where the workstation commands take the password
// from, in order, and the error without one.
func TestRouterFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pw.txt")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		env     string
		want    string
		wantErr string
	}{
		{name: "flag first", args: []string{"-password", "from-flag", "-password-file", file}, env: "from-env", want: "from-flag"},
		{name: "then the environment", args: []string{"-password-file", file}, env: "from-env", want: "from-env"},
		{name: "then the file", args: []string{"-password-file", file}, want: "from-file"},
		{name: "none", wantErr: "the router's password is needed"},
		{name: "unreadable file", args: []string{"-password-file", file + ".missing"}, wantErr: "backup: open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HOMEROUTER_PASSWORD", tc.env)
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			rf := addRouterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			c, err := rf.client("backup")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("client() = %+v, %v; want an error with %q", c, err, tc.wantErr)
				}
				return
			}
			if err != nil || c.Password != tc.want || c.Router != "192.168.42.1" {
				t.Errorf("client() = %+v, %v; want password %q at 192.168.42.1", c, err, tc.want)
			}
		})
	}
}

func TestBackupRestoreCommandLine(t *testing.T) {
	t.Setenv("HOMEROUTER_PASSWORD", "pw")
	for _, tc := range []struct {
		args    []string
		wantOut string // substring of stdout, stderr and the error
	}{
		{args: []string{"restore"}, wantOut: "one archive FILE is needed"},
		{args: []string{"restore", "a.tar.gz", "b.tar.gz"}, wantOut: "Usage: homerouter restore [flags] FILE"},
		{args: []string{"restore", filepath.Join(t.TempDir(), "missing.tar.gz")}, wantOut: "no such file"},
		{args: []string{"backup", "extra"}, wantOut: `unexpected arguments ["extra"]`},
		{args: []string{"backup", "-bogus"}, wantOut: "flag provided but not defined: -bogus"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			err := run(tc.args, &out, &out)
			if err == nil {
				t.Fatalf("run succeeded: %s", out.String())
			}
			if got := out.String() + err.Error(); !strings.Contains(got, tc.wantOut) {
				t.Errorf("output %q does not contain %q", got, tc.wantOut)
			}
		})
	}
}
