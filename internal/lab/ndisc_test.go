package lab

import (
	"net/netip"
	"reflect"
	"testing"
)

// TestParseRdisc6 reads what rdisc6 printed for radvd in the lab.
func TestParseRdisc6(t *testing.T) {
	out := `Soliciting ff02::2 (ff02::2) on b0...

Hop limit                 :           64 (      0x40)
Stateful address conf.    :           No
Stateful other conf.      :           No
Mobile home agent         :           No
Router preference         :       medium
Neighbor discovery proxy  :           No
Router lifetime           :         1800 (0x00000708) seconds
Reachable time            :  unspecified (0x00000000)
Retransmit time           :  unspecified (0x00000000)
 Prefix                   : fd00:99::/64
  On-link                 :          Yes
  Autonomous address conf.:          Yes
  Valid time              :           50 (0x00000032) seconds
  Pref. time              :            0 (0x00000000) seconds
 Recursive DNS server     : fd00:99::1
  DNS server lifetime     :          600 (0x00000258) seconds
 DNS search list          : lan 
  DNS search list lifetime:          600 (0x00000258) seconds
 MTU                      :         1500 bytes (valid)
 Source link-layer address: 5E:40:73:89:C5:C6
 from fe80::5c40:73ff:fe89:c5c6
`
	ras, err := ParseRdisc6(out)
	if err != nil {
		t.Fatal(err)
	}
	want := RouterAdvert{
		HopLimit: 64, RouterLifetime: 1800, MTU: 1500, SourceLLA: "5e:40:73:89:c5:c6",
		Prefixes:      []AdvertPrefix{{Prefix: netip.MustParsePrefix("fd00:99::/64"), OnLink: true, Autonomous: true, Valid: 50}},
		RDNSS:         []netip.Addr{netip.MustParseAddr("fd00:99::1")},
		RDNSSLifetime: 600, DNSSL: []string{"lan"}, From: netip.MustParseAddr("fe80::5c40:73ff:fe89:c5c6"),
	}
	if len(ras) != 1 || !reflect.DeepEqual(ras[0], want) {
		t.Errorf("ParseRdisc6 = %+v, want %+v", ras, want)
	}
	if ll, err := LinkLocal("52:54:00:00:00:01"); err != nil || ll.String() != "fe80::5054:ff:fe00:1" {
		t.Errorf("LinkLocal = %v %v, want fe80::5054:ff:fe00:1", ll, err)
	}
}
