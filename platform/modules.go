package platform

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// An alias is one line of modules.alias: a shell pattern over the
// modalias strings the kernel gives devices, and the module that drives
// them.
type alias struct {
	pattern, module string
}

// Aliases resolves device modaliases to module names, as modprobe does
// with modules.alias. u-root's kmodule loads a module and its
// dependencies but has no alias lookup, so this is the part coldplug adds.
type Aliases struct {
	// byPrefix indexes the patterns by their first three bytes when
	// those hold no wildcard ("pci", "vir", "acp"...); the rest are in
	// byPrefix[""]. A modalias only meets the few hundred patterns of its
	// bus instead of all of them.
	byPrefix map[string][]alias
}

// ParseAliases reads modules.alias ("alias PATTERN MODULE" lines; other
// lines and comments are skipped).
func ParseAliases(r io.Reader) (*Aliases, error) {
	a := &Aliases{byPrefix: make(map[string][]alias)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "alias" {
			continue
		}
		key := ""
		if len(f[1]) >= 3 && !strings.ContainsAny(f[1][:3], `*?[\`) {
			key = f[1][:3]
		}
		a.byPrefix[key] = append(a.byPrefix[key], alias{pattern: f[1], module: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.alias: %w", err)
	}
	return a, nil
}

// Modules returns the modules whose patterns match modalias, in file
// order, without duplicates.
func (a *Aliases) Modules(modalias string) []string {
	var mods []string
	groups := [][]alias{a.byPrefix[""]}
	if len(modalias) >= 3 {
		groups = append(groups, a.byPrefix[modalias[:3]])
	}
	for _, g := range groups {
		for _, al := range g {
			if matchGlob(al.pattern, modalias) && !contains(mods, al.module) {
				mods = append(mods, al.module)
			}
		}
	}
	return mods
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// matchGlob reports whether s matches the fnmatch(3) pattern p, without
// flags: '*' matches any run of bytes ('/' included, unlike path.Match),
// '?' one byte, "[...]" a class with ranges and '!' or '^' negation, and
// '\' quotes the next byte. A malformed class matches nothing.
func matchGlob(p, s string) bool {
	// Iterative, with one backtrack point for the last '*': linear for
	// the patterns modules.alias holds.
	var starP, starS = -1, 0
	i, j := 0, 0
	for j < len(s) {
		if i < len(p) {
			switch c := p[i]; c {
			case '*':
				starP, starS = i, j
				i++
				continue
			case '?':
				i++
				j++
				continue
			case '[':
				if n, ok := matchClass(p[i:], s[j]); n > 0 && ok {
					i += n
					j++
					continue
				}
			case '\\':
				if i+1 < len(p) && p[i+1] == s[j] {
					i += 2
					j++
					continue
				}
			default:
				if c == s[j] {
					i++
					j++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		i, j = starP+1, starS
	}
	for i < len(p) && p[i] == '*' {
		i++
	}
	return i == len(p)
}

// matchClass matches c against the class at the start of p ("[...]") and
// returns the class's length, 0 if it is malformed.
func matchClass(p string, c byte) (n int, ok bool) {
	i := 1
	negate := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(p) {
		if p[i] == ']' && !first {
			return i + 1, ok != negate
		}
		first = false
		lo := p[i]
		hi := lo
		if i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']' {
			hi = p[i+2]
			i += 3
		} else {
			i++
		}
		if lo <= c && c <= hi {
			ok = true
		}
	}
	return 0, false
}

// Modaliases returns the modalias of every device under sysDevices
// (normally /sys/devices), sorted and without duplicates.
func Modaliases(sysDevices string) ([]string, error) {
	seen := make(map[string]bool)
	err := filepath.WalkDir(sysDevices, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// A device that went away while we walked, or a file only
			// the kernel may read: neither stops coldplug.
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.Name() != "modalias" || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		if s := strings.TrimSpace(string(b)); s != "" {
			seen[s] = true
		}
		return nil
	})
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out, err
}

// A Loader loads one module by name, with its dependencies (kmodule's
// Prober in PID 1; a recorder in tests).
type Loader func(module string) error

// Coldplug loads the modules for the devices present, the way udev would
// at boot: it reads every modalias under sysDevices, loads the modules
// that match, and repeats, because a loaded bus driver (virtio_pci,
// ahci...) brings new devices with their own modaliases (virtio_net,
// sd_mod...). It stops when a pass finds nothing new, after giving the
// drivers settle to register their devices, or after maxPasses. A module
// that fails to load (no such hardware after all, say) is logged and not
// tried again. It returns the modules it loaded.
func Coldplug(sysDevices string, aliases *Aliases, load Loader, logf func(string, ...any), settle time.Duration) []string {
	const maxPasses = 10
	tried := make(map[string]bool)
	var loaded []string
	waited := false
	for pass := 0; pass < maxPasses; pass++ {
		mods, err := Modaliases(sysDevices)
		if err != nil {
			logf("coldplug: %v", err)
		}
		var todo []string
		for _, m := range mods {
			for _, mod := range aliases.Modules(m) {
				if !tried[mod] {
					tried[mod] = true
					todo = append(todo, mod)
				}
			}
		}
		if len(todo) == 0 {
			if pass > 0 && settle > 0 && !waited {
				// Drivers probe asynchronously; look once more after
				// they had a moment.
				time.Sleep(settle)
				waited = true
				continue
			}
			break
		}
		waited = false
		for _, mod := range todo {
			if err := load(mod); err != nil {
				logf("coldplug: %s: %v", mod, err)
				continue
			}
			loaded = append(loaded, mod)
		}
	}
	return loaded
}
