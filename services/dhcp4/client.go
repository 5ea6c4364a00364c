// Package dhcp4 is the uplink's DHCPv4 client. Its one goal is to keep the
// internet connection working: it never gives up an address it can still
// use.
//
// The Client implements RFC 2131's client states (INIT, SELECTING,
// REQUESTING, INIT-REBOOT, BOUND, RENEWING, REBINDING) over a Conn and a
// clock it is given, so tests can drive it with a fake of both. Where RFC
// 2131 says to stop using an expired address, it keeps it instead: while
// no server answers, the address most likely still works (the ISP's server
// is down, not the network), so it stays configured past expiry and is
// replaced only by a new lease, or dropped on a NAK, when the ISP says it
// is wrong. At start a persisted lease is applied before any packet is
// sent, even an expired one, and the client asks for it with INIT-REBOOT.
//
// Retransmissions back off exponentially with jitter, from 4 s up to 64 s
// (RFC 2131 section 4.1), and never stop: a server that comes back is
// heard within about a minute. The interface MTU (option 26) is asked for
// and kept in the lease, but not applied yet.
package dhcp4

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/homerouter/homerouter/state"
)

// Conn is how the client talks to DHCP servers on its link.
type Conn interface {
	// Send sends m to dst port 67: the limited broadcast address
	// 255.255.255.255, or a server's address (unicast, when renewing).
	Send(m *dhcpv4.DHCPv4, dst netip.Addr) error
	// Receive returns the next DHCPv4 message that arrives for the
	// client, ErrTimeout once deadline passes, or ctx's error.
	Receive(ctx context.Context, deadline time.Time) (*dhcpv4.DHCPv4, error)
}

// ErrTimeout is what a Conn's Receive returns at its deadline.
var ErrTimeout = errors.New("dhcp4: timeout")

// Config is what the client sends and how it keeps time. The zero value
// of each optional field means the default.
type Config struct {
	// HardwareAddr is the MAC in chaddr (the link's, or the spoofed one).
	HardwareAddr net.HardwareAddr
	// Hostname is sent as option 12 when not empty.
	Hostname string
	// ClientID is option 61; default 0x01 (Ethernet) followed by
	// HardwareAddr.
	ClientID []byte
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Rand draws transaction IDs and jitter; default a random source.
	Rand *rand.Rand
	// Logger gets one line per state change; default discards.
	Logger *log.Logger
	// OnLease is called with each new lease (after an ACK), and with the
	// zero lease after a NAK. It publishes the lease (the Store then
	// saves it to /perm); the client uses the lease whatever happens to
	// it there.
	OnLease func(state.DHCPv4Lease)
	// OnStatus is called whenever the client's status changes.
	OnStatus func(state.DHCPv4Status)
}

// Client is one DHCPv4 client on one link. Run it once.
type Client struct {
	conn   Conn
	cfg    Config
	lease  state.DHCPv4Lease // the lease in use, possibly expired
	status state.DHCPv4Status
	naks   int // NAKs in a row
}

// retransmission bounds (RFC 2131 section 4.1): 4 s, doubling to 64 s,
// each ±1 s.
const (
	firstRetransmit = 4 * time.Second
	maxRetransmit   = 64 * time.Second
	// requestTries is how often a REQUEST is sent in REQUESTING or
	// INIT-REBOOT before the client falls back.
	requestTries = 4
	// minRenewWait is the least time between REQUESTs when renewing or
	// rebinding (RFC 2131 section 4.4.5).
	minRenewWait = 60 * time.Second
)

// NewClient returns a client on conn that starts from lease (the zero
// lease when there is none).
func NewClient(conn Conn, cfg Config, lease state.DHCPv4Lease) *Client {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if cfg.Logger == nil {
		cfg.Logger = log.New(discard{}, "", 0)
	}
	if cfg.ClientID == nil {
		cfg.ClientID = append([]byte{1}, cfg.HardwareAddr...)
	}
	if cfg.OnLease == nil {
		cfg.OnLease = func(state.DHCPv4Lease) {}
	}
	if cfg.OnStatus == nil {
		cfg.OnStatus = func(state.DHCPv4Status) {}
	}
	return &Client{conn: conn, cfg: cfg, lease: lease}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// step is a state handler: it runs one state and returns the next.
type step func(ctx context.Context) (step, error)

// Run runs the state machine until ctx is done or the Conn fails.
func (c *Client) Run(ctx context.Context) error {
	// A persisted lease that has not expired is asked for with
	// INIT-REBOOT, and used to its end meanwhile; an expired one is kept
	// in use while INIT asks for it again.
	next := c.initState
	if leaseUsable(c.lease) && c.cfg.Now().Before(c.lease.Expiry) {
		next = c.initReboot
	}
	for {
		var err error
		if next, err = next(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.setStatus(c.status.State, err)
			return fmt.Errorf("dhcp4: %s: %w", c.status.State, err)
		}
	}
}

// initState is INIT and SELECTING: DISCOVER until an OFFER arrives. While
// an expired lease is retained, each DISCOVER follows an INIT-REBOOT
// REQUEST for its address: a server that comes back with its lease
// database ACKs that at once, and so keeps the address the router still
// uses, where a DISCOVER alone would have it probe the address, find it
// answering and offer another.
func (c *Client) initState(ctx context.Context) (step, error) {
	c.setStatus("selecting", nil)
	if c.naks > 0 {
		// A server that OFFERs and then NAKs must not make the client
		// spin: wait 1 s, doubling to 64 s, after each NAK in a row.
		wait := min(time.Second<<min(c.naks-1, 6), maxRetransmit)
		until := c.cfg.Now().Add(wait)
		for c.cfg.Now().Before(until) {
			if _, err := c.receive(ctx, until); err != nil {
				return nil, err
			}
		}
	}
	xid := c.xid()
	for attempt := 0; ; attempt++ {
		types := []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover}
		if c.lease.Valid() {
			types = []dhcpv4.MessageType{dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeDiscover}
		}
		for _, t := range types {
			m, err := c.message(t, xid)
			if err != nil {
				return nil, err
			}
			if c.lease.Valid() {
				m.UpdateOption(dhcpv4.OptRequestedIPAddress(c.lease.Addr.Addr().AsSlice()))
			}
			c.send(m, netip.IPv4Unspecified())
		}
		reply, err := c.await(ctx, xid, c.cfg.Now().Add(c.retransmit(attempt)),
			dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
		switch {
		case err != nil:
			return nil, err
		case reply == nil:
		case reply.MessageType() != dhcpv4.MessageTypeOffer:
			if next, done := c.act(reply); done {
				return next, nil
			}
		case reply.YourIPAddr.To4() != nil && !reply.YourIPAddr.IsUnspecified():
			c.cfg.Logger.Printf("offer of %v from %v", reply.YourIPAddr, reply.ServerIdentifier())
			return c.requesting(reply, xid), nil
		}
	}
}

// requesting is REQUESTING: ask for the offered address.
func (c *Client) requesting(offer *dhcpv4.DHCPv4, xid dhcpv4.TransactionID) step {
	return func(ctx context.Context) (step, error) {
		c.setStatus("requesting", nil)
		for attempt := range requestTries {
			m, err := c.message(dhcpv4.MessageTypeRequest, xid)
			if err != nil {
				return nil, err
			}
			m.UpdateOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))
			if sid := offer.ServerIdentifier(); sid != nil {
				m.UpdateOption(dhcpv4.OptServerIdentifier(sid))
			}
			c.send(m, netip.IPv4Unspecified())
			if next, done, err := c.answer(ctx, xid, c.cfg.Now().Add(c.retransmit(attempt))); done || err != nil {
				return next, err
			}
		}
		return c.initState, nil
	}
}

// initReboot is INIT-REBOOT: at start with a persisted lease that has
// not expired (already in use), ask to keep its address. Without an answer
// the lease is used as if just rebooted: renewed from T1.
func (c *Client) initReboot(ctx context.Context) (step, error) {
	c.setStatus("rebooting", nil)
	c.cfg.Logger.Printf("asking to keep %v (persisted lease, expiry %v)", c.lease.Addr, c.lease.Expiry.Format(time.RFC3339))
	// Rebooting stops at T1: from there the lease is renewed by unicast,
	// like any other.
	renew := c.lease.Acked.Add(time.Duration(c.lease.T1))
	valid := c.cfg.Now().Before(renew)
	xid := c.xid()
	for attempt := 0; attempt < requestTries && (!valid || c.cfg.Now().Before(renew)); attempt++ {
		m, err := c.message(dhcpv4.MessageTypeRequest, xid)
		if err != nil {
			return nil, err
		}
		m.UpdateOption(dhcpv4.OptRequestedIPAddress(c.lease.Addr.Addr().AsSlice()))
		c.send(m, netip.IPv4Unspecified())
		deadline := c.cfg.Now().Add(c.retransmit(attempt))
		if valid && deadline.After(renew) {
			deadline = renew
		}
		if next, done, err := c.answer(ctx, xid, deadline); done || err != nil {
			return next, err
		}
	}
	c.cfg.Logger.Printf("no answer; using the persisted lease")
	return c.bound, nil
}

// bound is BOUND: wait for T1.
func (c *Client) bound(ctx context.Context) (step, error) {
	c.setStatus("bound", nil)
	renew := c.lease.Acked.Add(time.Duration(c.lease.T1))
	for c.cfg.Now().Before(renew) {
		if _, err := c.receive(ctx, renew); err != nil {
			return nil, err
		}
	}
	return c.renewing, nil
}

// renewing is RENEWING: REQUEST unicast to the server that gave the
// lease, until T2.
func (c *Client) renewing(ctx context.Context) (step, error) {
	c.setStatus("renewing", nil)
	rebind := c.lease.Acked.Add(time.Duration(c.lease.T2))
	if next, done, err := c.extend(ctx, c.lease.ServerID, rebind); done || err != nil {
		return next, err
	}
	return c.rebinding, nil
}

// rebinding is REBINDING: REQUEST broadcast to any server, until expiry.
// Past it the lease is retained and the client starts over.
func (c *Client) rebinding(ctx context.Context) (step, error) {
	c.setStatus("rebinding", nil)
	if next, done, err := c.extend(ctx, netip.IPv4Unspecified(), c.lease.Expiry); done || err != nil {
		return next, err
	}
	c.cfg.Logger.Printf("lease expired without an answer; keeping %v until a server answers", c.lease.Addr)
	return c.initState, nil
}

// extend sends REQUESTs for the current address to dst until until,
// waiting half the remaining time between them, at least minRenewWait.
func (c *Client) extend(ctx context.Context, dst netip.Addr, until time.Time) (next step, done bool, err error) {
	xid := c.xid()
	for now := c.cfg.Now(); now.Before(until); now = c.cfg.Now() {
		m, err := c.message(dhcpv4.MessageTypeRequest, xid)
		if err != nil {
			return nil, false, err
		}
		m.ClientIPAddr = c.lease.Addr.Addr().AsSlice()
		c.send(m, dst)
		deadline := now.Add(max(until.Sub(now)/2, minRenewWait))
		if deadline.After(until) {
			deadline = until
		}
		if next, done, err := c.answer(ctx, xid, deadline); done || err != nil {
			return next, done, err
		}
	}
	return nil, false, nil
}

// answer waits until deadline for an ACK or NAK for xid and acts on it.
// done is false when nothing usable came.
func (c *Client) answer(ctx context.Context, xid dhcpv4.TransactionID, deadline time.Time) (next step, done bool, err error) {
	reply, err := c.await(ctx, xid, deadline, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
	if err != nil || reply == nil {
		return nil, false, err
	}
	next, done = c.act(reply)
	return next, done, nil
}

// act acts on an ACK (bind) or NAK (drop the lease, start over). done is
// false for an ACK that cannot be used.
func (c *Client) act(reply *dhcpv4.DHCPv4) (next step, done bool) {
	if reply.MessageType() == dhcpv4.MessageTypeNak {
		c.cfg.Logger.Printf("NAK from %v (%s): dropping %v", reply.ServerIdentifier(), reply.Message(), c.lease.Addr)
		c.setLease(state.DHCPv4Lease{})
		c.naks++
		return c.initState, true
	}
	lease, err := leaseFromAck(reply, c.cfg.Now())
	if err != nil {
		c.cfg.Logger.Printf("ignoring ACK: %v", err)
		return nil, false
	}
	if lease.Addr != c.lease.Addr || c.status.Retained {
		c.cfg.Logger.Printf("bound to %v from %v, lease %v", lease.Addr, lease.ServerID, time.Duration(lease.Duration))
	}
	c.setLease(lease)
	c.naks = 0
	return c.bound, true
}

// await receives until deadline and returns the first message for xid of
// one of the types, or nil at the deadline. Anything else is dropped.
func (c *Client) await(ctx context.Context, xid dhcpv4.TransactionID, deadline time.Time, types ...dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	for c.cfg.Now().Before(deadline) {
		m, err := c.receive(ctx, deadline)
		if err != nil {
			return nil, err
		}
		if m == nil {
			continue
		}
		if m.OpCode != dhcpv4.OpcodeBootReply || m.TransactionID != xid || !macEqual(m.ClientHWAddr, c.cfg.HardwareAddr) {
			continue
		}
		for _, t := range types {
			if m.MessageType() == t {
				return m, nil
			}
		}
	}
	return nil, nil
}

// receive returns the next message, or nil when deadline passed or
// maxWait did. Waits are cut to maxWait because deadlines come from the
// wall clock (a persisted lease's times), which can step; the callers
// look at the clock again and wait more.
func (c *Client) receive(ctx context.Context, deadline time.Time) (*dhcpv4.DHCPv4, error) {
	if limit := c.cfg.Now().Add(maxWait); deadline.After(limit) {
		deadline = limit
	}
	m, err := c.conn.Receive(ctx, deadline)
	if errors.Is(err, ErrTimeout) {
		return nil, nil
	}
	return m, err
}

// maxWait is the longest the client waits without looking at the clock.
const maxWait = time.Minute

// send sends m, logging a failure: a send that fails (the link is down)
// is a message lost, and retransmission covers it.
func (c *Client) send(m *dhcpv4.DHCPv4, dst netip.Addr) {
	if dst.IsUnspecified() {
		dst = netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	if err := c.conn.Send(m, dst); err != nil {
		c.setStatus(c.status.State, err)
		c.cfg.Logger.Printf("send %v to %v: %v", m.MessageType(), dst, err)
	}
}

// requested are the options the client asks for (option 55).
var requested = []dhcpv4.OptionCode{
	dhcpv4.OptionSubnetMask,
	dhcpv4.OptionRouter,
	dhcpv4.OptionDomainNameServer,
	dhcpv4.OptionDomainName,
	dhcpv4.OptionBroadcastAddress,
	dhcpv4.OptionInterfaceMTU,
	dhcpv4.OptionIPAddressLeaseTime,
	dhcpv4.OptionServerIdentifier,
	dhcpv4.OptionRenewTimeValue,
	dhcpv4.OptionRebindingTimeValue,
	dhcpv4.OptionClasslessStaticRoute,
}

// message returns a client message of type t with the options every one
// carries.
func (c *Client) message(t dhcpv4.MessageType, xid dhcpv4.TransactionID) (*dhcpv4.DHCPv4, error) {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithTransactionID(xid),
		dhcpv4.WithHwAddr(c.cfg.HardwareAddr),
		dhcpv4.WithMessageType(t),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(c.cfg.ClientID)),
		dhcpv4.WithRequestedOptions(requested...),
	}
	if c.cfg.Hostname != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(c.cfg.Hostname)))
	}
	m, err := dhcpv4.New(mods...)
	if err != nil {
		return nil, fmt.Errorf("build %v: %w", t, err)
	}
	return m, nil
}

// xid draws a new transaction ID.
func (c *Client) xid() dhcpv4.TransactionID {
	var x dhcpv4.TransactionID
	v := c.cfg.Rand.Uint32()
	x[0], x[1], x[2], x[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	return x
}

// retransmit returns the wait after the attempt-th transmission: 4 s
// doubling to 64 s, randomised by ±1 s.
func (c *Client) retransmit(attempt int) time.Duration {
	d := maxRetransmit
	if attempt < 4 {
		d = firstRetransmit << attempt
	}
	return d + time.Duration(c.cfg.Rand.Int64N(int64(2*time.Second))) - time.Second
}

// setLease makes lease the one in use and hands it to OnLease.
func (c *Client) setLease(lease state.DHCPv4Lease) {
	c.lease = lease
	c.cfg.OnLease(lease)
}

// setStatus publishes the status if it changed. err, when not nil,
// becomes LastError; a state change clears it.
func (c *Client) setStatus(name string, err error) {
	s := c.status
	if name != s.State {
		s.State, s.Since, s.LastError = name, c.cfg.Now(), ""
	}
	if err != nil {
		s.LastError = err.Error()
	}
	s.Addr = c.lease.Addr
	s.Retained = c.lease.Valid() && !c.cfg.Now().Before(c.lease.Expiry)
	if c.lease.Acked.After(s.LastAck) {
		s.LastAck = c.lease.Acked
	}
	if s != c.status {
		c.status = s
		c.cfg.OnStatus(s)
	}
}

func macEqual(a, b net.HardwareAddr) bool {
	return len(a) >= len(b) && string(a[:len(b)]) == string(b)
}
