// Command homerouter-lab runs the router in the lab's home topology (ISP
// namespace with real DHCPv4/DHCPv6-PD/RA/DNS peers, router namespace, LAN
// namespace) until interrupted, for poking at it by hand (`make lab`).
// Everything it creates is removed when it exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/homerouter/homerouter/internal/lab"
)

func main() {
	if err := run(); err != nil {
		log.Fatalf("homerouter-lab: %v", err)
	}
}

func run() error {
	router := flag.String("router", "", "homerouter binary to run (required; build it before: there is no network inside the lab)")
	perm := flag.String("perm", "", "router's /perm dir (default: a temp dir with a default interfaces.json)")
	httpAddr := flag.String("http", ":80", "router's -http address")
	flag.Parse()
	if *router == "" {
		return errors.New("-router is required")
	}
	if os.Geteuid() != 0 {
		return errors.New("must run as root (network namespaces)")
	}
	if err := lab.Sweep(); err != nil {
		log.Printf("sweep leftovers of earlier labs: %v", err)
	}

	l, err := lab.New(log.Printf)
	if err != nil {
		return err
	}
	// Signals are caught from here on, so Close always runs.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer func() {
		if err := l.Close(); err != nil {
			log.Printf("cleanup: %v", err)
		}
	}()

	h, err := lab.NewHome(l, lab.HomeOptions{RouterBinary: *router, PermDir: *perm, HTTPAddr: *httpAddr})
	if err != nil {
		return err
	}
	port := ""
	if i := strings.LastIndex(*httpAddr, ":"); i >= 0 && (*httpAddr)[i+1:] != "80" {
		port = (*httpAddr)[i:]
	}
	fmt.Printf(`
homerouter lab is up (files in %s)
  isp    %s  isp0 10.77.0.1/24 fd00:77::1/64: dnsmasq (DHCPv4, DNS), dhcpd -6 (PD from fd00:78::/48), radvd
  router %s  wan (uplink0) + lan (lan0), perm %s
  lan    %s  eth0, resolv.conf: nameserver 10.42.0.1

Try (another shell):
  ip netns exec %[3]s curl -s http://127.0.0.1%[6]s/health.json
  ip netns exec %[3]s ip addr
  cat %[4]s/dhcp4-lease.json %[4]s/dhcp6-lease.json   (the uplink's leases)
  ip netns exec %[5]s ip addr add 10.42.0.50/24 dev eth0
  ip netns exec %[5]s busybox ping -c1 10.42.0.1
  ip netns exec %[3]s dig @10.77.0.1 www.isp.test      (the ISP's DNS, from the router)
  ip netns exec %[5]s curl -s http://10.42.0.1%[6]s/health.json
  ip netns exec %[5]s rdisc6 eth0                      (the router's IPv6 advertisement)
  ip netns exec %[5]s ip -6 addr show dev eth0         (the LAN host's SLAAC addresses from it)
  cat %[4]s/ula.json %[4]s/ra-prefixes.json   (the LAN's unique local prefix, what was advertised)
(Do not run DHCP clients with their default hook scripts here: they would rewrite the host's files.)
Ctrl-C stops the router and removes everything.

`, l.Dir(), h.ISP.Name(), h.Router.Name(), h.PermDir, h.LAN.Name(), port)

	// Stream the router's log as it grows.
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	printed := 0
	flush := func() {
		out := h.RouterProc.Output()
		if len(out) > printed {
			os.Stdout.WriteString(out[printed:])
			printed = len(out)
		}
	}
	for {
		select {
		case <-ctx.Done():
			flush()
			log.Printf("interrupted; cleaning up")
			return nil
		case <-h.RouterProc.Exited():
			flush()
			return fmt.Errorf("router exited: %v", h.RouterProc.Err())
		case <-t.C:
			flush()
		}
	}
}
