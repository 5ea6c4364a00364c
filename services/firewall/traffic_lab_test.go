package firewall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"

	"github.com/homerouter/homerouter/internal/lab"
	"github.com/homerouter/homerouter/state"
)

// netnsConn returns a trafficCounter's conn func that opens netlink
// connections into the lab namespace n, so that the test process itself
// never changes namespace.
func netnsConn(t *testing.T, n *lab.Netns) func() (*nftables.Conn, error) {
	t.Helper()
	f, err := os.Open(filepath.Join("/run/netns", n.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return func() (*nftables.Conn, error) { return nftables.New(nftables.WithNetNSFd(int(f.Fd()))) }
}

// TestTrafficTableLab makes the counting table in a namespace's kernel
// over netlink, as the service does, and compares what nft lists with
// the golden file testdata/traffic.nft (written by -update): the
// builder's expressions are what its text says. Making it again changes
// nothing, and loading the inet table (twice, as every apply does)
// leaves it and its counts alone.
func TestTrafficTableLab(t *testing.T) {
	lab.Require(t, "nft")
	l := lab.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := l.Netns("fwt")
	if err != nil {
		t.Fatal(err)
	}
	// lan0 stays down: no frame may add an element before nft lists
	// the table (a netdev chain binds to a device that is down).
	if _, err := n.Run(ctx, "ip", "link", "add", "lan0", "type", "veth", "peer", "name", "peer0"); err != nil {
		t.Fatal(err)
	}
	tc := newTrafficCounter(netnsConn(t, n))
	now := time.Now()
	for i := range 2 {
		tr, err := tc.step("lan0", true, now.Add(time.Duration(i)*countersEvery))
		if err != nil {
			t.Fatalf("step #%d: %v", i+1, err)
		}
		if len(tr.Devices) != 0 || tr.Sampled.IsZero() {
			t.Errorf("step #%d: %+v, want a sample with no devices", i+1, tr)
		}
		if msg := tc.notice(); msg != "" {
			t.Errorf("step #%d: notice %q", i+1, msg)
		}
	}
	out, err := n.NFT(ctx, "list", "table", "netdev", TrafficTableName)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(filepath.Join("testdata", "traffic.nft"), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if d := cmp.Diff(golden(t, "traffic"), out); d != "" {
		t.Errorf("nft list table netdev %s -golden +got:\n%s", TrafficTableName, d)
	}

	// An element of the kernel's own, as a device's first frame would
	// make it, must survive the firewall's applies.
	if _, err := n.NFT(ctx, "add", "element", "netdev", TrafficTableName, upSet, "{ 02:00:00:00:00:99 }"); err != nil {
		t.Fatal(err)
	}
	c, err := netnsConn(t, n)()
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseLasting()
	for i := range 2 {
		Build(goldenCases[1].in).add(c)
		if err := c.Flush(); err != nil {
			t.Fatalf("load the inet table #%d: %v", i+1, err)
		}
	}
	tr, err := tc.step("lan0", true, now.Add(2*countersEvery))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.Find("02:00:00:00:00:99"); !ok || len(tr.Devices) != 1 {
		t.Errorf("after two applies of the inet table: %+v, want the element 02:00:00:00:00:99", tr)
	}
	all, err := n.NFT(ctx, "list", "tables")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(all, "table netdev "+TrafficTableName) || !strings.Contains(all, "table inet "+TableName) {
		t.Errorf("tables:\n%s", all)
	}
}

// trafficChildEnv makes TestTrafficServiceChild run: TestTrafficLab sets
// it when it starts this test binary again inside the router namespace.
const trafficChildEnv = "HOMEROUTER_FIREWALL_TRAFFIC_CHILD"

// trafficLinePrefix starts each line in which the child shows
// st.Traffic, as JSON.
const trafficLinePrefix = "st.Traffic "

// TestTrafficServiceChild is not a test of its own: inside a lab
// namespace (see TestTrafficLab), it runs the whole firewall service
// with lan0 in st.Links, as netconfig would publish it, and prints
// every st.Traffic the service publishes, with the problems and
// notices, until it is killed.
func TestTrafficServiceChild(t *testing.T) {
	if os.Getenv(trafficChildEnv) == "" {
		return // run by TestTrafficLab inside a namespace; nothing to do here
	}
	st := state.NewStore(t.TempDir())
	st.Links.Publish([]state.Link{{Name: state.LAN}})
	s := New(st, log.New(os.Stderr, "firewall: ", 0))
	s.every = time.Second // the parent waits for samples
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	for {
		ch := st.Traffic.Changed()
		b, err := json.Marshal(st.Traffic.Value())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("%s%s\n", trafficLinePrefix, b)
		fmt.Printf("problems %q notices %q\n", st.Problems.Value(), st.Notices.Value())
		<-ch
	}
}

// TestTrafficLab runs the firewall service in a router namespace whose
// lan0 is a veth to a LAN device's namespace, and moves megabytes each
// way with iperf3 (TCP, with segmentation offloads) and ping -s (frames
// of a known size): the service's st.Traffic counts them under the
// device's MAC, as lan0's own counters do, and within a few percent of
// what the tools sent (exactly, for ping), and never a group
// (multicast, broadcast) MAC. A chain deleted, or lan0 gone and back,
// is put back without losing the counts; the table deleted comes back
// counting from zero.
//
// The lab's kernel has no flowtables (CONFIG_NF_FLOW_TABLE is off), so
// the fast path, which the netdev chains exist to see past, cannot be
// shown here. Only the image, on Debian's kernel, could show it.
func TestTrafficLab(t *testing.T) {
	lab.Require(t, "nft", "iperf3", "ping", "ss")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	l := lab.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := l.Netns("fw")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := l.Netns("dev")
	if err != nil {
		t.Fatal(err)
	}
	const routerMAC, devMAC = "02:00:00:00:42:01", "02:00:00:00:42:10"
	lan0 := func() {
		t.Helper()
		if err := l.Veth(r, "lan0", routerMAC, dev, "eth0", devMAC); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			n     *lab.Netns
			iface string
			addr  string
		}{{r, "lan0", "10.42.0.1/24"}, {dev, "eth0", "10.42.0.2/24"}} {
			if _, err := c.n.Run(ctx, "ip", "addr", "add", c.addr, "dev", c.iface); err != nil {
				t.Fatal(err)
			}
		}
	}
	lan0()
	server := netip.MustParseAddrPort("10.42.0.1:5201")
	if _, err := l.StartIPerf3Server(ctx, r, server); err != nil {
		t.Fatal(err)
	}
	child, err := l.StartWith(r, lab.StartOptions{Env: []string{trafficChildEnv + "=1"}}, self, "-test.run=^TestTrafficServiceChild$", "-test.v")
	if err != nil {
		t.Fatal(err)
	}
	// latest is the last st.Traffic the child printed.
	latest := func() (state.Traffic, error) {
		out := child.Output()
		i := strings.LastIndex(out, trafficLinePrefix)
		if i < 0 {
			return state.Traffic{}, errors.New("no st.Traffic yet")
		}
		line, _, _ := strings.Cut(out[i+len(trafficLinePrefix):], "\n")
		var tr state.Traffic
		if err := json.Unmarshal([]byte(line), &tr); err != nil {
			return state.Traffic{}, fmt.Errorf("%w: %s", err, line)
		}
		return tr, nil
	}
	// sampleAfter waits for a sample the service took after at, whose
	// counts include everything up to at, and for cond on it.
	sampleAfter := func(what string, at time.Time, cond func(state.Traffic) error) state.Traffic {
		t.Helper()
		var tr state.Traffic
		if err := lab.WaitFor(ctx, what, func() error {
			select {
			case <-child.Exited():
				return lab.Abort(fmt.Errorf("the service exited: %v", child.Err()))
			default:
			}
			var err error
			if tr, err = latest(); err != nil {
				return err
			}
			if !tr.Sampled.After(at) {
				return fmt.Errorf("last sample %v, not after %v", tr.Sampled, at)
			}
			if cond != nil {
				return cond(tr)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	// chains waits until the counting table has both chains.
	chains := func(what string) {
		t.Helper()
		if err := lab.WaitFor(ctx, what, func() error {
			out, err := r.NFT(ctx, "list", "chains", "netdev")
			if err != nil {
				return err
			}
			if !strings.Contains(out, "chain "+ingressChain+" {") || !strings.Contains(out, "chain "+egressChain+" {") {
				return fmt.Errorf("chains:\n%s", out)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	device := func(tr state.Traffic) state.DeviceTraffic {
		t.Helper()
		d, ok := tr.Find(devMAC)
		if !ok {
			t.Fatalf("no %s in %+v", devMAC, tr)
		}
		return d
	}
	// A mark is the device's counts with lan0's own (rx: what the
	// device sent, tx: what lan0 sent it, broadcasts included): read
	// lan0's first, then wait for a sample taken after, so that the
	// sample counts at least what lan0 had.
	type mark struct {
		dev    state.DeviceTraffic
		rx, tx uint64
		tr     state.Traffic
	}
	markNow := func(what string) mark {
		t.Helper()
		var m mark
		var err error
		if m.rx, m.tx, err = r.LinkBytes(ctx, "lan0"); err != nil {
			t.Fatal(err)
		}
		m.tr = sampleAfter(what, time.Now(), nil)
		m.dev, _ = m.tr.Find(devMAC) // zero before its first frame
		return m
	}
	// check compares what the service counted for a transfer with what
	// lan0 counted, and with what iperf3 moved. lan0's counters count
	// the same frames (Up adds back the Ethernet header the kernel took
	// off before the ingress hook), so they agree to within the few
	// frames between reading them and the sample. iperf3 counts payload
	// only: what its receiver read, which crossed lan0, and what its
	// sender wrote, of which the end may never leave the socket (iperf3
	// -n stops the test when the last byte is written, not when it is
	// read). The counters add the headers, IP, TCP and Ethernet: once
	// for each packet the kernel handled, up to 64 KiB with
	// segmentation offloads, down to 1448 bytes without (4.5%).
	check := func(what string, counted, link uint64, x lab.IPerf3Transfer) {
		t.Helper()
		t.Logf("%s: counted %d bytes, lan0 %d (ratio %.4f); iperf3 sent %d, received %d (ratio %.4f to received)",
			what, counted, link, float64(counted)/float64(link), x.Sent, x.Received, float64(counted)/float64(x.Received))
		if float64(counted) < 0.99*float64(link) || float64(counted) > 1.01*float64(link) {
			t.Errorf("%s: counted %d bytes, lan0 %d: more than 1%% apart", what, counted, link)
		}
		if counted < uint64(x.Received) || float64(counted) > 1.05*float64(x.Sent) {
			t.Errorf("%s: counted %d bytes for the %d iperf3 read, of the %d it sent; want from %d to %d",
				what, counted, x.Received, x.Sent, x.Received, uint64(1.05*float64(x.Sent)))
		}
	}
	const size = 8 << 20
	// upload moves size bytes from the device to the router and checks
	// the count from m on.
	upload := func(m mark) mark {
		t.Helper()
		x, err := dev.IPerf3Bytes(ctx, server, size, false)
		if err != nil {
			t.Fatal(err)
		}
		now := markNow("a sample after the upload")
		device(now.tr)
		check("up", now.dev.Up-m.dev.Up, now.rx-m.rx, x)
		if d := now.dev.Down - m.dev.Down; d > uint64(x.Sent)/20 {
			t.Errorf("down during the upload: %d bytes, more than 5%% of the %d up", d, x.Sent)
		}
		return now
	}

	chains("the counting chains")
	sampleAfter("a first sample with the device", time.Time{}, func(tr state.Traffic) error {
		if _, ok := tr.Find(devMAC); !ok {
			return fmt.Errorf("no %s yet: %+v", devMAC, tr)
		}
		return nil
	})
	before := markNow("a sample before the transfers")
	t.Logf("before: %+v", before.dev)
	afterUp := upload(before)

	x, err := dev.IPerf3Bytes(ctx, server, size, true)
	if err != nil {
		t.Fatal(err)
	}
	afterDown := markNow("a sample after the download")
	check("down", afterDown.dev.Down-afterUp.dev.Down, afterDown.tx-afterUp.tx, x)
	t.Logf("after both: %+v", afterDown.dev)
	// Both took seconds, well within the last minute.
	if d := afterDown.dev; d.UpMinute < d.Up-before.dev.Up || d.DownMinute < d.Down-before.dev.Down || d.UpMinute > d.Up || d.DownMinute > d.Down {
		t.Errorf("last minute: up %d, down %d; want at least the transfers' %d and %d, at most the totals",
			d.UpMinute, d.DownMinute, d.Up-before.dev.Up, d.Down-before.dev.Down)
	}

	t.Run("ping: exactly what was sent", func(t *testing.T) {
		// Each echo request and reply is a frame of 14 + 20 + 8 +
		// 1400 bytes, with no offload to merge them: the counts are
		// these to within the few frames of ARP and IPv6 around them.
		const n, payload = 2000, 1400
		const want = n * (14 + 20 + 8 + payload)
		m := markNow("a sample before the pings")
		if out, err := dev.Run(ctx, "ping", "-q", "-f", "-c", fmt.Sprint(n), "-s", fmt.Sprint(payload), "10.42.0.1"); err != nil {
			t.Fatal(err)
		} else if !strings.Contains(out, fmt.Sprintf("%d received", n)) {
			t.Fatalf("ping lost some: %s", out)
		}
		now := markNow("a sample after the pings")
		for _, c := range []struct {
			what    string
			counted uint64
		}{{"up", now.dev.Up - m.dev.Up}, {"down", now.dev.Down - m.dev.Down}} {
			t.Logf("ping %s: counted %d bytes, sent %d (ratio %.4f)", c.what, c.counted, want, float64(c.counted)/want)
			if c.counted < want || c.counted > want+want/100 {
				t.Errorf("ping %s: counted %d bytes, want %d to 1%% more", c.what, c.counted, want)
			}
		}
		afterDown = now
	})

	t.Run("no group addresses", func(t *testing.T) {
		// The router's ARP requests and IPv6 multicast went out of
		// lan0, and the device's IPv6 multicast came in.
		for _, d := range afterDown.tr.Devices {
			if mac, err := net.ParseMAC(d.MAC); err != nil || mac[0]&1 != 0 {
				t.Errorf("device %q (%v): a group address", d.MAC, err)
			}
		}
		for _, set := range []string{upSet, downSet} {
			out, err := r.NFT(ctx, "list", "set", "netdev", TrafficTableName, set)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, devMAC) || strings.Count(out, " counter packets ") != 1 {
				t.Errorf("set %s: want one element, %s:\n%s", set, devMAC, out)
			}
		}
	})

	last := afterDown
	t.Run("a chain deleted comes back, the counts kept", func(t *testing.T) {
		if _, err := r.NFT(ctx, "delete", "chain", "netdev", TrafficTableName, ingressChain); err != nil {
			t.Fatal(err)
		}
		chains("the ingress chain back")
		last = upload(markNow("a sample with the chain back"))
		if last.dev.Up < afterDown.dev.Up {
			t.Errorf("up %d after, %d before", last.dev.Up, afterDown.dev.Up)
		}
	})

	t.Run("lan0 gone and back", func(t *testing.T) {
		if _, err := r.Run(ctx, "ip", "link", "del", "lan0"); err != nil {
			t.Fatal(err)
		}
		out, err := r.NFT(ctx, "list", "chains", "netdev")
		if err != nil {
			t.Fatal(err)
		}
		// Linux 6.16 and later keep a netdev chain whose device is gone;
		// before, the chain goes with it and the service makes it again.
		t.Logf("chains with lan0 gone:\n%s", out)
		lan0()
		chains("the chains on the new lan0")
		// The new lan0 counts from zero; the sets go on.
		was := last.dev.Up
		last = upload(markNow("a sample with the new lan0"))
		if last.dev.Up < was {
			t.Errorf("up %d after, %d before", last.dev.Up, was)
		}
	})

	t.Run("the table deleted comes back, counting from zero", func(t *testing.T) {
		gone := time.Now()
		if _, err := r.NFT(ctx, "delete", "table", "netdev", TrafficTableName); err != nil {
			t.Fatal(err)
		}
		chains("the table back")
		sampleAfter("a sample of the new table", gone, func(tr state.Traffic) error {
			if d, ok := tr.Find(devMAC); ok && d.Up >= last.dev.Up {
				return fmt.Errorf("%+v: the old counts", d)
			}
			return nil
		})
		m := upload(markNow("a sample of the new table"))
		if m.dev.UpMinute != m.dev.Up {
			t.Errorf("%+v: the last minute is not all of it, though the table is new", m.dev)
		}
	})

	// Nothing the service said about the counting is left: on this
	// kernel it counted all along. (Before Linux 6.16, lan0 gone would
	// have been a problem until it was back.)
	out := child.Output()
	if i := strings.LastIndex(out, "problems "); i < 0 || strings.Contains(out[i:], trafficKey) {
		t.Errorf("the service's last problems and notices: %q", out[max(i, 0):])
	}
}
