// Package dhcp6 is the uplink's DHCPv6 client: it asks the ISP for a
// delegated prefix (IA_PD) for the LAN and an address for the uplink
// (IA_NA), and, like the DHCPv4 client, never gives up what it has.
//
// The Client runs RFC 8415's exchanges (SOLICIT/ADVERTISE, REQUEST/REPLY,
// RENEW at T1, REBIND at T2) over a Conn and a clock it is given. A lease
// is replaced only by a REPLY that carries a new one: while no server
// answers, or one answers with an error status (NoPrefixAvail, NoBinding,
// ...), the prefix stays configured, also past its lifetimes. At start the
// persisted lease is already configured (netconfig applies it) and the
// client SOLICITs with its prefix as a hint, with the same DUID and IAIDs
// as before, so the ISP hands out the same prefix.
//
// Retransmissions follow RFC 8415 section 15 (randomised, doubling), but
// never stop, and SOLICITs back off to 64 s at most rather than an hour:
// the connection matters more than the ISP's load.
package dhcp6

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/homerouter/homerouter/state"
)

// Conn is how the client talks to DHCPv6 servers on its link.
type Conn interface {
	// Send sends m to dst port 547: ff02::1:2 or a server's unicast
	// address.
	Send(m *dhcpv6.Message, dst netip.Addr) error
	// Receive returns the next message for the client, ErrTimeout at
	// deadline, or ctx's error.
	Receive(ctx context.Context, deadline time.Time) (*dhcpv6.Message, error)
}

// ErrTimeout is what a Conn's Receive returns at its deadline.
var ErrTimeout = errors.New("dhcp6: timeout")

// AllServers is All_DHCP_Relay_Agents_and_Servers, ff02::1:2.
var AllServers = netip.MustParseAddr("ff02::1:2")

// IAID is the identity association ID of both the IA_NA and the IA_PD.
// It is fixed, so that a restart presents the same IAIDs with the same
// DUID, and the ISP's server recognises the binding.
var IAID = [4]byte{0, 0, 0, 1}

// Config is what the client sends and how it keeps time.
type Config struct {
	DUID         dhcpv6.DUID
	PrefixLength int // hint; 0 sends none
	Now          func() time.Time
	Rand         *rand.Rand
	Logger       *log.Logger
	// OnLease is called with each new lease; it publishes it (the Store
	// then saves it to /perm).
	OnLease  func(state.DHCPv6Lease)
	OnStatus func(state.DHCPv6Status)
}

// Client is one DHCPv6 client on one link. Run it once.
type Client struct {
	conn   Conn
	cfg    Config
	lease  state.DHCPv6Lease
	status state.DHCPv6Status
	// sendErr is the last send error logged: the same error on every
	// retransmission (uplink0's link-local address still tentative at
	// boot, say) is logged once, and again after a send succeeds.
	sendErr string
}

// Retransmission parameters (RFC 8415 section 7.6), with SOL_MAX_RT cut
// to 64 s (see the package doc).
const (
	solTimeout = time.Second
	solMaxRT   = 64 * time.Second
	reqTimeout = time.Second
	reqMaxRT   = 30 * time.Second
	reqMaxRC   = 10
	renTimeout = 10 * time.Second
	renMaxRT   = 600 * time.Second
	// maxWait is the longest the client waits without looking at the
	// clock, which can step.
	maxWait = time.Minute
)

// NewClient returns a client on conn starting from lease.
func NewClient(conn Conn, cfg Config, lease state.DHCPv6Lease) *Client {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if cfg.Logger == nil {
		cfg.Logger = log.New(io.Discard, "", 0)
	}
	if cfg.OnLease == nil {
		cfg.OnLease = func(state.DHCPv6Lease) {}
	}
	if cfg.OnStatus == nil {
		cfg.OnStatus = func(state.DHCPv6Status) {}
	}
	return &Client{conn: conn, cfg: cfg, lease: lease}
}

type step func(ctx context.Context) (step, error)

// Run runs the client until ctx is done or the Conn fails.
func (c *Client) Run(ctx context.Context) error {
	// With a lease that has not run out, a restarted client REBINDs
	// (RFC 8415 section 18.2.12): any server that knows the binding
	// confirms it. Otherwise it SOLICITs, with the old prefix as hint.
	next := c.soliciting
	if c.lease.Valid() && c.cfg.Now().Before(c.expiry()) {
		next = c.rebinding
	}
	for {
		var err error
		if next, err = next(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.setStatus(c.status.State, err)
			return fmt.Errorf("dhcp6: %s: %w", c.status.State, err)
		}
	}
}

// soliciting sends SOLICITs and collects ADVERTISEs for the first
// retransmission interval, then REQUESTs from the best. An ADVERTISE with
// the highest preference (255), or any after the first interval, is taken
// at once.
func (c *Client) soliciting(ctx context.Context) (step, error) {
	c.setStatus("soliciting", nil)
	xid := c.xid()
	start := c.cfg.Now()
	rt := time.Duration(0)
	for first := true; ; first = false {
		rt = c.nextRT(rt, solTimeout, solMaxRT)
		m := c.message(dhcpv6.MessageTypeSolicit, xid, start)
		c.addIAs(m, nil)
		c.send(m, AllServers)
		deadline := c.cfg.Now().Add(rt)
		var best *dhcpv6.Message
		for c.cfg.Now().Before(deadline) {
			adv, err := c.receive(ctx, xid, deadline, dhcpv6.MessageTypeAdvertise)
			if err != nil {
				return nil, err
			}
			if adv == nil || !offers(adv) {
				continue
			}
			if best == nil || better(adv, best) {
				best = adv
			}
			// Collect for the first RT only; later, or at the highest
			// preference, take it at once (RFC 8415 section 18.2.9).
			if !first || adv.Options.Preference() == 255 {
				break
			}
		}
		if best != nil {
			return c.requesting(best.Options.ServerID(), best), nil
		}
	}
}

// offers reports whether an ADVERTISE offers a prefix or an address.
func offers(m *dhcpv6.Message) bool {
	l := leaseFromReply(m, time.Time{})
	return l.Valid()
}

// better ranks ADVERTISEs: one with a prefix beats one without, then the
// higher preference wins.
func better(a, b *dhcpv6.Message) bool {
	pa, pb := len(leaseFromReply(a, time.Time{}).Prefixes) > 0, len(leaseFromReply(b, time.Time{}).Prefixes) > 0
	if pa != pb {
		return pa
	}
	return a.Options.Preference() > b.Options.Preference()
}

// requesting REQUESTs from the server sid what its ADVERTISE adv offered,
// or, when adv is nil, what the current lease holds (after a NoBinding).
func (c *Client) requesting(sid dhcpv6.DUID, adv *dhcpv6.Message) step {
	return func(ctx context.Context) (step, error) {
		c.setStatus("requesting", nil)
		xid := c.xid()
		start := c.cfg.Now()
		rt := time.Duration(0)
		for range reqMaxRC {
			rt = c.nextRT(rt, reqTimeout, reqMaxRT)
			m := c.message(dhcpv6.MessageTypeRequest, xid, start)
			m.AddOption(dhcpv6.OptServerID(sid))
			c.addIAs(m, adv)
			c.send(m, AllServers)
			if next, done, err := c.reply(ctx, xid, c.cfg.Now().Add(rt)); done || err != nil {
				return next, err
			}
		}
		return c.soliciting, nil
	}
}

// bound waits for T1.
func (c *Client) bound(ctx context.Context) (step, error) {
	c.setStatus("bound", nil)
	t1 := c.lease.Acked.Add(time.Duration(c.lease.T1))
	for c.cfg.Now().Before(t1) {
		if _, err := c.receive(ctx, nil, t1); err != nil {
			return nil, err
		}
	}
	return c.renewing, nil
}

// renewing sends RENEWs to the server that gave the lease until T2:
// unicast when it allowed that (option 12), else multicast.
func (c *Client) renewing(ctx context.Context) (step, error) {
	c.setStatus("renewing", nil)
	return c.extend(ctx, dhcpv6.MessageTypeRenew, c.lease.Acked.Add(time.Duration(c.lease.T2)), c.rebinding)
}

// rebinding sends REBINDs to any server until the lease's lifetimes run
// out; then it keeps the lease and solicits.
func (c *Client) rebinding(ctx context.Context) (step, error) {
	c.setStatus("rebinding", nil)
	return c.extend(ctx, dhcpv6.MessageTypeRebind, c.expiry(), c.retained)
}

// retained logs that the lifetimes ran out and starts over.
func (c *Client) retained(ctx context.Context) (step, error) {
	c.cfg.Logger.Printf("lease expired without an answer; keeping %v until a server answers", c.prefix())
	return c.soliciting, nil
}

// extend sends RENEW or REBIND messages until until, then moves to after.
// RENEWs go unicast while the server allows it and that works.
func (c *Client) extend(ctx context.Context, t dhcpv6.MessageType, until time.Time, after step) (step, error) {
	xid := c.xid()
	start := c.cfg.Now()
	rt := time.Duration(0)
	for c.cfg.Now().Before(until) {
		rt = c.nextRT(rt, renTimeout, renMaxRT)
		m := c.message(t, xid, start)
		if t == dhcpv6.MessageTypeRenew {
			if sid, err := hex.DecodeString(c.lease.ServerDUID); err == nil {
				if duid, err := dhcpv6.DUIDFromBytes(sid); err == nil {
					m.AddOption(dhcpv6.OptServerID(duid))
				}
			}
		}
		c.addIAs(m, nil)
		dst := AllServers
		if t == dhcpv6.MessageTypeRenew && c.lease.ServerUnicast.IsValid() {
			dst = c.lease.ServerUnicast
		}
		if !c.send(m, dst) && dst != AllServers {
			c.lease.ServerUnicast = netip.Addr{}
			c.send(m, AllServers)
		}
		deadline := c.cfg.Now().Add(rt)
		if deadline.After(until) {
			deadline = until
		}
		if next, done, err := c.reply(ctx, xid, deadline); done || err != nil {
			return next, err
		}
	}
	return after, nil
}

// reply waits until deadline for a REPLY for xid and binds what it
// carries, merged into the current lease (see merge). A REPLY that
// carries nothing is logged and changes nothing (done is false), except
// that NoBinding makes the client REQUEST its lease again, and
// UseMulticast makes it stop sending unicast.
func (c *Client) reply(ctx context.Context, xid *dhcpv6.TransactionID, deadline time.Time) (next step, done bool, err error) {
	for c.cfg.Now().Before(deadline) {
		m, err := c.receive(ctx, xid, deadline, dhcpv6.MessageTypeReply)
		if err != nil || m == nil {
			return nil, false, err
		}
		got := leaseFromReply(m, c.cfg.Now())
		if !got.Valid() {
			c.setStatus(c.status.State, fmt.Errorf("REPLY without a lease: %s", replyStatus(m)))
			c.cfg.Logger.Printf("REPLY without a lease (%s); keeping %v", replyStatus(m), c.prefix())
			switch {
			case hasStatus(m, iana.StatusNoBinding) && c.lease.Valid():
				return c.requesting(m.Options.ServerID(), nil), true, nil
			case hasStatus(m, iana.StatusUseMulticast):
				c.lease.ServerUnicast = netip.Addr{}
			}
			continue
		}
		lease := merge(c.lease, got)
		if prefixOf(lease) != c.prefix() || c.status.Retained {
			c.cfg.Logger.Printf("bound: prefix %v, address %v", prefixOf(lease), addrOf(lease))
		}
		c.lease = lease
		c.cfg.OnLease(lease)
		return c.bound, true, nil
	}
	return nil, false, nil
}

// receive returns the next message of one of the types for xid, or nil
// at deadline (with a nil xid it only waits). Messages without a server
// identifier, or for another client, are dropped. Waits are cut to
// maxWait.
func (c *Client) receive(ctx context.Context, xid *dhcpv6.TransactionID, deadline time.Time, types ...dhcpv6.MessageType) (*dhcpv6.Message, error) {
	for {
		now := c.cfg.Now()
		if !now.Before(deadline) {
			return nil, nil
		}
		wait := deadline
		if limit := now.Add(maxWait); wait.After(limit) {
			wait = limit
		}
		m, err := c.conn.Receive(ctx, wait)
		if errors.Is(err, ErrTimeout) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if xid == nil || m.TransactionID != *xid {
			continue
		}
		if cid := m.Options.ClientID(); cid == nil || !cid.Equal(c.cfg.DUID) || m.Options.ServerID() == nil {
			continue
		}
		for _, t := range types {
			if m.MessageType == t {
				return m, nil
			}
		}
	}
}

// send sends m and reports whether that worked; a failure is logged, and
// retransmission covers it.
func (c *Client) send(m *dhcpv6.Message, dst netip.Addr) bool {
	if err := c.conn.Send(m, dst); err != nil {
		c.setStatus(c.status.State, err)
		if err.Error() != c.sendErr {
			c.sendErr = err.Error()
			c.cfg.Logger.Printf("send %v to %v: %v (logged once while it repeats)", m.MessageType, dst, err)
		}
		return false
	}
	c.sendErr = ""
	return true
}

// message returns a client message with the options every one carries.
// Elapsed time counts from the exchange's first message.
func (c *Client) message(t dhcpv6.MessageType, xid *dhcpv6.TransactionID, start time.Time) *dhcpv6.Message {
	m := &dhcpv6.Message{MessageType: t, TransactionID: *xid}
	m.AddOption(dhcpv6.OptClientID(c.cfg.DUID))
	m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionDomainSearchList))
	m.AddOption(dhcpv6.OptElapsedTime(min(c.cfg.Now().Sub(start), 655350*time.Millisecond)))
	return m
}

// addIAs adds IA_NA and IA_PD: what from offers (an ADVERTISE), else the
// current lease's, else hints.
func (c *Client) addIAs(m *dhcpv6.Message, from *dhcpv6.Message) {
	na := &dhcpv6.OptIANA{IaId: IAID}
	pd := &dhcpv6.OptIAPD{IaId: IAID}
	switch {
	case from != nil:
		if o := from.Options.OneIANA(); o != nil {
			na.IaId = o.IaId
			for _, a := range o.Options.Addresses() {
				na.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: a.IPv6Addr})
			}
		}
		if o := from.Options.OneIAPD(); o != nil {
			for _, p := range o.Options.Prefixes() {
				pd.Options.Add(&dhcpv6.OptIAPrefix{Prefix: p.Prefix})
			}
		}
	default:
		if a := c.lease.Addr; a != nil {
			if a.IAID != 0 {
				na.IaId = [4]byte{byte(a.IAID >> 24), byte(a.IAID >> 16), byte(a.IAID >> 8), byte(a.IAID)}
			}
			na.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: a.Addr.AsSlice()})
		}
		for _, p := range c.lease.Prefixes {
			pd.Options.Add(&dhcpv6.OptIAPrefix{Prefix: ipnet(p.Prefix)})
		}
		if len(c.lease.Prefixes) == 0 && c.cfg.PrefixLength > 0 {
			pd.Options.Add(&dhcpv6.OptIAPrefix{Prefix: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(c.cfg.PrefixLength, 128)}})
		}
	}
	m.AddOption(na)
	m.AddOption(pd)
}

// nextRT is RFC 8415's retransmission timeout: IRT ±10% first, then
// doubling ±10%, capped at MRT ±10%.
func (c *Client) nextRT(rt, irt, mrt time.Duration) time.Duration {
	rand := func(d time.Duration) time.Duration {
		return d + time.Duration(c.cfg.Rand.Int64N(int64(d/5)+1)) - d/10
	}
	if rt == 0 {
		// The first RT must be greater than IRT (RFC 8415 section 15).
		return irt + time.Duration(c.cfg.Rand.Int64N(int64(irt/10)+1))
	}
	if 2*rt > mrt {
		return rand(mrt)
	}
	return rand(2 * rt)
}

func (c *Client) xid() *dhcpv6.TransactionID {
	v := c.cfg.Rand.Uint32()
	return &dhcpv6.TransactionID{byte(v >> 16), byte(v >> 8), byte(v)}
}

// expiry is when the last of the lease's valid lifetimes ends.
func (c *Client) expiry() time.Time {
	var end time.Time
	for _, p := range c.lease.Prefixes {
		if e := p.Given.Add(time.Duration(p.Valid)); e.After(end) {
			end = e
		}
	}
	if a := c.lease.Addr; a != nil {
		if e := a.Given.Add(time.Duration(a.Valid)); e.After(end) {
			end = e
		}
	}
	return end
}

func (c *Client) prefix() netip.Prefix { return prefixOf(c.lease) }

func (c *Client) setStatus(name string, err error) {
	s := c.status
	if name != s.State {
		s.State, s.Since, s.LastError = name, c.cfg.Now(), ""
	}
	if err != nil {
		s.LastError = err.Error()
	}
	s.Prefix = c.prefix()
	s.Retained = c.lease.Valid() && !c.cfg.Now().Before(c.expiry())
	if c.lease.Acked.After(s.LastReply) {
		s.LastReply = c.lease.Acked
	}
	if s != c.status {
		c.status = s
		c.cfg.OnStatus(s)
	}
}

// hasStatus reports whether m, or one of its IAs, carries status code.
func hasStatus(m *dhcpv6.Message, code iana.StatusCode) bool {
	if s := m.Options.Status(); s != nil && s.StatusCode == code {
		return true
	}
	for _, pd := range m.Options.IAPD() {
		if s := pd.Options.Status(); s != nil && s.StatusCode == code {
			return true
		}
	}
	for _, na := range m.Options.IANA() {
		if s := na.Options.Status(); s != nil && s.StatusCode == code {
			return true
		}
	}
	return false
}
