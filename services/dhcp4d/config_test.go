package dhcp4d

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/homerouter/homerouter/state"
)

// issueExample is the example of the issue that asked for the server.
const issueExample = `{"range_start":"192.168.42.100","range_end":"192.168.42.250","lease_duration":"1h","domain":"lan","static_leases":[{"hardware_addr":"02:77:00:00:00:12","addr":"192.168.42.50","hostname":"printer"}]}`

func TestParseConfig(t *testing.T) {
	got, err := ParseConfig([]byte(issueExample))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		RangeStart:    addr("192.168.42.100"),
		RangeEnd:      addr("192.168.42.250"),
		LeaseDuration: state.Duration(time.Hour),
		Domain:        "lan",
		StaticLeases:  []StaticLease{{HardwareAddr: "02:77:00:00:00:12", Addr: addr("192.168.42.50"), Hostname: "printer"}},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("-want +got:\n%s", diff)
	}
	if err := Validate(got, lan.Addr); err != nil {
		t.Errorf("Validate: %v", err)
	}
	for _, bad := range []string{
		`{"range_begin":"192.168.42.100"}`,
		`{"lease_duration":3600}`,
		`{"range_start":"192.168.42"}`,
		`{} {}`,
		``,
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil || !strings.HasPrefix(err.Error(), ConfigFile+": ") {
			t.Errorf("ParseConfig(%s) = %v, want an error naming the file", bad, err)
		}
	}
}

func TestValidate(t *testing.T) {
	static := func(mac, a, name string) StaticLease {
		s := StaticLease{HardwareAddr: mac, Hostname: name}
		if a != "" {
			s.Addr = addr(a)
		}
		return s
	}
	for _, tt := range []struct {
		name string
		lan  string
		cfg  Config
		want []string // substrings, one per error
	}{
		{name: "empty is fine", lan: "192.168.42.1/24"},
		{name: "IPv6 lan", lan: "fd00::1/64", want: []string{"not an IPv4 address"}},
		{name: "/31 lan", lan: "192.168.42.1/31", want: []string{"/30 or larger"}},
		{name: "lan address is the network", lan: "192.168.42.0/24", want: []string{"network or broadcast"}},
		{
			name: "range outside the subnet, backwards",
			lan:  "192.168.42.1/24",
			cfg:  Config{RangeStart: addr("192.168.43.1"), RangeEnd: addr("192.168.42.255")},
			want: []string{"range_start: 192.168.43.1 is not in lan0's subnet 192.168.42.0/24", "range_end: 192.168.42.255 is the subnet's network or broadcast"},
		},
		{
			name: "range backwards",
			lan:  "192.168.42.1/24",
			cfg:  Config{RangeStart: addr("192.168.42.200"), RangeEnd: addr("192.168.42.100")},
			want: []string{"range_end: 192.168.42.100 is before range_start 192.168.42.200"},
		},
		{
			name: "range end only, before the default start",
			lan:  "192.168.42.1/24",
			cfg:  Config{RangeEnd: addr("::1")},
			want: []string{"range_end: ::1 is not an IPv4 address"},
		},
		{
			name: "lease duration",
			lan:  "192.168.42.1/24",
			cfg:  Config{LeaseDuration: state.Duration(time.Second)},
			want: []string{"lease_duration: 1s is not between 1m0s and 8760h0m0s"},
		},
		{
			name: "domain",
			lan:  "192.168.42.1/24",
			cfg:  Config{Domain: "my lan"},
			want: []string{`domain: "my lan" is not a DNS name`},
		},
		{
			name: "static leases",
			lan:  "192.168.42.1/24",
			cfg: Config{StaticLeases: []StaticLease{
				static("02:77:00:00:00:12", "192.168.42.50", "printer"),
				static("02:77:00:00:00:12", "192.168.42.50", "Printer"),
				static("02:77:00:00:00", "192.168.42.1", "-bad"),
				static("02:77:00:00:00:13", "", ""),
				static("02:77:00:00:00:14", "10.0.0.1", ""),
			}},
			want: []string{
				"static_leases[1].hardware_addr: 02:77:00:00:00:12 is already used by static_leases[0]",
				"static_leases[1].addr: 192.168.42.50 is already used by static_leases[0]",
				`static_leases[1].hostname: "Printer" is already used by static_leases[0]`,
				`static_leases[2].hardware_addr: "02:77:00:00:00" is not a MAC address`,
				"static_leases[2].addr: 192.168.42.1 is the router's own address",
				`static_leases[2].hostname: "-bad" is not a hostname`,
				`static_leases[3]: "addr" is missing`,
				"static_leases[4].addr: 10.0.0.1 is not in lan0's subnet",
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.cfg, netip.MustParsePrefix(tt.lan))
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(got), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) || !strings.HasPrefix(got[i], ConfigFile+": ") {
					t.Errorf("error %d: %q, want it to contain %q", i, got[i], w)
				}
			}
			if _, herr := NewHandler(tt.cfg, Link{Addr: netip.MustParsePrefix(tt.lan)}, nil, time.Now); (herr == nil) != (err == nil) {
				t.Errorf("NewHandler error %v, Validate error %v", herr, err)
			}
		})
	}
}

func TestSanitizeHostname(t *testing.T) {
	for in, want := range map[string]string{
		"laptop":                "laptop",
		"Bob's iPhone":          "Bob-s-iPhone",
		"host.example.com":      "host",
		"-x-":                   "x",
		"\x00\xff":              "",
		"":                      "",
		strings.Repeat("a", 70): strings.Repeat("a", 63),
	} {
		if got := sanitizeHostname(in); got != want || (got != "" && !state.ValidLabel(got)) {
			t.Errorf("sanitizeHostname(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRestart persists the table as the service will, and checks that a
// new handler (with a changed config) carries on from it.
func TestRestart(t *testing.T) {
	cfg := small
	cfg.StaticLeases = []StaticLease{{HardwareAddr: macS, Addr: addr("192.168.42.50")}}
	h, clk := newTestHandler(t, cfg, lan, nil)
	for _, s := range steps(
		bind(macA, "192.168.42.100", hostname("laptop"), clientID(1, 2, 3)),
		bind(macB, "192.168.42.101"),
		bind(macS, "192.168.42.50", hostname("phone")),
		[]step{{req: decline(macB, "192.168.42.101")}},
	) {
		h.Serve(s.req(t))
	}
	data, err := json.MarshalIndent(LeaseFile{Leases: h.Leases()}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	const want = `{
  "leases": [
    {
      "addr": "192.168.42.50",
      "hardware_addr": "02:77:00:00:00:12",
      "hostname": "phone",
      "expiry": "2026-11-25T14:00:00Z",
      "last_seen": "2026-11-25T13:00:00Z",
      "static": true
    },
    {
      "addr": "192.168.42.100",
      "hardware_addr": "02:77:00:00:00:0a",
      "client_id": "010203",
      "hostname": "laptop",
      "expiry": "2026-11-25T14:00:00Z",
      "last_seen": "2026-11-25T13:00:00Z"
    },
    {
      "addr": "192.168.42.101",
      "hardware_addr": "02:77:00:00:00:0b",
      "expiry": "2026-11-25T13:10:00Z",
      "last_seen": "2026-11-25T13:00:00Z",
      "declined": true
    }
  ]
}`
	if diff := cmp.Diff(want, string(data)); diff != "" {
		t.Errorf("lease file: -want +got:\n%s", diff)
	}
	var lf LeaseFile
	if err := json.Unmarshal(data, &lf); err != nil {
		t.Fatal(err)
	}

	// The pool shrinks to .100 and .101, and .100 becomes static.
	cfg2 := Config{RangeStart: addr("192.168.42.101"), RangeEnd: addr("192.168.42.102"),
		StaticLeases: []StaticLease{{HardwareAddr: macD, Addr: addr("192.168.42.100"), Hostname: "tv"}}}
	h2, err := NewHandler(cfg2, lan, lf.Leases, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, h2)
	for _, s := range []step{
		// B declined .101 and still may not have it: .102
		{req: discover(macB), want: "OFFER 192.168.42.102"},
		// A's lease was dropped with its address; A gets nothing
		// until the decline hold or B's offer ends, then the one
		// that ended first
		{req: discover(macA, clientID(1, 2, 3)), want: "-"},
		{after: 10 * time.Minute, req: discover(macA, clientID(1, 2, 3)), want: "OFFER 192.168.42.102"},
		{req: discover(macC), want: "OFFER 192.168.42.101"},
		{req: discover(macD), want: "OFFER 192.168.42.100"},
	} {
		clk.t = clk.t.Add(s.after)
		if got, _ := h2.Serve(s.req(t)); summary(got) != s.want {
			t.Errorf("after restart: got %s, want %s", summary(got), s.want)
		}
	}
	if ls := h2.Leases(); ls[0].Hostname != "tv" || ls[0].Addr != addr("192.168.42.100") {
		t.Errorf("static lease after restart: %+v", ls[0])
	}
}

// TestLargePool hands out a whole /16, which must not take quadratic
// time (perfdhcp will do it at full speed), and then reuses expired
// leases.
func TestLargePool(t *testing.T) {
	h, clk := newTestHandler(t, Config{}, Link{Addr: netip.MustParsePrefix("10.1.0.1/16")}, nil)
	const n = 1<<16 - 3 // minus network, broadcast and the router
	seen := make(map[string]bool, n)
	req := msg(t, dhcpv4.MessageTypeDiscover, macA)
	for i := range n + 1 {
		req.ClientHWAddr = []byte{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		reply, _ := h.Serve(req)
		if i == n {
			if reply != nil {
				t.Fatalf("pool of %d gave a %dth address: %v", n, n+1, reply.YourIPAddr)
			}
			break
		}
		if reply == nil {
			t.Fatalf("no OFFER for client %d", i)
		}
		a := reply.YourIPAddr.String()
		if seen[a] {
			t.Fatalf("%s offered twice", a)
		}
		seen[a] = true
	}
	clk.t = clk.t.Add(offerHold)
	req.ClientHWAddr = []byte{2, 1, 0, 0, 0, 0}
	if reply, _ := h.Serve(req); reply == nil || reply.YourIPAddr.String() != "10.1.0.2" {
		t.Fatalf("after the offers expired: %s, want the first one", summary(reply))
	}
	checkTable(t, h)
}

func TestDestination(t *testing.T) {
	h, _ := newTestHandler(t, small, lan, nil)
	for _, tt := range []struct {
		name string
		req  func(testing.TB) *dhcpv4.DHCPv4
		dst  string
		raw  bool
	}{
		{"DISCOVER: to yiaddr at chaddr", discover(macA), "192.168.42.100:68", true},
		{"broadcast bit", discover(macB, broadcastBit()), "255.255.255.255:68", false},
		{"renewing: to ciaddr", request(macA, ciaddr("192.168.42.100")), "192.168.42.100:68", false},
		{"NAK: broadcast", request(macA, reqIP("10.0.0.1")), "255.255.255.255:68", false},
		{"relayed from lan0: to giaddr:67", discover(macC, giaddr("192.168.42.2")), "192.168.42.2:67", false},
		{"relayed NAK: to giaddr:67", request(macA, reqIP("10.0.0.1"), giaddr("192.168.42.2")), "192.168.42.2:67", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req(t)
			reply, _ := h.Serve(req)
			if reply == nil {
				t.Fatal("no reply")
			}
			dst, hw := Destination(req, reply)
			if dst.String() != tt.dst || (hw != nil) != tt.raw || (hw != nil && hw.String() != req.ClientHWAddr.String()) {
				t.Errorf("Destination = %v, %v; want %v, raw %v", dst, hw, tt.dst, tt.raw)
			}
		})
	}
}

// BenchmarkBind is a DISCOVER and a REQUEST from ever new clients on a
// /16, as perfdhcp sends them.
func BenchmarkBind(b *testing.B) {
	h, clk := newTestHandler(b, Config{}, Link{Addr: netip.MustParsePrefix("10.1.0.1/16")}, nil)
	disc := msg(b, dhcpv4.MessageTypeDiscover, macA)
	req := msg(b, dhcpv4.MessageTypeRequest, macA, sid(netip.MustParseAddr("10.1.0.1")), reqIP("10.1.0.2"))
	i := 0
	for b.Loop() {
		hw := []byte{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		i++
		disc.ClientHWAddr, req.ClientHWAddr = hw, hw
		offer, _ := h.Serve(disc)
		if offer == nil {
			// The pool is full: start over an hour later, reusing
			// expired leases.
			clk.t = clk.t.Add(2 * time.Hour)
			continue
		}
		req.UpdateOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))
		if ack, _ := h.Serve(req); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
			b.Fatalf("REQUEST: %s", summary(ack))
		}
	}
}
