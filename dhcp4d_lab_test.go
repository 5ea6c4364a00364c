package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
)

// TestDHCPv4ServerLab runs the real binary with lan0 at 192.168.42.1/24
// and a static lease, and has udhcpc, dhclient and dhcpcd ask it for
// addresses from links of their own in the LAN namespace. A restart keeps
// the leases: the client comes back to its address.
func TestDHCPv4ServerLab(t *testing.T) {
	t.Parallel()
	bin := lab.RouterBinary(t)
	lab.Require(t, "udhcpc", "dhclient", "dhcpcd", "nsenter", "mount", "umount", "curl")
	l := lab.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	perm := t.TempDir()
	files := map[string]string{
		"interfaces.json": `{"interfaces": [
  {"hardware_addr": "` + lab.RouterWANMAC + `", "name": "uplink0"},
  {"hardware_addr": "` + lab.RouterLANMAC + `", "name": "lan0", "addr": "192.168.42.1/24"}
]}
`,
		"dhcp4d.json": `{"static_leases": [
  {"hardware_addr": "02:77:00:00:00:12", "addr": "192.168.42.50", "hostname": "printer"}
]}
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(perm, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, err := lab.NewHome(l, lab.HomeOptions{PermDir: perm, NoPeers: true, NoRouter: true})
	if err != nil {
		t.Fatal(err)
	}
	// Each client gets a link of its own, with its own MAC.
	clients := map[string]string{
		"c1": "02:77:00:00:00:11", // udhcpc, hostname alpha
		"c2": "02:77:00:00:00:12", // udhcpc, the static lease
		"c3": "02:77:00:00:00:13", // dhclient
		"c4": "02:77:00:00:00:14", // dhcpcd
		"c5": "02:77:00:00:00:15", // a newcomer after the restart
		"c6": "02:77:00:00:00:16", // udhcpc while /perm is read-only
	}
	for name, mac := range clients {
		for _, args := range [][]string{
			{"link", "add", "link", "eth0", "name", name, "address", mac, "type", "macvlan", "mode", "bridge"},
			{"link", "set", name, "up"},
		} {
			if _, err := h.LAN.Run(ctx, "ip", args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := func() {
		t.Helper()
		if h.RouterProc, err = l.Start(h.Router, bin, "run", "-perm", perm); err != nil {
			t.Fatal(err)
		}
		if err := h.RouterProc.WaitOutput(ctx, "dhcp4d: serving 192.168.42.0/24 on lan0"); err != nil {
			t.Fatal(err)
		}
	}
	start()

	// check asserts what every client must get; the variable names are
	// each client's.
	check := func(t *testing.T, client string, env map[string]string, addr, router, dns, domain string) string {
		t.Helper()
		t.Logf("%s: %s", client, lab.SortedEnv(env))
		a := env[addr]
		if !strings.HasPrefix(a, "192.168.42.") || a == "192.168.42.1" || a == "192.168.42.255" {
			t.Errorf("%s got address %q, want one in 192.168.42.0/24", client, a)
		}
		if env[router] != "192.168.42.1" || env[dns] != "192.168.42.1" || env[domain] != "lan" {
			t.Errorf("%s got router %q, DNS %q, domain %q; want 192.168.42.1, 192.168.42.1, lan", client, env[router], env[dns], env[domain])
		}
		return a
	}

	var alpha string
	t.Run("udhcpc with a hostname", func(t *testing.T) {
		env, err := l.UDHCPC(ctx, h.LAN, "c1", "-x", "hostname:alpha")
		if err != nil {
			t.Fatal(err)
		}
		alpha = check(t, "udhcpc", env, "ip", "router", "dns", "domain")
	})
	t.Run("udhcpc with a static lease", func(t *testing.T) {
		env, err := l.UDHCPC(ctx, h.LAN, "c2")
		if err != nil {
			t.Fatal(err)
		}
		if a := check(t, "udhcpc", env, "ip", "router", "dns", "domain"); a != "192.168.42.50" {
			t.Errorf("static client got %s, want 192.168.42.50", a)
		}
	})
	t.Run("dhclient", func(t *testing.T) {
		env, err := l.DHClient4(ctx, h.LAN, "c3")
		if err != nil {
			t.Fatal(err)
		}
		check(t, "dhclient", env, "new_ip_address", "new_routers", "new_domain_name_servers", "new_domain_name")
	})
	t.Run("dhcpcd", func(t *testing.T) {
		env, err := l.DHCPCD(ctx, h.LAN, "c4")
		if err != nil {
			t.Fatal(err)
		}
		check(t, "dhcpcd", env, "new_ip_address", "new_routers", "new_domain_name_servers", "new_domain_name")
	})

	// A dhcp4d.json the Store rejects, and one that only fails against
	// lan0's subnet: either way the last good config (the static lease)
	// stays in force.
	for _, tc := range []struct {
		name, config, logged string
	}{
		{"a broken dhcp4d.json keeps the last good config",
			`{"static_leases": [{"hardware_addr": "nonsense"}]}`,
			"config: dhcp4d.json:"},
		{"a config that does not fit lan0's subnet keeps the last good one",
			`{"static_leases": [{"hardware_addr": "02:77:00:00:00:12", "addr": "10.0.0.5"}]}`,
			"dhcp4d: dhcp4d.json: static_leases[0].addr: 10.0.0.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(perm, "dhcp4d.json")
			if err := os.WriteFile(path, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := os.WriteFile(path, []byte(files["dhcp4d.json"]), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := h.RouterProc.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
			}()
			if err := h.RouterProc.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			if err := h.RouterProc.WaitOutput(ctx, tc.logged); err != nil {
				t.Fatal(err)
			}
			env, err := l.UDHCPC(ctx, h.LAN, "c2")
			if err != nil {
				t.Fatal(err)
			}
			if a := check(t, "udhcpc", env, "ip", "router", "dns", "domain"); a != "192.168.42.50" {
				t.Errorf("the static client got %s, want 192.168.42.50", a)
			}
		})
	}

	// /perm read-only under the running router (a read-only bind mount
	// in the router's own mount namespace, which `ip netns exec` made,
	// so the host never sees it): the LAN is served all the same, the
	// failing write is on /health.json, and once /perm is writable the
	// lease is on disk and the problem gone.
	t.Run("a read-only /perm", func(t *testing.T) {
		inRouter := func(args ...string) {
			t.Helper()
			pid := fmt.Sprint(h.RouterProc.Pid())
			if out, err := h.Router.Run(ctx, "nsenter", append([]string{"-t", pid, "-m", "--"}, args...)...); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
		}
		inRouter("mount", "--bind", perm, perm)
		inRouter("mount", "-o", "remount,bind,ro", perm)
		remounted := true
		defer func() {
			if remounted {
				inRouter("umount", perm)
			}
		}()

		env, err := l.UDHCPC(ctx, h.LAN, "c6", "-x", "hostname:gamma")
		if err != nil {
			t.Fatal(err)
		}
		gamma := check(t, "udhcpc", env, "ip", "router", "dns", "domain")

		within := func(what string, d time.Duration, cond func() error) {
			t.Helper()
			wctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			start := time.Now()
			if err := lab.WaitFor(wctx, what, cond); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s after %v", what, time.Since(start).Round(10*time.Millisecond))
		}
		within("the failing write on /health.json", 10*time.Second, func() error {
			code, body, err := h.RouterHealth(ctx, "")
			if err != nil {
				return err
			}
			want := `"first_error": "homerouter/perm: write ` + filepath.Join(perm, "dhcp4d-leases.json") + `: create temp file: read-only file system`
			if code != 503 || !strings.Contains(body, want) {
				return fmt.Errorf("health %d: %s", code, body)
			}
			return nil
		})

		inRouter("umount", perm)
		remounted = false
		within("gamma's lease on disk and the problem gone", 10*time.Second, func() error {
			data, err := os.ReadFile(filepath.Join(perm, "dhcp4d-leases.json"))
			if err != nil {
				return err
			}
			if !strings.Contains(string(data), `"addr": "`+gamma+`"`) || !strings.Contains(string(data), `"hardware_addr": "02:77:00:00:00:16"`) {
				return fmt.Errorf("no gamma at %s:\n%s", gamma, data)
			}
			// No ISP here: the uplink's checks fail, and only they.
			_, body, err := h.RouterHealth(ctx, "")
			if err != nil {
				return err
			}
			return lab.UplinkOnly(body)
		})
	})

	t.Run("restart keeps the leases", func(t *testing.T) {
		if alpha == "" {
			t.Fatal("alpha got no lease")
		}
		// The lease is on disk while the router runs, not only after the
		// write at shutdown.
		if err := lab.WaitFor(ctx, "alpha in dhcp4d-leases.json", func() error {
			data, err := os.ReadFile(filepath.Join(perm, "dhcp4d-leases.json"))
			if err != nil {
				return err
			}
			if !strings.Contains(string(data), `"hostname": "alpha"`) || !strings.Contains(string(data), `"addr": "`+alpha+`"`) {
				return fmt.Errorf("no alpha at %s:\n%s", alpha, data)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		stopRouter(ctx, t, h.RouterProc)
		start()
		// A newcomer asks first: without the lease table it would be
		// given alpha's address.
		if _, err := l.UDHCPC(ctx, h.LAN, "c5"); err != nil {
			t.Fatal(err)
		}
		env, err := l.UDHCPC(ctx, h.LAN, "c1", "-x", "hostname:alpha")
		if err != nil {
			t.Fatal(err)
		}
		if a := check(t, "udhcpc", env, "ip", "router", "dns", "domain"); a != alpha {
			t.Errorf("after a restart alpha got %s, want %s back", a, alpha)
		}
	})
	stopRouter(ctx, t, h.RouterProc)
}
