package state

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Store holds every topic of one router. There is one Store per running
// router, passed to each service; nothing lives in package globals.
type Store struct {
	dir string

	// Config files, loaded at start and on Reload.
	Interfaces      *Topic[Interfaces]
	PortForwardings *Topic[PortForwardings]
	DHCPv6          *Topic[DHCPv6]
	DHCPv4Server    *Topic[DHCPv4Server]
	DNS             *Topic[DNS]
	RA              *Topic[RA]
	Capture         *Topic[Capture]

	// ConfigStatus is the result of the last load of each config file, in
	// the order of ConfigFileNames.
	ConfigStatus *Topic[[]FileStatus]

	// Services is the per-service status, published by the supervisor.
	Services *Topic[[]ServiceStatus]

	// Links is what netconfig last applied to the configured links.
	Links *Topic[[]Link]

	// The persistent topics below are loaded by LoadState and written by
	// SaveState.

	// DHCPv4Lease is the uplink's lease, persisted in dhcp4-lease.json.
	// Published by the DHCPv4 client; netconfig configures uplink0 from
	// it.
	DHCPv4Lease *Persistent[DHCPv4Lease]
	// DHCPv4Status is the DHCPv4 client's state, for diagnostics.
	DHCPv4Status *Topic[DHCPv4Status]

	// DHCPv4ServerLeases is the LAN DHCPv4 server's lease table,
	// persisted in dhcp4d-leases.json, for DNS names and the status page.
	DHCPv4ServerLeases *Persistent[DHCPv4ServerLeases]

	// DHCPv6Lease is the uplink's DHCPv6 lease (delegated prefix),
	// persisted in dhcp6-lease.json. Published by the DHCPv6 client;
	// netconfig configures lan0 and uplink0 from it.
	DHCPv6Lease *Persistent[DHCPv6Lease]
	// DHCPv6DUID is the DHCPv6 client's DUID, dhcp6-duid.json.
	DHCPv6DUID *Persistent[DUID]
	// DHCPv6Status is the DHCPv6 client's state, for diagnostics.
	DHCPv6Status *Topic[DHCPv6Status]

	// Firewall is what the firewall has in force, with its counters.
	Firewall *Topic[FirewallStatus]
	// Traffic is each LAN device's bytes, counted by the firewall.
	Traffic *Topic[Traffic]
	// Diagnosis is the diagnostics service's checks of the links and
	// the uplink.
	Diagnosis *Topic[Diagnosis]
	// Router is the running version, hostname and start time.
	Router *Topic[RouterInfo]
	// Update is the running image's slot and the update's state.
	Update *Topic[UpdateStatus]

	// DNSStatus is the DNS resolver's counters.
	DNSStatus *Topic[DNSStatus]

	// ULA is lan0's unique local /48, persisted in ula.json: made once by
	// netconfig when ra.json sets none.
	ULA *Persistent[ULA]
	// AdvertisedPrefixes are the prefixes the router advertisements
	// announced, persisted in ra-prefixes.json, so that one that is gone
	// is deprecated, also after a reboot.
	AdvertisedPrefixes *Persistent[AdvertisedPrefixes]
	// RAStatus is the router advertisements' counters.
	RAStatus *Topic[RAStatus]
	// CaptureStatus is the packet capture's counters.
	CaptureStatus *Topic[CaptureStatus]

	// Problems are what running services report without failing, by
	// service name: a config entry that cannot be applied, a link that
	// refused a change. /health.json shows them; the service goes on
	// and retries. Set them with ReportProblem.
	Problems *Topic[map[string]string]

	// Notices are what a person should know that does not make the
	// router unhealthy, by subject: a /perm that is a tmpfs, say. A
	// router booted without a disk routes fine, and an unhealthy
	// /health.json would make every update roll back. Set them with
	// ReportNotice.
	Notices *Topic[map[string]string]

	problemsMu sync.Mutex // orders ReportProblem's and ReportNotice's read-modify-publish

	reloadMu sync.Mutex // one Reload at a time

	persistent []persistentFile // every Persistent above, declared by persist
	saving     saving           // SaveState's retries

	platformMu sync.Mutex
	platform   Platform // nil under `run`; see SetPlatform
}

// FileStatus is the outcome of loading one config file.
type FileStatus struct {
	File string `json:"file"`
	// Error is empty when the file is in force. Otherwise it is every
	// problem, one per line, and the previous good value stays in force.
	Error string `json:"error,omitempty"`
	// Loaded is when the file was last read.
	Loaded time.Time `json:"loaded"`
}

// ServiceStatus is what the supervisor knows of one service.
type ServiceStatus struct {
	Name string `json:"name"`
	// State is "running", "restarting" (waiting out its backoff after a
	// failure) or "stopped" (the router is shutting down).
	State     string    `json:"state"`
	LastError string    `json:"last_error,omitempty"`
	Restarts  int       `json:"restarts"`
	Since     time.Time `json:"since"`
}

// FindLink returns the link named name.
func FindLink(links []Link, name string) (Link, bool) {
	for _, l := range links {
		if l.Name == name {
			return l, true
		}
	}
	return Link{}, false
}

// Link is a configured link as netconfig found and left it.
type Link struct {
	Name         string `json:"name"`
	Index        int    `json:"index"`
	HardwareAddr string `json:"hardware_addr"`
	Up           bool   `json:"up"`
	// Carrier is whether the link has a carrier (IFF_LOWER_UP): its
	// cable is in and the other end is up.
	Carrier bool `json:"carrier"`
	// Addrs are all the link's addresses as the kernel has them, also
	// those netconfig does not own (IPv6 link-local, SLAAC).
	Addrs []netip.Prefix `json:"addrs"`
	// InForce are the addresses netconfig put on the link and that are
	// on it, each with where it came from and how long it lives: what
	// DNS, router advertisements and the firewall build on, so that none
	// of them derives the LAN's prefixes on its own.
	InForce []Address `json:"in_force,omitempty"`
	// DefaultRoutes are the gateways of the main table's default routes
	// over the link, IPv4 and IPv6, whoever made them (a DHCP lease,
	// the ISP's router advertisements, extra_routes); the unspecified
	// address stands for an on-link one. Router advertisements offer
	// the router as IPv6 default router only while uplink0 has one.
	DefaultRoutes []netip.Addr `json:"default_routes,omitempty"`
}

// HasDefaultRoute6 reports whether the link has an IPv6 default route.
func (l Link) HasDefaultRoute6() bool {
	for _, a := range l.DefaultRoutes {
		if a.Is6() {
			return true
		}
	}
	return false
}

// Address is an address in force on a link.
type Address struct {
	// Prefix is the address with its prefix length, e.g. 192.168.42.1/24;
	// Prefix.Masked() is the subnet (for a delegated /64, the LAN's
	// prefix that router advertisements announce).
	Prefix netip.Prefix `json:"prefix"`
	// Family is "ipv4" or "ipv6", for people reading the JSON.
	Family string `json:"family"`
	Origin Origin `json:"origin"`
	// Preferred and Valid are when the address stops being preferred
	// and valid by its lease's lifetimes; zero for a static address.
	// They may be in the past: the router keeps a lease's addresses past
	// their lifetimes on purpose (the ISP's server is most likely back
	// before the address stops working), and it is for the reader to
	// decide what to announce then.
	Preferred time.Time `json:"preferred,omitzero"`
	Valid     time.Time `json:"valid,omitzero"`
}

// NewAddress returns the Address of p, with its Family filled in.
func NewAddress(p netip.Prefix, origin Origin, preferred, valid time.Time) Address {
	family := "ipv6"
	if p.Addr().Is4() {
		family = "ipv4"
	}
	return Address{Prefix: p, Family: family, Origin: origin, Preferred: preferred, Valid: valid}
}

// Origin says where an address in force came from.
type Origin string

// The origins of addresses in force.
const (
	// OriginStatic is interfaces.json's addr and extra_addrs.
	OriginStatic Origin = "static"
	// OriginDHCPv4 is the uplink's DHCPv4 lease.
	OriginDHCPv4 Origin = "dhcp4"
	// OriginDHCPv6 is the uplink's own DHCPv6 address (IA_NA).
	OriginDHCPv6 Origin = "dhcp6"
	// OriginDelegated is lan0's /64 of the prefix delegated by DHCPv6
	// (IA_PD).
	OriginDelegated Origin = "delegated"
	// OriginULA is lan0's stable unique local /64 (fd00::/8), for the
	// router advertisements to add.
	OriginULA Origin = "ula"
)

// InForceOf returns the link's addresses in force of origin o.
func (l Link) InForceOf(o Origin) []Address {
	var out []Address
	for _, a := range l.InForce {
		if a.Origin == o {
			out = append(out, a)
		}
	}
	return out
}

// configFile describes one hand-edited file under /perm.
type configFile struct {
	name string
	// ifMissing is the error for a missing file; empty when a missing
	// file simply means "nothing configured".
	ifMissing string
	load      func(s *Store, d *decoded, data []byte) ConfigErrors
}

// configFiles lists every config file, in load order.
var configFiles = []configFile{
	{
		name:      "interfaces.json",
		ifMissing: "missing: without it the router does not know which link is which",
		load:      loadInto(func(s *Store) *Topic[Interfaces] { return s.Interfaces }),
	},
	{
		name: "portforwardings.json",
		load: loadInto(func(s *Store) *Topic[PortForwardings] { return s.PortForwardings }),
	},
	{
		name: "dhcp4d.json",
		load: loadInto(func(s *Store) *Topic[DHCPv4Server] { return s.DHCPv4Server }),
	},
	{
		name: "dhcp6.json",
		load: loadInto(func(s *Store) *Topic[DHCPv6] { return s.DHCPv6 }),
	},
	{
		name: "dns.json",
		load: loadInto(func(s *Store) *Topic[DNS] { return s.DNS }),
	},
	{
		name: "ra.json",
		load: loadInto(func(s *Store) *Topic[RA] { return s.RA }),
	},
	{
		name: "capture.json",
		load: loadInto(func(s *Store) *Topic[Capture] { return s.Capture }),
	},
}

// ConfigFileNames returns the names of the config files, in load order.
func ConfigFileNames() []string {
	names := make([]string, len(configFiles))
	for i, f := range configFiles {
		names[i] = f.name
	}
	return names
}

type validator interface{ validate(*decoded) ConfigErrors }

// loadInto returns a loader that decodes a file strictly into a T,
// validates it and, when s is not nil, publishes it to the topic (only when
// it changed, so that a reload of an unchanged file wakes nobody).
func loadInto[T any, PT interface {
	*T
	validator
}](topic func(*Store) *Topic[T]) func(*Store, *decoded, []byte) ConfigErrors {
	return func(s *Store, d *decoded, data []byte) ConfigErrors {
		var v T
		if data != nil {
			dd, err := decodeStrict(d.file, data, &v)
			if err != nil {
				return asConfigErrors(d.file, err)
			}
			if errs := PT(&v).validate(dd); len(errs) > 0 {
				return errs
			}
		}
		if s != nil {
			topic(s).PublishIfChanged(v)
		}
		return nil
	}
}

func asConfigErrors(file string, err error) ConfigErrors {
	var ce ConfigErrors
	if errors.As(err, &ce) {
		return ce
	}
	return ConfigErrors{{File: file, Msg: err.Error()}}
}

// NewStore returns a Store for the perm directory dir. It loads nothing;
// call Reload and LoadState.
func NewStore(dir string) *Store {
	s := &Store{
		dir:             dir,
		Interfaces:      NewTopic[Interfaces]("interfaces.json"),
		PortForwardings: NewTopic[PortForwardings]("portforwardings.json"),
		DHCPv6:          NewTopic[DHCPv6]("dhcp6.json"),
		DHCPv4Server:    NewTopic[DHCPv4Server]("dhcp4d.json"),
		DNS:             NewTopic[DNS]("dns.json"),
		RA:              NewTopic[RA]("ra.json"),
		Capture:         NewTopic[Capture]("capture.json"),
		CaptureStatus:   NewTopic[CaptureStatus]("capture"),
		RAStatus:        NewTopic[RAStatus]("ra"),
		DNSStatus:       NewTopic[DNSStatus]("dns"),
		ConfigStatus:    NewTopic[[]FileStatus]("config"),
		Services:        NewTopic[[]ServiceStatus]("services"),
		Links:           NewTopic[[]Link]("links"),
		Problems:        NewTopic[map[string]string]("problems"),
		Notices:         NewTopic[map[string]string]("notices"),
		DHCPv4Status:    NewTopic[DHCPv4Status]("dhcp4"),
		DHCPv6Status:    NewTopic[DHCPv6Status]("dhcp6"),
		Firewall:        NewTopic[FirewallStatus]("firewall"),
		Traffic:         NewTopic[Traffic]("traffic"),
		Diagnosis:       NewTopic[Diagnosis]("diagnosis"),
		Router:          NewTopic[RouterInfo]("router"),
		Update:          NewTopic[UpdateStatus]("update"),
	}
	// The persistent topics: persist declares each one for LoadState
	// and SaveState.
	s.DHCPv4Lease = persist[DHCPv4Lease](s, dhcp4LeaseFile)
	s.DHCPv4ServerLeases = persist[DHCPv4ServerLeases](s, "dhcp4d-leases.json")
	s.DHCPv6Lease = persist[DHCPv6Lease](s, "dhcp6-lease.json")
	s.DHCPv6DUID = persist[DUID](s, "dhcp6-duid.json")
	s.ULA = persist[ULA](s, "ula.json")
	s.AdvertisedPrefixes = persist[AdvertisedPrefixes](s, "ra-prefixes.json")
	return s
}

const dhcp4LeaseFile = "dhcp4-lease.json"

// LoadState loads the persistent topics (leases) from the perm directory,
// publishing what it finds. Call it before the services start.
// A file that does not parse is reported and left alone for a person to
// look at; its topic starts empty and the file is overwritten with the
// next good value.
func (s *Store) LoadState() []error {
	var errs []error
	for _, p := range s.persistent {
		if err := p.load(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// ReportProblem records err as service's current problem, or clears it
// when err is nil.
func (s *Store) ReportProblem(service string, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	s.setEntry(s.Problems, service, msg)
}

// ReportNotice records msg as subject's notice, or clears it when msg is
// empty.
func (s *Store) ReportNotice(subject, msg string) {
	s.setEntry(s.Notices, subject, msg)
}

// setEntry sets key to msg in t's map, deleting it when msg is empty.
func (s *Store) setEntry(t *Topic[map[string]string], key, msg string) {
	s.problemsMu.Lock()
	defer s.problemsMu.Unlock()
	old := t.Value()
	m := make(map[string]string, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	if msg != "" {
		m[key] = strings.ReplaceAll(msg, "\n", "; ")
	} else {
		delete(m, key)
	}
	t.PublishIfChanged(m)
}

// Dir returns the perm directory.
func (s *Store) Dir() string { return s.dir }

// Reload reads every config file. A valid file is published; an invalid or
// unreadable one is reported and its topic keeps the previous value, so a
// typo never takes down what runs. It returns the problems, one error per
// file.
func (s *Store) Reload() []error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	errs := loadAll(s, s.dir)
	status := make([]FileStatus, len(configFiles))
	now := time.Now()
	for i, f := range configFiles {
		status[i] = FileStatus{File: f.name, Loaded: now}
		if errs[i] != nil {
			// One line, for logs and /health.json's first_error.
			status[i].Error = strings.ReplaceAll(errs[i].Error(), "\n", "; ")
		}
	}
	s.ConfigStatus.Publish(status)
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// Check validates every config file in dir without running anything. It
// returns every problem, one ConfigError per problem.
func Check(dir string) []error {
	var out []error
	for _, err := range loadAll(nil, dir) {
		out = appendProblems(out, err)
	}
	return out
}

// appendProblems appends err to out one problem at a time: each
// ConfigError of a ConfigErrors on its own, any other error whole, and
// nil not at all. Check and CheckState list problems this way, one per
// line.
func appendProblems(out []error, err error) []error {
	var ce ConfigErrors
	switch {
	case err == nil:
	case errors.As(err, &ce):
		for _, e := range ce {
			out = append(out, e)
		}
	default:
		out = append(out, err)
	}
	return out
}

// loadAll loads each config file from dir, publishing into s when s is not
// nil. The result has one entry per configFiles entry, nil when it loaded.
func loadAll(s *Store, dir string) []error {
	errs := make([]error, len(configFiles))
	for i, f := range configFiles {
		data, err := os.ReadFile(filepath.Join(dir, f.name))
		switch {
		case errors.Is(err, fs.ErrNotExist) && f.ifMissing == "":
			data = nil
		case errors.Is(err, fs.ErrNotExist):
			errs[i] = ConfigErrors{{File: f.name, Msg: f.ifMissing}}
			continue
		case err != nil:
			errs[i] = ConfigErrors{{File: f.name, Msg: fmt.Sprintf("cannot read: %v", err)}}
			continue
		}
		if errs2 := f.load(s, &decoded{file: f.name}, data); len(errs2) > 0 {
			errs[i] = errs2
		}
	}
	return errs
}
