package httpd

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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
		"The LAN DHCPv4 server's leases by state: bound, offered, declined, expired.", []string{"state"}, nil)
	descDNSQueries = prometheus.NewDesc("homerouter_dns_queries_total",
		"DNS queries answered, by where the answer came from (local, cache, stale, upstream, failed).", []string{"source"}, nil)
	descDNSQueriesByType = prometheus.NewDesc("homerouter_dns_queries_by_type_total",
		"DNS queries answered, by query type.", []string{"type"}, nil)
	descDNSRebind = prometheus.NewDesc("homerouter_dns_rebind_blocked_total",
		"Upstream answers replaced by an empty one (rebinding protection).", nil, nil)
	descDNSCache = prometheus.NewDesc("homerouter_dns_cache_entries",
		"Answers in the DNS cache.", nil, nil)
	descDNSRTT = prometheus.NewDesc("homerouter_dns_upstream_rtt_seconds",
		"Smoothed round trip time to the upstream resolver.", []string{"upstream"}, nil)
	descFirewallForwarding = prometheus.NewDesc("homerouter_firewall_forwarding",
		"1 while the kernel forwards packets (the ruleset is in force), else 0.", nil, nil)
	descFirewallPackets = prometheus.NewDesc("homerouter_firewall_packets_total",
		"Packets counted by the firewall, by counter (forwarded_out_ipv4, dropped_input_ipv6, ...).", []string{"counter"}, nil)
	descFirewallBytes = prometheus.NewDesc("homerouter_firewall_bytes_total",
		"Bytes counted by the firewall, by counter.", []string{"counter"}, nil)
	descRASent = prometheus.NewDesc("homerouter_ra_advertisements_total",
		"IPv6 router advertisements sent on lan0.", nil, nil)
	descRASolicitations = prometheus.NewDesc("homerouter_ra_solicitations_total",
		"Router solicitations received on lan0.", nil, nil)
	descRAMalformed = prometheus.NewDesc("homerouter_ra_dropped_total",
		"ICMPv6 messages on lan0 dropped as not a valid router solicitation.", nil, nil)
	descRAFailed = prometheus.NewDesc("homerouter_ra_send_failures_total",
		"Router advertisements the kernel refused to send.", nil, nil)
	descRALifetime = prometheus.NewDesc("homerouter_ra_router_lifetime_seconds",
		"The router lifetime last advertised: 0 when the router does not offer itself as default router.", nil, nil)
)

// storeCollector reads the Store's topics at each scrape.
type storeCollector struct {
	st  *state.Store
	now func() time.Time
}

// Describe implements prometheus.Collector.
func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHealthy, descCheck, descServiceRunning, descServiceRestarts, descLeases,
		descDNSQueries, descDNSQueriesByType, descDNSRebind, descDNSCache, descDNSRTT,
		descFirewallForwarding, descFirewallPackets, descFirewallBytes,
		descRASent, descRASolicitations, descRAMalformed, descRAFailed, descRALifetime} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}

	h := health(c.st)
	gauge(descHealthy, bool01(h.FirstError == ""))
	seen := map[string]bool{} // a label set may be collected once only
	var walk func(ck Check, parent string)
	walk = func(ck Check, parent string) {
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

	now := c.now()
	byState := map[string]float64{"bound": 0, "offered": 0, "declined": 0, "expired": 0}
	for _, l := range c.st.DHCPv4ServerLeases.Value().Leases {
		switch {
		case l.Bound(now):
			byState["bound"]++
		case l.Declined:
			byState["declined"]++
		case l.Offered && l.Expiry.After(now):
			byState["offered"]++
		case !l.Expiry.IsZero():
			byState["expired"]++
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
		counter(descDNSQueriesByType, n, typ)
	}
	counter(descDNSRebind, dns.RebindBlocked)
	gauge(descDNSCache, float64(dns.CacheSize))
	for up, rtt := range dns.UpstreamRTT {
		gauge(descDNSRTT, time.Duration(rtt).Seconds(), up)
	}

	fw := c.st.Firewall.Value()
	gauge(descFirewallForwarding, bool01(fw.Forwarding))
	for name, ctr := range map[string]state.Counter{
		"forwarded_out_ipv4": fw.Counters.ForwardedOut4, "forwarded_in_ipv4": fw.Counters.ForwardedIn4,
		"forwarded_out_ipv6": fw.Counters.ForwardedOut6, "forwarded_in_ipv6": fw.Counters.ForwardedIn6,
		"dropped_forward_ipv4": fw.Counters.DroppedForward4, "dropped_forward_ipv6": fw.Counters.DroppedForward6,
		"dropped_input_ipv4": fw.Counters.DroppedInput4, "dropped_input_ipv6": fw.Counters.DroppedInput6,
	} {
		counter(descFirewallPackets, ctr.Packets, name)
		counter(descFirewallBytes, ctr.Bytes, name)
	}

	ra := c.st.RAStatus.Value()
	counter(descRASent, ra.Sent)
	counter(descRASolicitations, ra.Solicitations)
	counter(descRAMalformed, ra.Malformed)
	counter(descRAFailed, ra.Failed)
	gauge(descRALifetime, time.Duration(ra.RouterLifetime).Seconds())
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
