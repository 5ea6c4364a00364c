package dhcp4d

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TestUDP4 checks the headers of the datagrams the server sends by packet
// socket against gopacket's decoder, checksums included.
func TestUDP4(t *testing.T) {
	for _, payload := range [][]byte{[]byte("even"), []byte("odd"), make([]byte, 300)} {
		pkt := udp4(netip.MustParseAddr("192.168.42.1"), 67, netip.MustParseAddr("192.168.42.100"), 68, payload)
		p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if ip == nil || udp == nil {
			t.Fatalf("does not decode: %v", p)
		}
		if ip.SrcIP.String() != "192.168.42.1" || ip.DstIP.String() != "192.168.42.100" || udp.SrcPort != 67 || udp.DstPort != 68 || string(udp.Payload) != string(payload) {
			t.Errorf("decoded %v %v", ip, udp)
		}
		// Recompute both checksums and compare with what udp4 wrote.
		wantIP, wantUDP := ip.Checksum, udp.Checksum
		udp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ip, udp, gopacket.Payload(payload)); err != nil {
			t.Fatal(err)
		}
		again := gopacket.NewPacket(buf.Bytes(), layers.LayerTypeIPv4, gopacket.Default)
		if got := again.Layer(layers.LayerTypeIPv4).(*layers.IPv4).Checksum; got != wantIP {
			t.Errorf("IPv4 checksum %#x, want %#x", wantIP, got)
		}
		if got := again.Layer(layers.LayerTypeUDP).(*layers.UDP).Checksum; got != wantUDP {
			t.Errorf("UDP checksum %#x, want %#x", wantUDP, got)
		}
	}
}
