package state

import "time"

// Traffic is what each device on the LAN sent and received, counted by
// the firewall (services/firewall) per MAC address on lan0 and published
// on Store.Traffic for the status page and metrics.
//
// Devices are keyed by MAC rather than IP address: a device's IPv4 and
// IPv6 traffic add up, and IPv6 privacy addresses, which change daily,
// do not scatter it over many rows.
type Traffic struct {
	// Sampled is when the counters were last read; zero while they have
	// not been.
	Sampled time.Time `json:"sampled,omitzero"`
	// Devices are sorted by MAC.
	Devices []DeviceTraffic `json:"devices,omitempty"`
}

// DeviceTraffic is one device's byte counts. Up is what the device sent
// into lan0, Down what lan0 delivered to it; both include its traffic
// with the router itself (DNS, DHCP).
type DeviceTraffic struct {
	MAC string `json:"mac"`
	// Up and Down count since the counting began: the firewall's first
	// start since the kernel booted.
	Up   uint64 `json:"up"`
	Down uint64 `json:"down"`
	// UpMinute and DownMinute are the bytes of the last minute, or of
	// the time since counting began when that is shorter.
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
