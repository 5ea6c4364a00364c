package state

import "time"

// Traffic is what each device on the LAN sent and received, counted by
// the firewall (services/firewall) per MAC address on lan0 and published
// on Store.Traffic for the status page and metrics.
//
// Devices are keyed by MAC rather than IP address: a device's IPv4 and
// IPv6 traffic add up, and IPv6 privacy addresses, which change daily,
// do not scatter it over many rows.
//
// The firewall reads the kernel's counters every 5 s, and whenever its
// inputs change, and publishes every reading, even one in which no
// count moved: the last minute's figures shrink as time passes, and
// Sampled says how fresh they are. The first reading comes with the
// firewall's first ruleset at start, within a second or so.
type Traffic struct {
	// Sampled is when the counters were last read. It is zero while they
	// have not been, and stays so on a kernel that cannot count per
	// device (a notice on /health.json says why). While the counters
	// cannot be read (a problem on /health.json), the last reading stays,
	// with its time.
	Sampled time.Time `json:"sampled,omitzero"`
	// Devices are sorted by MAC.
	Devices []DeviceTraffic `json:"devices,omitempty"`
}

// DeviceTraffic is one device's byte counts. Up is what the device sent
// into lan0, Down what lan0 delivered to it, addressed to it alone (not
// to a multicast or broadcast address); both include its traffic with
// the router itself (DNS, DHCP). What devices send each other through a
// switch never reaches lan0 and is not counted.
//
// The bytes are those of whole Ethernet frames without their checksum,
// headers included, as `ip -s link` counts lan0's. Where the kernel
// handles several frames as one packet (segmentation offloads, GRO), it
// counts their headers once, so the counts can fall short of the wire's
// by a few percent.
//
// A device keeps its row until the router reboots. At most 1024
// devices are counted each way: a MAC seen once that many are is not.
type DeviceTraffic struct {
	// MAC is as net.HardwareAddr.String writes it (lower case).
	MAC string `json:"mac"`
	// Up and Down count since the counting began: when the firewall
	// first made its counting table after the kernel booted (restarts
	// and reloads carry on). They start over, from zero, only when that
	// table was taken away: by hand, or by the firewall's bench mode
	// "off". Prometheus sees that as a counter reset.
	Up   uint64 `json:"up"`
	Down uint64 `json:"down"`
	// UpMinute and DownMinute are the bytes of the last minute: Up and
	// Down now less what they were at the newest reading at least a
	// minute old. Until the firewall has read for a minute they are
	// those since its first reading, or since counting began when the
	// firewall made the table just then (at boot): a service restart
	// does not count everything since boot as the last minute's.
	UpMinute   uint64 `json:"up_minute"`
	DownMinute uint64 `json:"down_minute"`
}

// Find returns the traffic of the device with the MAC address mac
// (as net.HardwareAddr.String writes it).
func (t Traffic) Find(mac string) (DeviceTraffic, bool) {
	for _, d := range t.Devices {
		if d.MAC == mac {
			return d, true
		}
	}
	return DeviceTraffic{}, false
}
