package lab_test

import (
	"context"
	"errors"
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
)

func TestMain(m *testing.M) { lab.Main(m) }

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func netnsList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	return string(out)
}

func TestWaitFor(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t, 200*time.Millisecond)
	n := 0
	if err := lab.WaitFor(ctx, "third try", func() error {
		n++
		if n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
	err := lab.WaitFor(ctx, "never", func() error { return errors.New("still false") })
	if err == nil || !strings.Contains(err.Error(), "never") || !strings.Contains(err.Error(), "still false") {
		t.Fatalf("WaitFor timeout error = %v, want it to name what and the last error", err)
	}
	start := time.Now()
	err = lab.WaitFor(context.Background(), "aborted", func() error { return lab.Abort(errors.New("gone")) })
	if err == nil || !strings.Contains(err.Error(), "gone") || time.Since(start) > time.Second {
		t.Fatalf("WaitFor with Abort = %v after %v, want immediate error", err, time.Since(start))
	}
}

func TestNetnsVeth(t *testing.T) {
	t.Parallel()
	l := lab.NewT(t)
	lab.Require(t, "busybox")
	ctx := ctxT(t, 30*time.Second)
	a, err := l.Netns("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Netns("b")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Veth(a, "veth0", "02:77:00:00:aa:01", b, "veth0", "02:77:00:00:bb:01"); err != nil {
		t.Fatal(err)
	}
	// The resolv.conf is the lab's, not the host's.
	if got, err := a.Run(ctx, "cat", "/etc/resolv.conf"); err != nil || got != "nameserver 127.0.0.1\n" {
		t.Errorf("resolv.conf in %s = %q, %v; want the lab default", a.Name(), got, err)
	}
	if err := b.SetResolvConf("nameserver 10.99.0.1\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Run(ctx, "cat", "/etc/resolv.conf"); err != nil || got != "nameserver 10.99.0.1\n" {
		t.Errorf("resolv.conf in %s = %q, %v; want the one set", b.Name(), got, err)
	}
	if got, err := b.Run(ctx, "cat", "/sys/class/net/veth0/address"); err != nil || strings.TrimSpace(got) != "02:77:00:00:bb:01" {
		t.Errorf("veth0 MAC in b = %q, %v", got, err)
	}
	if _, err := a.Run(ctx, "ip", "addr", "add", "10.99.0.1/24", "dev", "veth0"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Run(ctx, "ip", "addr", "add", "10.99.0.2/24", "dev", "veth0"); err != nil {
		t.Fatal(err)
	}
	out, err := a.Run(ctx, "busybox", "ping", "-c", "1", "-W", "5", "10.99.0.2")
	if err != nil {
		t.Fatalf("ping across veth: %v", err)
	}
	if !strings.Contains(out, "1 packets received") {
		t.Errorf("ping output: %s", out)
	}
	// The host never sees the veth ends.
	if host, _ := exec.Command("ip", "-o", "link", "show").CombinedOutput(); strings.Contains(string(host), "02:77:00:00:aa:01") {
		t.Errorf("veth end visible on the host:\n%s", host)
	}

	dir := l.Dir()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	list := netnsList(t)
	for _, n := range []*lab.Netns{a, b} {
		if strings.Contains(list, n.Name()) {
			t.Errorf("namespace %s still listed after Close:\n%s", n.Name(), list)
		}
		if _, err := os.Stat(filepath.Join("/etc/netns", n.Name())); !os.IsNotExist(err) {
			t.Errorf("/etc/netns/%s still there after Close (%v)", n.Name(), err)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temp dir %s still there after Close (%v)", dir, err)
	}
	if _, err := l.Netns("late"); err == nil {
		t.Errorf("Netns after Close succeeded")
	}
}

func TestProcess(t *testing.T) {
	t.Parallel()
	l := lab.NewT(t)
	ctx := ctxT(t, 30*time.Second)
	n, err := l.Netns("p")
	if err != nil {
		t.Fatal(err)
	}
	// A daemon that ignores SIGTERM must still be gone after Close.
	p, err := l.Start(n, "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitOutput(ctx, "ready"); err != nil {
		t.Fatal(err)
	}
	q, err := l.Start(n, "sh", "-c", "echo bye; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	err = q.WaitOutput(ctx, "never printed")
	if err == nil || !strings.Contains(err.Error(), "bye") {
		t.Fatalf("WaitOutput on exited process = %v, want error with output", err)
	}
	<-q.Exited()
	if q.Err() == nil {
		t.Errorf("exit 3 reported as success")
	}
	if err := q.Signal(os.Interrupt); err == nil {
		t.Errorf("Signal to exited process succeeded")
	}
	if got := len(l.Processes()); got != 2 {
		t.Errorf("Processes() = %d, want 2", got)
	}
	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	default:
		t.Fatalf("process still running after Close")
	}
	if d := time.Since(start); d < 2*time.Second || d > 10*time.Second {
		t.Errorf("Close took %v; want SIGKILL after the ~3s SIGTERM grace", d)
	}
}

func TestSweep(t *testing.T) {
	t.Parallel()
	l := lab.NewT(t)
	// A pid that is certainly dead: a child we waited for.
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	pid := c.Process.Pid
	name := "hr" + strconv.Itoa(pid) + "xabcdef-1sweep"
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run(); os.RemoveAll("/etc/netns/" + name) })
	if err := os.MkdirAll("/etc/netns/"+name, 0o755); err != nil {
		t.Fatal(err)
	}
	// A live lab of this process must survive the sweep.
	live, err := l.Netns("live")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Sweep(); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	list := netnsList(t)
	if strings.Contains(list, name) {
		t.Errorf("Sweep left %s:\n%s", name, list)
	}
	if _, err := os.Stat("/etc/netns/" + name); !os.IsNotExist(err) {
		t.Errorf("Sweep left /etc/netns/%s (%v)", name, err)
	}
	if !strings.Contains(list, live.Name()) {
		t.Errorf("Sweep removed live namespace %s", live.Name())
	}
}

// TestHomePeers proves the ISP simulator: from the router namespace, real
// clients get a DHCPv4 lease, DNS answers, a router advertisement and a
// delegated prefix from the ISP's real daemons.
func TestHomePeers(t *testing.T) {
	t.Parallel()
	lab.Require(t, "dnsmasq", "dhcpd", "radvd", "udhcpc", "dig", "rdisc6", "dhclient")
	l := lab.NewT(t)
	h, err := lab.NewHome(l, lab.HomeOptions{NoRouter: true})
	if err != nil {
		t.Fatal(err)
	}
	if h.RouterProc != nil || len(h.Peers()) != 3 {
		t.Fatalf("RouterProc = %v, peers = %v", h.RouterProc, h.Peers())
	}
	ctx := ctxT(t, 60*time.Second)

	t.Run("interfaces.json", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(h.PermDir, "interfaces.json"))
		if err != nil {
			t.Fatal(err)
		}
		want := `{
  "interfaces": [
    {
      "hardware_addr": "02:77:00:00:00:01",
      "name": "uplink0"
    },
    {
      "hardware_addr": "02:77:00:00:00:02",
      "name": "lan0",
      "addr": "10.42.0.1/24"
    }
  ]
}
`
		if string(b) != want {
			t.Errorf("interfaces.json =\n%s\nwant\n%s", b, want)
		}
	})

	t.Run("topology", func(t *testing.T) {
		for _, c := range []struct {
			ns          *lab.Netns
			iface, mac  string
			resolv      string
			description string
		}{
			{h.Router, "wan", lab.RouterWANMAC, "nameserver 127.0.0.1\n", "router uplink"},
			{h.Router, "lan", lab.RouterLANMAC, "nameserver 127.0.0.1\n", "router LAN"},
			{h.ISP, "isp0", lab.ISPMAC, "nameserver 127.0.0.1\n", "ISP"},
			{h.LAN, "eth0", lab.LANMAC, "nameserver 10.42.0.1\n", "LAN client"},
		} {
			got, err := c.ns.Run(ctx, "cat", "/sys/class/net/"+c.iface+"/address")
			if err != nil || strings.TrimSpace(got) != c.mac {
				t.Errorf("%s: MAC of %s = %q, %v; want %s", c.description, c.iface, got, err, c.mac)
			}
			if got, err := c.ns.Run(ctx, "cat", "/etc/resolv.conf"); err != nil || got != c.resolv {
				t.Errorf("%s: resolv.conf = %q, %v; want %q", c.description, got, err, c.resolv)
			}
		}
	})

	t.Run("dhcpv4", func(t *testing.T) {
		lease, err := l.UDHCPC(ctx, h.Router, "wan")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("lease: %s", lab.SortedEnv(lease))
		ip, err := netip.ParseAddr(lease["ip"])
		if err != nil {
			t.Fatalf("lease ip %q: %v", lease["ip"], err)
		}
		lo, hi := netip.MustParseAddr(lab.ISPPoolStart), netip.MustParseAddr(lab.ISPPoolEnd)
		if ip.Less(lo) || hi.Less(ip) {
			t.Errorf("lease ip %s outside %s-%s", ip, lo, hi)
		}
		for k, want := range map[string]string{
			"subnet":    "255.255.255.0",
			"router":    lab.ISPAddr4,
			"dns":       lab.ISPAddr4,
			"serverid":  lab.ISPAddr4,
			"lease":     "120",
			"domain":    "isp.test",
			"interface": "wan",
		} {
			if got := strings.TrimSpace(lease[k]); got != want {
				t.Errorf("lease %s = %q, want %q", k, got, want)
			}
		}
		leases, err := os.ReadFile(filepath.Join(l.Dir(), "dnsmasq.leases"))
		if err != nil || !strings.Contains(string(leases), lab.RouterWANMAC) {
			t.Errorf("dnsmasq lease file lacks %s: %q, %v", lab.RouterWANMAC, leases, err)
		}
	})

	t.Run("dns", func(t *testing.T) {
		// The router namespace needs an address to reach the ISP's DNS;
		// this one is outside the DHCP pool.
		if _, err := h.Router.Run(ctx, "ip", "addr", "replace", "10.77.0.9/24", "dev", "wan"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ name, typ, want string }{
			{"www.isp.test", "A", lab.ISPWWWA},
			{"www.isp.test", "AAAA", lab.ISPWWWAAAA},
			{"isp.test", "A", lab.ISPRecordA},
			{"anything.isp.test", "A", lab.ISPRecordA},
		} {
			out, err := h.Router.Run(ctx, "dig", "+short", "+time=2", "+tries=3", "@"+lab.ISPAddr4, c.name, c.typ)
			if err != nil {
				t.Errorf("dig %s %s: %v", c.name, c.typ, err)
				continue
			}
			if got := strings.TrimSpace(out); got != c.want {
				t.Errorf("dig %s %s = %q, want %q", c.name, c.typ, got, c.want)
			}
		}
	})

	t.Run("ra", func(t *testing.T) {
		if err := h.Router.WaitLinkLocal(ctx, "wan"); err != nil {
			t.Fatal(err)
		}
		out, err := h.Router.Run(ctx, "rdisc6", "-1", "-w", "1000", "-r", "5", "wan")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("rdisc6:\n%s", out)
		for _, re := range []string{
			`Prefix\s+:\s+fd00:77::/64`,
			`Stateful address conf\.\s+:\s+Yes`,
			`Stateful other conf\.\s+:\s+Yes`,
			`Recursive DNS server\s+:\s+fd00:77::1`,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("rdisc6 output does not match %q", re)
			}
		}
	})

	t.Run("dhcpv6-pd", func(t *testing.T) {
		lease, err := l.DHClient6(ctx, h.Router, "wan", "-P", "-N")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("lease: %s", lab.SortedEnv(lease))
		pfx, err := netip.ParsePrefix(lease["new_ip6_prefix"])
		if err != nil {
			t.Fatalf("delegated prefix %q: %v", lease["new_ip6_prefix"], err)
		}
		pool := netip.MustParsePrefix(lab.ISPPDPool)
		if pfx.Bits() != lab.ISPPDLen || !pool.Contains(pfx.Addr()) {
			t.Errorf("delegated prefix %s, want a /%d in %s", pfx, lab.ISPPDLen, pool)
		}
		addr, err := netip.ParseAddr(lease["new_ip6_address"])
		if err != nil || !netip.MustParsePrefix(lab.ISPPrefix6).Contains(addr) {
			t.Errorf("DHCPv6 address %q (%v), want one in %s", lease["new_ip6_address"], err, lab.ISPPrefix6)
		}
		if got := strings.TrimSpace(lease["new_dhcp6_name_servers"]); got != lab.ISPAddr6 {
			t.Errorf("DHCPv6 name servers = %q, want %s", got, lab.ISPAddr6)
		}
	})
}

// TestHomeFakeRouter checks how NewHome starts a router, using a stand-in
// that speaks the `run -perm -http` contract.
func TestHomeFakeRouter(t *testing.T) {
	t.Parallel()
	lab.Require(t, "curl")
	ctx := ctxT(t, 2*time.Minute)
	// Built before any namespace exists.
	bin, err := lab.BuildBinary(ctx, t.TempDir(), "fakerouter", "github.com/homerouter/homerouter/internal/lab/testdata/fakerouter")
	if err != nil {
		t.Fatal(err)
	}
	l := lab.NewT(t)
	h, err := lab.NewHome(l, lab.HomeOptions{RouterBinary: bin, NoPeers: true, HTTPAddr: "127.0.0.1:8080"})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Peers()) != 0 {
		t.Errorf("NoPeers started %v", h.Peers())
	}
	if err := h.RouterProc.WaitOutput(ctx, "2 interfaces, listening on 127.0.0.1:8080"); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitRouterHealthy(ctx, "http://127.0.0.1:8080/health.json"); err != nil {
		t.Fatal(err)
	}
	code, body, err := h.RouterHealth(ctx, "http://127.0.0.1:8080/health.json")
	if err != nil || code != 200 || !strings.Contains(body, `"first_error":""`) {
		t.Errorf("health = %d %q, %v", code, body, err)
	}
	// The router listens only in its namespace.
	if _, _, err := h.RouterHealth(ctx, "http://10.42.0.1:8080/health.json"); err == nil {
		t.Errorf("fake router reachable on an address it has not got")
	}
}

// TestHomeRouter runs the real router in the home topology and checks the
// lab contract it relies on: the router starts and answers /health.json.
func TestHomeRouter(t *testing.T) {
	t.Parallel()
	lab.Require(t, "dnsmasq", "dhcpd", "radvd", "curl")
	bin := lab.RouterBinary(t)
	l := lab.NewT(t)
	h, err := lab.NewHome(l, lab.HomeOptions{RouterBinary: bin})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, time.Minute)
	err = lab.WaitFor(ctx, "router to answer /health.json", func() error {
		select {
		case <-h.RouterProc.Exited():
			return lab.Abort(errors.New("router exited"))
		default:
		}
		code, body, err := h.RouterHealth(ctx, "")
		if err != nil {
			return err
		}
		if code != 200 {
			return errors.New("status " + strconv.Itoa(code) + ": " + body)
		}
		t.Logf("health.json: %d %s", code, body)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPartialFailure checks that Close cleans up after setup steps failed.
func TestPartialFailure(t *testing.T) {
	t.Parallel()
	l := lab.NewT(t)
	ctx := ctxT(t, 30*time.Second)
	a, err := l.Netns("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Netns("bad role"); err == nil {
		t.Errorf("Netns with a space in the role succeeded")
	}
	if err := l.Veth(a, "this-name-is-far-too-long", "", a, "x", ""); err == nil {
		t.Errorf("Veth with an over-long name succeeded")
	}
	p, err := l.Start(a, "/nonexistent/daemon")
	if err != nil {
		t.Fatal(err) // ip starts; the exec inside fails
	}
	if err := p.WaitOutput(ctx, "ready"); err == nil {
		t.Errorf("WaitOutput on a missing binary succeeded")
	}
	if _, err := lab.NewHome(l, lab.HomeOptions{}); err == nil {
		t.Errorf("NewHome without RouterBinary succeeded")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close after failures: %v", err)
	}
	if strings.Contains(netnsList(t), a.Name()) {
		t.Errorf("namespace %s left after Close", a.Name())
	}
}
