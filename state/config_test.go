package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writePerm writes files (name -> content) into a new perm directory.
func writePerm(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func errorLines(errs []error) []string {
	var lines []string
	for _, e := range errs {
		lines = append(lines, e.Error())
	}
	return lines
}

func TestCheckErrors(t *testing.T) {
	const uplink = `{"name": "uplink0"}`
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name:  "missing comma",
			files: map[string]string{"interfaces.json": "{\n  \"interfaces\": [\n    " + uplink + ",\n    {\"name\": \"lan0\" \"addr\": \"x\"}\n  ]\n}\n"},
			want:  []string{`interfaces.json:4:21: interfaces[1]: invalid character '"' after object key:value pair`},
		},
		{
			name:  "bad address",
			files: map[string]string{"interfaces.json": "{\"interfaces\": [\n  {\"name\": \"lan0\",\n   \"addr\": \"192.168.300.1/24\"}]}"},
			want:  []string{`interfaces.json:3:12: interfaces[0].addr: "192.168.300.1/24" is not an address/prefix`},
		},
		{
			name:  "address without prefix length",
			files: map[string]string{"interfaces.json": `{"interfaces": [{"name": "lan0", "addr": "10.42.0.1"}]}`},
			want:  []string{`interfaces.json:1:42: interfaces[0].addr: "10.42.0.1" is not an address/prefix`},
		},
		{
			name:  "unknown field, a typo",
			files: map[string]string{"interfaces.json": "{\"interfaces\": [\n  {\"name\": \"lan0\", \"adr\": \"10.42.0.1/24\"}]}"},
			want:  []string{`interfaces.json:2:20: interfaces[0].adr: unknown field (known: addr, extra_addrs, extra_routes, hardware_addr, mtu, name, spoof_hardware_addr)`},
		},
		{
			name:  "unknown field, wrong case",
			files: map[string]string{"interfaces.json": `{"Interfaces": []}`},
			want:  []string{`interfaces.json:1:2: Interfaces: unknown field (known: interfaces)`},
		},
		{
			name:  "mtu as a string",
			files: map[string]string{"interfaces.json": `{"interfaces": [{"name": "lan0", "mtu": "1500"}]}`},
			want:  []string{`interfaces.json:1:41: interfaces[0].mtu: expected a whole number, got a string`},
		},
		{
			name:  "mtu out of range",
			files: map[string]string{"interfaces.json": `{"interfaces": [{"name": "lan0", "mtu": 9000000}]}`},
			want:  []string{`interfaces.json:1:41: interfaces[0].mtu: 9000000 is not between 68 and 65535`},
		},
		{
			name:  "mtu fraction",
			files: map[string]string{"interfaces.json": `{"interfaces": [{"name": "lan0", "mtu": 1500.5}]}`},
			want:  []string{`interfaces.json:1:41: interfaces[0].mtu: 1500.5 is not a whole number in range for a whole number`},
		},
		{
			name:  "interfaces not a list",
			files: map[string]string{"interfaces.json": `{"interfaces": {"name": "lan0"}}`},
			want:  []string{`interfaces.json:1:16: interfaces: expected a list, got an object`},
		},
		{
			name:  "bad MAC",
			files: map[string]string{"interfaces.json": `{"interfaces": [{"name": "lan0", "hardware_addr": "02:77:00:00:00"}]}`},
			want:  []string{`interfaces.json:1:51: interfaces[0].hardware_addr: "02:77:00:00:00" is not a MAC address like 02:00:00:00:00:01`},
		},
		{
			name:  "bad spoofed MAC",
			files: map[string]string{"interfaces.json": `{"interfaces": [{"name": "uplink0", "spoof_hardware_addr": "zz:77:00:00:00:01"}]}`},
			want:  []string{`interfaces.json:1:60: interfaces[0].spoof_hardware_addr: "zz:77:00:00:00:01" is not a MAC address like 02:00:00:00:00:01`},
		},
		{
			name: "two lan0",
			files: map[string]string{"interfaces.json": "{\"interfaces\": [\n" +
				"  {\"name\": \"lan0\", \"addr\": \"10.42.0.1/24\"},\n" +
				"  {\"name\": \"lan0\", \"addr\": \"10.43.0.1/24\"}]}"},
			want: []string{`interfaces.json:3:12: interfaces[1].name: "lan0" is already used by interfaces[0]`},
		},
		{
			name: "same MAC twice",
			files: map[string]string{"interfaces.json": `{"interfaces": [` +
				`{"name": "uplink0", "hardware_addr": "02:77:00:00:00:01"},` +
				`{"name": "lan0", "hardware_addr": "02:77:00:00:00:01"}]}`},
			want: []string{`interfaces.json:1:109: interfaces[1].hardware_addr: "02:77:00:00:00:01" is already used by interfaces[0]`},
		},
		{
			name:  "missing name",
			files: map[string]string{"interfaces.json": `{"interfaces": [{"addr": "10.42.0.1/24"}]}`},
			want:  []string{`interfaces.json:1:17: interfaces[0]: "name" is missing`},
		},
		{
			name:  "name too long",
			files: map[string]string{"interfaces.json": `{"interfaces": [{"name": "averyveryverylongname"}]}`},
			want:  []string{`interfaces.json:1:26: interfaces[0].name: "averyveryverylongname" is longer than 15 bytes`},
		},
		{
			name:  "route with host bits",
			files: map[string]string{"interfaces.json": `{"interfaces": [{"name": "lan0", "extra_routes": [{"destination": "10.10.1.0/16", "gateway": "10.42.0.2"}]}]}`},
			want:  []string{`interfaces.json:1:67: interfaces[0].extra_routes[0].destination: "10.10.1.0/16" has host bits set; the network is 10.10.0.0/16`},
		},
		{
			name:  "route gateway of the other family",
			files: map[string]string{"interfaces.json": `{"interfaces": [{"name": "lan0", "extra_routes": [{"destination": "10.10.0.0/16", "gateway": "fd00::1"}]}]}`},
			want:  []string{`interfaces.json:1:94: interfaces[0].extra_routes[0].gateway: fd00::1 is not of the same address family as 10.10.0.0/16`},
		},
		{
			name:  "several problems, one line each",
			files: map[string]string{"interfaces.json": `{"interfaces": [{"name": "lan0", "addr": "10.42.0.1", "extra_addrs": ["fd00:42::1/129"]}]}`},
			want: []string{
				`interfaces.json:1:42: interfaces[0].addr: "10.42.0.1" is not an address/prefix`,
				`interfaces.json:1:71: interfaces[0].extra_addrs[0]: "fd00:42::1/129" is not an address/prefix`,
			},
		},
		{
			name:  "empty file",
			files: map[string]string{"interfaces.json": ""},
			want:  []string{`interfaces.json:1:1: unexpected end of file`},
		},
		{
			name:  "truncated file",
			files: map[string]string{"interfaces.json": "{\"interfaces\": [\n  {\"name\": \"lan0\""},
			want:  []string{`interfaces.json:2:18: interfaces[0]: unexpected end of file`},
		},
		{
			name:  "trailing data",
			files: map[string]string{"interfaces.json": "{\"interfaces\": []}\n}"},
			want:  []string{`interfaces.json:2:1: unexpected data after the top-level value`},
		},
		{
			name:  "bad escape inside a string",
			files: map[string]string{"interfaces.json": "{\"interfaces\": [\n  {\"name\": \"lan0\",\n   \"addr\": \"10.42.0.1\\q/24\"}]}"},
			want:  []string{`interfaces.json:3:23: interfaces[0].addr: invalid character 'q' in string escape code`},
		},
		{
			name:  "bad number",
			files: map[string]string{"interfaces.json": "{\"interfaces\": [\n  {\"name\": \"lan0\",\n   \"mtu\": -x}]}"},
			want:  []string{`interfaces.json:3:12: interfaces[0].mtu: invalid character 'x' in numeric literal`},
		},
		{
			name:  "field given twice",
			files: map[string]string{"interfaces.json": "{\"interfaces\": [\n  {\"name\": \"lan0\",\n   \"name\": \"uplink0\"}]}"},
			want:  []string{`interfaces.json:3:4: interfaces[0].name: given twice (first on line 2); only one can count`},
		},
		{
			name:  "null file",
			files: map[string]string{"interfaces.json": "null\n"},
			want:  []string{`interfaces.json:1:1: expected an object, got null`},
		},
		{
			name:  "IPv4-mapped IPv6 address",
			files: map[string]string{"interfaces.json": `{"interfaces": [{"name": "lan0", "addr": "::ffff:10.0.0.1/120"}]}`},
			want:  []string{`interfaces.json:1:42: interfaces[0].addr: "::ffff:10.0.0.1/120" is not an address/prefix: write IPv4 as a.b.c.d/n, IPv6 without a zone`},
		},
		{
			name:  "control character in a name",
			files: map[string]string{"interfaces.json": `{"interfaces": [{"name": "lan\u00000"}]}`},
			want:  []string{`interfaces.json:1:26: interfaces[0].name: "lan\x000" is not a valid link name`},
		},
		{
			name: "dhcp6.json: prefix length out of range",
			files: map[string]string{
				"interfaces.json": `{"interfaces": []}`,
				"dhcp6.json":      `{"prefix_length": 80, "lan_subnet": -1}`,
			},
			want: []string{
				`dhcp6.json:1:19: prefix_length: 80 is not between 32 and 64`,
				`dhcp6.json:1:37: lan_subnet: -1 is not between 0 and 65535`,
			},
		},
		{
			name: "dhcp4d.json: bad MAC, reversed range, short lease",
			files: map[string]string{
				"interfaces.json": `{"interfaces": []}`,
				"dhcp4d.json":     "{\"range_start\": \"192.168.42.250\", \"range_end\": \"192.168.42.100\", \"lease_duration\": \"10s\",\n \"static_leases\": [{\"hardware_addr\": \"nonsense\", \"addr\": \"192.168.42.50\"}]}",
			},
			want: []string{
				`dhcp4d.json:1:48: range_end: 192.168.42.100 is before range_start 192.168.42.250`,
				`dhcp4d.json:1:84: lease_duration: 10s is not between 1m0s and 8760h0m0s`,
				`dhcp4d.json:2:38: static_leases[0].hardware_addr: "nonsense" is not a MAC address like 02:00:00:00:00:01`,
			},
		},
		{
			name:  "missing interfaces.json",
			files: map[string]string{},
			want:  []string{`interfaces.json: missing: without it the router does not know which link is which`},
		},
		{
			name: "portforwardings: bad proto and port",
			files: map[string]string{
				"interfaces.json":      `{"interfaces": []}`,
				"portforwardings.json": "{\"forwardings\": [\n {\"proto\": \"icmp\", \"port\": \"0\", \"dest_addr\": \"10.42.0.10\", \"dest_port\": \"80\"}]}",
			},
			want: []string{
				`portforwardings.json:2:12: forwardings[0].proto: "icmp" is not "tcp", "udp" or "tcp,udp"`,
				`portforwardings.json:2:28: forwardings[0].port: "0" is not a port number between 1 and 65535`,
			},
		},
		{
			name: "dns: every field wrong",
			files: map[string]string{
				"interfaces.json": `{"interfaces": []}`,
				"dns.json": "{\"domain\": \"-lan\", \"upstreams\": [\"9.9.9.9\", \"resolver\"],\n" +
					" \"hosts\": [{\"name\": \"nas\", \"addrs\": [\"192.168.42.5\"]}, {\"name\": \"NAS\", \"addrs\": []}],\n" +
					" \"cache_size\": 2000000, \"rebind_allow\": [\"plex..direct\"]}",
			},
			want: []string{
				`dns.json:1:12: domain: "-lan" is not a DNS name like lan or home.example`,
				`dns.json:1:45: upstreams[1]: "resolver" is not an address like 9.9.9.9 or [2620:fe::fe]:53`,
				`dns.json:2:65: hosts[1].name: "NAS" is already used by hosts[0]`,
				`dns.json:2:56: hosts[1]: "addrs" is missing`,
				`dns.json:3:16: cache_size: 2000000 is not between 0 (the default, 10000) and 1000000`,
				`dns.json:3:42: rebind_allow[0]: "plex..direct" is not a domain like plex.direct`,
			},
		},
		{
			name: "ra: every field wrong",
			files: map[string]string{
				"interfaces.json": `{"interfaces": []}`,
				"ra.json":         `{"max_interval": "1s", "ula": "2001:db8::/48", "ula_subnet": 70000}`,
			},
			want: []string{
				`ra.json:1:18: max_interval: 1s is not between 4s and 30m0s`,
				`ra.json:1:31: ula: 2001:db8::/48 is not a unique local prefix in fd00::/8 of /48 to /64, like fd4e:3a21:9c07::/48`,
				`ra.json:1:62: ula_subnet: 70000 is not between 0 and 65535 (the /64s of a /48)`,
			},
		},
		{
			name: "capture: bounds out of range",
			files: map[string]string{
				"interfaces.json": `{"interfaces": []}`,
				"capture.json":    `{"packets": -1, "memory_mib": 4096}`,
			},
			want: []string{
				`capture.json:1:13: packets: -1 is not between 0 (the default, 50000) and 10000000`,
				`capture.json:1:31: memory_mib: 4096 is not between 0 (the default, 32) and 256`,
			},
		},
		{
			name: "ra: a subnet the ULA has no room for",
			files: map[string]string{
				"interfaces.json": `{"interfaces": []}`,
				"ra.json":         `{"ula": "fd00:42:0:10::/60", "ula_subnet": 16}`,
			},
			want: []string{
				`ra.json:1:44: ula_subnet: fd00:42:0:10::/60 has no /64 number 16`,
			},
		},
		{
			name: "portforwardings: link-local destination, reversed range",
			files: map[string]string{
				"interfaces.json":      `{"interfaces": []}`,
				"portforwardings.json": `{"forwardings": [{"proto": "udp", "port": "2000-1000", "dest_addr": "fe80::10", "dest_port": "80"}]}`,
			},
			want: []string{
				`portforwardings.json:1:43: forwardings[0].port: range "2000-1000" ends before it starts`,
				`portforwardings.json:1:69: forwardings[0].dest_addr: fe80::10 is not a host's unicast address`,
			},
		},
		{
			name: "portforwardings: the same port for NAT and for pinholes to two hosts, one overlapping",
			files: map[string]string{
				"interfaces.json": `{"interfaces": []}`,
				"portforwardings.json": "{\"forwardings\": [\n" +
					" {\"proto\": \"tcp\", \"port\": \"443\", \"dest_addr\": \"192.168.42.10\", \"dest_port\": \"443\"},\n" +
					" {\"proto\": \"tcp\", \"port\": \"443\", \"dest_addr\": \"fd00:78::10\", \"dest_port\": \"443\"},\n" +
					" {\"proto\": \"tcp\", \"port\": \"443\", \"dest_addr\": \"fd00:78::11\", \"dest_port\": \"443\"},\n" +
					" {\"proto\": \"tcp\", \"port\": \"400-500\", \"dest_addr\": \"fd00:78::11\", \"dest_port\": \"400-500\"}]}",
			},
			want: []string{
				`portforwardings.json:5:27: forwardings[3].port: tcp 400-500 overlaps forwardings[2]`,
			},
		},
		{
			name: "portforwardings: a pinhole with NAT, a name",
			files: map[string]string{
				"interfaces.json": `{"interfaces": []}`,
				"portforwardings.json": "{\"forwardings\": [\n" +
					" {\"proto\": \"tcp\", \"port\": \"443\", \"dest_addr\": \"fd00:78::10\", \"dest_port\": \"8443\"},\n" +
					" {\"proto\": \"tcp\", \"port\": \"80\", \"dest_addr\": \"printer\", \"dest_port\": \"80\"}]}",
			},
			want: []string{
				`portforwardings.json:2:75: forwardings[0].dest_port: "8443" is not port "443": an IPv6 destination is a pinhole, without NAT`,
				`portforwardings.json:3:46: forwardings[1].dest_addr: "printer" is not an IPv4 or IPv6 address`,
			},
		},
		{
			name: "portforwardings: overlap and range length",
			files: map[string]string{
				"interfaces.json": `{"interfaces": []}`,
				"portforwardings.json": "{\"forwardings\": [\n" +
					" {\"proto\": \"tcp,udp\", \"port\": \"8000-8010\", \"dest_addr\": \"10.42.0.10\", \"dest_port\": \"8000-8010\"},\n" +
					" {\"proto\": \"tcp\", \"port\": \"8005\", \"dest_addr\": \"10.42.0.11\", \"dest_port\": \"80-81\"}]}",
			},
			want: []string{
				`portforwardings.json:3:75: forwardings[1].dest_port: range "80-81" is not port's range "8005" (or one port)`,
				`portforwardings.json:3:27: forwardings[1].port: tcp 8005 overlaps forwardings[0]`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := errorLines(Check(writePerm(t, tc.files)))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Check: -want +got:\n%s", diff)
			}
		})
	}
}

func TestCheckValid(t *testing.T) {
	dir := writePerm(t, map[string]string{
		"interfaces.json": `{
  "interfaces": [
    {"hardware_addr": "02:77:00:00:00:01", "spoof_hardware_addr": "02:77:00:00:00:11", "name": "uplink0", "mtu": 1492},
    {"hardware_addr": "02:77:00:00:00:02", "name": "lan0", "addr": "10.42.0.1/24",
     "extra_addrs": ["fd00:42::1/64"],
     "extra_routes": [{"destination": "10.10.0.0/16", "gateway": "10.42.0.2"}, {"destination": "fd00:10::/48"}]}
  ]
}`,
		"ra.json": `{"max_interval": "30s", "ula": "fd00:42::/48", "ula_subnet": 2}`,
		"portforwardings.json": `{"forwardings": [
  {"proto": "tcp", "port": "8080", "dest_addr": "10.42.0.10", "dest_port": "80"},
  {"proto": "tcp,udp", "port": "27015-27030", "dest_addr": "10.42.0.11", "dest_port": "27015-27030"}
]}`,
	})
	if errs := Check(dir); len(errs) > 0 {
		t.Fatalf("Check of a valid dir: %v", errs)
	}
}

// TestReloadKeepsLastGood is the promise behind SIGHUP: a broken file is
// reported and the previous value stays in force until the file is fixed.
func TestReloadKeepsLastGood(t *testing.T) {
	good := `{"interfaces": [{"name": "lan0", "addr": "10.42.0.1/24"}]}`
	dir := writePerm(t, map[string]string{"interfaces.json": good})
	s := NewStore(dir)
	if errs := s.Reload(); len(errs) > 0 {
		t.Fatalf("Reload: %v", errs)
	}
	_, ver := s.Interfaces.Get()

	// An unchanged file wakes nobody.
	s.Reload()
	if _, v := s.Interfaces.Get(); v != ver {
		t.Errorf("reload of an unchanged file published: version %d -> %d", ver, v)
	}

	path := filepath.Join(dir, "interfaces.json")
	os.WriteFile(path, []byte(`{"interfaces": [{"name": "lan0" "addr": "10.43.0.1/24"}]}`), 0o644)
	errs := s.Reload()
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "interfaces.json:1:33: ") {
		t.Errorf("Reload of a broken file: %v", errs)
	}
	if got := s.Interfaces.Value().Interfaces[0].Addr; got != "10.42.0.1/24" {
		t.Errorf("after a broken reload, lan0 addr = %q, want the previous 10.42.0.1/24", got)
	}
	if st := s.ConfigStatus.Value(); st[0].File != "interfaces.json" || st[0].Error == "" {
		t.Errorf("ConfigStatus after a broken reload = %+v, want an error for interfaces.json", st)
	}

	os.WriteFile(path, []byte(`{"interfaces": [{"name": "lan0", "addr": "10.43.0.1/24"}]}`), 0o644)
	if errs := s.Reload(); len(errs) > 0 {
		t.Fatalf("Reload of the fixed file: %v", errs)
	}
	if got := s.Interfaces.Value().Interfaces[0].Addr; got != "10.43.0.1/24" {
		t.Errorf("after fixing, lan0 addr = %q, want 10.43.0.1/24", got)
	}
	if st := s.ConfigStatus.Value(); st[0].Error != "" {
		t.Errorf("ConfigStatus after fixing = %+v, want no error", st)
	}
}
