package lab_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
)

// TestTraffic proves the traffic endpoints between two namespaces on a
// veth: web servers on IPv4 and IPv6 with the remote-address CGI, curl's
// timeout as a *CurlError, an echo session, an iperf3 run, nft and sysctl
// in a namespace.
func TestTraffic(t *testing.T) {
	t.Parallel()
	l := lab.NewT(t)
	lab.Require(t, "busybox", "curl", "iperf3", "nft", "ss", "sysctl")
	ctx := ctxT(t, time.Minute)
	srv, err := l.Netns("srv")
	if err != nil {
		t.Fatal(err)
	}
	cli, err := l.Netns("cli")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Veth(srv, "veth0", "", cli, "veth0", ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n    *lab.Netns
		addr string
	}{
		{srv, "10.99.0.1/24"}, {srv, "fd00:99::1/64"},
		{cli, "10.99.0.2/24"}, {cli, "fd00:99::2/64"},
	} {
		if _, err := c.n.Run(ctx, "ip", "addr", "add", c.addr, "dev", "veth0", "nodad"); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct{ server, client string }{
		{"10.99.0.1", "10.99.0.2"},
		{"fd00:99::1", "[fd00:99::2]"},
	} {
		t.Run("web server on "+tc.server, func(t *testing.T) {
			w, err := l.StartWebServer(ctx, srv, netip.AddrPortFrom(netip.MustParseAddr(tc.server), 80), "hello from "+tc.server)
			if err != nil {
				t.Fatal(err)
			}
			body, err := cli.HTTPGet(ctx, w.URL("/"), 5*time.Second)
			if err != nil || body != w.Body+"\n" {
				t.Errorf("GET /: %q, %v; want %q", body, err, w.Body+"\n")
			}
			body, err = cli.HTTPGet(ctx, w.URL(lab.RemotePath), 5*time.Second)
			if err != nil || strings.TrimSpace(body) != tc.client {
				t.Errorf("GET %s: %q, %v; want %s", lab.RemotePath, body, err, tc.client)
			}
			if !strings.Contains(w.Output(), "url:"+lab.RemotePath) {
				t.Errorf("httpd did not log the request:\n%s", w.Output())
			}
		})
	}

	t.Run("a dropped SYN is a timeout", func(t *testing.T) {
		if _, err := srv.NFT(ctx, "add table inet t; add chain inet t in { type filter hook input priority 0; policy accept; tcp dport 81 drop; }"); err != nil {
			t.Fatal(err)
		}
		if rs, err := srv.Ruleset(ctx); err != nil || !strings.Contains(rs, "tcp dport 81 drop") {
			t.Errorf("ruleset: %q, %v", rs, err)
		}
		_, err := cli.HTTPGet(ctx, "http://10.99.0.1:81/", time.Second)
		var ce *lab.CurlError
		if !errors.As(err, &ce) || !ce.TimedOut() {
			t.Errorf("GET from a dropped port: %v, want a timeout", err)
		}
		_, err = cli.HTTPGet(ctx, "http://10.99.0.1:82/", time.Second)
		if !errors.As(err, &ce) || ce.Exit != 7 {
			t.Errorf("GET from a closed port: %v, want refused (7)", err)
		}
	})

	t.Run("echo session", func(t *testing.T) {
		if _, err := l.StartEchoServer(ctx, srv, 2222); err != nil {
			t.Fatal(err)
		}
		s, err := l.Dial(ctx, cli, netip.MustParseAddrPort("10.99.0.1:2222"))
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := s.Echo(ctx); err != nil {
				t.Fatal(err)
			}
		}
		s6, err := l.Dial(ctx, cli, netip.MustParseAddrPort("[fd00:99::1]:2222"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s6.Echo(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("iperf3", func(t *testing.T) {
		addr := netip.MustParseAddrPort("10.99.0.1:5201")
		if _, err := l.StartIPerf3Server(ctx, srv, addr); err != nil {
			t.Fatal(err)
		}
		r, err := cli.IPerf3(ctx, addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("iperf3 over a veth: %+v", r)
		if r.ReceivedBPS <= 0 {
			t.Errorf("iperf3 measured %+v", r)
		}
	})

	t.Run("sysctl", func(t *testing.T) {
		if err := srv.SetSysctl(ctx, "net.ipv4.ip_forward", "1"); err != nil {
			t.Fatal(err)
		}
		if v, err := srv.Sysctl(ctx, "net.ipv4.ip_forward"); err != nil || v != "1" {
			t.Errorf("ip_forward in %s = %q, %v; want 1", srv, v, err)
		}
		if v, err := cli.Sysctl(ctx, "net.ipv4.ip_forward"); err != nil || v != "0" {
			t.Errorf("ip_forward in %s = %q, %v; want 0 (its own)", cli, v, err)
		}
	})
}
