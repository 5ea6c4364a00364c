package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Addresses and names of the home topology. Tests assert against these, so
// they are constants rather than literals scattered through tests.
const (
	RouterWANMAC = "02:77:00:00:00:01" // router's uplink end ("wan", renamed uplink0 by the router)
	RouterLANMAC = "02:77:00:00:00:02" // router's home end ("lan", renamed lan0)
	ISPMAC       = "02:77:00:00:01:01" // isp0
	LANMAC       = "02:77:00:00:02:01" // the LAN client's eth0

	ISPAddr4     = "10.77.0.1"     // ISP's DHCPv4 server, gateway and DNS server
	ISPPrefix4   = "10.77.0.0/24"  // uplink subnet
	ISPPoolStart = "10.77.0.100"   // first DHCPv4 lease
	ISPPoolEnd   = "10.77.0.200"   // last DHCPv4 lease
	ISPAddr6     = "fd00:77::1"    // ISP's DHCPv6 server address and DNS server
	ISPPrefix6   = "fd00:77::/64"  // uplink prefix (RA and DHCPv6 IA_NA)
	ISPPDPool    = "fd00:78::/48"  // /56 prefixes are delegated from here
	ISPPDLen     = 56              // delegated prefix length
	ISPRecordA   = "10.77.0.53"    // answer for isp.test
	ISPWWWA      = "10.77.0.80"    // answer for www.isp.test
	ISPWWWAAAA   = "fd00:77::80"   // AAAA for www.isp.test
	RouterLANIP  = "10.42.0.1"     // lan0 address in the default interfaces.json
	RouterLANNet = "10.42.0.1/24"  // lan0 address with prefix
	DHCPv4Lease  = 2 * time.Minute // dnsmasq lease time: short, so renewals happen in tests
)

// HomeOptions configures NewHome. The zero value gives the ISP peers and a
// router started from RouterBinary (which must then be set) on port 80.
type HomeOptions struct {
	// RouterBinary is the homerouter binary to run (see RouterBinary).
	RouterBinary string
	// PermDir is the router's /perm. If empty, a dir in the lab's temp
	// dir with the default interfaces.json (DefaultInterfacesJSON) is used.
	PermDir string
	// HTTPAddr is passed as -http; empty means ":80".
	HTTPAddr string
	// NoRouter builds the topology without starting the router, for tests
	// of the peers or tests that run the router themselves.
	NoRouter bool
	// NoPeers skips dnsmasq, dhcpd and radvd on the ISP side.
	NoPeers bool
}

// Home is the standard topology: an ISP namespace with real DHCPv4, DHCPv6
// (with prefix delegation), RA and DNS servers; the router namespace; and a
// LAN namespace with one client interface.
//
//	isp: isp0 ---- wan :router: lan ---- eth0 :lan
type Home struct {
	ISP, Router, LAN *Netns
	// Dnsmasq (DHCPv4 + DNS), DHCPD6 (DHCPv6 + PD) and Radvd are the ISP's
	// peers; nil with NoPeers.
	Dnsmasq, DHCPD6, Radvd *Process
	// RouterProc is the running router; nil with NoRouter.
	RouterProc *Process
	// PermDir is the router's /perm dir.
	PermDir string

	lab *Lab
}

// Peers lists the ISP's peer processes that are running.
func (h *Home) Peers() []*Process {
	var r []*Process
	for _, p := range []*Process{h.Dnsmasq, h.DHCPD6, h.Radvd} {
		if p != nil {
			r = append(r, p)
		}
	}
	return r
}

// DefaultInterfacesJSON is the interfaces.json written when HomeOptions has
// no PermDir: it matches the router's veth ends by MAC and gives lan0
// 10.42.0.1/24.
func DefaultInterfacesJSON() string {
	type iface struct {
		HardwareAddr string `json:"hardware_addr"`
		Name         string `json:"name"`
		Addr         string `json:"addr,omitempty"`
	}
	v := struct {
		Interfaces []iface `json:"interfaces"`
	}{[]iface{
		{HardwareAddr: RouterWANMAC, Name: "uplink0"},
		{HardwareAddr: RouterLANMAC, Name: "lan0", Addr: RouterLANNet},
	}}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err) // static value; cannot fail
	}
	return string(b) + "\n"
}

// NewHome builds the home topology in l. On error the caller still closes
// l, which removes whatever was built.
func NewHome(l *Lab, opt HomeOptions) (*Home, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !opt.NoRouter && opt.RouterBinary == "" {
		return nil, fmt.Errorf("lab: home: RouterBinary not set (and NoRouter false)")
	}
	h := &Home{lab: l}
	var err error
	if h.ISP, err = l.Netns("isp"); err != nil {
		return nil, err
	}
	if h.Router, err = l.Netns("router"); err != nil {
		return nil, err
	}
	if h.LAN, err = l.Netns("lan"); err != nil {
		return nil, err
	}
	if err := h.LAN.SetResolvConf("nameserver " + RouterLANIP + "\n"); err != nil {
		return nil, err
	}
	if err := l.Veth(h.Router, "wan", RouterWANMAC, h.ISP, "isp0", ISPMAC); err != nil {
		return nil, err
	}
	if err := l.Veth(h.Router, "lan", RouterLANMAC, h.LAN, "eth0", LANMAC); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"addr", "add", ISPAddr4 + "/24", "dev", "isp0"},
		{"addr", "add", ISPAddr6 + "/64", "dev", "isp0", "nodad"},
	} {
		if _, err := h.ISP.Run(ctx, "ip", args...); err != nil {
			return nil, fmt.Errorf("lab: home: address isp0: %w", err)
		}
	}
	if !opt.NoPeers {
		if err := h.startPeers(ctx); err != nil {
			return nil, err
		}
	}

	h.PermDir = opt.PermDir
	if h.PermDir == "" {
		h.PermDir = filepath.Join(l.Dir(), "perm")
		if err := os.MkdirAll(h.PermDir, 0o755); err != nil {
			return nil, fmt.Errorf("lab: home: perm dir: %w", err)
		}
		if err := os.WriteFile(filepath.Join(h.PermDir, "interfaces.json"), []byte(DefaultInterfacesJSON()), 0o644); err != nil {
			return nil, fmt.Errorf("lab: home: interfaces.json: %w", err)
		}
	}
	if !opt.NoRouter {
		httpAddr := opt.HTTPAddr
		if httpAddr == "" {
			httpAddr = ":80"
		}
		h.RouterProc, err = l.Start(h.Router, opt.RouterBinary, "run", "-perm", h.PermDir, "-http", httpAddr)
		if err != nil {
			return nil, fmt.Errorf("lab: home: start router: %w", err)
		}
	}
	return h, nil
}

// StartDnsmasq starts the ISP's dnsmasq (DHCPv4 with 2-minute leases,
// and DNS) and waits until it serves. Tests that take the ISP's server
// away and bring it back call it again after stopping h.Dnsmasq; the
// lease file is kept, as a real server's would be.
func (h *Home) StartDnsmasq(ctx context.Context) error {
	return h.startDnsmasq(ctx, "--log-queries")
}

// startDnsmasq starts the ISP's dnsmasq with its DHCPv4 service and
// records, and extra arguments.
func (h *Home) startDnsmasq(ctx context.Context, extra ...string) error {
	l := h.lab
	args := append([]string{
		"-k", // foreground
		"--conf-file=/dev/null",
		"--no-resolv",
		"--no-hosts",
		"--bind-interfaces",
		"--interface=isp0",
		"--user=root",
		"--log-facility=-",
		"--log-dhcp",
		"--dhcp-authoritative",
		"--dhcp-range=10.77.0.100,10.77.0.200,255.255.255.0,2m",
		"--dhcp-option=option:router," + ISPAddr4,
		"--dhcp-option=option:dns-server," + ISPAddr4,
		"--domain=isp.test",
		"--dhcp-leasefile=" + filepath.Join(l.Dir(), "dnsmasq.leases"),
		"--pid-file=" + filepath.Join(l.Dir(), "dnsmasq.pid"),
		"--host-record=www.isp.test," + ISPWWWA + "," + ISPWWWAAAA,
		"--address=/isp.test/" + ISPRecordA,
	}, extra...)
	var err error
	h.Dnsmasq, err = l.Start(h.ISP, "dnsmasq", args...)
	if err != nil {
		return fmt.Errorf("lab: start dnsmasq in %s: %w", h.ISP, err)
	}
	if err := h.Dnsmasq.WaitOutput(ctx, "DHCP, IP range"); err != nil {
		return fmt.Errorf("lab: start dnsmasq in %s: %w", h.ISP, err)
	}
	return nil
}

// StartDHCPD6 starts the ISP's dhcpd -6 (prefix delegation of /56s from
// fd00:78::/48, short leases: 60 s valid, 40 s preferred, so T1 = 20 s)
// and waits until it serves. Tests that take the server away call it
// again after stopping h.DHCPD6.
func (h *Home) StartDHCPD6(ctx context.Context) error {
	return h.startDHCPD6(ctx, "fd00:78:0:100::", "fd00:78:0:ff00::")
}

// RenumberDHCPD6 stops the ISP's dhcpd -6, makes it forget its leases and
// starts it again delegating /56s from first to last only: the ISP
// renumbers, and a router that asks afresh gets a prefix from there.
func (h *Home) RenumberDHCPD6(ctx context.Context, first, last string) error {
	if h.DHCPD6 != nil {
		h.DHCPD6.Stop(3 * time.Second)
	}
	if _, err := h.lab.WriteFile("dhcpd6.leases", "", 0o644); err != nil {
		return err
	}
	return h.startDHCPD6(ctx, first, last)
}

func (h *Home) startDHCPD6(ctx context.Context, first, last string) error {
	l := h.lab
	conf := fmt.Sprintf(`# homerouter lab: ISP DHCPv6 server with prefix delegation.
default-lease-time 60;
preferred-lifetime 40;
max-lease-time 300;
option dhcp6.name-servers %s;
option dhcp6.domain-search "isp.test";
subnet6 %s {
	range6 fd00:77::1000 fd00:77::1fff;
	prefix6 %s %s /%d;
}
`, ISPAddr6, ISPPrefix6, first, last, ISPPDLen)
	confPath, err := l.WriteFile("dhcpd6.conf", conf, 0o644)
	if err != nil {
		return err
	}
	// The lease file is kept across restarts, as a real server's would
	// be; dhcpd needs it to exist.
	leases := filepath.Join(l.Dir(), "dhcpd6.leases")
	if _, err := os.Stat(leases); err != nil {
		if _, err := l.WriteFile("dhcpd6.leases", "", 0o644); err != nil {
			return err
		}
	}
	h.DHCPD6, err = l.Start(h.ISP, "dhcpd", "-6", "-f", "-d",
		"-cf", confPath, "-lf", leases, "-pf", filepath.Join(l.Dir(), "dhcpd6.pid"), "isp0")
	if err != nil {
		return fmt.Errorf("lab: start dhcpd -6 in %s: %w", h.ISP, err)
	}
	if err := h.DHCPD6.WaitOutput(ctx, "Server starting service"); err != nil {
		return fmt.Errorf("lab: start dhcpd -6 in %s: %w", h.ISP, err)
	}
	return nil
}

// startPeers configures and starts the ISP's dnsmasq, dhcpd -6 and radvd,
// each with every path in the lab's dir, and waits until each is serving.
func (h *Home) startPeers(ctx context.Context) error {
	l := h.lab
	// radvd refuses to advertise unless forwarding is on; this is the isp
	// namespace's own sysctl, not the host's.
	if _, err := h.ISP.Run(ctx, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"); err != nil {
		return fmt.Errorf("lab: home: isp forwarding: %w", err)
	}
	if err := h.ISP.WaitLinkLocal(ctx, "isp0"); err != nil {
		return err
	}

	if err := h.StartDnsmasq(ctx); err != nil {
		return err
	}

	if err := h.StartDHCPD6(ctx); err != nil {
		return err
	}

	radvdConf := fmt.Sprintf(`# homerouter lab: ISP router advertisements (managed: use DHCPv6).
interface isp0 {
	AdvSendAdvert on;
	AdvManagedFlag on;
	AdvOtherConfigFlag on;
	MinRtrAdvInterval 3;
	MaxRtrAdvInterval 10;
	prefix %s {
		AdvOnLink on;
		AdvAutonomous on;
	};
	RDNSS %s {
	};
};
`, ISPPrefix6, ISPAddr6)
	radvdPath, err := l.WriteFile("radvd.conf", radvdConf, 0o644)
	if err != nil {
		return err
	}
	h.Radvd, err = l.Start(h.ISP, "radvd", "-n", "-C", radvdPath,
		"-p", filepath.Join(l.Dir(), "radvd.pid"), "-m", "stderr", "-d", "1")
	if err != nil {
		return fmt.Errorf("lab: start radvd in %s: %w", h.ISP, err)
	}
	// radvd writes its pid file once configured and running.
	if err := WaitFor(ctx, "radvd pid file", func() error {
		select {
		case <-h.Radvd.Exited():
			return Abort(fmt.Errorf("radvd exited: %s", strings.TrimSpace(h.Radvd.Output())))
		default:
		}
		_, err := os.Stat(filepath.Join(l.Dir(), "radvd.pid"))
		return err
	}); err != nil {
		return fmt.Errorf("lab: start radvd in %s: %w", h.ISP, err)
	}
	return nil
}

// WaitRouterHealthy waits until the router answers GET /health.json with
// 200 on url inside the router namespace (default
// http://127.0.0.1/health.json), using curl there since the test process
// is not in that namespace.
func (h *Home) WaitRouterHealthy(ctx context.Context, url string) error {
	if url == "" {
		url = "http://127.0.0.1/health.json"
	}
	return WaitFor(ctx, "router health at "+url, func() error {
		if h.RouterProc != nil {
			select {
			case <-h.RouterProc.Exited():
				return Abort(fmt.Errorf("router exited (%v): %s", h.RouterProc.Err(), h.RouterProc.Output()))
			default:
			}
		}
		_, err := h.Router.Run(ctx, "curl", "-sSf", "-m", "2", url)
		return err
	})
}

// RouterHealth fetches url (default http://127.0.0.1/health.json) inside
// the router namespace and returns the HTTP status and body; 503 is an
// answer, not an error, since it carries the router's first_error.
func (h *Home) RouterHealth(ctx context.Context, url string) (int, string, error) {
	if url == "" {
		url = "http://127.0.0.1/health.json"
	}
	out, err := h.Router.Run(ctx, "curl", "-sS", "-m", "2", "-w", "\n%{http_code}", url)
	if err != nil {
		return 0, "", err
	}
	out = strings.TrimRight(out, "\n")
	i := strings.LastIndex(out, "\n")
	code, err := strconv.Atoi(out[i+1:])
	if err != nil {
		return 0, "", fmt.Errorf("lab: health from %s: bad status in %q", url, out)
	}
	return code, out[:max(i, 0)], nil
}

// WaitRouterServing waits until the router's /health.json on url (as
// RouterHealth) shows every check passing but, perhaps, those of the
// uplink: all a home without an ISP (NoPeers) can reach, where the
// router serves the LAN but, rightly, does not call itself healthy.
func (h *Home) WaitRouterServing(ctx context.Context, url string) error {
	return WaitFor(ctx, "the router serving (healthy but for the uplink)", func() error {
		if h.RouterProc != nil {
			select {
			case <-h.RouterProc.Exited():
				return Abort(fmt.Errorf("router exited (%v): %s", h.RouterProc.Err(), h.RouterProc.Output()))
			default:
			}
		}
		_, body, err := h.RouterHealth(ctx, url)
		if err != nil {
			return err
		}
		return UplinkOnly(body)
	})
}

// UplinkOnly returns nil when the /health.json body health fails only,
// if at all, under homerouter/link/uplink0 (the ISP side): no config
// file, service, /perm or lan0 check fails.
func UplinkOnly(health string) error {
	type check struct {
		Name     string  `json:"name"`
		OK       bool    `json:"ok"`
		Error    string  `json:"error"`
		Children []check `json:"children"`
	}
	var h struct {
		FirstError *string `json:"first_error"`
		Checks     check   `json:"checks"`
	}
	if err := json.Unmarshal([]byte(health), &h); err != nil || h.FirstError == nil {
		return fmt.Errorf("not a /health.json (%v): %s", err, health)
	}
	var failing []string
	var walk func(c check, path string)
	walk = func(c check, path string) {
		if path == "homerouter/link/uplink0" {
			return
		}
		if c.Error != "" {
			failing = append(failing, path+": "+c.Error)
		}
		for _, ch := range c.Children {
			walk(ch, path+"/"+ch.Name)
		}
	}
	walk(h.Checks, h.Checks.Name)
	if len(failing) > 0 {
		return fmt.Errorf("failing beyond the uplink: %s", strings.Join(failing, "; "))
	}
	return nil
}
