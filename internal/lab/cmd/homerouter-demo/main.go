// Command homerouter-demo boots the router's image under QEMU between the
// lab's simulated ISP and a LAN client, and shows it working (`make
// demo`): the router's console, the client's DHCP lease, a DNS answer
// through the router, the ISP's web page through the router's NAT and
// /health.json, as they happen. It stays until
// Ctrl-C, then removes everything it made.
//
// The topology is the lab's home: the ISP namespace (dnsmasq for DHCPv4
// and DNS, dhcpd -6 delegating prefixes, radvd), the LAN namespace with a
// client, and between them a "cables" namespace where QEMU runs, each of
// its taps bridged to a veth: uplink to the ISP, LAN to the client. /perm
// is a fresh ext4 disk, so the first boot writes the default
// interfaces.json (first NIC uplink0, second lan0 192.168.42.1/24).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
	"github.com/homerouter/homerouter/services/httpd"
	"github.com/homerouter/homerouter/state"
)

func main() {
	if err := run(); err != nil {
		log.Fatalf("homerouter-demo: %v", err)
	}
}

// routerLAN is lan0's address in the first-boot default.
const routerLAN = "192.168.42.1"

func run() error {
	kernel := flag.String("kernel", "build/vmlinuz", "the kernel")
	initrd := flag.String("initrd", "build/initramfs.cpio.gz", "the initramfs (make image)")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("must run as root (network namespaces, taps)")
	}
	for _, f := range []string{*kernel, *initrd} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s missing: run make image", f)
		}
	}
	if err := lab.Sweep(); err != nil {
		log.Printf("sweep leftovers of earlier labs: %v", err)
	}
	l, err := lab.New(func(string, ...any) {}) // the lab's own chatter would drown the console
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer func() {
		fmt.Println("demo: cleaning up")
		if err := l.Close(); err != nil {
			log.Printf("cleanup: %v", err)
		}
	}()

	say("building the ISP (dnsmasq, dhcpd -6, radvd, the web server www.isp.test) and the LAN")
	h, err := lab.NewHome(l, lab.HomeOptions{NoRouter: true})
	if err != nil {
		return err
	}
	if _, err := h.ISP.Run(ctx, "ip", "addr", "add", lab.ISPWWWA+"/32", "dev", "isp0"); err != nil {
		return err
	}
	if _, err := h.ISP.Run(ctx, "ip", "-6", "addr", "add", lab.ISPWWWAAAA+"/128", "dev", "isp0", "nodad"); err != nil {
		return err
	}
	for _, a := range []string{lab.ISPWWWA, lab.ISPWWWAAAA} {
		if _, err := l.StartWebServer(ctx, h.ISP, netip.AddrPortFrom(netip.MustParseAddr(a), 80), "Welcome to www.isp.test"); err != nil {
			return err
		}
	}
	cables := h.Router
	for _, args := range [][]string{
		{"link", "add", "brwan", "type", "bridge"},
		{"link", "add", "brlan", "type", "bridge"},
		{"link", "set", "wan", "master", "brwan"},
		{"link", "set", "lan", "master", "brlan"},
	} {
		if _, err := cables.Run(ctx, "ip", args...); err != nil {
			return err
		}
	}
	for _, tap := range []string{"tapwan", "taplan"} {
		if err := l.Tap(cables, tap); err != nil {
			return err
		}
	}
	for _, args := range [][]string{
		{"link", "set", "tapwan", "master", "brwan"},
		{"link", "set", "taplan", "master", "brlan"},
		{"link", "set", "brwan", "up"},
		{"link", "set", "brlan", "up"},
		{"link", "set", "wan", "up"},
		{"link", "set", "lan", "up"},
	} {
		if _, err := cables.Run(ctx, "ip", args...); err != nil {
			return err
		}
	}
	// /perm starts with one file: the lab's ISP uses private addresses
	// (10.x, fd00::), which the resolver's rebinding protection would
	// otherwise keep from the LAN.
	perm, err := lab.PermImage(l.Dir(), map[string]string{"dns.json": `{"rebind_allow": ["isp.test"]}` + "\n"})
	if err != nil {
		return err
	}

	say("booting the router under QEMU (TCG: about 10 s); its console follows, prefixed by |")
	start := time.Now()
	vm, err := l.StartVM(cables, lab.VMOptions{
		Kernel: *kernel, Initrd: *initrd, Append: "console=ttyS0 panic=-1 quiet",
		Disk: perm, UplinkTap: "tapwan", LANTap: "taplan",
		// A hardware watchdog, as a router should have (PID 1 arms it).
		QEMUArgs: []string{"-device", "i6300esb"},
	})
	if err != nil {
		return err
	}
	consoleDone := make(chan struct{})
	go func() {
		streamConsole(vm)
		close(consoleDone)
	}()

	// The client: a DHCP lease, a DNS answer through the router, health.
	go func() {
		if err := client(ctx, l, h, vm, start); err != nil && ctx.Err() == nil {
			say("client: %v", err)
		}
	}()

	select {
	case <-ctx.Done():
		say("interrupted: ctrl-alt-del to the router (a clean shutdown)")
		if err := vm.Shutdown(30 * time.Second); err != nil {
			say("%v", err)
			return nil // the lab's cleanup kills it
		}
		<-consoleDone // the console's last lines
	case <-vm.Exited():
		<-consoleDone
		say("the VM stopped: %v", vm.Err())
	}
	return nil
}

func say(format string, args ...any) {
	fmt.Printf("demo: "+format+"\n", args...)
}

// streamConsole prints the router's console as it grows, until the VM
// has exited and all it printed is shown.
func streamConsole(vm *lab.VM) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	printed := 0
	var partial string
	for exited := false; ; {
		select {
		case <-vm.Exited():
			exited = true
		case <-t.C:
		}
		out := vm.Output()
		if exited && len(out) <= printed {
			if partial != "" {
				fmt.Printf("| %s\n", partial)
			}
			return
		}
		if len(out) <= printed {
			continue
		}
		partial += out[printed:]
		printed = len(out)
		for {
			i := strings.IndexByte(partial, '\n')
			if i < 0 {
				break
			}
			fmt.Printf("| %s\n", strings.TrimRight(partial[:i], "\r"))
			partial = partial[i+1:]
		}
	}
}

func client(ctx context.Context, l *lab.Lab, h *lab.Home, vm *lab.VM, start time.Time) error {
	var env map[string]string
	for {
		var err error
		if env, err = l.UDHCPC(ctx, h.LAN, "eth0", "-t", "120"); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	say("LAN client: DHCP lease %s/%s, router %s, DNS %s, domain %q, lease %ss (%d ms after power-on)",
		env["ip"], env["mask"], env["router"], env["dns"], env["domain"], env["lease"], time.Since(start).Milliseconds())
	for _, args := range [][]string{
		{"addr", "add", env["ip"] + "/" + env["mask"], "dev", "eth0"},
		{"route", "add", "default", "via", env["router"]},
	} {
		if _, err := h.LAN.Run(ctx, "ip", args...); err != nil {
			return err
		}
	}

	// The uplink's lease brings the ISP's resolver and the default route.
	for _, line := range []string{"firewall: ruleset in force", "dhcp4: bound to", "added route 0.0.0.0/0"} {
		if err := vm.WaitOutput(ctx, line); err != nil {
			return err
		}
	}
	// The client resolves through the router, as its lease says.
	if err := h.LAN.SetResolvConf("nameserver " + env["dns"] + "\nsearch " + env["domain"] + "\n"); err != nil {
		return err
	}
	for _, name := range []string{"www.isp.test", "homerouter.lan"} {
		out, err := h.LAN.Run(ctx, "dig", "+time=2", "+tries=3", "@"+env["dns"], name, "A")
		if err != nil {
			say("LAN client: DNS %s through the router: %v", name, err)
		} else {
			say("LAN client: %s, resolved by the router (%s):\n%s", name, env["dns"], indent(answerSection(out)))
		}
	}
	// The ISP's web server, www.isp.test, through the router's NAT: the
	// ISP has no route to the home's subnet, and sees the router's
	// uplink address as the client.
	body, err := h.LAN.HTTPGet(ctx, "http://www.isp.test/", 10*time.Second)
	if err != nil {
		say("LAN client: GET http://www.isp.test/ through the router: %v", err)
	} else {
		seen, _ := h.LAN.HTTPGet(ctx, "http://www.isp.test"+lab.RemotePath, 10*time.Second)
		say("LAN client: GET http://www.isp.test/ through the router's NAT: %q; the ISP's server saw the request come from %s", strings.TrimSpace(body), strings.TrimSpace(seen))
	}
	if err := ipv6(ctx, h); err != nil {
		say("LAN client: IPv6: %v", err)
	}
	// Health as the status page shows it: the check tree, once every
	// check has had its first look (the image checks every 10 s).
	var health httpd.Health
	err = lab.WaitFor(ctx, "a healthy router", func() error {
		out, err := h.LAN.Run(ctx, "curl", "-sS", "--max-time", "10", "http://"+routerLAN+"/health.json")
		if err != nil {
			return err
		}
		health = httpd.Health{}
		if err := json.Unmarshal([]byte(out), &health); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if health.FirstError != "" {
			return errors.New(health.FirstError)
		}
		return nil
	})
	if err != nil {
		say("LAN client: /health.json: %v", err)
	}
	say("LAN client: GET http://%s/health.json: version %s, first_error %q; the checks:\n%s", routerLAN, health.Version, health.FirstError, indent(checkTree(health.Checks, 0)))
	if err := showCapture(ctx, l, h, vm); err != nil {
		say("LAN client: the router's packet capture: %v", err)
	}
	say("the router is up: its status page is http://%s/ (try `ip netns exec %s curl -s http://%s/health.json`); Ctrl-C stops it", routerLAN, h.LAN.Name(), routerLAN)
	return nil
}

// passwordLine is how the router shows its password on the console, at
// its first boot.
var passwordLine = regexp.MustCompile(`the router's password, for updates and backups, is (\S+)`)

// showCapture downloads the router's capture of its configuration
// packets, as a person would for Wireshark, and shows what tshark reads
// in it: the boot's DHCP and DHCPv6 exchanges on uplink0 and the LAN
// client's on lan0.
func showCapture(ctx context.Context, l *lab.Lab, h *lab.Home, vm *lab.VM) error {
	m := passwordLine.FindStringSubmatch(vm.Output())
	if m == nil {
		return errors.New("no password on the console")
	}
	file := filepath.Join(l.Dir(), "capture.pcapng")
	url := "http://" + routerLAN + "/capture.pcapng?live=0"
	if _, err := h.LAN.Run(ctx, "curl", "-sS", "--fail", "--max-time", "10", "-u", ":"+m[1], "-o", file, url); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "tshark", "-n", "-r", file, "-T", "fields", "-E", "separator=/t",
		"-e", "frame.interface_name", "-e", "_ws.col.Protocol", "-e", "_ws.col.Info").Output()
	if err != nil {
		return fmt.Errorf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var dhcp []string
	for _, line := range lines {
		if strings.Contains(line, "DHCP") {
			dhcp = append(dhcp, strings.ReplaceAll(line, "\t", "  "))
		}
	}
	say("LAN client: curl -u :PASSWORD '%s' | tshark: %d packets (DHCP, DHCPv6, neighbour discovery), of which the DHCP ones:\n%s\n"+
		"  (live into Wireshark: curl -N -u :PASSWORD http://%s/capture.pcapng | wireshark -k -i -)",
		url, len(lines), indent(strings.Join(dhcp, "\n")), routerLAN)
	return nil
}

// checkTree writes the check tree as the status page shows it: one line
// per check, indented by depth, with ✔ or ✘ and what it saw or why it
// failed.
func checkTree(c state.HealthCheck, depth int) string {
	mark, why := "✔", c.Summary
	if !c.OK {
		mark = "✘"
	}
	if c.Error != "" {
		why = c.Error
	}
	if c.Notice != "" {
		why = strings.TrimPrefix(why+"; ", "; ") + c.Notice
	}
	line := strings.Repeat("  ", depth) + mark + " " + c.Name
	if why != "" {
		line += ": " + why
	}
	lines := []string{line}
	for _, ch := range c.Children {
		lines = append(lines, checkTree(ch, depth+1))
	}
	return strings.Join(lines, "\n")
}

// ipv6 shows the LAN client's IPv6 as the router's advertisements give
// it: the advertisement, the client's own addresses and default route,
// the advertised resolver, and the ISP's web server over IPv6, which
// sees the client's own address (no NAT for IPv6).
func ipv6(ctx context.Context, h *lab.Home) error {
	var delegated netip.Prefix
	ra, err := h.LAN.WaitAdvert(ctx, "eth0", "a router advertisement with the delegated prefix and a router lifetime", func(ra lab.RouterAdvert) error {
		var ok bool
		if delegated, ok = ra.Delegated(); !ok || ra.RouterLifetime == 0 {
			return fmt.Errorf("got %+v", ra)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var lines []string
	for _, p := range ra.Prefixes {
		lines = append(lines, fmt.Sprintf("prefix %s (preferred %d s, valid %d s)", p.Prefix, p.Preferred, p.Valid))
	}
	lines = append(lines, fmt.Sprintf("router lifetime %d s, RDNSS %v, DNSSL %v, MTU %d, from %s", ra.RouterLifetime, ra.RDNSS, ra.DNSSL, ra.MTU, ra.From))
	say("LAN client: the router's advertisement (rdisc6 eth0):\n%s", indent(strings.Join(lines, "\n")))

	// The ISP routes the delegated prefix to the router, as a real one
	// does: to its uplink's link-local address (EUI-64 of its MAC).
	ll, err := lab.LinkLocal(lab.VMUplinkMAC)
	if err != nil {
		return err
	}
	if err := h.ISP.RouteVia(ctx, netip.PrefixFrom(delegated.Addr(), lab.ISPPDLen).Masked(), ll, "isp0"); err != nil {
		return err
	}
	// Usable: past duplicate address detection, or the client would
	// send from another address.
	if _, err := h.LAN.WaitSLAAC(ctx, "eth0", delegated); err != nil {
		return err
	}
	addrs, err := h.LAN.Run(ctx, "ip", "-6", "-br", "addr", "show", "dev", "eth0")
	if err != nil {
		return err
	}
	route, err := h.LAN.Run(ctx, "ip", "-6", "route", "show", "default")
	if err != nil {
		return err
	}
	say("LAN client: its IPv6 addresses (SLAAC) and default route:\n%s", indent(strings.TrimSpace(addrs)+"\n"+strings.TrimSpace(route)))
	if len(ra.RDNSS) > 0 {
		out, err := h.LAN.Run(ctx, "dig", "+time=2", "+tries=3", "@"+ra.RDNSS[0].String(), "www.isp.test", "AAAA")
		if err != nil {
			return err
		}
		say("LAN client: www.isp.test AAAA, resolved by the advertised resolver (%s):\n%s", ra.RDNSS[0], indent(answerSection(out)))
	}
	body, err := h.LAN.HTTPGet(ctx, "http://["+lab.ISPWWWAAAA+"]/", 10*time.Second)
	if err != nil {
		return fmt.Errorf("GET http://[%s]/ through the router: %v", lab.ISPWWWAAAA, err)
	}
	seen, _ := h.LAN.HTTPGet(ctx, "http://["+lab.ISPWWWAAAA+"]"+lab.RemotePath, 10*time.Second)
	say("LAN client: GET http://[%s]/ over IPv6 through the router's firewall: %q; the ISP's server saw the client's own address %s", lab.ISPWWWAAAA, strings.TrimSpace(body), strings.TrimSpace(seen))
	return nil
}

// answerSection keeps dig's ANSWER SECTION.
func answerSection(out string) string {
	var keep []string
	in := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION"):
			in = true
		case in && strings.TrimSpace(line) == "":
			in = false
		case in:
			keep = append(keep, line)
		}
	}
	if len(keep) == 0 {
		return out
	}
	return strings.Join(keep, "\n")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ")
}
