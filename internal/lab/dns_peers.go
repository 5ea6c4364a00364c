package lab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

// This file has the DNS peers of the DNS tests and bench: the ISP's
// dnsmasq with the records those need, and the resolvers homerouter is
// compared with (dnsmasq and unbound as caching forwarders).

// The ISP's extra DNS records (StartDnsmasqDNS serves them).
const (
	// ISPLocalTTL is the TTL of the ISP's answers. dnsmasq's own default
	// for the records it serves from its config is 0, which no cache
	// keeps; a real ISP's resolver hands out TTLs of minutes.
	ISPLocalTTL = 300
	// ISPShortName has a TTL of ISPShortTTL seconds: serve-stale tests
	// outlive it.
	ISPShortName = "short.isp.test"
	ISPShortA    = "10.77.0.55"
	ISPShortTTL  = 5
	// ISPRebindName points into the lab's LAN (192.168.42.0/24): a
	// DNS-rebinding answer that homerouter must not pass on. It is not
	// under isp.test, because the ISP's own names point into 10.77.0.0/24
	// and fd00:77::/64, private and ULA ranges too: a test that wants
	// them passed on lists isp.test in dns.json's rebind_allow.
	ISPRebindName = "rebind.attacker.test"
	ISPRebindA    = "192.168.42.7"
	// ISPAllowedName points into the LAN too, under a domain a test
	// lists in dns.json's rebind_allow.
	ISPAllowedName = "media.plex.direct"
	ISPAllowedA    = "192.168.42.8"
)

// DNSPeerOptions are the extras of StartDnsmasqDNS. The zero value serves
// the records above with ISPLocalTTL and logs every query.
type DNSPeerOptions struct {
	// HostsFile is a hosts file (ADDR NAME lines) served in addition,
	// e.g. the bench's names.
	HostsFile string
	// Quiet leaves out --log-queries, for a bench: logging each query
	// slows dnsmasq and fills the test's memory.
	Quiet bool
}

// StartDnsmasqDNS starts the ISP's dnsmasq as StartDnsmasq does (the same
// DHCPv4 service and records, the same lease file), with the extra DNS
// records of the DNS tests: ISPShortName, ISPRebindName, ISPAllowedName
// and opt.HostsFile, and ISPLocalTTL on every answer. With --log-queries
// each query it receives is a line "query[TYPE] NAME from ADDR" in
// h.Dnsmasq.Output() (see DnsmasqQueries). Stop h.Dnsmasq first when one
// runs.
func (h *Home) StartDnsmasqDNS(ctx context.Context, opt DNSPeerOptions) error {
	args := []string{
		"--local-ttl=" + strconv.Itoa(ISPLocalTTL),
		"--host-record=" + ISPShortName + "," + ISPShortA + "," + strconv.Itoa(ISPShortTTL),
		"--host-record=" + ISPRebindName + "," + ISPRebindA,
		"--host-record=" + ISPAllowedName + "," + ISPAllowedA,
	}
	if !opt.Quiet {
		args = append(args, "--log-queries")
	}
	if opt.HostsFile != "" {
		args = append(args, "--addn-hosts="+opt.HostsFile)
	}
	return h.startDnsmasq(ctx, args...)
}

// DnsmasqQueries counts the queries for name of type qtype ("A", "AAAA",
// "PTR") in the log of a dnsmasq started with --log-queries, as it
// stands: lines "query[A] www.isp.test from 10.77.0.100". Names compare
// case-insensitively, as DNS does (dnsmasq logs what it was asked).
func DnsmasqQueries(p *Process, qtype, name string) int {
	want := strings.ToLower("query[" + qtype + "] " + strings.TrimSuffix(name, ".") + " from ")
	n := 0
	for _, line := range strings.Split(strings.ToLower(p.Output()), "\n") {
		if strings.Contains(line, want) {
			n++
		}
	}
	return n
}

// DnsmasqQueried lists the names (lower case) a dnsmasq started with
// --log-queries was asked for, in order, with their type: "A
// www.isp.test".
func DnsmasqQueried(p *Process) []string {
	var r []string
	for _, line := range strings.Split(p.Output(), "\n") {
		_, rest, ok := strings.Cut(line, "query[")
		if !ok {
			continue
		}
		qtype, rest, ok := strings.Cut(rest, "] ")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, " ")
		r = append(r, qtype+" "+strings.ToLower(name))
	}
	return r
}

// StartDnsmasqForwarder starts dnsmasq in n as a caching DNS forwarder
// (no DHCP) on listen, forwarding to upstream with a cache of cacheSize
// entries, and waits until it listens: the resolver homerouter's DNS is
// compared with.
func (l *Lab) StartDnsmasqForwarder(ctx context.Context, n *Netns, listen netip.AddrPort, upstream string, cacheSize int) (*Process, error) {
	l.mu.Lock()
	l.counter++
	seq := l.counter
	l.mu.Unlock()
	p, err := l.Start(n, "dnsmasq",
		"-k",
		"--conf-file=/dev/null",
		"--no-resolv",
		"--no-hosts",
		"--bind-interfaces",
		"--listen-address="+listen.Addr().String(),
		"--port="+strconv.Itoa(int(listen.Port())),
		"--server="+upstream,
		"--cache-size="+strconv.Itoa(cacheSize),
		"--user=root",
		"--log-facility=-",
		"--pid-file="+filepath.Join(l.Dir(), fmt.Sprintf("dnsmasq-fwd-%d.pid", seq)),
	)
	if err != nil {
		return nil, fmt.Errorf("lab: start dnsmasq forwarder in %s: %w", n, err)
	}
	if err := WaitListening(ctx, n, p, "udp", listen); err != nil {
		return nil, err
	}
	return p, nil
}

// StartUnbound starts unbound in n on listen as a caching forwarder to
// upstream, and waits until it listens. Everything else is unbound's
// default, except what the lab needs: no daemon, no chroot or user
// switch, files in the lab's dir, queries allowed from anywhere (the
// default allows only localhost), no remote control, and "test." not
// served locally (unbound answers that RFC 6761 zone itself by default,
// and the ISP's names are under isp.test).
func (l *Lab) StartUnbound(ctx context.Context, n *Netns, listen netip.AddrPort, upstream string) (*Process, error) {
	l.mu.Lock()
	l.counter++
	seq := l.counter
	l.mu.Unlock()
	conf := fmt.Sprintf(`# homerouter lab: unbound with its defaults, forwarding to the ISP.
server:
	interface: %s@%d
	port: %d
	access-control: 0.0.0.0/0 allow
	access-control: ::/0 allow
	do-daemonize: no
	username: ""
	chroot: ""
	directory: "%s"
	pidfile: "%s"
	use-syslog: no
	logfile: ""
	verbosity: 1
	local-zone: "test." nodefault
remote-control:
	control-enable: no
forward-zone:
	name: "."
	forward-addr: %s
`, listen.Addr(), listen.Port(), listen.Port(), l.Dir(), filepath.Join(l.Dir(), fmt.Sprintf("unbound-%d.pid", seq)), upstream)
	path, err := l.WriteFile(fmt.Sprintf("unbound-%d.conf", seq), conf, 0o644)
	if err != nil {
		return nil, err
	}
	p, err := l.Start(n, "unbound", "-d", "-c", path)
	if err != nil {
		return nil, fmt.Errorf("lab: start unbound in %s: %w", n, err)
	}
	if err := WaitListening(ctx, n, p, "udp", listen); err != nil {
		return nil, err
	}
	return p, nil
}
