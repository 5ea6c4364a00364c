package capture

import (
	"fmt"
	"io"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/homerouter/homerouter/state"
)

// Links are the links the capture listens on, in the order of their
// interface blocks in a pcapng file: Packet.Link indexes it.
var Links = [...]string{state.Uplink, state.LAN}

// filterText is the filter as tcpdump would write it, for the interface
// blocks: Wireshark shows it in the capture's properties.
const filterText = "(ip and udp port (67 or 68)) or (ip6 and udp port (546 or 547)) or (icmp6 and ip6[40] >= 133 and ip6[40] <= 136)"

// writer writes packets as pcapng: one section, one Ethernet interface
// block per link, nanosecond timestamps (pcapgo's), and each packet's
// direction in its flags.
type writer struct {
	ng *pcapgo.NgWriter
}

func newWriter(w io.Writer, version string) (*writer, error) {
	opts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Hardware:    pcapgo.DefaultNgWriterOptions.SectionInfo.Hardware,
		OS:          "Linux",
		Application: "homerouter " + version,
	}}
	var ng *pcapgo.NgWriter
	for i, name := range Links {
		intf := pcapgo.NgInterface{
			Name:                name,
			Filter:              filterText,
			OS:                  "Linux",
			LinkType:            layers.LinkTypeEthernet,
			TimestampResolution: 9,
		}
		var err error
		if i == 0 {
			ng, err = pcapgo.NewNgWriterInterface(w, intf, opts)
		} else {
			_, err = ng.AddInterface(intf)
		}
		if err != nil {
			return nil, fmt.Errorf("pcapng header: %w", err)
		}
	}
	return &writer{ng: ng}, nil
}

// write writes pkts; dropped, when not 0, is recorded on the first as
// the packets lost before it (a reader that fell behind the ring).
func (w *writer) write(pkts []Packet, dropped uint64) error {
	for i, p := range pkts {
		dir := pcapgo.NgEpbFlagDirectionInbound
		if p.Outbound {
			dir = pcapgo.NgEpbFlagDirectionOutbound
		}
		opts := pcapgo.NgPacketOptions{Flags: &pcapgo.NgEpbFlags{Direction: dir}}
		if i == 0 && dropped > 0 {
			opts.DropCount = &dropped
		}
		ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: len(p.Data), InterfaceIndex: p.Link}
		if err := w.ng.WritePacketWithOptions(ci, p.Data, opts); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) flush() error { return w.ng.Flush() }
