package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// hookScript is the only script the lab ever gives a DHCP client. Clients'
// default hook scripts rewrite addresses, routes and /etc/resolv.conf; this
// one writes the client's environment (NUL-separated) to a numbered file
// and changes nothing.
const hookScript = `#!/bin/sh
# Written by the homerouter lab: record the DHCP client's environment,
# change nothing (no addresses, routes or resolv.conf).
case "$HR_LAB_OUT" in
/*) ;;
*) echo "lab hook: HR_LAB_OUT must be an absolute path, got '$HR_LAB_OUT'" >&2; exit 1 ;;
esac
n=0
while [ -e "$HR_LAB_OUT.$n" ]; do n=$((n+1)); done
HR_LAB_EVENT="$1" env -0 > "$HR_LAB_OUT.$n.tmp" && mv "$HR_LAB_OUT.$n.tmp" "$HR_LAB_OUT.$n"
exit 0
`

// clientFiles writes a fresh hook script and returns its path and the
// prefix of the event files it will write.
func (l *Lab) clientFiles(client string) (script, out string, err error) {
	l.mu.Lock()
	l.counter++
	seq := l.counter
	l.mu.Unlock()
	base := fmt.Sprintf("%s-%d", client, seq)
	script, err = l.WriteFile(base+"-hook.sh", hookScript, 0o755)
	if err != nil {
		return "", "", err
	}
	return script, filepath.Join(l.dir, base+"-env"), nil
}

// shellVars are dropped from recorded environments: they come from the
// shell or the lab, not from the DHCP client.
var shellVars = map[string]bool{"HR_LAB_OUT": true, "PATH": true, "PWD": true, "SHLVL": true, "_": true, "OLDPWD": true}

// clientEnv is the whole environment a DHCP client gets: the host's
// environment has no business in a lease.
func clientEnv(out string) []string {
	return []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HR_LAB_OUT=" + out}
}

// HookEvents reads the environments the hook script recorded under prefix
// out, oldest first. Each has HR_LAB_EVENT set to the script's first
// argument (udhcpc's event; dhclient passes it in "reason" instead).
func HookEvents(out string) ([]map[string]string, error) {
	var evs []map[string]string
	for i := 0; ; i++ {
		b, err := os.ReadFile(out + "." + strconv.Itoa(i))
		if os.IsNotExist(err) {
			return evs, nil
		}
		if err != nil {
			return evs, fmt.Errorf("lab: read hook events: %w", err)
		}
		ev := map[string]string{}
		for _, kv := range bytes.Split(b, []byte{0}) {
			k, v, ok := strings.Cut(string(kv), "=")
			if ok && !shellVars[k] {
				ev[k] = v
			}
		}
		evs = append(evs, ev)
	}
}

// eventNames lists events for error messages.
func eventNames(evs []map[string]string) string {
	var names []string
	for _, ev := range evs {
		names = append(names, ev["HR_LAB_EVENT"]+ev["reason"])
	}
	return strings.Join(names, ",")
}

// UDHCPC runs BusyBox udhcpc once on iface in n (`-f -q -n`: obtain one
// lease, then exit) with the lab's recording hook script, and returns the
// environment udhcpc gave the script for the "bound" event: ip, subnet,
// router, dns, lease, serverid, domain, ... Nothing is configured on iface.
func (l *Lab) UDHCPC(ctx context.Context, n *Netns, iface string, extra ...string) (map[string]string, error) {
	script, out, err := l.clientFiles("udhcpc")
	if err != nil {
		return nil, err
	}
	args := append([]string{"-f", "-q", "-n", "-i", iface, "-s", script, "-t", "10", "-T", "1"}, extra...)
	cmd := n.Command(ctx, "udhcpc", args...)
	cmd.Env = clientEnv(out)
	b, runErr := cmd.CombinedOutput()
	l.logf("lab: udhcpc on %s in %s: %s", iface, n, bytes.TrimSpace(b))
	evs, err := HookEvents(out)
	if err != nil {
		return nil, err
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i]["HR_LAB_EVENT"] == "bound" || evs[i]["HR_LAB_EVENT"] == "renew" {
			return evs[i], nil
		}
	}
	return nil, fmt.Errorf("lab: udhcpc on %s in %s: no lease (events %q, exit %v): %s", iface, n, eventNames(evs), runErr, bytes.TrimSpace(b))
}

// DHClient6 runs ISC `dhclient -6` on iface in n with flags (default "-P":
// prefix delegation only; add "-N" for an address too) until the hook
// script reports BOUND6, then stops it and returns that environment:
// new_ip6_prefix, new_ip6_address, new_dhcp6_name_servers, ... Lease, pid
// and DUID files live in the lab's dir; nothing is configured on iface.
func (l *Lab) DHClient6(ctx context.Context, n *Netns, iface string, flags ...string) (map[string]string, error) {
	if len(flags) == 0 {
		flags = []string{"-P"}
	}
	if err := n.WaitLinkLocal(ctx, iface); err != nil {
		return nil, err
	}
	script, out, err := l.clientFiles("dhclient6")
	if err != nil {
		return nil, err
	}
	conf, err := l.WriteFile(filepath.Base(out)+".conf",
		"request dhcp6.name-servers, dhcp6.domain-search;\n", 0o644)
	if err != nil {
		return nil, err
	}
	args := append([]string{"-6"}, flags...)
	// dhclient gives its script a fresh environment: pass HR_LAB_OUT with -e.
	args = append(args, "-d", "-v",
		"-e", "HR_LAB_OUT="+out,
		"-cf", conf,
		"-sf", script,
		"-lf", out+".leases",
		"-pf", out+".pid",
		"-df", out+".duid",
		iface)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := n.Command(runCtx, "dhclient", args...)
	cmd.Env = clientEnv(out)
	logf, err := os.Create(out + ".log")
	if err != nil {
		return nil, fmt.Errorf("lab: dhclient -6 log: %w", err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start dhclient -6 in %s: %w", n, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cancel() // SIGKILLs dhclient's process group
		<-exited
	}()

	// dhclient runs the script once per IA (address, prefix): merge the
	// bound events until every kind of lease asked for has arrived.
	var want []string
	for _, f := range flags {
		switch f {
		case "-P":
			want = append(want, "new_ip6_prefix")
		case "-N":
			want = append(want, "new_ip6_address")
		}
	}
	if len(want) == 0 {
		want = []string{"new_ip6_address"}
	}
	bound := map[string]string{}
	err = WaitFor(ctx, fmt.Sprintf("dhclient -6 lease on %s in %s", iface, n), func() error {
		evs, err := HookEvents(out)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			switch ev["reason"] {
			case "BOUND6", "REBIND6", "RENEW6", "REBOOT6":
				for k, v := range ev {
					bound[k] = v
				}
			}
		}
		var lacking []string
		for _, k := range want {
			if bound[k] == "" {
				lacking = append(lacking, k)
			}
		}
		if len(lacking) == 0 {
			return nil
		}
		select {
		case <-exited:
			return Abort(fmt.Errorf("dhclient exited, events %q", eventNames(evs)))
		default:
		}
		return fmt.Errorf("no %s yet, events %q", strings.Join(lacking, ", "), eventNames(evs))
	})
	if err != nil {
		log, _ := os.ReadFile(out + ".log")
		return nil, fmt.Errorf("%w; dhclient output:\n%s", err, log)
	}
	return bound, nil
}

// SortedEnv formats an environment for a log line, keys sorted.
func SortedEnv(env map[string]string) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q ", k, env[k])
	}
	return strings.TrimSpace(b.String())
}

// DHClient4 runs ISC `dhclient -4 -1` on iface in n, with the lab's
// recording hook script and its own config, lease and pid files in the
// lab's dir, until the script reports BOUND (or REBOOT, RENEW), then stops
// it and returns that environment: new_ip_address, new_routers,
// new_domain_name_servers, new_domain_name, ... Nothing is configured on
// iface.
func (l *Lab) DHClient4(ctx context.Context, n *Netns, iface string) (map[string]string, error) {
	script, out, err := l.clientFiles("dhclient4")
	if err != nil {
		return nil, err
	}
	conf, err := l.WriteFile(filepath.Base(out)+".conf",
		"request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, domain-search, host-name;\n", 0o644)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// dhclient gives its script a fresh environment: pass HR_LAB_OUT with -e.
	cmd := n.Command(runCtx, "dhclient", "-4", "-1", "-d", "-v",
		"-e", "HR_LAB_OUT="+out,
		"-cf", conf,
		"-sf", script,
		"-lf", out+".leases",
		"-pf", out+".pid",
		iface)
	cmd.Env = clientEnv(out)
	logf, err := os.Create(out + ".log")
	if err != nil {
		return nil, fmt.Errorf("lab: dhclient -4 log: %w", err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start dhclient -4 in %s: %w", n, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cancel() // SIGKILLs dhclient's process group
		<-exited
	}()
	var bound map[string]string
	err = WaitFor(ctx, fmt.Sprintf("dhclient -4 lease on %s in %s", iface, n), func() error {
		evs, err := HookEvents(out)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			switch ev["reason"] {
			case "BOUND", "REBOOT", "RENEW":
				bound = ev
				return nil
			}
		}
		select {
		case <-exited:
			return Abort(fmt.Errorf("dhclient exited, events %q", eventNames(evs)))
		default:
		}
		return fmt.Errorf("no lease yet, events %q", eventNames(evs))
	})
	if err != nil {
		log, _ := os.ReadFile(out + ".log")
		return nil, fmt.Errorf("%w; dhclient output:\n%s", err, log)
	}
	return bound, nil
}

// DHCPCD runs dhcpcd once (`-4 -1 -B`) on iface in n with the lab's hook
// script, and returns the BOUND event's variables. dhcpcd writes its lease
// and pid files under /var/lib/dhcpcd and /run; so that nothing reaches
// the host, it runs with tmpfs mounted over both, in the private mount
// namespace `ip netns exec` gives each command. It configures the address
// on iface, inside n.
func (l *Lab) DHCPCD(ctx context.Context, n *Netns, iface string) (map[string]string, error) {
	hook, out, err := l.clientFiles("dhcpcd")
	if err != nil {
		return nil, err
	}
	// dhcpcd gives its script only its own variables: a wrapper passes
	// HR_LAB_OUT on.
	script, err := l.WriteFile(filepath.Base(out)+"-wrap.sh",
		"#!/bin/sh\nHR_LAB_OUT='"+out+"' exec '"+hook+"' \"$@\"\n", 0o755)
	if err != nil {
		return nil, err
	}
	conf, err := l.WriteFile(filepath.Base(out)+".conf",
		"option subnet_mask, routers, domain_name_servers, domain_name, domain_search\nnohook resolv.conf\nnoarp\n", 0o644)
	if err != nil {
		return nil, err
	}
	cmd := n.Command(ctx, "sh", "-c", `mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib/dhcpcd && exec dhcpcd -4 -1 -B -L -t 20 -f "$1" -c "$2" "$3"`,
		"sh", conf, script, iface)
	cmd.Env = clientEnv(out)
	b, runErr := cmd.CombinedOutput()
	l.logf("lab: dhcpcd on %s in %s: %s", iface, n, bytes.TrimSpace(b))
	evs, err := HookEvents(out)
	if err != nil {
		return nil, err
	}
	for _, ev := range evs {
		if ev["reason"] == "BOUND" && ev["new_ip_address"] != "" {
			return ev, nil
		}
	}
	return nil, fmt.Errorf("lab: dhcpcd on %s in %s: no lease (events %q, exit %v): %s", iface, n, eventNames(evs), runErr, bytes.TrimSpace(b))
}
