package services

import (
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// serviceImports checks the Go files (tests too, whatever their build
// constraints) under services/ in the module at root. It returns the
// service packages there (the directories directly under services/) and,
// sorted, each import of one service by another (or by or of a package
// below one) as "services/dns imports services/dhcp4d: ...". The package
// services itself is the shared kit and supervisor, which any service
// may import. Like the go command, it skips testdata and the
// directories whose names begin with "." or "_".
func serviceImports(root string) (services, violations []string, err error) {
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, nil, err
	}
	module, err := modulePath(gomod)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(root, "go.mod"), err)
	}
	// service is the service that the package at rel (a slash path from
	// the module root) is or is below, or "" if none.
	service := func(rel string) string {
		rest, ok := strings.CutPrefix(rel, "services/")
		if !ok {
			return ""
		}
		s, _, _ := strings.Cut(rest, "/")
		return s
	}

	found := map[string]bool{}
	seen := map[string]bool{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(filepath.Join(root, "services"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != filepath.Join(root, "services") && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		own := service(pkg)
		if own == "" {
			return nil // the package services
		}
		found[own] = true
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			ip, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: import %s: %w", fset.Position(imp.Pos()), imp.Path.Value, err)
			}
			rel, ok := strings.CutPrefix(ip, module+"/")
			if !ok {
				continue
			}
			if other := service(rel); other != "" && other != own {
				v := fmt.Sprintf("%s imports %s: services talk through state topics only", pkg, rel)
				if !seen[v] {
					seen[v] = true
					violations = append(violations, v)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for s := range found {
		services = append(services, s)
	}
	slices.Sort(services)
	slices.Sort(violations)
	return services, violations, nil
}

// modulePath returns the module path that a go.mod file declares.
func modulePath(gomod []byte) (string, error) {
	for line := range strings.Lines(string(gomod)) {
		line, _, _ = strings.Cut(line, "//")
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			if p, err := strconv.Unquote(f[1]); err == nil {
				return p, nil
			}
			return f[1], nil
		}
	}
	return "", errors.New("no module directive")
}

// TestServicesIndependent: no service imports another, as DESIGN.md
// says ("Services talk only through state topics, never by calling each
// other").
func TestServicesIndependent(t *testing.T) {
	services, violations, err := serviceImports("..")
	if err != nil {
		t.Fatal(err)
	}
	// Two services at least, or there is nothing to check: a wrong root
	// would pass unseen.
	if len(services) < 2 {
		t.Fatalf("found the services %q, want two or more", services)
	}
	for _, v := range violations {
		t.Error(v)
	}
}

// TestServiceImports runs serviceImports on small module trees, so that
// TestServicesIndependent is known to be able to fail.
func TestServiceImports(t *testing.T) {
	// base is a module with the package services, two services and a
	// package below one of them, none importing another.
	base := map[string]string{
		"go.mod":                               "module example.com/router // a comment\n\ngo 1.26\n",
		"state/state.go":                       "package state\n",
		"services/service.go":                  "package services\n\nimport _ \"example.com/router/state\"\n",
		"services/supervisor_test.go":          "package services\n\nimport _ \"example.com/router/services/dns\"\n",
		"services/dhcp4d/dhcp4d.go":            "package dhcp4d\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/router/services\"\n\t\"example.com/router/services/dhcp4d/internal/pool\"\n\t\"example.com/router/state\"\n)\n",
		"services/dhcp4d/internal/pool/p.go":   "package pool\n\nimport _ \"example.com/router/services\"\n",
		"services/dhcp4d/dhcp4d_test.go":       "package dhcp4d_test\n\nimport _ \"example.com/router/services/dhcp4d\"\n",
		"services/dns/dns.go":                  "//go:build linux\n\npackage dns\n\nimport _ \"example.com/router/servicesextra/dhcp4d\"\n",
		"services/dns/testdata/gen/gen.go":     "package gen\n\nimport _ \"example.com/router/services/dhcp4d\"\n",
		"services/dns/_old/old.go":             "package old\n\nimport _ \"example.com/router/services/dhcp4d\"\n",
		"services/dns/internal/cache/cache.go": "package cache\n",
	}
	const rule = ": services talk through state topics only"
	for _, tt := range []struct {
		name  string
		files map[string]string // added to base
		want  []string
	}{
		{name: "none", want: nil},
		{
			name:  "service imports a service",
			files: map[string]string{"services/dns/lookup.go": "package dns\n\nimport (\n\t\"net\"\n\n\t\"example.com/router/services/dhcp4d\"\n)\n"},
			want:  []string{"services/dns imports services/dhcp4d" + rule},
		},
		{
			name:  "test imports a package below a service",
			files: map[string]string{"services/dns/dns_test.go": "package dns_test\n\nimport pool \"example.com/router/services/dhcp4d/internal/pool\"\n"},
			want:  []string{"services/dns imports services/dhcp4d/internal/pool" + rule},
		},
		{
			name: "package below a service imports a service, from two files",
			files: map[string]string{
				"services/dns/internal/cache/a.go": "package cache\n\nimport _ \"example.com/router/services/dhcp4d\"\n",
				"services/dns/internal/cache/b.go": "package cache\n\nimport . \"example.com/router/services/dhcp4d\"\n",
			},
			want: []string{"services/dns/internal/cache imports services/dhcp4d" + rule},
		},
		{
			name: "two services import each other",
			files: map[string]string{
				"services/dns/lookup.go":    "package dns\n\nimport \"example.com/router/services/dhcp4d\"\n",
				"services/dhcp4d/hosts.go":  "package dhcp4d\n\nimport \"example.com/router/services/dns\"\n",
				"services/dhcp4d/export.go": "package dhcp4d\n\nimport \"example.com/router/services/dns/internal/cache\"\n",
			},
			want: []string{
				"services/dhcp4d imports services/dns/internal/cache" + rule,
				"services/dhcp4d imports services/dns" + rule,
				"services/dns imports services/dhcp4d" + rule,
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, text := range base {
				writeFile(t, root, name, text)
			}
			for name, text := range tt.files {
				writeFile(t, root, name, text)
			}
			services, got, err := serviceImports(root)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"dhcp4d", "dns"}; !slices.Equal(services, want) {
				t.Errorf("services %q, want %q", services, want)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("violations differ (-want +got):\n%s", diff)
			}
		})
	}

	// A file that does not parse, or a tree with no go.mod, is an error,
	// not a pass.
	for _, tt := range []struct {
		name  string
		files map[string]string
	}{
		{"syntax error", map[string]string{"go.mod": "module example.com/router\n", "services/dns/dns.go": "package dns\n\nimport (\n"}},
		{"no go.mod", map[string]string{"services/dns/dns.go": "package dns\n"}},
		{"no module directive", map[string]string{"go.mod": "go 1.26\n", "services/dns/dns.go": "package dns\n"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, text := range tt.files {
				writeFile(t, root, name, text)
			}
			if services, got, err := serviceImports(root); err == nil {
				t.Fatalf("serviceImports = %q, %q, no error; want an error", services, got)
			}
		})
	}
}

// writeFile writes text to name (a slash path) under root, making its
// directory.
func writeFile(t *testing.T, root, name, text string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
