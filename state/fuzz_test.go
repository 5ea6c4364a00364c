package state

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fuzzConfig decodes data as the config file T the way Reload does, and
// checks the properties every input must keep: no panic; an error is
// always a positioned ConfigError naming the file; a value that loads
// survives a marshal and load round trip unchanged (an empty list may
// come back absent: omitempty).
func fuzzConfig[T any, PT interface {
	*T
	validator
}](t *testing.T, file string, data []byte) {
	var v T
	d, err := decodeStrict(file, data, &v)
	if err == nil {
		if errs := PT(&v).validate(d); len(errs) > 0 {
			err = errs
		}
	}
	if err != nil {
		ce, ok := err.(ConfigErrors)
		if !ok || len(ce) == 0 {
			t.Fatalf("error is %T, not ConfigErrors: %v", err, err)
		}
		for _, e := range ce {
			if e.File != file || !strings.HasPrefix(e.Error(), file+":") {
				t.Fatalf("error does not name %s: %v", file, e)
			}
			if e.Line < 0 || e.Col < 0 {
				t.Fatalf("bad position: %v", e)
			}
		}
		return
	}
	out, err := json.MarshalIndent(&v, "", "  ")
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var again T
	d2, err := decodeStrict(file, out, &again)
	if err != nil {
		t.Fatalf("re-reading what was written: %v\n%s", err, out)
	}
	if errs := PT(&again).validate(d2); len(errs) > 0 {
		t.Fatalf("re-validating what was written: %v\n%s", errs, out)
	}
	if diff := cmp.Diff(v, again, cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Fatalf("round trip: -first +second:\n%s", diff)
	}
}

func FuzzInterfaces(f *testing.F) {
	for _, s := range []string{
		`{"interfaces": [{"hardware_addr": "02:77:00:00:00:01", "name": "uplink0"}, {"hardware_addr": "02:77:00:00:00:02", "name": "lan0", "addr": "192.168.42.1/24"}]}`,
		`{"interfaces": [{"name": "lan0", "addr": "10.42.0.1/24", "extra_addrs": ["fd00:42::1/64"], "extra_routes": [{"destination": "10.10.0.0/16", "gateway": "10.42.0.2"}], "mtu": 1500}]}`,
		`{"interfaces": [{"name": "lan0" "addr": "x"}]}`,
		`{"interfaces": null}`,
		`[]`,
		`{"interfaces": [{"name": "uplink0", "spoof_hardware_addr": "02:77:00:00:00:11", "mtu": 1e3}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzConfig[Interfaces](t, "interfaces.json", data) })
}

func FuzzPortForwardings(f *testing.F) {
	for _, s := range []string{
		`{"forwardings": [{"proto": "tcp", "port": "8080", "dest_addr": "192.168.42.10", "dest_port": "80"}]}`,
		`{"forwardings": [{"proto": "tcp,udp", "port": "27015-27030", "dest_addr": "192.168.42.11", "dest_port": "27015-27030"}]}`,
		`{"forwardings": [{"proto": "udp", "port": "65535", "dest_addr": "10.0.0.1", "dest_port": "1-1"}]}`,
		`{"forwardings": [{"proto": "tcp", "port": "-", "dest_addr": "::", "dest_port": ""}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzConfig[PortForwardings](t, "portforwardings.json", data) })
}

func FuzzDHCPv4Server(f *testing.F) {
	for _, s := range []string{
		`{"range_start": "192.168.42.100", "range_end": "192.168.42.250", "lease_duration": "1h", "domain": "lan", "static_leases": [{"hardware_addr": "02:77:00:00:00:12", "addr": "192.168.42.50", "hostname": "printer"}]}`,
		`{"lease_duration": "10s"}`,
		`{"static_leases": [{"hardware_addr": "nonsense"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzConfig[DHCPv4Server](t, "dhcp4d.json", data) })
}

func FuzzDHCPv6(f *testing.F) {
	f.Add([]byte(`{"prefix_length": 56, "lan_subnet": 3}`))
	f.Add([]byte(`{"prefix_length": 80}`))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzConfig[DHCPv6](t, "dhcp6.json", data) })
}

func FuzzDNS(f *testing.F) {
	for _, s := range []string{
		`{"domain":"lan","upstreams":["9.9.9.9","2620:fe::fe","[fd00::1]:5353"],"hosts":[{"name":"nas","addrs":["192.168.42.5"]}],"cache_size":10000,"rebind_allow":["plex.direct"]}`,
		`{"upstreams":["nonsense"],"cache_size":-1}`,
		`{"hosts":[{"name":"a.b","addrs":[]},{"name":"A.B","addrs":["::"]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzConfig[DNS](t, "dns.json", data) })
}

func FuzzRA(f *testing.F) {
	for _, s := range []string{
		`{"max_interval": "10m", "ula": "fd4e:3a21:9c07::/48", "ula_subnet": 3}`,
		`{"max_interval": "1s", "ula": "2001:db8::/48", "ula_subnet": -1}`,
		`{"ula": "fd00::/64", "ula_subnet": 1}`,
		`{"ula": "fd00::1/129"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzConfig[RA](t, "ra.json", data) })
}

func FuzzCapture(f *testing.F) {
	for _, s := range []string{
		`{"packets": 50000, "memory_mib": 32}`,
		`{"packets": -1, "memory_mib": 4096}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzConfig[Capture](t, "capture.json", data) })
}
