package state

import "time"

// FirewallStatus is what the firewall (services/firewall) has in force,
// published on Store.Firewall for the status page and metrics.
type FirewallStatus struct {
	// Applied is when the ruleset in force was applied; zero while none
	// is (then nothing is forwarded).
	Applied time.Time `json:"applied,omitzero"`
	// Forwarding is whether the kernel forwards packets (IPv4 and IPv6):
	// only once the ruleset is in force.
	Forwarding bool `json:"forwarding"`
	// Flowtable is whether established flows take the kernel's fast
	// path; false on a kernel built without flowtables.
	Flowtable bool `json:"flowtable"`
	// Forwards is how many port forwards and IPv6 pinholes are in force.
	Forwards int `json:"forwards"`
	// Counters count since the router started.
	Counters FirewallCounters `json:"counters"`
}

// FirewallCounters count packets and bytes per family and direction.
// "Out" is from lan0 to uplink0, "in" from uplink0 to lan0 (replies and
// forwarded ports). Dropped counts what reached the end of a chain and its
// drop policy: unsolicited packets, ports nobody opened (not the invalid,
// spoofed or reverse-path-failing packets dropped before). With a flowtable, the
// packets of a flow the kernel has offloaded take its fast path past the
// counters: Forwarded then counts each flow's first packets only.
type FirewallCounters struct {
	ForwardedOut4 Counter `json:"forwarded_out_ipv4"`
	ForwardedIn4  Counter `json:"forwarded_in_ipv4"`
	ForwardedOut6 Counter `json:"forwarded_out_ipv6"`
	ForwardedIn6  Counter `json:"forwarded_in_ipv6"`
	// DroppedForward are packets that were not forwarded; DroppedInput
	// packets from uplink0 to the router itself that were refused.
	DroppedForward4 Counter `json:"dropped_forward_ipv4"`
	DroppedForward6 Counter `json:"dropped_forward_ipv6"`
	DroppedInput4   Counter `json:"dropped_input_ipv4"`
	DroppedInput6   Counter `json:"dropped_input_ipv6"`
}

// Counter is a packet and byte count.
type Counter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}
