package platform

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// An alias is one line of modules.alias: a shell pattern over the
// modalias strings the kernel gives devices, and the module that drives
// them.
type alias struct {
	pattern, module string
	line            int
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
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "alias" {
			continue
		}
		key := ""
		if len(f[1]) >= 3 && !strings.ContainsAny(f[1][:3], `*?[\`) {
			key = f[1][:3]
		}
		a.byPrefix[key] = append(a.byPrefix[key], alias{pattern: f[1], module: f[2], line: line})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.alias: %w", err)
	}
	return a, nil
}

// Modules returns the modules whose patterns match modalias, in the
// order of their lines in modules.alias, without duplicates.
func (a *Aliases) Modules(modalias string) []string {
	var matches []alias
	groups := [][]alias{a.byPrefix[""]}
	if len(modalias) >= 3 {
		groups = append(groups, a.byPrefix[modalias[:3]])
	}
	for _, g := range groups {
		for _, al := range g {
			if matchGlob(al.pattern, modalias) {
				matches = append(matches, al)
			}
		}
	}
	slices.SortFunc(matches, func(x, y alias) int { return x.line - y.line })
	var mods []string
	for _, al := range matches {
		if !slices.Contains(mods, al.module) {
			mods = append(mods, al.module)
		}
	}
	return mods
}

// matchGlob reports whether s matches the shell pattern p, as kmod's
// fnmatch(3) does for modules.alias: '*' matches any run of bytes ('/'
// included, unlike path.Match), '?' one byte, "[...]" a class with ranges
// and '!' or '^' negation, and '\' quotes the next byte outside a class.
// Two corners differ from glibc, and no modules.alias line uses them: an
// unterminated '[' makes the pattern match nothing (glibc takes it
// literally), and '\' inside a class is an ordinary byte.
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
// at boot: it reads every modalias under SysDevices (normally
// /sys/devices) and loads the modules that match. A module is tried once:
// one that fails to load (no such hardware after all, say) is logged and
// not tried again.
type Coldplug struct {
	SysDevices string
	Aliases    *Aliases
	Load       Loader
	Logf       func(string, ...any)

	tried map[string]bool
}

// Pass loads the modules for modaliases that need one not tried yet, and
// returns those that loaded. Calling it again picks up devices that
// appeared since: a disk behind AHCI or USB shows up a while after its
// controller's driver loads.
func (c *Coldplug) Pass() (loaded []string, tried int) {
	if c.tried == nil {
		c.tried = make(map[string]bool)
	}
	mods, err := Modaliases(c.SysDevices)
	if err != nil {
		c.Logf("coldplug: %v", err)
	}
	for _, m := range mods {
		for _, mod := range c.Aliases.Modules(m) {
			if c.tried[mod] {
				continue
			}
			c.tried[mod] = true
			tried++
			if err := c.Load(mod); err != nil {
				c.Logf("coldplug: %s: %v", mod, err)
				continue
			}
			loaded = append(loaded, mod)
		}
	}
	return loaded, tried
}

// Run repeats Pass while it finds new modules to try, because a loaded
// bus driver (virtio_pci, ahci...) brings new devices with their own
// modaliases (virtio_net, sd_mod...). Drivers probe asynchronously, so
// after a pass that finds nothing new it waits settle and looks once more.
func (c *Coldplug) Run(settle time.Duration) []string {
	const maxPasses = 10
	var all []string
	waited := false
	for pass := 0; pass < maxPasses; pass++ {
		loaded, tried := c.Pass()
		all = append(all, loaded...)
		if tried > 0 {
			waited = false
			continue
		}
		if pass == 0 || settle <= 0 || waited {
			break
		}
		time.Sleep(settle)
		waited = true
	}
	return all
}

// firewallModules are loaded whatever the hardware: what the firewall's
// ruleset (services/firewall) uses, by module name in Debian's 6.1
// kernel. The kernel would ask for most of them through /sbin/modprobe
// (see Modprobe), but loading them at boot makes the first ruleset apply
// at once, and a module missing from the image shows on /health.json as a
// platform problem instead of as a ruleset that fails to load.
//
// Their dependencies come along (nfnetlink, libcrc32c, nf_defrag_ipv4 and
// nf_defrag_ipv6, nft_fib_ipv4 and nft_fib_ipv6, nft_reject,
// nf_reject_ipv4 and nf_reject_ipv6, nf_flow_table). Not listed because
// nf_tables.ko holds them: the counter, exthdr (TCP MSS clamping), rt
// (route MTU), meta, payload, lookup, dynset and last expressions, and
// the hash, rbtree and pipapo sets.
var firewallModules = []string{
	// nftables, connection tracking and NAT.
	"nf_tables", "nf_conntrack", "nf_nat", "nft_chain_nat", "nft_ct", "nft_nat",
	"nft_masq", "nft_redir",
	// The policy: reject, reverse-path and local-address checks, rate
	// limits, named counters.
	"nft_reject_inet", "nft_fib_inet", "nft_limit", "nft_objref",
	// The flowtable (the fast path of established flows) and the rule
	// that adds flows to it.
	"nf_flow_table_inet", "nft_flow_offload",
}

// NamedModules are the modules PID 1 loads by name at boot, whatever the
// hardware: a crc32c (ext4 and nf_tables need one, and the kernel asks
// for it only by alias), ext4 for /perm, and the firewall's. The image
// builder checks that the image carries each of them.
func NamedModules() []string {
	return append([]string{"crc32c_generic", "ext4"}, firewallModules...)
}
