package dhcp4d

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// leaseStates is the table as DNS and the status page see it: each lease
// as "address state hostname", the state being offered, declined, bound
// (acknowledged and unexpired) or expired (acknowledged, not bound), the
// leases joined by "|".
func leaseStates(ls []Lease, now time.Time) string {
	var s []string
	for _, l := range ls {
		state := "expired"
		switch {
		case l.Offered:
			state = "offered"
		case l.Declined:
			state = "declined"
		case l.Bound(now):
			state = "bound"
		}
		s = append(s, strings.TrimSpace(fmt.Sprintf("%s %s %s", l.Addr, state, l.Hostname)))
	}
	return strings.Join(s, "|")
}

// leaseCheck is a step, then the table it leaves (see leaseStates).
type leaseCheck struct {
	step   step
	leases string
}

// TestLeaseStates: a lease is acknowledged or only offered, and carries
// a name only once acknowledged, whatever the way to the ACK.
func TestLeaseStates(t *testing.T) {
	static := func(name string) Config {
		c := small
		c.StaticLeases = []StaticLease{{HardwareAddr: macS, Addr: addr("192.168.42.50"), Hostname: name}}
		return c
	}
	laptop := hostname("laptop")
	for _, tt := range []struct {
		name string
		cfg  Config
		// file, when set, is the lease file the handler starts from.
		file   string
		checks []leaseCheck
	}{
		{
			name: "offered, then acknowledged",
			cfg:  small,
			checks: []leaseCheck{
				{step{req: discover(macA, laptop), want: "OFFER 192.168.42.100"}, "192.168.42.100 offered"},
				{step{req: selecting(macA, "192.168.42.100", laptop), want: "ACK 192.168.42.100", changed: true}, "192.168.42.100 bound laptop"},
			},
		},
		{
			name: "name sent in the DISCOVER only is recorded at the ACK",
			cfg:  small,
			checks: []leaseCheck{
				{step{req: discover(macA, laptop), want: "OFFER 192.168.42.100"}, "192.168.42.100 offered"},
				{step{req: selecting(macA, "192.168.42.100"), want: "ACK 192.168.42.100", changed: true}, "192.168.42.100 bound laptop"},
			},
		},
		{
			name: "offer taken elsewhere, and offer run out",
			cfg:  small,
			checks: []leaseCheck{
				{step{req: discover(macA, laptop), want: "OFFER 192.168.42.100"}, "192.168.42.100 offered"},
				{step{req: request(macA, sid(otherID), reqIP("10.9.9.9"), laptop), want: "-"}, "192.168.42.100 offered"},
				{step{req: discover(macB, laptop), want: "OFFER 192.168.42.101"}, "192.168.42.100 offered|192.168.42.101 offered"},
				{step{after: time.Hour}, "192.168.42.100 offered|192.168.42.101 offered"},
			},
		},
		{
			name: "expired lease offered again",
			cfg:  small,
			checks: []leaseCheck{
				{step{req: discover(macA, laptop), want: "OFFER 192.168.42.100"}, "192.168.42.100 offered"},
				{step{req: selecting(macA, "192.168.42.100", laptop), want: "ACK 192.168.42.100", changed: true}, "192.168.42.100 bound laptop"},
				{step{after: 2 * time.Hour}, "192.168.42.100 expired laptop"},
				{step{req: discover(macA), want: "OFFER 192.168.42.100"}, "192.168.42.100 offered"},
				// the name it had, as it sends none now
				{step{req: selecting(macA, "192.168.42.100"), want: "ACK 192.168.42.100", changed: true}, "192.168.42.100 bound laptop"},
			},
		},
		{
			name: "client holding its lease stays acknowledged through a DISCOVER",
			cfg:  small,
			checks: []leaseCheck{
				{step{req: discover(macA, laptop), want: "OFFER 192.168.42.100"}, "192.168.42.100 offered"},
				{step{req: selecting(macA, "192.168.42.100", laptop), want: "ACK 192.168.42.100", changed: true}, "192.168.42.100 bound laptop"},
				// a new name takes effect at the ACK
				{step{after: 10 * time.Minute, req: discover(macA, hostname("desktop")), want: "OFFER 192.168.42.100"}, "192.168.42.100 bound laptop"},
				{step{req: selecting(macA, "192.168.42.100", hostname("desktop")), want: "ACK 192.168.42.100", changed: true}, "192.168.42.100 bound desktop"},
				{step{after: 30 * time.Minute, req: request(macA, ciaddr("192.168.42.100")), want: "ACK 192.168.42.100", changed: true}, "192.168.42.100 bound desktop"},
			},
		},
		{
			name: "INIT-REBOOT of a known lease, live and expired",
			cfg:  small,
			checks: []leaseCheck{
				{step{req: discover(macA, laptop), want: "OFFER 192.168.42.100"}, "192.168.42.100 offered"},
				{step{req: selecting(macA, "192.168.42.100", laptop), want: "ACK 192.168.42.100", changed: true}, "192.168.42.100 bound laptop"},
				{step{after: 10 * time.Minute, req: request(macA, reqIP("192.168.42.100")), want: "ACK 192.168.42.100", changed: true}, "192.168.42.100 bound laptop"},
				{step{after: 2 * time.Hour, req: request(macA, reqIP("192.168.42.100")), want: "ACK 192.168.42.100", changed: true}, "192.168.42.100 bound laptop"},
			},
		},
		{
			name: "INIT-REBOOT of an offered lease",
			cfg:  small,
			checks: []leaseCheck{
				{step{req: discover(macA, laptop), want: "OFFER 192.168.42.100"}, "192.168.42.100 offered"},
				{step{req: request(macA, reqIP("192.168.42.100")), want: "ACK 192.168.42.100", changed: true}, "192.168.42.100 bound laptop"},
			},
		},
		{
			name: "DECLINE of a lease, and of an offer",
			cfg:  small,
			checks: []leaseCheck{
				{step{req: discover(macA, laptop), want: "OFFER 192.168.42.100"}, "192.168.42.100 offered"},
				{step{req: selecting(macA, "192.168.42.100", laptop), want: "ACK 192.168.42.100", changed: true}, "192.168.42.100 bound laptop"},
				{step{req: decline(macA, "192.168.42.100"), want: "-", changed: true}, "192.168.42.100 declined"},
				{step{req: discover(macA, laptop), want: "OFFER 192.168.42.101"}, "192.168.42.100 declined|192.168.42.101 offered"},
				{step{req: decline(macA, "192.168.42.101"), want: "-", changed: true}, "192.168.42.100 declined|192.168.42.101 declined"},
			},
		},
		{
			name: "RELEASE",
			cfg:  small,
			checks: []leaseCheck{
				{step{req: discover(macA, laptop), want: "OFFER 192.168.42.100"}, "192.168.42.100 offered"},
				{step{req: selecting(macA, "192.168.42.100", laptop), want: "ACK 192.168.42.100", changed: true}, "192.168.42.100 bound laptop"},
				{step{req: release(macA, "192.168.42.100"), want: "-", changed: true}, "192.168.42.100 expired laptop"},
			},
		},
		{
			name: "another client's expired lease reused",
			cfg:  Config{RangeStart: addr("192.168.42.100"), RangeEnd: addr("192.168.42.100")},
			checks: []leaseCheck{
				{step{req: discover(macA, laptop), want: "OFFER 192.168.42.100"}, "192.168.42.100 offered"},
				{step{req: selecting(macA, "192.168.42.100", laptop), want: "ACK 192.168.42.100", changed: true}, "192.168.42.100 bound laptop"},
				{step{after: 2 * time.Hour, req: discover(macB, hostname("phone")), want: "OFFER 192.168.42.100"}, "192.168.42.100 offered"},
				{step{req: selecting(macB, "192.168.42.100"), want: "ACK 192.168.42.100", changed: true}, "192.168.42.100 bound phone"},
			},
		},
		{
			name: "static lease with a configured name",
			cfg:  static("printer"),
			checks: []leaseCheck{
				// never offered: DNS tells by the Expiry
				{step{}, "192.168.42.50 expired printer"},
				{step{req: discover(macS, hostname("android-1")), want: "OFFER 192.168.42.50"}, "192.168.42.50 expired printer"},
				{step{req: selecting(macS, "192.168.42.50"), want: "ACK 192.168.42.50", changed: true}, "192.168.42.50 bound printer"},
				{step{after: 40 * time.Minute, req: discover(macS), want: "OFFER 192.168.42.50"}, "192.168.42.50 bound printer"},
				{step{after: time.Hour, req: discover(macS), want: "OFFER 192.168.42.50"}, "192.168.42.50 expired printer"},
			},
		},
		{
			name: "static lease named by its client",
			cfg:  static(""),
			checks: []leaseCheck{
				{step{}, "192.168.42.50 expired"},
				{step{req: discover(macS, hostname("android-1")), want: "OFFER 192.168.42.50"}, "192.168.42.50 expired"},
				{step{req: selecting(macS, "192.168.42.50"), want: "ACK 192.168.42.50", changed: true}, "192.168.42.50 bound android-1"},
				// a new name, recorded at the ACK
				{step{after: 2 * time.Hour, req: discover(macS, hostname("android-2")), want: "OFFER 192.168.42.50"}, "192.168.42.50 expired android-1"},
				{step{req: selecting(macS, "192.168.42.50"), want: "ACK 192.168.42.50", changed: true}, "192.168.42.50 bound android-2"},
			},
		},
		{
			name: "lease file of an older version: acknowledged, named",
			cfg:  static(""),
			file: `{"leases": [
				{"addr": "192.168.42.50", "hardware_addr": "02:77:00:00:00:12", "hostname": "phone", "expiry": "2026-11-25T13:30:00Z", "static": true},
				{"addr": "192.168.42.100", "hardware_addr": "02:77:00:00:00:0a", "hostname": "laptop", "expiry": "2026-11-25T13:30:00Z"},
				{"addr": "192.168.42.101", "hardware_addr": "02:77:00:00:00:0b", "hostname": "old", "expiry": "2026-11-25T12:00:00Z"}]}`,
			checks: []leaseCheck{
				{step{}, "192.168.42.50 bound phone|192.168.42.100 bound laptop|192.168.42.101 expired old"},
				{step{req: request(macA, ciaddr("192.168.42.100")), want: "ACK 192.168.42.100", changed: true}, "192.168.42.50 bound phone|192.168.42.100 bound laptop|192.168.42.101 expired old"},
				{step{req: discover(macB), want: "OFFER 192.168.42.101"}, "192.168.42.50 bound phone|192.168.42.100 bound laptop|192.168.42.101 offered"},
				{step{req: selecting(macB, "192.168.42.101"), want: "ACK 192.168.42.101", changed: true}, "192.168.42.50 bound phone|192.168.42.100 bound laptop|192.168.42.101 bound old"},
			},
		},
		{
			name: "offers in the file stay offers, without names; a static one is not",
			cfg:  static("printer"),
			file: `{"leases": [
				{"addr": "192.168.42.50", "hardware_addr": "02:77:00:00:00:12", "offered": true, "static": true},
				{"addr": "192.168.42.100", "hardware_addr": "02:77:00:00:00:0a", "hostname": "hand-edited", "expiry": "2026-11-25T13:01:00Z", "offered": true},
				{"addr": "192.168.42.101", "hostname": "hand-edited", "expiry": "2026-11-25T13:10:00Z", "declined": true, "offered": true}]}`,
			checks: []leaseCheck{
				{step{}, "192.168.42.50 expired printer|192.168.42.100 offered|192.168.42.101 declined"},
				{step{req: selecting(macA, "192.168.42.100"), want: "ACK 192.168.42.100", changed: true}, "192.168.42.50 expired printer|192.168.42.100 bound hand-edited|192.168.42.101 declined"},
				{step{req: selecting(macS, "192.168.42.50"), want: "ACK 192.168.42.50", changed: true}, "192.168.42.50 bound printer|192.168.42.100 bound hand-edited|192.168.42.101 declined"},
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var lf LeaseFile
			if tt.file != "" {
				if err := json.Unmarshal([]byte(tt.file), &lf); err != nil {
					t.Fatal(err)
				}
			}
			h, clk := newTestHandler(t, tt.cfg, lan, lf.Leases)
			for i, c := range tt.checks {
				s := c.step
				clk.t = clk.t.Add(s.after)
				if s.req != nil {
					req := s.req(t)
					reply, changed := h.Serve(req)
					if got := summary(reply); got != s.want || changed != s.changed {
						t.Fatalf("step %d (%s at +%v): got %s (changed %v), want %s (changed %v)",
							i, req.MessageType(), clk.t.Sub(t0), got, changed, s.want, s.changed)
					}
					checkTable(t, h)
				}
				got := leaseStates(h.Leases(), clk.t)
				if got != c.leases {
					t.Fatalf("after step %d (at +%v): leases\n%s\nwant\n%s", i, clk.t.Sub(t0), got, c.leases)
				}
				// What is persisted reads back the same.
				data, err := json.Marshal(LeaseFile{Leases: h.Leases()})
				if err != nil {
					t.Fatal(err)
				}
				var back LeaseFile
				if err := json.Unmarshal(data, &back); err != nil {
					t.Fatal(err)
				}
				h2, _ := newTestHandler(t, tt.cfg, lan, back.Leases)
				if again := leaseStates(h2.Leases(), clk.t); again != got {
					t.Fatalf("after step %d, restarted from\n%s\nleases %s, want %s", i, data, again, got)
				}
			}
		})
	}
}
