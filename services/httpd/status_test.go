package httpd

import (
	"bytes"
	"flag"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/homerouter/homerouter/internal/oui"
	"github.com/homerouter/homerouter/state"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.html")

// statusStore is a Store as a router with an uplink, a LAN client and a
// service that restarts has it, at now.
func statusStore(t *testing.T, now time.Time) *state.Store {
	t.Helper()
	st := state.NewStore(t.TempDir())
	pfx, addr := netip.MustParsePrefix, netip.MustParseAddr
	st.ConfigStatus.Publish([]state.FileStatus{{File: "interfaces.json"}, {File: "dns.json", Error: "dns.json:1:12: domain: \"-lan\" is not a DNS name like lan or home.example"}})
	st.Services.Publish([]state.ServiceStatus{
		{Name: "netconfig", State: "running", Since: now.Add(-time.Hour)},
		{Name: "dns", State: "running", Restarts: 1, Since: now.Add(-10 * time.Minute)},
	})
	st.Links.Publish([]state.Link{
		{Name: state.Uplink, Index: 2, InForce: []state.Address{
			state.NewAddress(pfx("10.77.0.150/24"), state.OriginDHCPv4, now.Add(time.Hour), now.Add(time.Hour)),
			state.NewAddress(pfx("fd00:77::150/128"), state.OriginDHCPv6, now.Add(time.Hour), now.Add(2*time.Hour)),
		}, DefaultRoutes: []netip.Addr{addr("10.77.0.1"), addr("fe80::1")}},
		{Name: state.LAN, Index: 3, InForce: []state.Address{
			state.NewAddress(pfx("192.168.42.1/24"), state.OriginStatic, time.Time{}, time.Time{}),
			state.NewAddress(pfx("fd00:78:0:ff00::1/64"), state.OriginDelegated, now.Add(time.Hour), now.Add(2*time.Hour)),
			state.NewAddress(pfx("fd4e:3a21:9c07::1/64"), state.OriginULA, time.Time{}, time.Time{}),
		}},
	})
	st.DHCPv4Lease.Publish(state.DHCPv4Lease{Addr: pfx("10.77.0.150/24"), Router: addr("10.77.0.1"), DNS: []netip.Addr{addr("10.77.0.1")},
		ServerID: addr("10.77.0.1"), Expiry: now.Add(90 * time.Minute)})
	st.DHCPv6Lease.Publish(state.DHCPv6Lease{Prefixes: []state.DelegatedPrefix{{Prefix: pfx("fd00:78:0:ff00::/56"),
		Preferred: state.Duration(time.Hour), Valid: state.Duration(2 * time.Hour), Given: now.Add(-time.Minute)}},
		DNS: []netip.Addr{addr("fd00:77::1")}})
	st.DHCPv4ServerLeases.Publish(state.DHCPv4ServerLeases{Leases: []state.DHCPv4ServerLease{
		{Addr: addr("192.168.42.100"), HardwareAddr: "00:1b:63:00:00:21", Hostname: "alpha", Expiry: now.Add(50 * time.Minute), LastSeen: now.Add(-10 * time.Minute)},
		{Addr: addr("192.168.42.5"), HardwareAddr: "02:77:00:00:00:22", Hostname: "nas", Static: true, Expiry: now.Add(-time.Minute), LastSeen: now.Add(-61 * time.Minute)},
		{Addr: addr("192.168.42.101"), HardwareAddr: "02:77:00:00:00:23", Offered: true, Expiry: now.Add(time.Minute)},
		{Addr: addr("192.168.42.102"), HardwareAddr: "02:77:00:00:00:24", Declined: true, Expiry: now.Add(5 * time.Minute)},
		// What a hand edit or a hostile client may leave: no address, a
		// name that is markup.
		{HardwareAddr: "02:77:00:00:00:25", Hostname: "<script>alert(1)</script>", Expiry: now.Add(time.Hour)},
	}})
	st.DNSStatus.Publish(state.DNSStatus{QueriesBySource: map[string]uint64{"upstream": 3, "cache": 7, "local": 2}, CacheSize: 3, RebindBlocked: 1})
	st.Firewall.Publish(state.FirewallStatus{Forwarding: true, Forwards: 1, Counters: state.FirewallCounters{ForwardedOut4: state.Counter{Packets: 4, Bytes: 400}}})
	st.RAStatus.Publish(state.RAStatus{Sent: 9, Last: now.Add(-5 * time.Second), RouterLifetime: state.Duration(30 * time.Minute),
		Prefixes: []string{"fd00:78:0:ff00::/64 preferred 45m0s valid 1h30m0s"}})
	st.ReportNotice("perm", "/perm is a tmpfs: state is lost at reboot")
	st.Router.Publish(state.RouterInfo{Version: "v0.3.0-12-gdeba4ce", Hostname: "gw", Started: now.Add(-26 * time.Hour)})
	st.Traffic.Publish(state.Traffic{Sampled: now, Devices: []state.DeviceTraffic{
		{MAC: "00:1b:63:00:00:21", Up: 1_234_567, Down: 12_582_912, UpMinute: 2048, DownMinute: 10_485_760},
		// A device with an address set by hand: traffic, no lease.
		{MAC: "02:77:00:00:00:30", Up: 812, Down: 90},
	}})
	st.Diagnosis.Publish(state.Diagnosis{Checked: now, Checks: []state.HealthCheck{
		{Name: "link/uplink0", OK: true, Summary: "02:77:00:00:00:01 up, carrier", Children: []state.HealthCheck{
			{Name: "dhcp4", OK: true, Summary: "10.77.0.150/24 from 10.77.0.1, ends in 1h30m0s", Children: []state.HealthCheck{
				{Name: "gateway", OK: true, Summary: "10.77.0.1 answered in 0.4ms", Notice: "no answer to a ping of 10.77.0.1 (failed 1 time(s) in a row; it fails after 2)"},
				{Name: "dns", Error: "no upstream DNS server answers: [10.77.0.1:53: i/o timeout]"},
			}},
		}},
		{Name: "link/lan0", OK: true, Summary: "02:77:00:00:00:02 up, carrier"},
	}})
	return st
}

// TestStatusGolden renders the status page from a fixed state against
// testdata/status.golden.html (go test -update rewrites it).
func TestStatusGolden(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	if err := statusTemplate.Execute(&b, gatherStatus(statusStore(t, now), &oui.Table{}, func() []byte {
		return []byte("2026/12/02 11:59:58 dns: answering on [127.0.0.1:53]\n2026/12/02 11:59:59 ra: advertising <on> lan0\n")
	}, now)); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "status.golden.html")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("status page (-%s +now):\n%s", golden, diff)
	}
	// What a person looks for is on it.
	for _, s := range []string{"✘ homerouter/config/dns.json", "<code>10.77.0.150/24</code>", "alpha", "Apple, Inc.", "nas", "static",
		"fd4e:3a21:9c07::1/64 (ula)", "/perm is a tmpfs", "<td>dns</td>", "ra: advertising &lt;on&gt; lan0",
		"version <code>v0.3.0-12-gdeba4ce</code>, started 26h0m0s ago", "link/uplink0", "10.77.0.1 answered in 0.4ms",
		"no upstream DNS server answers", "12.0 MiB", "10.0 MiB / 2.0 KiB", "02:77:00:00:00:30"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("the page lacks %q", s)
		}
	}
	for _, s := range []string{"192.168.42.101", "192.168.42.102", "<script>"} {
		if strings.Contains(b.String(), s) {
			t.Errorf("the page has %q: an offered or declined lease, or markup from a client", s)
		}
	}
	if !strings.Contains(b.String(), "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("the page lacks the hostile name, escaped")
	}
}

// TestStatusServed: GET / is the page, as HTML that does not go stale in
// a cache; other paths are not.
func TestStatusServed(t *testing.T) {
	mux := newMux(statusStore(t, time.Now()), func() []byte { return []byte("dns: answering\nra: advertising on lan0\n") }, &oui.Table{})
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("GET /: %d %v", rec.Code, rec.Header())
	}
	if !strings.Contains(rec.Body.String(), "ra: advertising on lan0") {
		t.Errorf("GET /: no log lines")
	}
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/nosuch", nil))
	if rec.Code != 404 {
		t.Errorf("GET /nosuch: %d, want 404", rec.Code)
	}
}
