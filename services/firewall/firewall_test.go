package firewall

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/homerouter/homerouter/state"
)

// TestFailClosed: a ruleset that does not load switches forwarding off,
// for both families, and says why on /health.json's problems; nothing
// is published as in force.
func TestFailClosed(t *testing.T) {
	root := t.TempDir()
	for _, p := range forwarding {
		dir := filepath.Join(append([]string{root}, p[:len(p)-1]...)...)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p[len(p)-1]), []byte("1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st := state.NewStore(t.TempDir())
	s := New(st, log.New(io.Discard, "", 0))
	s.procSys = root
	s.Fault = "nf_tables is not there"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	timeout := time.After(10 * time.Second)
	for {
		ch := st.Problems.Changed()
		if strings.Contains(st.Problems.Value()[ServiceName], "firewall: nf_tables is not there (forwarding is off)") {
			break
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("problems: %q", st.Problems.Value())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	for _, p := range forwarding {
		b, _ := os.ReadFile(filepath.Join(append([]string{root}, p...)...))
		if string(b) != "0\n" {
			t.Errorf("%s = %q, want 0", strings.Join(p, "."), b)
		}
	}
	if fs := st.Firewall.Value(); fs.Forwarding || !fs.Applied.IsZero() {
		t.Errorf("status %+v, want nothing in force", fs)
	}
}

// TestInputs: the ruleset is built from what netconfig has in force on
// the links, and from portforwardings.json.
func TestInputs(t *testing.T) {
	st := state.NewStore(t.TempDir())
	pfx := netip.MustParsePrefix
	st.Links.Publish([]state.Link{
		{Name: state.Uplink, InForce: []state.Address{
			state.NewAddress(pfx("10.77.0.100/24"), state.OriginDHCPv4, time.Time{}, time.Time{}),
			state.NewAddress(pfx("fd00:77::100/128"), state.OriginDHCPv6, time.Time{}, time.Time{}),
		}},
		{Name: state.LAN, InForce: []state.Address{
			state.NewAddress(pfx("192.168.42.1/24"), state.OriginStatic, time.Time{}, time.Time{}),
			state.NewAddress(pfx("fd00:42::1/64"), state.OriginStatic, time.Time{}, time.Time{}),
			state.NewAddress(pfx("fd00:78:0:ff00::1/64"), state.OriginDelegated, time.Time{}, time.Time{}),
			state.NewAddress(pfx("fd4e:3a21:9c07::1/64"), state.OriginULA, time.Time{}, time.Time{}),
		}},
	})
	st.PortForwardings.Publish(state.PortForwardings{Forwardings: []state.Forwarding{
		{Proto: "tcp,udp", Port: "8080", DestAddr: "192.168.42.10", DestPort: "80"},
		{Proto: "tcp", Port: "443", DestAddr: "fd00:78:0:ff00::10", DestPort: "443"},
	}})
	s := New(st, log.New(io.Discard, "", 0))
	s.flowtable = true
	// Without lan0 there is no flowtable: it names both links.
	lan := st.Links.Value()[1]
	st.Links.Publish(st.Links.Value()[:1])
	if in := s.inputs(); in.Flowtable {
		t.Error("a flowtable without lan0")
	}
	st.Links.Publish(append(st.Links.Value(), lan))
	got := s.inputs()
	want := Inputs{
		LAN: "lan0", Uplink: "uplink0",
		LAN4:    []netip.Prefix{pfx("192.168.42.0/24")},
		LAN6:    []netip.Prefix{pfx("fd00:42::/64"), pfx("fd00:78:0:ff00::/64")},
		ULA:     []netip.Prefix{pfx("fd4e:3a21:9c07::/64")},
		Uplink4: []netip.Addr{netip.MustParseAddr("10.77.0.100")},
		Forwards: []Forward{
			{Proto: protoTCP, Ports: onePort(8080), Dest: netip.MustParseAddr("192.168.42.10"), DestPorts: onePort(80)},
			{Proto: protoUDP, Ports: onePort(8080), Dest: netip.MustParseAddr("192.168.42.10"), DestPorts: onePort(80)},
			{Proto: protoTCP, Ports: onePort(443), Dest: netip.MustParseAddr("fd00:78:0:ff00::10"), DestPorts: onePort(443)},
		},
		Flowtable: true,
	}
	opts := cmp.Options{cmp.AllowUnexported(Forward{}, portRange{}), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })}
	if d := cmp.Diff(want, got, opts); d != "" {
		t.Errorf("inputs -want +got:\n%s", d)
	}
}

// TestBenchEndpoint: the mode switch exists only with Bench, and takes
// only the three modes.
func TestBenchEndpoint(t *testing.T) {
	s := New(state.NewStore(t.TempDir()), log.New(io.Discard, "", 0))
	if e := s.Endpoints(); e != nil {
		t.Fatalf("endpoints without Bench: %+v", e)
	}
	s.Bench = true
	e := s.Endpoints()
	if len(e) != 1 || e[0].Pattern != "POST /firewall/mode" || e[0].NeedsPassword {
		t.Fatalf("endpoints with Bench: %+v", e)
	}
	for _, tc := range []struct {
		body   string
		header bool
		code   int
	}{{"off", false, 403}, {"bogus", true, 400}, {"off\n", true, 200}, {"noflowtable", true, 200}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/firewall/mode", strings.NewReader(tc.body))
		if tc.header {
			req.Header.Set(BenchHeader, "1")
		}
		e[0].Handler.ServeHTTP(rec, req)
		if rec.Code != tc.code {
			t.Errorf("POST %q = %d %s, want %d", tc.body, rec.Code, rec.Body, tc.code)
		}
	}
	if got := s.mode.Value(); got != modeNoFlowtable {
		t.Errorf("mode %q, want noflowtable", got)
	}
}
