package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
	"github.com/homerouter/homerouter/state"
)

// TestCaptureLab reads the router's packet capture with tshark, as a
// person debugging their ISP would, with the ISP's real dnsmasq, dhcpd
// -6 and radvd and a LAN client's udhcpc:
//   - the ring holds the uplink's DHCPv4 DISCOVER, OFFER, REQUEST and ACK,
//     its DHCPv6 SOLICIT, ADVERTISE, REQUEST and REPLY, the ISP's router
//     advertisements, and on lan0 the client's exchange and the router's
//     advertisements, each on its link by name;
//   - a stream opened before the client asks shows its lease while the
//     download is still open;
//   - after a restart, the previous run's packets are served again;
//   - /metrics counts the packets per link.
func TestCaptureLab(t *testing.T) {
	bin := lab.RouterBinary(t)
	lab.Require(t, "dnsmasq", "dhcpd", "radvd", "udhcpc", "curl", "tshark")
	l := lab.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := lab.NewHome(l, lab.HomeOptions{RouterBinary: bin})
	if err != nil {
		t.Fatal(err)
	}
	// The uplink's DHCPv4 lease and delegated prefix: the first is on
	// /health.json when it is 200, the second in the tree after it.
	if err := h.WaitRouterHealthy(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitFor(ctx, "a delegated prefix on lan0", func() error {
		out, err := h.Router.Run(ctx, "ip", "-6", "addr", "show", "dev", "lan0", "scope", "global")
		if err != nil || !strings.Contains(out, "fd00:78:") {
			return fmt.Errorf("lan0: %q %v", out, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pw, err := state.ReadPassword(h.PermDir)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + lab.RouterLANIP
	// get downloads path from the router, on the LAN, into a file.
	get := func(ctx context.Context, path, file string) error {
		_, err := h.LAN.Run(ctx, "curl", "-sS", "--fail", "-u", ":"+pw, "-o", file, url+path)
		return err
	}

	// The LAN client talks to the router from an address of its own
	// (udhcpc's lease configures nothing: the lab's hook only records).
	if _, err := h.LAN.Run(ctx, "ip", "addr", "add", "10.42.0.250/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	// A live stream, open from before the LAN client asks for a lease.
	live := filepath.Join(l.Dir(), "live.pcapng")
	stream, err := l.Start(h.LAN, "curl", "-sS", "-N", "--fail", "-u", ":"+pw, "-o", live, url+"/capture.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	// streaming says why the download is no longer open, if it is not.
	streaming := func() error {
		select {
		case <-stream.Exited():
			return fmt.Errorf("the stream ended: %v: %s", stream.Err(), stream.Output())
		default:
			return nil
		}
	}
	if err := lab.WaitFor(ctx, "the stream's header", func() error {
		if err := streaming(); err != nil {
			return lab.Abort(err)
		}
		if fi, err := os.Stat(live); err != nil || fi.Size() == 0 {
			return fmt.Errorf("%s: %v", live, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.UDHCPC(ctx, h.LAN, "eth0", "-x", "hostname:alpha"); err != nil {
		t.Fatal(err)
	}

	t.Run("the live stream shows the new lease", func(t *testing.T) {
		if err := lab.WaitFor(ctx, "the LAN client's ACK in the live stream", func() error {
			if err := streaming(); err != nil {
				return lab.Abort(err)
			}
			got, err := tsharkMessages(ctx, live)
			if err != nil {
				return err
			}
			if !slices.Contains(got["lan0"], "dhcp ACK") {
				return fmt.Errorf("lan0 has %q", got["lan0"])
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		if err := streaming(); err != nil {
			t.Errorf("after the lease: %v", err)
		}
	})
	stream.Stop(time.Second)

	// want are the messages each link must show, in tshark's words.
	want := map[string][]string{
		"uplink0": {"dhcp DISCOVER", "dhcp OFFER", "dhcp REQUEST", "dhcp ACK",
			"dhcpv6 SOLICIT", "dhcpv6 ADVERTISE", "dhcpv6 REQUEST", "dhcpv6 REPLY", "icmpv6 RA"},
		"lan0": {"dhcp DISCOVER", "dhcp OFFER", "dhcp REQUEST", "dhcp ACK", "icmpv6 RA"},
	}
	check := func(t *testing.T, file string) {
		t.Helper()
		got, err := tsharkMessages(ctx, file)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("tshark -r %s: uplink0 %q, lan0 %q", filepath.Base(file), got["uplink0"], got["lan0"])
		for link, msgs := range want {
			for _, m := range msgs {
				if !slices.Contains(got[link], m) {
					t.Errorf("%s: no %s in %q", link, m, got[link])
				}
			}
		}
		for link := range got {
			if _, ok := want[link]; !ok {
				t.Errorf("packets on a link %q", link)
			}
		}
	}
	t.Run("the ring holds both links' exchanges", func(t *testing.T) {
		file := filepath.Join(l.Dir(), "ring.pcapng")
		if err := get(ctx, "/capture.pcapng?live=0", file); err != nil {
			t.Fatal(err)
		}
		check(t, file)
	})

	t.Run("metrics count per link", func(t *testing.T) {
		// The counters are published every 5 s.
		if err := lab.WaitFor(ctx, "packets counted on both links in /metrics", func() error {
			out, err := h.LAN.Run(ctx, "curl", "-sS", "--fail", url+"/metrics")
			if err != nil {
				return err
			}
			for _, link := range []string{"uplink0", "lan0"} {
				prefix := `homerouter_capture_packets_total{interface="` + link + `"} `
				i := strings.Index(out, prefix)
				if i < 0 || strings.HasPrefix(out[i+len(prefix):], "0\n") {
					return fmt.Errorf("none on %s", link)
				}
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	})

	t.Run("no capture without the password", func(t *testing.T) {
		out, _ := h.LAN.Run(ctx, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url+"/capture.pcapng?live=0")
		if out != "401" {
			t.Errorf("without the password: %s, want 401", out)
		}
	})

	t.Run("the previous run's packets after a restart", func(t *testing.T) {
		h.RouterProc.Stop(10 * time.Second)
		if h.RouterProc, err = l.Start(h.Router, bin, "run", "-perm", h.PermDir, "-http", ":80"); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(l.Dir(), "previous.pcapng")
		if err := lab.WaitFor(ctx, "the previous run's capture", func() error {
			return get(ctx, "/capture-previous.pcapng", file)
		}); err != nil {
			t.Fatal(err)
		}
		check(t, file)
	})
}

// tsharkMessages reads a pcapng file with tshark and returns, per
// interface name, its configuration messages as "dhcp ACK", "dhcpv6
// REPLY", "icmpv6 RA" and so on. A file cut short (a stream still being
// written) yields what it holds.
func tsharkMessages(ctx context.Context, file string) (map[string][]string, error) {
	cmd := exec.CommandContext(ctx, "tshark", "-n", "-r", file, "-T", "fields", "-E", "separator=|",
		"-e", "frame.interface_name", "-e", "dhcp.option.dhcp", "-e", "dhcpv6.msgtype", "-e", "icmpv6.type")
	out, err := cmd.Output()
	if err != nil && len(out) == 0 {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return nil, fmt.Errorf("tshark -r %s: %v: %s", file, err, stderr)
	}
	names := map[string]map[string]string{
		"dhcp":   {"1": "DISCOVER", "2": "OFFER", "3": "REQUEST", "4": "DECLINE", "5": "ACK", "6": "NAK", "7": "RELEASE", "8": "INFORM"},
		"dhcpv6": {"1": "SOLICIT", "2": "ADVERTISE", "3": "REQUEST", "4": "CONFIRM", "5": "RENEW", "6": "REBIND", "7": "REPLY", "8": "RELEASE"},
		"icmpv6": {"133": "RS", "134": "RA", "135": "NS", "136": "NA"},
	}
	got := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 {
			continue
		}
		for i, proto := range []string{"dhcp", "dhcpv6", "icmpv6"} {
			if v := f[i+1]; v != "" {
				name := names[proto][v]
				if name == "" {
					name = v
				}
				if m := proto + " " + name; !slices.Contains(got[f[0]], m) {
					got[f[0]] = append(got[f[0]], m)
				}
			}
		}
	}
	return got, nil
}
