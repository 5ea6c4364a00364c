package firewall

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/homerouter/homerouter/state"
)

// TestTrafficTableGolden: the counting table renders exactly as nft
// lists it in the lab (TestTrafficTableLab writes the golden file from
// nft); without egress it has both sets but no egress chain.
func TestTrafficTableGolden(t *testing.T) {
	want := golden(t, "traffic")
	if got := (trafficTable{lan: "lan0", egress: true}).String(); got != want {
		t.Errorf("trafficTable -golden +got:\n%s", cmp.Diff(want, got))
	}
	got := trafficTable{lan: "lan0"}.String()
	if strings.Contains(got, "chain egress") || !strings.Contains(got, "set down {") || !strings.Contains(got, "chain ingress {") {
		t.Errorf("without egress:\n%s", got)
	}
}

// TestTrafficTableAdd: add puts in only what the kernel lacks, chains
// only with the LAN link, and says when it made the sets (whose counts
// then start from zero).
func TestTrafficTableAdd(t *testing.T) {
	all := map[string]bool{setKey(upSet): true, setKey(downSet): true, chainKey(ingressChain): true, chainKey(egressChain): true}
	sets := map[string]bool{setKey(upSet): true, setKey(downSet): true}
	for _, tc := range []struct {
		name           string
		have           map[string]bool
		egress, chains bool
		added, newSets bool
	}{
		{name: "nothing yet", have: map[string]bool{}, egress: true, chains: true, added: true, newSets: true},
		{name: "nothing yet, no lan0", have: map[string]bool{}, egress: true, added: true, newSets: true},
		{name: "all there", have: all, egress: true, chains: true},
		{name: "lan0 came back: chains gone, sets kept", have: sets, egress: true, chains: true, added: true},
		{name: "sets there, still no lan0", have: sets, egress: true},
		{name: "no egress: the ingress chain is enough", have: map[string]bool{setKey(upSet): true, setKey(downSet): true, chainKey(ingressChain): true}, chains: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := nftables.New()
			if err != nil {
				t.Fatal(err)
			}
			added, newSets, err := trafficTable{lan: "lan0", egress: tc.egress}.add(c, tc.have, tc.chains)
			if err != nil {
				t.Fatal(err)
			}
			if added != tc.added || newSets != tc.newSets {
				t.Errorf("add = added %v, new sets %v; want %v, %v", added, newSets, tc.added, tc.newSets)
			}
		})
	}
}

// TestMacBytes: a set's elements become bytes by MAC, with the
// per-packet bytes added.
func TestMacBytes(t *testing.T) {
	elems := []nftables.SetElement{
		{Key: []byte{0x02, 0, 0, 0, 0x42, 0x10}, Counter: &expr.Counter{Bytes: 1000, Packets: 10}},
		{Key: []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0, 0}, Counter: &expr.Counter{Bytes: 60, Packets: 1}}, // padded key
		{Key: []byte{0x02, 0, 0, 0, 0x42, 0x11}},                                                               // no counter
	}
	got, err := macBytes(elems, ethHeaderLen)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"02:00:00:00:42:10": 1140, "aa:bb:cc:dd:ee:ff": 74, "02:00:00:00:42:11": 0}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("macBytes -want +got:\n%s", d)
	}
	if _, err := macBytes([]nftables.SetElement{{Key: []byte{1, 2, 3}}}, 0); err == nil {
		t.Error("a 3-byte key: no error")
	}
}

// TestTrafficHistory steps a fake clock through samples of the kernel's
// totals and checks what each sample publishes: the totals, and the
// last minute's growth, taken from the newest sample at least a minute
// old, or the oldest one while none is.
func TestTrafficHistory(t *testing.T) {
	const a, b, c = "02:00:00:00:42:10", "02:00:00:00:42:11", "aa:00:00:00:00:01"
	type step struct {
		at       time.Duration // since the test's t0
		begin    bool          // the sets were made at this step
		up, down map[string]uint64
		want     []state.DeviceTraffic
	}
	dev := func(mac string, up, down, upMin, downMin uint64) state.DeviceTraffic {
		return state.DeviceTraffic{MAC: mac, Up: up, Down: down, UpMinute: upMin, DownMinute: downMin}
	}
	// steady sends 10 bytes a second up from a from t0 on, sampled every
	// 5 s: the minute's growth is 600 once a minute has passed.
	var steady []step
	for i := range 20 {
		s := uint64(i * 50)
		var want uint64
		switch {
		case i == 0:
			want = 0
		case i*5 < 60:
			want = s // the first sample (0) is the base
		default:
			want = 600
		}
		steady = append(steady, step{at: time.Duration(i*5) * time.Second, up: map[string]uint64{a: s}, want: []state.DeviceTraffic{dev(a, s, 0, want, 0)}})
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{name: "the first sample of counts from before is the base", steps: []step{
			{at: 0, up: map[string]uint64{a: 5000}, down: map[string]uint64{a: 9000}, want: []state.DeviceTraffic{dev(a, 5000, 9000, 0, 0)}},
			{at: 5 * time.Second, up: map[string]uint64{a: 5100}, down: map[string]uint64{a: 9300}, want: []state.DeviceTraffic{dev(a, 5100, 9300, 100, 300)}},
		}},
		{name: "sets made just now count from zero", steps: []step{
			{at: 0, begin: true, up: map[string]uint64{a: 70}, want: []state.DeviceTraffic{dev(a, 70, 0, 70, 0)}},
			{at: 5 * time.Second, up: map[string]uint64{a: 90}, want: []state.DeviceTraffic{dev(a, 90, 0, 90, 0)}},
		}},
		{name: "steady upload", steps: steady},
		{name: "a sample exactly a minute old is the base", steps: []step{
			{at: 0, up: map[string]uint64{a: 10}},
			{at: 30 * time.Second, up: map[string]uint64{a: 20}},
			{at: 60 * time.Second, up: map[string]uint64{a: 45}, want: []state.DeviceTraffic{dev(a, 45, 0, 35, 0)}},
			{at: 89 * time.Second, up: map[string]uint64{a: 50}, want: []state.DeviceTraffic{dev(a, 50, 0, 40, 0)}},
			{at: 90 * time.Second, up: map[string]uint64{a: 50}, want: []state.DeviceTraffic{dev(a, 50, 0, 30, 0)}},
		}},
		{name: "idle for a minute: nothing in the last minute", steps: []step{
			{at: 0, up: map[string]uint64{a: 0}},
			{at: 5 * time.Second, up: map[string]uint64{a: 800}, want: []state.DeviceTraffic{dev(a, 800, 0, 800, 0)}},
			{at: 64 * time.Second, up: map[string]uint64{a: 800}, want: []state.DeviceTraffic{dev(a, 800, 0, 800, 0)}},
			{at: 65 * time.Second, up: map[string]uint64{a: 800}, want: []state.DeviceTraffic{dev(a, 800, 0, 0, 0)}},
		}},
		{name: "a device new since the base: all of it is recent", steps: []step{
			{at: 0, up: map[string]uint64{a: 100}},
			{at: 70 * time.Second, up: map[string]uint64{a: 100, b: 40}, down: map[string]uint64{b: 400},
				want: []state.DeviceTraffic{dev(a, 100, 0, 0, 0), dev(b, 40, 400, 40, 400)}},
		}},
		{name: "sorted by MAC, a device only received from", steps: []step{
			{at: 0, up: map[string]uint64{c: 1, a: 2}, down: map[string]uint64{b: 3, a: 4},
				want: []state.DeviceTraffic{dev(a, 2, 4, 0, 0), dev(b, 0, 3, 0, 0), dev(c, 1, 0, 0, 0)}},
		}},
		{name: "a counter that started over", steps: []step{
			{at: 0, up: map[string]uint64{a: 500}},
			{at: 5 * time.Second, up: map[string]uint64{a: 20}, want: []state.DeviceTraffic{dev(a, 20, 0, 20, 0)}},
		}},
		{name: "a device gone from the sets is gone", steps: []step{
			{at: 0, up: map[string]uint64{a: 5, b: 6}},
			{at: 5 * time.Second, up: map[string]uint64{b: 7}, want: []state.DeviceTraffic{dev(b, 7, 0, 1, 0)}},
		}},
		{name: "the sets made again: history starts over", steps: []step{
			{at: 0, up: map[string]uint64{a: 5000}},
			{at: 30 * time.Second, begin: true, up: map[string]uint64{a: 30}, want: []state.DeviceTraffic{dev(a, 30, 0, 30, 0)}},
			{at: 35 * time.Second, up: map[string]uint64{a: 80}, want: []state.DeviceTraffic{dev(a, 80, 0, 80, 0)}},
		}},
		{name: "samples less than a second apart replace the newest", steps: []step{
			{at: 0, up: map[string]uint64{a: 0}},
			{at: 5 * time.Second, up: map[string]uint64{a: 10}, want: []state.DeviceTraffic{dev(a, 10, 0, 10, 0)}},
			{at: 5*time.Second + 300*time.Millisecond, up: map[string]uint64{a: 11}, want: []state.DeviceTraffic{dev(a, 11, 0, 11, 0)}},
			{at: 5*time.Second + 600*time.Millisecond, up: map[string]uint64{a: 12}, want: []state.DeviceTraffic{dev(a, 12, 0, 12, 0)}},
			// 5.6 s replaced 5.3 s, and 65 s replaces 5.6 s: the sample
			// at 5 s is now a minute old.
			{at: 65 * time.Second, up: map[string]uint64{a: 20}, want: []state.DeviceTraffic{dev(a, 20, 0, 10, 0)}},
			{at: 66 * time.Second, up: map[string]uint64{a: 21}, want: []state.DeviceTraffic{dev(a, 21, 0, 11, 0)}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
			var h trafficHistory
			for _, s := range tc.steps {
				at := t0.Add(s.at)
				if s.begin {
					h.begin(at)
				}
				got := h.add(trafficSample{at: at, up: s.up, down: s.down})
				if !got.Sampled.Equal(at) {
					t.Errorf("at %v: sampled %v", s.at, got.Sampled)
				}
				if s.want == nil {
					continue
				}
				if d := cmp.Diff(s.want, got.Devices); d != "" {
					t.Errorf("at %v: devices -want +got:\n%s", s.at, d)
				}
			}
			// The history keeps what reaches a minute back, and no more.
			if n := len(h.samples); n > int(trafficWindow/trafficMinGap)+2 {
				t.Errorf("%d samples kept", n)
			}
		})
	}
}

// TestTrafficHistoryBurst: samples five times a second for minutes on
// end (input changes in a burst) keep the history at about a minute of
// seconds, and the minute's figure a minute's worth.
func TestTrafficHistoryBurst(t *testing.T) {
	const mac = "02:00:00:00:42:10"
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var h trafficHistory
	var got state.Traffic
	for i := range 1000 { // 200 s, one byte each 200 ms
		got = h.add(trafficSample{at: t0.Add(time.Duration(i) * 200 * time.Millisecond), up: map[string]uint64{mac: uint64(i)}})
		if n := len(h.samples); n > int(trafficWindow/trafficMinGap)+2 {
			t.Fatalf("after %d samples: %d kept", i+1, n)
		}
	}
	// 5 bytes a second: 300 in a minute, a little more as the base is
	// at most a second older than that.
	if d, ok := got.Find(mac); !ok || d.UpMinute < 300 || d.UpMinute > 305 {
		t.Errorf("up in the last minute: %+v, want 300 to 305", d)
	}
}
