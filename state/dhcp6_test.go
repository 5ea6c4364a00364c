package state

import (
	"net/netip"
	"testing"
)

func TestLANPrefix(t *testing.T) {
	for _, tc := range []struct {
		delegated string
		n         int
		want      string // "" for none
	}{
		{"2a02:168:4a00::/48", 0, "2a02:168:4a00::/64"},
		{"2a02:168:4a00::/48", 1, "2a02:168:4a00:1::/64"},
		{"2a02:168:4a00::/48", 0xffff, "2a02:168:4a00:ffff::/64"},
		{"fd00:78:0:100::/56", 0, "fd00:78:0:100::/64"},
		{"fd00:78:0:100::/56", 255, "fd00:78:0:1ff::/64"},
		{"fd00:78:0:100::/56", 256, ""},
		{"fd00:78:0:100::/64", 0, "fd00:78:0:100::/64"},
		{"fd00:78:0:100::/64", 1, ""},
		{"fd00:78:0:100::/72", 0, ""},
		{"2a02:168::/32", 65536, "2a02:168:1::/64"},
		{"10.0.0.0/8", 0, ""},
	} {
		got, ok := LANPrefix(netip.MustParsePrefix(tc.delegated), tc.n)
		if (tc.want == "") == ok || (ok && got.String() != tc.want) {
			t.Errorf("LANPrefix(%s, %d) = %v, %v; want %q", tc.delegated, tc.n, got, ok, tc.want)
		}
	}
}
