package httpd

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/state"
)

// metricsHandler serves /metrics: Prometheus exposition of what the
// services publish on st, read at each scrape (no goroutine keeps
// copies), and of the Go runtime and the process. Every family of the
// router's own is named homerouter_*. The registry is this handler's, not
// the package-global default one.
func metricsHandler(st *state.Store) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		storeCollector{st: st, now: time.Now},
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// The router's metric families.
var (
	descHealthy = prometheus.NewDesc("homerouter_healthy",
		"1 when /health.json is 200 (every check passes), else 0.", nil, nil)
	descCheck = prometheus.NewDesc("homerouter_check_ok",
		"1 when the check of /health.json's tree passes, else 0.", []string{"check"}, nil)
	descServiceRunning = prometheus.NewDesc("homerouter_service_running",
		"1 while the supervised service runs, else 0.", []string{"service"}, nil)
	descServiceRestarts = prometheus.NewDesc("homerouter_service_restarts_total",
		"Restarts of the supervised service after a failure.", []string{"service"}, nil)
	descLeases = prometheus.NewDesc("homerouter_dhcp4d_leases",
		"The LAN DHCPv4 server's leases by state: bound, offered, declined, expired, or idle (a static lease never asked for).", []string{"state"}, nil)
	descDNSQueries = prometheus.NewDesc("homerouter_dns_queries_total",
		"DNS queries answered, by where the answer came from (local, cache, stale, upstream, failed).", []string{"source"}, nil)
	descDNSQueryTypes = prometheus.NewDesc("homerouter_dns_query_types_total",
		"DNS queries answered, by query type: the same queries as homerouter_dns_queries_total.", []string{"type"}, nil)
	descDNSRebind = prometheus.NewDesc("homerouter_dns_rebind_blocked_total",
		"Upstream answers replaced by an empty one (rebinding protection).", nil, nil)
	descDNSCache = prometheus.NewDesc("homerouter_dns_cache_entries",
		"Answers in the DNS cache.", nil, nil)
	descDNSRTT = prometheus.NewDesc("homerouter_dns_upstream_rtt_seconds",
		"Smoothed round trip time to the upstream resolver.", []string{"upstream"}, nil)
	descFirewallForwarding = prometheus.NewDesc("homerouter_firewall_forwarding",
		"1 while the kernel forwards packets (the ruleset is in force), else 0.", nil, nil)
	descFirewallPackets = prometheus.NewDesc("homerouter_firewall_packets_total",
		"Packets counted by the firewall: forwarded out (lan0 to uplink0) or in, dropped when forwarded or sent to the router (input).", []string{"verdict", "path", "family"}, nil)
	descFirewallBytes = prometheus.NewDesc("homerouter_firewall_bytes_total",
		"Bytes counted by the firewall, as homerouter_firewall_packets_total.", []string{"verdict", "path", "family"}, nil)
	descRASent = prometheus.NewDesc("homerouter_ra_advertisements_total",
		"IPv6 router advertisements sent on lan0.", nil, nil)
	descRASolicitations = prometheus.NewDesc("homerouter_ra_solicitations_total",
		"Router solicitations received on lan0.", nil, nil)
	descRAMalformed = prometheus.NewDesc("homerouter_ra_dropped_total",
		"ICMPv6 messages on lan0 dropped as not a valid router solicitation.", nil, nil)
	descRAFailed = prometheus.NewDesc("homerouter_ra_send_failures_total",
		"Router advertisements the kernel refused to send.", nil, nil)
	descDeviceBytes = prometheus.NewDesc("homerouter_device_bytes_total",
		"Bytes a LAN device sent into lan0 (up) or received from it (down), counted by the firewall per MAC; hostname is its DHCP lease's, if any.", []string{"direction", "mac", "hostname"}, nil)
	descBuildInfo = prometheus.NewDesc("homerouter_build_info",
		"1, labelled with the running homerouter's version.", []string{"version"}, nil)
	descStartTime = prometheus.NewDesc("homerouter_start_time_seconds",
		"When the running homerouter started, in seconds since the Unix epoch.", nil, nil)
	descCapturePackets = prometheus.NewDesc("homerouter_capture_packets_total",
		"Configuration packets (DHCP, DHCPv6, neighbour discovery) the capture put in its ring, per link.", []string{"interface"}, nil)
	descCaptureDropped = prometheus.NewDesc("homerouter_capture_dropped_total",
		"Configuration packets the capture could not keep, per link: each was larger than the whole ring.", []string{"interface"}, nil)
	descCaptureSocketDrops = prometheus.NewDesc("homerouter_capture_socket_drops_total",
		"Configuration packets the kernel could not queue for the capture (its socket's buffer was full); the kernel does not say on which link.", nil, nil)
	descCaptureBuffered = prometheus.NewDesc("homerouter_capture_buffered_packets",
		"Packets in the capture's ring (GET /capture.pcapng).", nil, nil)
	descCaptureBufferedBytes = prometheus.NewDesc("homerouter_capture_buffered_bytes",
		"Bytes the capture's ring holds, counted against capture.json's memory bound.", nil, nil)
	descRALifetime = prometheus.NewDesc("homerouter_ra_router_lifetime_seconds",
		"The router lifetime last advertised: 0 when the router does not offer itself as default router.", nil, nil)
)

// storeCollector reads the Store's topics at each scrape.
type storeCollector struct {
	st  *state.Store
	now func() time.Time
}

// Describe implements prometheus.Collector: the descriptions are those
// of what Collect sends, so that there is no second list to keep.
func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

// Collect implements prometheus.Collector. It runs in the registry's
// own goroutines, where a panic would take the router down: a metric
// that cannot be made (a label that is not UTF-8) becomes an invalid
// metric, which the handler reports, serving the rest.
func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	metric := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(d, t, v, labels...)
		if err != nil {
			m = prometheus.NewInvalidMetric(d, err)
		}
		ch <- m
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) { metric(d, prometheus.GaugeValue, v, labels...) }
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		metric(d, prometheus.CounterValue, float64(v), labels...)
	}

	h := services.CurrentHealth(c.st)
	gauge(descHealthy, bool01(h.FirstError == ""))
	seen := map[string]bool{} // a label set may be collected once only
	var walk func(ck state.HealthCheck, parent string)
	walk = func(ck state.HealthCheck, parent string) {
		path := ck.Name
		if parent != "" {
			path = parent + "/" + ck.Name
		}
		if !seen[path] {
			seen[path] = true
			gauge(descCheck, bool01(ck.OK), path)
		}
		for _, child := range ck.Children {
			walk(child, path)
		}
	}
	walk(h.Checks, "")

	for _, s := range c.st.Services.Value() {
		gauge(descServiceRunning, bool01(s.State == "running"), s.Name)
		counter(descServiceRestarts, uint64(s.Restarts), s.Name)
	}

	info := c.st.Router.Value()
	gauge(descBuildInfo, 1, info.Version)
	if !info.Started.IsZero() {
		gauge(descStartTime, float64(info.Started.UnixNano())/1e9)
	}

	now := c.now()
	leases := c.st.DHCPv4ServerLeases.Value().Leases
	byState := map[string]float64{"bound": 0, "offered": 0, "declined": 0, "expired": 0, "idle": 0}
	for _, l := range leases {
		switch {
		case l.Expiry.IsZero():
			byState["idle"]++
		case !l.Expiry.After(now):
			byState["expired"]++
		case l.Declined:
			byState["declined"]++
		case l.Offered:
			byState["offered"]++
		default:
			byState["bound"]++
		}
	}
	for s, n := range byState {
		gauge(descLeases, n, s)
	}

	dns := c.st.DNSStatus.Value()
	for src, n := range dns.QueriesBySource {
		counter(descDNSQueries, n, src)
	}
	for typ, n := range dns.QueriesByType {
		counter(descDNSQueryTypes, n, typ)
	}
	counter(descDNSRebind, dns.RebindBlocked)
	gauge(descDNSCache, float64(dns.CacheSize))
	for up, rtt := range dns.UpstreamRTT {
		gauge(descDNSRTT, time.Duration(rtt).Seconds(), up)
	}

	fw := c.st.Firewall.Value()
	gauge(descFirewallForwarding, bool01(fw.Forwarding))
	fc := fw.Counters
	for _, f := range []struct {
		verdict, path, family string
		c                     state.Counter
	}{
		{"forwarded", "out", "ipv4", fc.ForwardedOut4}, {"forwarded", "in", "ipv4", fc.ForwardedIn4},
		{"forwarded", "out", "ipv6", fc.ForwardedOut6}, {"forwarded", "in", "ipv6", fc.ForwardedIn6},
		{"dropped", "forward", "ipv4", fc.DroppedForward4}, {"dropped", "forward", "ipv6", fc.DroppedForward6},
		{"dropped", "input", "ipv4", fc.DroppedInput4}, {"dropped", "input", "ipv6", fc.DroppedInput6},
	} {
		counter(descFirewallPackets, f.c.Packets, f.verdict, f.path, f.family)
		counter(descFirewallBytes, f.c.Bytes, f.verdict, f.path, f.family)
	}

	// A device's name is that of its newest lease that has one.
	names := map[string]string{}
	newest := map[string]time.Time{}
	for _, l := range leases {
		if l.Hostname != "" && !l.Expiry.Before(newest[l.HardwareAddr]) {
			names[l.HardwareAddr], newest[l.HardwareAddr] = l.Hostname, l.Expiry
		}
	}
	for _, d := range c.st.Traffic.Value().Devices {
		counter(descDeviceBytes, d.Up, "up", d.MAC, names[d.MAC])
		counter(descDeviceBytes, d.Down, "down", d.MAC, names[d.MAC])
	}

	ra := c.st.RAStatus.Value()
	counter(descRASent, ra.Sent)
	counter(descRASolicitations, ra.Solicitations)
	counter(descRAMalformed, ra.Malformed)
	counter(descRAFailed, ra.Failed)
	gauge(descRALifetime, time.Duration(ra.RouterLifetime).Seconds())

	capt := c.st.CaptureStatus.Value()
	for _, l := range capt.Links {
		counter(descCapturePackets, l.Captured, l.Name)
		counter(descCaptureDropped, l.Dropped, l.Name)
	}
	counter(descCaptureSocketDrops, capt.SocketDrops)
	gauge(descCaptureBuffered, float64(capt.Buffered))
	gauge(descCaptureBufferedBytes, float64(capt.BufferedBytes))
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
