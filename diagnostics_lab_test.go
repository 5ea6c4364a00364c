package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
	"github.com/homerouter/homerouter/services/httpd"
)

// alphaMAC is the LAN client's MAC in TestDiagnosticsLab: Apple's OUI,
// so that the status page has a maker to name (the lab's own MACs are
// locally administered, which have none).
const alphaMAC = "00:1b:63:84:45:e6"

// TestDiagnosticsLab shows what a person and a monitor see of a home
// whose internet works and then does not, with the ISP's real dnsmasq,
// dhcpd -6 and radvd:
//   - /health.json turns 200 with an empty first_error once the uplink
//     works, and the whole tree passes;
//   - the status page lists the uplink's address and the LAN client
//     alpha with its maker;
//   - after alpha downloads 10 MB from the ISP's web server, its row and
//     its metric show at least 10 MB down, and /metrics passes promtool;
//   - with the ISP's end of the cable down, /health.json is 503 naming
//     the link within 15 s; with it up again, 200 within 60 s.
func TestDiagnosticsLab(t *testing.T) {
	bin := lab.RouterBinary(t)
	lab.Require(t, "dnsmasq", "dhcpd", "radvd", "udhcpc", "curl", "busybox", "promtool")
	l := lab.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	h, err := lab.NewHome(l, lab.HomeOptions{RouterBinary: bin})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.ISP.Run(ctx, "ip", "addr", "add", lab.ISPWWWA+"/24", "dev", "isp0"); err != nil {
		t.Fatal(err)
	}
	web, err := l.StartWebServer(ctx, h.ISP, netip.AddrPortFrom(netip.MustParseAddr(lab.ISPWWWA), 80), "the ISP's web server")
	if err != nil {
		t.Fatal(err)
	}
	const size = 10 << 20
	if err := os.WriteFile(filepath.Join(web.Dir, "10m"), make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}

	// health waits, for at most d, until /health.json answers code with
	// a first_error that has want (none for ""), and returns it and how
	// long that took.
	health := func(what string, d time.Duration, code int, want string) (httpd.Health, time.Duration) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		start := time.Now()
		var hl httpd.Health
		if err := lab.WaitFor(wctx, what, func() error {
			c, body, err := h.RouterHealth(wctx, "")
			if err != nil {
				return err
			}
			hl = httpd.Health{}
			if err := json.Unmarshal([]byte(body), &hl); err != nil {
				return fmt.Errorf("%v: %s", err, body)
			}
			if c != code || !strings.Contains(hl.FirstError, want) || (want == "" && hl.FirstError != "") {
				return fmt.Errorf("%d, first_error %q", c, hl.FirstError)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		t.Logf("%s after %v", what, took.Round(10*time.Millisecond))
		return hl, took
	}

	t.Run("200 once the uplink works", func(t *testing.T) {
		hl, _ := health("200 from /health.json", time.Minute, 200, "")
		if hl.Version == "" || !hl.Checks.OK {
			t.Errorf("version %q, tree %+v", hl.Version, hl.Checks)
		}
		// Then every check of the uplink's tree, IPv6 too (before the
		// ISP's DHCPv6 server delegates a prefix, its absence is only a
		// notice and the IPv6 checks are left out), is there and passes.
		want := []string{
			"homerouter/link/uplink0/dhcp4/gateway", "homerouter/link/uplink0/dhcp4/dns",
			"homerouter/link/uplink0/dhcp6/route6/gateway", "homerouter/link/lan0", "homerouter/perm", "homerouter/services/diagnostics",
		}
		if err := lab.WaitFor(ctx, "the whole tree passing", func() error {
			code, body, err := h.RouterHealth(ctx, "")
			if err != nil {
				return err
			}
			var hl httpd.Health
			if err := json.Unmarshal([]byte(body), &hl); err != nil {
				return err
			}
			all := imageChecks(hl.Checks, "")
			for _, path := range want {
				if c, ok := all[path]; code != 200 || !ok || !c.OK {
					return fmt.Errorf("%d, %s: %+v (present %v)", code, path, c, ok)
				}
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	})

	// alpha: a DHCP lease with its hostname, configured by hand (the
	// lab's hook changes nothing).
	if _, err := h.LAN.Run(ctx, "ip", "link", "set", "eth0", "address", alphaMAC); err != nil {
		t.Fatal(err)
	}
	env, err := l.UDHCPC(ctx, h.LAN, "eth0", "-x", "hostname:alpha")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"addr", "add", env["ip"] + "/24", "dev", "eth0"},
		{"route", "add", "default", "via", env["router"]},
	} {
		if _, err := h.LAN.Run(ctx, "ip", args...); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("the status page lists the uplink and alpha with its maker", func(t *testing.T) {
		page, err := h.LAN.HTTPGet(ctx, "http://"+env["router"]+"/", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		lease, err := os.ReadFile(filepath.Join(h.PermDir, "dhcp4-lease.json"))
		if err != nil {
			t.Fatal(err)
		}
		var up struct{ Addr string }
		json.Unmarshal(lease, &up)
		for _, want := range []string{"<title>homerouter: ✔ healthy</title>", "<code>" + up.Addr + "</code>",
			"<tr><td>alpha</td><td><code>" + env["ip"] + "</code></td><td><code>" + alphaMAC + "</code></td><td>Apple, Inc.</td>"} {
			if up.Addr == "" || !strings.Contains(page, want) {
				t.Errorf("the status page lacks %q:\n%s", want, page)
			}
		}
	})

	t.Run("10 MB down show in alpha's row and metric", func(t *testing.T) {
		if out, err := h.LAN.Run(ctx, "curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}", web.URL("/10m")); err != nil || out != strconv.Itoa(size) {
			t.Fatalf("download: %v: %s", err, out)
		}
		row := regexp.MustCompile(`<tr><td>alpha</td>(?:.|\n)*?<td class="num">([0-9.]+) (B|KiB|MiB|GiB)</td>`)
		units := map[string]float64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
		metric := regexp.MustCompile(`homerouter_device_bytes_total\{direction="down",hostname="alpha",mac="` + alphaMAC + `"\} (\S+)`)
		var page, metrics string
		if err := lab.WaitFor(ctx, "10 MB down on the page and in /metrics", func() error {
			var err error
			if page, err = h.LAN.HTTPGet(ctx, "http://"+env["router"]+"/", 10*time.Second); err != nil {
				return err
			}
			if metrics, err = h.LAN.HTTPGet(ctx, "http://"+env["router"]+"/metrics", 10*time.Second); err != nil {
				return err
			}
			m := row.FindStringSubmatch(page)
			if m == nil {
				return fmt.Errorf("no row for alpha")
			}
			n, _ := strconv.ParseFloat(m[1], 64)
			if n*units[m[2]] < 10e6 {
				return fmt.Errorf("alpha's row shows %s %s down", m[1], m[2])
			}
			mm := metric.FindStringSubmatch(metrics)
			if mm == nil {
				return fmt.Errorf("no metric for alpha")
			}
			if v, _ := strconv.ParseFloat(mm[1], 64); v < 10e6 {
				return fmt.Errorf("alpha's metric: %s bytes down", mm[1])
			}
			return nil
		}); err != nil {
			t.Fatalf("%v\n%s", err, page)
		}
		t.Logf("alpha's row: %s; metric: %s", row.FindStringSubmatch(page)[1:], metric.FindString(metrics))
		cmd := exec.CommandContext(ctx, "promtool", "check", "metrics")
		cmd.Stdin = strings.NewReader(metrics)
		if lint, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, lint)
		}
	})

	t.Run("the uplink's cable out and in again", func(t *testing.T) {
		if _, err := h.ISP.Run(ctx, "ip", "link", "set", "isp0", "down"); err != nil {
			t.Fatal(err)
		}
		down, _ := health("503 naming the link", 15*time.Second, 503, "homerouter/link/uplink0: no carrier")
		t.Logf("first_error: %s", down.FirstError)
		if _, err := h.ISP.Run(ctx, "ip", "link", "set", "isp0", "up"); err != nil {
			t.Fatal(err)
		}
		health("200 again", time.Minute, 200, "")
		if out := h.RouterProc.Output(); !strings.Contains(out, "diagnostics: link/uplink0: no carrier") || !strings.Contains(out, "diagnostics: link/uplink0: ok again") {
			t.Errorf("the log does not say when the link went and came back:\n%s", out)
		}
	})
}
