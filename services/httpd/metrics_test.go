package httpd

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/homerouter/homerouter/internal/oui"
	"github.com/homerouter/homerouter/state"
)

// TestMetrics: /metrics carries the router's families from the Store's
// topics, passes Prometheus' own lint, and has the Go runtime's.
func TestMetrics(t *testing.T) {
	st := state.NewStore(t.TempDir())
	now := time.Now()
	st.Services.Publish([]state.ServiceStatus{{Name: "dns", State: "running", Restarts: 2}, {Name: "ra", State: "restarting", Restarts: 5}})
	st.DNSStatus.Publish(state.DNSStatus{QueriesBySource: map[string]uint64{"cache": 7, "upstream": 3}, QueriesByType: map[string]uint64{"A": 10},
		UpstreamRTT: map[string]state.Duration{"10.77.0.1:53": state.Duration(2 * time.Millisecond)}, CacheSize: 3})
	st.Firewall.Publish(state.FirewallStatus{Forwarding: true, Counters: state.FirewallCounters{ForwardedOut4: state.Counter{Packets: 4, Bytes: 400}}})
	st.RAStatus.Publish(state.RAStatus{Sent: 9, RouterLifetime: state.Duration(30 * time.Minute)})
	st.CaptureStatus.Publish(state.CaptureStatus{Links: []state.CaptureLink{{Name: "uplink0", Captured: 12, Dropped: 1}, {Name: "lan0", Captured: 30}}, Buffered: 42, BufferedBytes: 20000})
	st.ReportNotice("config", "a notice whose subject is a node's name: collected once")
	st.DHCPv4ServerLeases.Publish(state.DHCPv4ServerLeases{Leases: []state.DHCPv4ServerLease{
		{HardwareAddr: "02:77:00:00:00:21", Hostname: "alpha", Expiry: now.Add(time.Hour)},
		{HardwareAddr: "02:77:00:00:00:22", Expiry: now.Add(time.Minute), Offered: true},
		{HardwareAddr: "02:77:00:00:00:23", Expiry: now.Add(-time.Hour)},
		{HardwareAddr: "02:77:00:00:00:24", Static: true},
	}})

	st.Traffic.Publish(state.Traffic{Sampled: now, Devices: []state.DeviceTraffic{
		{MAC: "02:77:00:00:00:21", Up: 1000, Down: 10_485_760}, {MAC: "02:77:00:00:00:30", Up: 5}}})
	st.Router.Publish(state.RouterInfo{Version: "v0.3.0", Started: time.Unix(1_800_000_000, 0)})
	st.Diagnosis.Publish(state.Diagnosis{Checked: now, Checks: []state.HealthCheck{{Name: "link/uplink0", Error: "no carrier"}}})

	c := storeCollector{st: st, now: func() time.Time { return now }}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	// A label that cannot be (not UTF-8) costs its metric, not the
	// scrape, nor the router (Collect runs outside net/http's recover).
	st.Services.Publish(append(st.Services.Value(), state.ServiceStatus{Name: "bad\xff", State: "running"}))
	rec := httptest.NewRecorder()
	newMux(st, nil, &oui.Table{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`homerouter_healthy 0`, // ra is restarting
		`homerouter_check_ok{check="homerouter/services/ra"} 0`,
		`homerouter_service_restarts_total{service="ra"} 5`,
		`homerouter_dhcp4d_leases{state="bound"} 1`,
		`homerouter_dhcp4d_leases{state="offered"} 1`,
		`homerouter_dhcp4d_leases{state="expired"} 1`,
		`homerouter_dhcp4d_leases{state="idle"} 1`,
		`homerouter_dns_queries_total{source="cache"} 7`,
		`homerouter_dns_upstream_rtt_seconds{upstream="10.77.0.1:53"} 0.002`,
		`homerouter_firewall_bytes_total{family="ipv4",path="out",verdict="forwarded"} 400`,
		`homerouter_ra_router_lifetime_seconds 1800`,
		`homerouter_check_ok{check="homerouter/link/uplink0"} 0`,
		`homerouter_device_bytes_total{direction="down",hostname="alpha",mac="02:77:00:00:00:21"} 1.048576e+07`,
		`homerouter_device_bytes_total{direction="up",hostname="",mac="02:77:00:00:00:30"} 5`,
		`homerouter_build_info{version="v0.3.0"} 1`,
		`homerouter_start_time_seconds 1.8e+09`,
		`homerouter_capture_packets_total{interface="lan0"} 30`,
		`homerouter_capture_dropped_total{interface="uplink0"} 1`,
		`homerouter_capture_buffered_packets 42`,
		`go_goroutines `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if rec.Code != 200 {
		t.Errorf("/metrics: %d", rec.Code)
	}
}
