package firewall

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// update rewrites testdata/*.nft from `nft list ruleset` in the lab
// (TestRulesetLab): the golden files are nft's rendering of what the
// kernel holds, never the builder's own.
var update = flag.Bool("update", false, "rewrite testdata/*.nft from nft in the lab")

// goldenCases are the inputs of the golden files testdata/NAME.nft.
var goldenCases = []struct {
	name string
	in   Inputs
	// fromNft is false for a golden file nft in the lab cannot make: a
	// flowtable needs a kernel with CONFIG_NF_FLOW_TABLE, which the lab's
	// lacks. Its file is the builder's rendering, checked against the
	// others by hand; the image test shows the kernel takes it.
	fromNft bool
}{
	{
		name:    "nothing-yet",
		in:      Inputs{LAN: "lan0", Uplink: "uplink0"},
		fromNft: true,
	},
	{
		name: "home",
		in: Inputs{
			LAN: "lan0", Uplink: "uplink0",
			LAN4:    []netip.Prefix{netip.MustParsePrefix("192.168.42.0/24")},
			LAN6:    []netip.Prefix{netip.MustParsePrefix("fd00:42::/64"), netip.MustParsePrefix("fd00:78:0:ff00::/64")},
			ULA:     []netip.Prefix{netip.MustParsePrefix("fd4e:3a21:9c07::/64")},
			Uplink4: []netip.Addr{netip.MustParseAddr("10.77.0.100")},
			Forwards: []Forward{
				{Proto: protoTCP, Ports: onePort(8080), Dest: netip.MustParseAddr("192.168.42.10"), DestPorts: onePort(80)},
				{Proto: protoTCP, Ports: portRange{27015, 27030}, Dest: netip.MustParseAddr("192.168.42.11"), DestPorts: portRange{27015, 27030}},
				{Proto: protoUDP, Ports: portRange{27015, 27030}, Dest: netip.MustParseAddr("192.168.42.11"), DestPorts: portRange{27015, 27030}},
				{Proto: protoUDP, Ports: portRange{5000, 5010}, Dest: netip.MustParseAddr("192.168.42.12"), DestPorts: onePort(5000)},
				{Proto: protoTCP, Ports: onePort(443), Dest: netip.MustParseAddr("fd00:78:0:ff00::10"), DestPorts: onePort(443)},
			},
		},
		fromNft: true,
	},
	{
		name: "flowtable",
		in: Inputs{
			LAN: "lan0", Uplink: "uplink0",
			LAN4:      []netip.Prefix{netip.MustParsePrefix("192.168.42.0/24")},
			Uplink4:   []netip.Addr{netip.MustParseAddr("10.0.2.15")},
			Flowtable: true,
		},
	},
}

func golden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".nft"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBuildGolden: the builder renders each case exactly as nft lists
// the kernel's ruleset.
func TestBuildGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			got := Build(tc.in).String()
			if d := cmp.Diff(golden(t, tc.name), got); d != "" {
				t.Errorf("Build(%s) -golden +got:\n%s", tc.name, d)
			}
		})
	}
}

// TestBuildIdempotent: the same inputs give the same ruleset.
func TestBuildIdempotent(t *testing.T) {
	for _, tc := range goldenCases {
		if a, b := Build(tc.in).String(), Build(tc.in).String(); a != b {
			t.Errorf("%s: two builds differ", tc.name)
		}
	}
}
