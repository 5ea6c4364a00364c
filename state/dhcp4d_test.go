package state

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestLANDomain(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  DHCPv4Server
		want string
	}{
		{"default", DHCPv4Server{}, "lan"},
		{"configured", DHCPv4Server{Domain: "home.example"}, "home.example"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.LANDomain(); got != tt.want {
				t.Errorf("LANDomain() = %q, want %q", got, tt.want)
			}
		})
	}
	if DefaultDomain != "lan" {
		t.Errorf("DefaultDomain = %q, want lan (DESIGN.md)", DefaultDomain)
	}
}

func TestDHCPv4ServerLeaseBound(t *testing.T) {
	now := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name  string
		lease DHCPv4ServerLease
		want  bool
	}{
		{"acknowledged", DHCPv4ServerLease{Hostname: "laptop", Expiry: now.Add(time.Hour)}, true},
		{"acknowledged, expires now", DHCPv4ServerLease{Hostname: "laptop", Expiry: now}, false},
		{"acknowledged, expired", DHCPv4ServerLease{Hostname: "laptop", Expiry: now.Add(-time.Hour)}, false},
		{"offered", DHCPv4ServerLease{Expiry: now.Add(time.Minute), Offered: true}, false},
		{"declined", DHCPv4ServerLease{Expiry: now.Add(time.Minute), Declined: true}, false},
		{"static, not yet asked for", DHCPv4ServerLease{Hostname: "printer", Static: true}, false},
		{"static, acknowledged", DHCPv4ServerLease{Hostname: "printer", Static: true, Expiry: now.Add(time.Hour)}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.lease.Bound(now); got != tt.want {
				t.Errorf("Bound = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDHCPv4ServerLeasesFile: a lease file of an older version, without
// "offered", reads as acknowledged leases with their names; the new
// field reads back.
func TestDHCPv4ServerLeasesFile(t *testing.T) {
	now := time.Date(2026, 11, 25, 13, 30, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		file string
		// want is each lease as "hostname offered bound".
		want []string
	}{
		{
			name: "older version",
			file: `{"leases": [{"addr": "192.168.42.100", "hardware_addr": "02:77:00:00:00:21", "hostname": "laptop",
				"expiry": "2026-11-25T14:00:00Z", "last_seen": "2026-11-25T13:00:00Z"}]}`,
			want: []string{"laptop false true"},
		},
		{
			name: "offered",
			file: `{"leases": [{"addr": "192.168.42.101", "hardware_addr": "02:77:00:00:00:22",
				"expiry": "2026-11-25T13:31:00Z", "last_seen": "2026-11-25T13:30:00Z", "offered": true}]}`,
			want: []string{" true false"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var v DHCPv4ServerLeases
			if _, err := decodeStrict("dhcp4d-leases.json", []byte(tt.file), &v); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range v.Leases {
				got = append(got, fmt.Sprintf("%s %v %v", l.Hostname, l.Offered, l.Bound(now)))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("leases %q, want %q", got, tt.want)
			}
		})
	}
}
