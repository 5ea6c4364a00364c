// Package dhcp4d is the LAN's DHCPv4 server: it hands out addresses on
// lan0 and tells clients to use the router as their gateway and DNS
// server.
//
// The Handler is the protocol (RFC 2131 server behaviour) with no socket:
// it takes a parsed request and returns the reply, given the config, lan0's
// address, the persisted lease table and a clock. The service around it
// receives, sends and publishes the lease table. So tests drive it with
// messages and a fake clock.
//
// Allocation prefers, for each client (identified by its client identifier,
// option 61, or else chaddr): its static lease; its current or previous
// address; the address it asks for, if free; an address never used
// before; and only then the longest-expired lease of another client. A
// live lease is never taken away.
package dhcp4d

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

// Link is lan0 as the server needs it.
type Link struct {
	// Addr is the router's address on lan0 with the subnet's prefix
	// length, e.g. 192.168.42.1/24. It is the server identifier, the
	// router and the DNS server in replies.
	Addr netip.Prefix
	// MTU is lan0's configured MTU (interfaces.json); 0 sends no
	// interface MTU option.
	MTU int
}

// How long an address is set aside.
const (
	// offerHold reserves an offered address for the client's REQUEST,
	// which normally follows within a second, so that a second client's
	// DISCOVER is not offered the same one. An offer alone does not
	// make Serve report a change: it is published with the next one.
	offerHold = time.Minute
	// declineHold keeps an address a client found in use (DHCPDECLINE)
	// out of the pool, as dnsmasq does: long enough for the address's
	// squatter to be noticed, short enough that a few declines cannot
	// drain the pool for good.
	declineHold = 10 * time.Minute
)

// Handler answers DHCPv4 requests on one link. It is safe for concurrent
// use: Serve runs in the service's receive loop while the HTTP status page
// reads Leases.
type Handler struct {
	now      func() time.Time
	server   netip.Addr
	subnet   netip.Prefix
	bcast    netip.Addr
	mtu      int
	duration time.Duration
	domain   string

	dropped atomic.Uint64

	mu sync.Mutex // guards p
	p  *pool
}

// NewHandler returns a handler serving cfg on lan, starting from the
// persisted leases (from Leases, possibly of an earlier config). Leases
// that no longer fit the config (outside the pool, on an address that is
// now static or the router's, or duplicates) are dropped; static leases
// keep only their times from the table. now is the clock.
func NewHandler(cfg Config, lan Link, leases []Lease, now func() time.Time) (*Handler, error) {
	if err := Validate(cfg, lan.Addr); err != nil {
		return nil, err
	}
	if lan.MTU != 0 && (lan.MTU < 68 || lan.MTU > 65535) {
		return nil, fmt.Errorf("dhcp4d: lan0's MTU %d is not between 68 and 65535", lan.MTU)
	}
	if now == nil {
		now = time.Now
	}
	first, last := hostRange(lan.Addr)
	start, end := first, last
	if cfg.RangeStart.IsValid() {
		start = cfg.RangeStart
	}
	if cfg.RangeEnd.IsValid() {
		end = cfg.RangeEnd
	}
	h := &Handler{
		now:      now,
		server:   lan.Addr.Addr(),
		subnet:   lan.Addr.Masked(),
		bcast:    last.Next(),
		mtu:      lan.MTU,
		duration: time.Duration(cfg.LeaseDuration),
		domain:   cfg.LANDomain(),
		p:        newPool(toU32(start), toU32(end)),
	}
	if h.duration == 0 {
		h.duration = DefaultLeaseDuration
	}
	p := h.p
	p.excluded[toU32(h.server)] = true
	for _, s := range cfg.StaticLeases {
		mac, _ := parseMAC(s.HardwareAddr) // validated
		r := &record{
			Lease:     Lease{Addr: s.Addr, HardwareAddr: mac, Hostname: s.Hostname, Static: true},
			addr:      toU32(s.Addr),
			idx:       -1,
			fixedName: s.Hostname != "",
			name:      s.Hostname,
		}
		p.static[mac] = r
		p.byAddr[r.addr] = r
		p.excluded[r.addr] = true
	}
	for _, l := range leases {
		if l.Static {
			if r := p.static[l.HardwareAddr]; r != nil {
				// Never Offered (see bind): a hand-edited "offered"
				// is ignored.
				r.ClientID, r.Expiry, r.LastSeen = l.ClientID, l.Expiry, l.LastSeen
				if !r.fixedName {
					r.name, r.Hostname = l.Hostname, l.Hostname
				}
			}
			continue
		}
		if !l.Addr.Is4() {
			continue
		}
		a := toU32(l.Addr)
		if !p.inPool(a) || p.byAddr[a] != nil {
			continue
		}
		r := &record{Lease: l, addr: a, name: l.Hostname}
		r.Addr = fromU32(a)
		if l.Declined {
			// Nobody's: a hand-edited file may say more.
			r.Offered, r.name = false, ""
		} else {
			r.key = leaseKey(l)
			if r.key == "" || p.byKey[r.key] != nil {
				continue
			}
		}
		// A file of an older version has no "offered": its leases
		// were all acknowledged, and keep their names.
		r.show()
		p.add(r)
	}
	return h, nil
}

// leaseKey is the owner key of a persisted lease (see client.key).
func leaseKey(l Lease) string {
	if l.ClientID != "" {
		return "id:" + l.ClientID
	}
	if l.HardwareAddr != "" {
		return "hw:" + l.HardwareAddr
	}
	return ""
}

// Leases returns a snapshot of the lease table, sorted by address, for
// persisting (as LeaseFile), for the status page and for DNS. Each lease
// says whether it is acknowledged or only Offered; an offered one has no
// Hostname, and DNS must name only acknowledged, unexpired leases
// (state.DHCPv4ServerLease.Bound). Static leases are always in it, with
// their configured hostnames, but DNS names them only while their device
// holds a lease it was ACKed.
func (h *Handler) Leases() []Lease {
	h.mu.Lock()
	ls := make([]Lease, 0, len(h.p.byAddr))
	for _, r := range h.p.byAddr {
		ls = append(ls, r.Lease)
	}
	h.mu.Unlock()
	// Sort outside the lock: Serve must not wait for a large table.
	slices.SortFunc(ls, func(a, b Lease) int { return a.Addr.Compare(b.Addr) })
	return ls
}

// Dropped returns how many malformed messages Serve has dropped.
func (h *Handler) Dropped() uint64 { return h.dropped.Load() }

// client is who sent a request.
type client struct {
	// key identifies the client in the table: "id:" and the client
	// identifier in hex, or "hw:" and chaddr.
	key      string
	hw       string // chaddr, e.g. "02:77:00:00:00:12"
	ethernet bool   // chaddr is a 6-byte Ethernet address
	id       string // client identifier in hex, if sent
	hostname string // option 12 as a DNS label, if sent
}

// Serve answers one request from lan0. reply is nil when there is no
// answer: a malformed message (counted, see Dropped), one relayed from
// outside lan0's subnet (giaddr set there: not counted; a relay agent on
// lan0 itself, such as perfdhcp, is served from lan0's pool), a message
// meant for another server, RELEASE
// and DECLINE, a client we know nothing about (RFC 2131 wants silence),
// or a full pool. changed reports that the lease table changed in a way
// worth a write: an ACK, a RELEASE, a DECLINE. An OFFER's one-minute
// reservation is not (it shows in Leases, and is published with the next
// change).
//
// The reply's Flags keep the client's broadcast bit, and a NAK has it
// set: where to send it is the caller's job (see Destination).
func (h *Handler) Serve(req *dhcpv4.DHCPv4) (reply *dhcpv4.DHCPv4, changed bool) {
	c, typ, ok := check(req)
	if !ok {
		h.dropped.Add(1)
		return nil, false
	}
	if gi := addr4(req.GatewayIPAddr); !gi.IsUnspecified() && !h.onLink(gi) {
		// Relayed from elsewhere: the server serves lan0 only, and
		// another subnet is not its business.
		return nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	sid := optAddr(req, dhcpv4.OptionServerIdentifier)
	if sid.IsValid() && sid != h.server && typ != dhcpv4.MessageTypeDiscover && typ != dhcpv4.MessageTypeInform {
		// Meant for another server. A REQUEST tells us the client took
		// another server's offer (RFC 2131 section 4.3.2): our offer's
		// reservation ends.
		if r := h.p.byKey[c.key]; typ == dhcpv4.MessageTypeRequest && r != nil && r.Offered && r.Expiry.After(now) {
			h.p.setExpiry(r, now)
		}
		return nil, false
	}
	requested := optAddr(req, dhcpv4.OptionRequestedIPAddress)
	ciaddr := addr4(req.ClientIPAddr)
	switch typ {
	case dhcpv4.MessageTypeDiscover:
		a, ok := h.choose(c, requested, now)
		if !ok {
			return nil, false // pool exhausted
		}
		h.bind(c, a, now, now.Add(offerHold), true)
		return h.reply(req, dhcpv4.MessageTypeOffer, fromU32(a), true), false
	case dhcpv4.MessageTypeRequest:
		return h.request(req, c, sid, requested, ciaddr, now)
	case dhcpv4.MessageTypeDecline:
		if !requested.IsValid() {
			h.dropped.Add(1)
			return nil, false
		}
		r := h.p.byAddr[toU32(requested)]
		if r == nil || r.Static || r.key != c.key {
			return nil, false // not the address we gave this client
		}
		h.p.disown(r)
		r.Declined, r.Offered, r.name, r.LastSeen = true, false, "", now
		r.show()
		h.p.setExpiry(r, now.Add(declineHold))
		return nil, true
	case dhcpv4.MessageTypeRelease:
		if s := h.staticFor(c); s != nil {
			if s.Addr != ciaddr || !s.Expiry.After(now) {
				return nil, false
			}
			s.Expiry, s.LastSeen = now, now
			return nil, true
		}
		r := h.p.byKey[c.key]
		if r == nil || r.Addr != ciaddr || !r.Expiry.After(now) {
			return nil, false
		}
		// The record stays: the client gets the address back next
		// time, unless the pool runs out first.
		r.LastSeen = now
		h.p.setExpiry(r, now)
		return nil, true
	case dhcpv4.MessageTypeInform:
		return h.reply(req, dhcpv4.MessageTypeAck, netip.IPv4Unspecified(), false), false
	}
	h.dropped.Add(1) // a server's message type in a BOOTREQUEST
	return nil, false
}

// request answers a DHCPREQUEST in any of the client's states, told apart
// as in RFC 2131 section 4.3.2.
func (h *Handler) request(req *dhcpv4.DHCPv4, c client, sid, requested, ciaddr netip.Addr, now time.Time) (*dhcpv4.DHCPv4, bool) {
	var a netip.Addr
	selecting := sid.IsValid() // and ours: Serve ignored the rest
	switch {
	case selecting:
		a = requested // the address we offered
	case requested.IsValid():
		a = requested // INIT-REBOOT
	case !ciaddr.IsUnspecified():
		a = ciaddr // RENEWING (unicast) or REBINDING (broadcast)
	}
	if !a.IsValid() {
		h.dropped.Add(1)
		return nil, false
	}
	if !h.subnet.Contains(a) || a == h.subnet.Addr() || a == h.bcast {
		return h.nak(req, fmt.Sprintf("%s is not on this network", a)), false
	}
	au := toU32(a)
	if h.canAssign(c, au, now) {
		h.bind(c, au, now, now.Add(h.duration), false)
		return h.reply(req, dhcpv4.MessageTypeAck, a, true), true
	}
	if selecting || h.heldByOther(c, au, now) || h.staticFor(c) != nil || h.p.byKey[c.key] != nil {
		return h.nak(req, fmt.Sprintf("%s is not available", a)), false
	}
	return nil, false // no record of the client: RFC 2131 wants silence
}

// onLink reports whether a is a host address of lan0's subnet other than
// the router's own: where a relay agent on the LAN may sit.
func (h *Handler) onLink(a netip.Addr) bool {
	return h.subnet.Contains(a) && a != h.subnet.Addr() && a != h.bcast && a != h.server
}

// staticFor returns c's static lease, or nil.
func (h *Handler) staticFor(c client) *record {
	if !c.ethernet {
		return nil
	}
	return h.p.static[c.hw]
}

// choose picks the address to offer c, in the order of the package doc.
func (h *Handler) choose(c client, requested netip.Addr, now time.Time) (uint32, bool) {
	if s := h.staticFor(c); s != nil {
		return s.addr, true
	}
	if r := h.p.byKey[c.key]; r != nil {
		return r.addr, true
	}
	if requested.Is4() && h.canAssign(c, toU32(requested), now) {
		return toU32(requested), true
	}
	if a, ok := h.p.takeUnused(); ok {
		return a, true
	}
	if r := h.p.oldestExpired(now); r != nil {
		return r.addr, true
	}
	return 0, false
}

// canAssign reports whether c may have address a now: its static
// address; or a pool address that is unused, c's, or expired.
func (h *Handler) canAssign(c client, a uint32, now time.Time) bool {
	if s := h.staticFor(c); s != nil {
		return a == s.addr
	}
	if !h.p.inPool(a) {
		return false
	}
	r := h.p.byAddr[a]
	return r == nil || r.key == c.key || !r.Expiry.After(now)
}

// heldByOther reports whether a is the router's, another device's static
// address, or another client's live (or declined) lease.
func (h *Handler) heldByOther(c client, a uint32, now time.Time) bool {
	if a == toU32(h.server) {
		return true
	}
	r := h.p.byAddr[a]
	switch {
	case r == nil:
		return false
	case r.Static:
		return r != h.staticFor(c)
	}
	return r.key != c.key && r.Expiry.After(now)
}

// bind gives a to c until expiry (for an offer: at least until then),
// which canAssign or choose allowed. A different address c held becomes
// unused; an expired lease of another client on a is forgotten.
//
// An offer leaves a lease c holds (unexpired, acknowledged) acknowledged,
// as when a client that rebooted starts over with a DISCOVER; else the
// lease is Offered, without a Hostname, until the ACK (offer false)
// records the name: the one c sent now, or in the DISCOVER, or had.
//
// A static lease is never Offered: the config, not an offer, reserves
// its address. An offer changes nothing the table shows; the ACK sets
// its Expiry and, without a configured one, records the client's name.
func (h *Handler) bind(c client, a uint32, now, expiry time.Time, offer bool) {
	if s := h.staticFor(c); s != nil {
		s.ClientID = c.id
		if !s.fixedName && c.hostname != "" {
			s.name = c.hostname
		}
		if !offer {
			s.Expiry, s.LastSeen = expiry, now
			s.show()
		}
		return
	}
	p := h.p
	r := p.byKey[c.key]
	if r != nil && r.addr != a {
		p.remove(r)
		r = nil
	}
	if o := p.byAddr[a]; o != nil && o != r {
		p.remove(o)
	}
	if r == nil {
		r = &record{Lease: Lease{Addr: fromU32(a)}, addr: a, key: c.key}
		if offer {
			r.Expiry = expiry
		}
		p.add(r)
		r.Offered = offer
	} else {
		r.Offered = offer && (r.Offered || !r.Expiry.After(now))
	}
	r.HardwareAddr, r.ClientID, r.LastSeen = c.hw, c.id, now
	if c.hostname != "" {
		r.name = c.hostname
	}
	if !offer || r.Offered {
		r.show()
	}
	if !offer || r.Expiry.Before(expiry) {
		p.setExpiry(r, expiry)
	}
}

// check returns who sent req and its message type, or false when req is
// malformed: not a BOOTREQUEST, no usable chaddr, or an option of a
// length its type does not allow.
func check(req *dhcpv4.DHCPv4) (client, dhcpv4.MessageType, bool) {
	if req == nil || req.OpCode != dhcpv4.OpcodeBootRequest || req.Options == nil {
		return client{}, 0, false
	}
	hw := req.ClientHWAddr
	if len(hw) == 0 || len(hw) > 16 || (req.HWType == iana.HWTypeEthernet) != (len(hw) == 6) {
		return client{}, 0, false
	}
	for _, o := range []struct {
		code     dhcpv4.OptionCode
		min, max int
	}{
		{dhcpv4.OptionDHCPMessageType, 1, 1},
		{dhcpv4.OptionRequestedIPAddress, 4, 4},
		{dhcpv4.OptionServerIdentifier, 4, 4},
		{dhcpv4.OptionClientIdentifier, 2, 255},
		{dhcpv4.OptionHostName, 1, 255},
		{dhcpv4.OptionMaximumDHCPMessageSize, 2, 2},
	} {
		if v, ok := req.Options[o.code.Code()]; ok && (len(v) < o.min || len(v) > o.max) {
			return client{}, 0, false
		}
	}
	typ := req.MessageType()
	if typ == dhcpv4.MessageTypeNone {
		return client{}, 0, false // BOOTP, or garbage
	}
	for _, a := range []net.IP{req.ClientIPAddr, req.GatewayIPAddr} {
		if len(a) != 0 && a.To4() == nil {
			return client{}, 0, false
		}
	}
	c := client{hw: hw.String(), ethernet: len(hw) == 6 && req.HWType == iana.HWTypeEthernet}
	if id := req.Options.Get(dhcpv4.OptionClientIdentifier); id != nil {
		c.id = hex.EncodeToString(id)
		c.key = "id:" + c.id
	} else {
		if allZero(hw) {
			return client{}, 0, false
		}
		c.key = "hw:" + c.hw
	}
	c.hostname = sanitizeHostname(string(req.Options.Get(dhcpv4.OptionHostName)))
	return c, typ, true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// addr4 converts a message's address field; nil reads as 0.0.0.0, as on
// the wire, and anything but IPv4 as invalid.
func addr4(ip net.IP) netip.Addr {
	if len(ip) == 0 {
		return netip.IPv4Unspecified()
	}
	if v4 := ip.To4(); v4 != nil {
		return netip.AddrFrom4([4]byte(v4))
	}
	return netip.Addr{}
}

// optAddr returns the address in option code, or the zero Addr.
func optAddr(m *dhcpv4.DHCPv4, code dhcpv4.OptionCode) netip.Addr {
	if v := m.Options.Get(code); len(v) == 4 {
		return netip.AddrFrom4([4]byte(v))
	}
	return netip.Addr{}
}

func ip(a netip.Addr) net.IP {
	b := a.As4()
	return net.IP(b[:])
}

// reply builds an OFFER or ACK for req. lease adds the lease time, T1
// and T2 (not for INFORM). The configuration options follow the client's
// parameter request list; a client without one gets them all.
func (h *Handler) reply(req *dhcpv4.DHCPv4, typ dhcpv4.MessageType, yiaddr netip.Addr, lease bool) *dhcpv4.DHCPv4 {
	m := h.newReply(req, typ)
	m.YourIPAddr = ip(yiaddr)
	if typ == dhcpv4.MessageTypeAck {
		// RFC 2131 table 3: ciaddr of an ACK is the request's.
		m.ClientIPAddr = ip(addr4(req.ClientIPAddr))
	}
	if lease {
		m.UpdateOption(dhcpv4.OptIPAddressLeaseTime(h.duration))
		m.UpdateOption(dhcpv4.OptRenewTimeValue(h.duration / 2))
		m.UpdateOption(dhcpv4.OptRebindingTimeValue(h.duration * 7 / 8))
	}
	prl := req.ParameterRequestList()
	want := func(c dhcpv4.OptionCode) bool { return len(prl) == 0 || prl.Has(c) }
	bits := h.subnet.Bits()
	if want(dhcpv4.OptionSubnetMask) {
		m.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(bits, 32)))
	}
	if want(dhcpv4.OptionRouter) {
		m.UpdateOption(dhcpv4.OptRouter(ip(h.server)))
	}
	if want(dhcpv4.OptionDomainNameServer) {
		m.UpdateOption(dhcpv4.OptDNS(ip(h.server)))
	}
	if want(dhcpv4.OptionDomainName) {
		m.UpdateOption(dhcpv4.OptDomainName(h.domain))
	}
	if want(dhcpv4.OptionDNSDomainSearchList) {
		m.UpdateOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: []string{h.domain}}))
	}
	if want(dhcpv4.OptionBroadcastAddress) {
		m.UpdateOption(dhcpv4.OptBroadcastAddress(ip(h.bcast)))
	}
	if h.mtu > 0 && want(dhcpv4.OptionInterfaceMTU) {
		m.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, []byte{byte(h.mtu >> 8), byte(h.mtu)}))
	}
	return m
}

// nak builds a NAK for req, with the reason in option 56 for whoever
// reads a capture. It has the broadcast bit set: RFC 2131 section 4.1
// has a NAK broadcast, as the client may have no usable address.
func (h *Handler) nak(req *dhcpv4.DHCPv4, reason string) *dhcpv4.DHCPv4 {
	m := h.newReply(req, dhcpv4.MessageTypeNak)
	m.SetBroadcast()
	m.UpdateOption(dhcpv4.OptMessage(reason))
	return m
}

// newReply returns a reply to req with the fields and options every reply
// has: message type, server identifier and the client identifier copied
// (RFC 6842).
func (h *Handler) newReply(req *dhcpv4.DHCPv4, typ dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	zero := ip(netip.IPv4Unspecified())
	m := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  zero,
		YourIPAddr:    zero,
		ServerIPAddr:  zero,
		GatewayIPAddr: ip(addr4(req.GatewayIPAddr)),
		ClientHWAddr:  slices.Clone(req.ClientHWAddr),
		Options:       dhcpv4.Options{},
	}
	m.UpdateOption(dhcpv4.OptMessageType(typ))
	m.UpdateOption(dhcpv4.OptServerIdentifier(ip(h.server)))
	if id := req.Options.Get(dhcpv4.OptionClientIdentifier); id != nil {
		m.UpdateOption(dhcpv4.OptClientIdentifier(slices.Clone(id)))
	}
	return m
}

// Destination says where the service sends reply to req, following RFC
// 2131 section 4.1: to the relay agent at giaddr, port 67, when the
// request came through one (Serve answers only relays on lan0); else to
// ciaddr when the client has an address (renewing, rebinding, INFORM);
// broadcast for a NAK and when the client set the broadcast bit; else to
// yiaddr at the client's MAC, which needs a raw frame (or a neighbour
// entry) because the client cannot answer ARP yet: then hw is chaddr.
// Replies to clients go to port 68.
func Destination(req, reply *dhcpv4.DHCPv4) (dst netip.AddrPort, hw net.HardwareAddr) {
	bcast := netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), 68)
	if gi := addr4(req.GatewayIPAddr); gi.IsValid() && !gi.IsUnspecified() {
		return netip.AddrPortFrom(gi, 67), nil
	}
	switch ci := addr4(req.ClientIPAddr); {
	case reply.MessageType() == dhcpv4.MessageTypeNak:
		return bcast, nil
	case ci.IsValid() && !ci.IsUnspecified():
		return netip.AddrPortFrom(ci, 68), nil
	case req.IsBroadcast():
		return bcast, nil
	}
	yi := addr4(reply.YourIPAddr)
	if !yi.IsValid() || yi.IsUnspecified() || len(reply.ClientHWAddr) != 6 {
		return bcast, nil
	}
	return netip.AddrPortFrom(yi, 68), reply.ClientHWAddr
}
