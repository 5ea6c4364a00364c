package ra

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mdlayher/ndp"

	"github.com/homerouter/homerouter/state"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var (
	t0        = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	delegated = netip.MustParsePrefix("2a02:168:4a00::1/64")
	ula       = netip.MustParsePrefix("fd4e:3a21:9c07::1/64")
	linkLocal = netip.MustParsePrefix("fe80::77:ff:fe00:2/64")
)

// lan0 returns lan0 as netconfig publishes it, with the delegated
// prefix's address ending preferred and valid after the given times
// (none when both are 0) and the ULA's.
func lan0(preferred, valid time.Duration) state.Link {
	l := state.Link{
		Name: state.LAN, Index: 3, HardwareAddr: "02:77:00:00:00:02", Up: true,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.42.0.1/24"), linkLocal, ula},
		InForce: []state.Address{
			state.NewAddress(netip.MustParsePrefix("10.42.0.1/24"), state.OriginStatic, time.Time{}, time.Time{}),
			state.NewAddress(ula, state.OriginULA, time.Time{}, time.Time{}),
		},
	}
	if preferred != 0 || valid != 0 {
		l.Addrs = append(l.Addrs, delegated)
		l.InForce = append(l.InForce, state.NewAddress(delegated, state.OriginDelegated, t0.Add(preferred), t0.Add(valid)))
	}
	return l
}

func base() inputs {
	return inputs{Now: t0, LAN: lan0(4*time.Hour, 8*time.Hour), DefaultRoute: true, Interval: 10 * time.Minute, Domain: "lan", MTU: 1500}
}

// TestGolden: whole advertisements, as they go on the wire, against
// testdata/NAME.golden (a hex dump; go test -update rewrites them), and
// what they say, decoded again by ndp.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   func(in *inputs)
		// want is the decoded advertisement's router lifetime and
		// prefixes with their preferred and valid lifetimes in seconds.
		wantLifetime time.Duration
		wantPrefixes map[string][2]int
		wantDNS      string
	}{
		{
			name:         "delegated-and-ula",
			in:           func(in *inputs) {},
			wantLifetime: 30 * time.Minute,
			wantPrefixes: map[string][2]int{"2a02:168:4a00::/64": {2700, 5400}, "fd4e:3a21:9c07::/64": {2700, 5400}},
			wantDNS:      "fd4e:3a21:9c07::1",
		},
		{
			name:         "no-default-route",
			in:           func(in *inputs) { in.DefaultRoute = false },
			wantPrefixes: map[string][2]int{"2a02:168:4a00::/64": {2700, 5400}, "fd4e:3a21:9c07::/64": {2700, 5400}},
			wantDNS:      "fd4e:3a21:9c07::1",
		},
		{
			name:         "lease-ending",
			in:           func(in *inputs) { in.LAN = lan0(10*time.Second+500*time.Millisecond, 20*time.Second) },
			wantLifetime: 30 * time.Minute,
			wantPrefixes: map[string][2]int{"2a02:168:4a00::/64": {10, 20}, "fd4e:3a21:9c07::/64": {2700, 5400}},
			wantDNS:      "fd4e:3a21:9c07::1",
		},
		{
			// No longer a default router: hosts would have only ULA
			// addresses to go to the internet from.
			name:         "lease-over",
			in:           func(in *inputs) { in.LAN = lan0(-time.Hour, -time.Minute) },
			wantPrefixes: map[string][2]int{"2a02:168:4a00::/64": {0, 0}, "fd4e:3a21:9c07::/64": {2700, 5400}},
			wantDNS:      "fd4e:3a21:9c07::1",
		},
		{
			// A default route on the uplink, but no prefix from the
			// ISP: not a default router (RFC 7084, ULA-5).
			name:         "ula-only",
			in:           func(in *inputs) { in.LAN = lan0(0, 0) },
			wantPrefixes: map[string][2]int{"fd4e:3a21:9c07::/64": {2700, 5400}},
			wantDNS:      "fd4e:3a21:9c07::1",
		},
		{
			name: "renumbered",
			in: func(in *inputs) {
				in.Tracked = state.AdvertisedPrefixes{Prefixes: []state.AdvertisedPrefix{
					{Prefix: netip.MustParsePrefix("2a02:168:1111::/64"), Valid: t0.Add(time.Hour), Withdrawn: t0.Add(-time.Minute), Until: t0.Add(90 * time.Second)},
				}}
			},
			wantLifetime: 30 * time.Minute,
			wantPrefixes: map[string][2]int{"2a02:168:4a00::/64": {2700, 5400}, "fd4e:3a21:9c07::/64": {2700, 5400}, "2a02:168:1111::/64": {0, 90}},
			wantDNS:      "fd4e:3a21:9c07::1",
		},
		{
			name: "link-local-only",
			in: func(in *inputs) {
				in.LAN = state.Link{Name: state.LAN, HardwareAddr: "02:77:00:00:00:02", Addrs: []netip.Prefix{linkLocal}}
				in.DefaultRoute = false
				in.Domain = "home.example"
				in.Interval = 30 * time.Second
				in.MTU = 1492
			},
			wantPrefixes: map[string][2]int{},
			wantDNS:      "fe80::77:ff:fe00:2",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			tc.in(&in)
			a, _ := plan(in)
			b, err := ndp.MarshalMessage(a.message())
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(hex.Dump(b)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), hex.Dump(b)); diff != "" {
				t.Errorf("wire format (-%s +now):\n%s", golden, diff)
			}

			m, err := ndp.ParseMessage(b)
			if err != nil {
				t.Fatal(err)
			}
			ra := m.(*ndp.RouterAdvertisement)
			if ra.RouterLifetime != tc.wantLifetime || ra.CurrentHopLimit != 64 || ra.ManagedConfiguration || ra.OtherConfiguration {
				t.Errorf("router lifetime %v, hop limit %d, M %v, O %v; want %v, 64, false, false", ra.RouterLifetime, ra.CurrentHopLimit, ra.ManagedConfiguration, ra.OtherConfiguration, tc.wantLifetime)
			}
			gotPrefixes := map[string][2]int{}
			var dns []netip.Addr
			var domains []string
			var mtu uint32
			var lla string
			for _, o := range ra.Options {
				switch o := o.(type) {
				case *ndp.PrefixInformation:
					if !o.OnLink || !o.AutonomousAddressConfiguration || o.PrefixLength != 64 {
						t.Errorf("prefix %v: on-link %v, autonomous %v, length %d", o.Prefix, o.OnLink, o.AutonomousAddressConfiguration, o.PrefixLength)
					}
					gotPrefixes[netip.PrefixFrom(o.Prefix, int(o.PrefixLength)).String()] = [2]int{int(o.PreferredLifetime / time.Second), int(o.ValidLifetime / time.Second)}
				case *ndp.RecursiveDNSServer:
					dns = o.Servers
					if o.Lifetime != 3*in.Interval {
						t.Errorf("RDNSS lifetime %v, want %v", o.Lifetime, 3*in.Interval)
					}
				case *ndp.DNSSearchList:
					domains = o.DomainNames
				case *ndp.MTU:
					mtu = o.MTU
				case *ndp.LinkLayerAddress:
					lla = o.Addr.String()
				}
			}
			if diff := cmp.Diff(tc.wantPrefixes, gotPrefixes, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("prefixes (preferred, valid) -want +got:\n%s", diff)
			}
			if len(dns) != 1 || dns[0].String() != tc.wantDNS {
				t.Errorf("RDNSS %v, want %s", dns, tc.wantDNS)
			}
			if len(domains) != 1 || domains[0] != in.Domain {
				t.Errorf("DNSSL %v, want %s", domains, in.Domain)
			}
			if mtu != uint32(in.MTU) || lla != "02:77:00:00:00:02" {
				t.Errorf("MTU %d, source link-layer address %s; want %d, 02:77:00:00:00:02", mtu, lla, in.MTU)
			}
		})
	}
}

// TestRemaining: lifetimes are what remains of the lease, in whole
// seconds, no more than the limit, never negative.
func TestRemaining(t *testing.T) {
	for _, tc := range []struct {
		name  string
		t     time.Time
		limit time.Duration
		want  time.Duration
	}{
		{"no lease: the limit", time.Time{}, ndValidLimit, ndValidLimit},
		{"long lease: the limit", t0.Add(24 * time.Hour), ndValidLimit, ndValidLimit},
		{"short lease: what remains", t0.Add(100 * time.Second), ndValidLimit, 100 * time.Second},
		{"rounded down", t0.Add(100*time.Second + 999*time.Millisecond), ndPreferredLimit, 100 * time.Second},
		{"just over: 0", t0.Add(-time.Millisecond), ndPreferredLimit, 0},
		{"long over: 0", t0.Add(-48 * time.Hour), ndValidLimit, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := remaining(tc.t, t0, tc.limit); got != tc.want {
				t.Errorf("remaining(%v) = %v, want %v", tc.t, got, tc.want)
			}
		})
	}
}

// TestPreferredNotAboveValid: a lease whose preferred lifetime is
// longer than its valid one (nonsense a server may send) is advertised
// with the valid one as the cap, as RFC 4861 requires of a PIO.
func TestPreferredNotAboveValid(t *testing.T) {
	in := base()
	in.LAN = lan0(time.Hour, 30*time.Second)
	a, _ := plan(in)
	for _, p := range a.Prefixes {
		if p.Preferred > p.Valid {
			t.Errorf("%v: preferred %v > valid %v", p.Prefix, p.Preferred, p.Valid)
		}
	}
}

// TestShortest: the lifetime the next advertisement must come before.
func TestShortest(t *testing.T) {
	in := base()
	in.LAN = lan0(40*time.Second, time.Minute)
	in.Tracked = state.AdvertisedPrefixes{Prefixes: []state.AdvertisedPrefix{
		{Prefix: netip.MustParsePrefix("2a02:168:1111::/64"), Withdrawn: t0, Until: t0.Add(5 * time.Second)},
	}}
	if a, _ := plan(in); a.shortest() != 40*time.Second {
		t.Errorf("shortest = %v, want the delegated prefix's 40 s (the deprecated one's 5 s is meant to run out)", a.shortest())
	}
	in.LAN = lan0(-time.Second, -time.Second)
	if a, _ := plan(in); a.shortest() != ndPreferredLimit {
		t.Errorf("shortest = %v, want the ULA's %v (a lease that is over has nothing to keep)", a.shortest(), ndPreferredLimit)
	}
}

// TestRenumbering follows a prefix change with a fake clock: the old
// /64 is advertised with preferred lifetime 0 and a valid lifetime that
// counts down to 0 (its lease's end, or 90 minutes), then forgotten; a
// prefix that comes back is current again.
func TestRenumbering(t *testing.T) {
	old := netip.MustParsePrefix("2a02:168:1111::1/64")
	oldLAN := lan0(0, 0)
	oldLAN.InForce = append(oldLAN.InForce, state.NewAddress(old, state.OriginDelegated, t0.Add(time.Hour), t0.Add(2*time.Hour)))
	newLAN := lan0(24*time.Hour, 48*time.Hour)

	in := base()
	in.LAN = oldLAN
	step := func(at time.Duration, lan state.Link) advert {
		t.Helper()
		in.Now, in.LAN = t0.Add(at), lan
		a, tracked := plan(in)
		in.Tracked = tracked
		// What is remembered survives ra-prefixes.json.
		data, err := json.Marshal(tracked)
		if err != nil {
			t.Fatal(err)
		}
		var back state.AdvertisedPrefixes
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		in.Tracked = back
		return a
	}
	lifetimes := func(a advert, p netip.Prefix) (preferred, valid time.Duration, ok bool) {
		for _, pi := range a.Prefixes {
			if pi.Prefix == p.Masked() {
				return pi.Preferred, pi.Valid, true
			}
		}
		return 0, 0, false
	}

	a := step(0, oldLAN)
	if pref, valid, ok := lifetimes(a, old); !ok || pref != ndPreferredLimit || valid != ndValidLimit {
		t.Fatalf("before the change: %v %v %v", pref, valid, ok)
	}
	// The ISP delegates another prefix ten minutes later; the old lease
	// would have been valid for another 110 minutes, more than the
	// 90 any host was told: 90 minutes from now it is.
	for _, tc := range []struct {
		at        time.Duration
		wantValid time.Duration // 0: no longer advertised
	}{
		{10 * time.Minute, 90 * time.Minute},
		{10*time.Minute + 16*time.Second, 90*time.Minute - 16*time.Second},
		{10*time.Minute + 32*time.Second, 90*time.Minute - 32*time.Second},
		{60 * time.Minute, 40 * time.Minute},
		{100*time.Minute - time.Second, time.Second},
		{100 * time.Minute, 0},
		{200 * time.Minute, 0},
	} {
		a := step(tc.at, newLAN)
		pref, valid, ok := lifetimes(a, old)
		switch {
		case tc.wantValid == 0 && ok:
			t.Errorf("at %v: the old prefix is still advertised (%v, %v)", tc.at, pref, valid)
		case tc.wantValid != 0 && (!ok || pref != 0 || valid != tc.wantValid):
			t.Errorf("at %v: old prefix preferred %v, valid %v (advertised %v); want 0, %v", tc.at, pref, valid, ok, tc.wantValid)
		}
		if p, _, ok := lifetimes(a, delegated); !ok || p == 0 {
			t.Errorf("at %v: the new prefix is not advertised as preferred", tc.at)
		}
	}
	if n := len(in.Tracked.Prefixes); n != 2 {
		t.Errorf("remembered %v, want the new prefix and the ULA", in.Tracked.Prefixes)
	}

	// A lease that ends sooner than 90 minutes caps the countdown, and a
	// prefix that comes back before is current again.
	in.Tracked = state.AdvertisedPrefixes{}
	short := lan0(0, 0)
	short.InForce = append(short.InForce, state.NewAddress(old, state.OriginDelegated, t0.Add(time.Minute), t0.Add(5*time.Minute)))
	step(0, short)
	a = step(time.Minute, newLAN)
	if pref, valid, ok := lifetimes(a, old); !ok || pref != 0 || valid != 4*time.Minute {
		t.Errorf("short lease withdrawn: %v %v %v; want 0, 4m", pref, valid, ok)
	}
	a = step(2*time.Minute, short)
	if _, valid, ok := lifetimes(a, old); !ok || valid != 3*time.Minute {
		t.Errorf("back again: valid %v (%v), want 3m", valid, ok)
	}
	for _, p := range in.Tracked.Prefixes {
		if !p.Withdrawn.IsZero() && p.Prefix == old.Masked() {
			t.Errorf("the prefix that came back is still withdrawn: %+v", p)
		}
	}
}

// TestRenumberingAfterAPowerCut: a prefix advertised before a reboot
// and gone after it is deprecated only for as long as hosts may still
// hold it: not at all after a long power cut, and never for longer
// than any host was told, whatever ra-prefixes.json says.
func TestRenumberingAfterAPowerCut(t *testing.T) {
	old := netip.MustParsePrefix("2a02:168:1111::/64")
	for _, tc := range []struct {
		name      string
		tracked   state.AdvertisedPrefix
		wantValid time.Duration // 0: not advertised
	}{
		{"a short reboot", state.AdvertisedPrefix{Prefix: old, Valid: t0.Add(24 * time.Hour), Told: t0.Add(40 * time.Minute)}, 40 * time.Minute},
		{"off for a day", state.AdvertisedPrefix{Prefix: old, Valid: t0.Add(24 * time.Hour), Told: t0.Add(-22 * time.Hour)}, 0},
		{"the lease ended while off", state.AdvertisedPrefix{Prefix: old, Valid: t0.Add(-time.Minute), Told: t0.Add(time.Hour)}, 0},
		{"a hand edit far into the future", state.AdvertisedPrefix{Prefix: old, Withdrawn: t0.Add(-time.Hour), Until: t0.Add(1000 * time.Hour)}, 30 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			in.Tracked = state.AdvertisedPrefixes{Prefixes: []state.AdvertisedPrefix{tc.tracked}}
			a, _ := plan(in)
			var got time.Duration
			for _, p := range a.Prefixes {
				if p.Prefix == old {
					if p.Preferred != 0 {
						t.Errorf("preferred %v, want 0", p.Preferred)
					}
					got = p.Valid
				}
			}
			if got != tc.wantValid {
				t.Errorf("valid %v, want %v", got, tc.wantValid)
			}
		})
	}
}

// TestDiffers: news is a change of prefixes, router, resolver, domain or
// MTU; lifetimes that count down are not.
func TestDiffers(t *testing.T) {
	a, _ := plan(base())
	later := base()
	later.Now = t0.Add(time.Minute)
	b, _ := plan(later)
	if a.differs(b) {
		t.Errorf("a minute later differs: %+v vs %+v", a, b)
	}
	for name, change := range map[string]func(in *inputs){
		"default route": func(in *inputs) { in.DefaultRoute = false },
		"prefix gone":   func(in *inputs) { in.LAN = lan0(0, 0) },
		"domain":        func(in *inputs) { in.Domain = "home.example" },
		"MTU":           func(in *inputs) { in.MTU = 1280 },
		"lease over":    func(in *inputs) { in.LAN = lan0(-time.Second, time.Hour) },
	} {
		in := base()
		change(&in)
		c, _ := plan(in)
		if !a.differs(c) {
			t.Errorf("%s: not news", name)
		}
	}
}

// FuzzPlan: whatever ra-prefixes.json holds (it is a file a person may
// edit), planning and marshalling an advertisement never panics.
func FuzzPlan(f *testing.F) {
	f.Add([]byte(`{"prefixes":[{"prefix":"2a02:168:1111::/64","valid":"2026-12-02T13:00:00Z","told":"2026-12-02T13:30:00Z","withdrawn":"2026-12-02T11:59:00Z","until":"2026-12-02T12:30:00Z"}]}`))
	f.Add([]byte(`{"prefixes":[{"prefix":"10.0.0.0/8","withdrawn":"2026-12-02T11:59:00Z","until":"2099-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"prefixes":[{"prefix":"::/0","withdrawn":"0001-01-01T00:00:00Z","until":"9999-12-31T23:59:59Z"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var tracked state.AdvertisedPrefixes
		if json.Unmarshal(data, &tracked) != nil {
			return
		}
		in := base()
		in.Tracked = tracked
		a, _ := plan(in)
		if _, err := ndp.MarshalMessage(a.message()); err != nil {
			t.Fatalf("marshal %+v: %v", a, err)
		}
	})
}
