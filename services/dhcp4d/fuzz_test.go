package dhcp4d

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// fuzzSeeds are requests of every type and state, as bytes.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, r := range []func(testing.TB) *dhcpv4.DHCPv4{
		discover(macA),
		discover(macB, reqIP("192.168.42.101"), clientID(1, 2, 3), hostname("laptop"), dhcpv4.WithGeneric(dhcpv4.OptionParameterRequestList, []byte{1, 3, 6, 15, 26, 28, 119})),
		discover(macS),
		selecting(macA, "192.168.42.100"),
		request(macA, reqIP("192.168.42.100")),
		request(macA, reqIP("10.0.0.1")),
		request(macA, ciaddr("192.168.42.100")),
		request(macA, sid(otherID), reqIP("192.168.42.100")),
		release(macA, "192.168.42.100"),
		decline(macA, "192.168.42.100"),
		func(t testing.TB) *dhcpv4.DHCPv4 {
			return msg(t, dhcpv4.MessageTypeInform, macC, ciaddr("192.168.42.7"))
		},
	} {
		seeds = append(seeds, r(t).ToBytes())
	}
	return seeds
}

// fuzzRegressions are inputs worth keeping: edge cases of the wire
// format, and (by name) whatever the fuzzer finds. want is what a new
// handler makes of the input (see outcome).
var fuzzRegressions = []struct {
	name string
	data func(testing.TB) []byte
	want string
}{
	{"truncated header", func(testing.TB) []byte { return make([]byte, 100) }, "malformed"},
	{"hlen 255", func(t testing.TB) []byte {
		b := discover(macA)(t).ToBytes()
		b[2] = 255
		return b
	}, "dropped"},
	{"options without end", func(t testing.TB) []byte {
		b := discover(macA)(t).ToBytes()
		return b[:240+3] // cookie and the message type option
	}, "malformed"},
	{"BOOTREPLY", func(t testing.TB) []byte {
		b := discover(macA)(t).ToBytes()
		b[0] = 2
		return b
	}, "dropped"},
	{"requested address 0.0.0.0 in INIT-REBOOT", func(t testing.TB) []byte {
		return request(macA, reqIP("0.0.0.0"))(t).ToBytes()
	}, "NAK"},
	{"ciaddr is the broadcast address", func(t testing.TB) []byte {
		return request(macA, ciaddr("255.255.255.255"))(t).ToBytes()
	}, "NAK"},
	{"htype 6 with a 16-byte chaddr", func(t testing.TB) []byte {
		b := discover(macA)(t).ToBytes()
		b[1], b[2] = 6, 16
		return b
	}, "OFFER 192.168.42.100"},
}

// FuzzServe feeds arbitrary bytes, as the socket would, to a handler
// with a few leases. Whatever they hold: no panic, a well-formed reply
// (checkReply) or none, and a consistent table that persists.
func FuzzServe(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	for _, r := range fuzzRegressions {
		f.Add(r.data(f))
	}
	cfg := small
	cfg.StaticLeases = []StaticLease{{HardwareAddr: macS, Addr: addr("192.168.42.50"), Hostname: "printer"}}
	// A handler in use: A bound, B offered, C expired, .102 declined.
	base, clk := newTestHandler(f, cfg, Link{Addr: lan.Addr, MTU: 1500}, nil)
	for _, r := range steps(
		bind(macC, "192.168.42.100"),
		[]step{{req: decline(macC, "192.168.42.100")}},
		bind(macA, "192.168.42.101"),
		[]step{{req: discover(macB)}},
	) {
		base.Serve(r.req(f))
	}
	clk.t = clk.t.Add(30 * time.Minute)
	leases := base.Leases()

	f.Fuzz(func(t *testing.T, data []byte) { serveBytes(t, cfg, leases, data) })
}

// TestFuzzRegressions runs the regression inputs without the fuzzer:
// each gets the outcome its row names, and then FuzzServe's checks.
// Those checks alone would pass on an input that does not parse (the
// socket drops it before Serve), so the outcome is what makes such a row
// able to fail.
func TestFuzzRegressions(t *testing.T) {
	for _, r := range fuzzRegressions {
		t.Run(r.name, func(t *testing.T) {
			data := r.data(t)
			if got := outcome(t, data); got != r.want {
				t.Fatalf("outcome %q, want %q", got, r.want)
			}
			serveBytes(t, small, nil, data)
		})
	}
}

// outcome is what a new handler with the pool small makes of data, as the
// socket would read it: "malformed" if it does not parse (conn.go drops
// it), "dropped" if Serve drops it, or else the reply's summary ("-" for
// none).
func outcome(t *testing.T, data []byte) string {
	req, err := dhcpv4.FromBytes(data)
	if err != nil {
		return "malformed"
	}
	h, _ := newTestHandler(t, small, Link{Addr: lan.Addr, MTU: 1500}, nil)
	before := h.Dropped()
	reply, _ := h.Serve(req)
	if h.Dropped() != before {
		if reply != nil {
			t.Fatalf("dropped, and answered with %s", summary(reply))
		}
		return "dropped"
	}
	return summary(reply)
}

// serveBytes is FuzzServe's body.
func serveBytes(t *testing.T, cfg Config, leases []Lease, data []byte) {
	req, err := dhcpv4.FromBytes(data)
	if err != nil {
		return // the socket drops what does not parse
	}
	h, clk := newTestHandler(t, cfg, Link{Addr: lan.Addr, MTU: 1500}, leases)
	clk.t = t0.Add(30 * time.Minute)
	for _, after := range []time.Duration{0, 0, 2 * time.Hour} {
		clk.t = clk.t.Add(after)
		reply, _ := h.Serve(req)
		if reply != nil {
			checkReply(t, h, req, reply)
		}
		checkTable(t, h)
	}
	// The table survives a save and a restart.
	ls := h.Leases()
	data, err = json.Marshal(LeaseFile{Leases: ls})
	if err != nil {
		t.Fatal(err)
	}
	var lf LeaseFile
	if err := json.Unmarshal(data, &lf); err != nil {
		t.Fatalf("reading the lease file back: %v\n%s", err, data)
	}
	h2, _ := newTestHandler(t, cfg, Link{Addr: lan.Addr, MTU: 1500}, lf.Leases)
	if got := h2.Leases(); len(got) != len(ls) {
		t.Fatalf("after a restart %d leases, want %d:\n%s", len(got), len(ls), data)
	}
	checkTable(t, h2)
}
