package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
)

// IPerf3Transfer is what one iperf3 TCP run of a fixed size moved, as
// iperf3 itself counted it: the payload, without any header.
type IPerf3Transfer struct {
	// Sent is what the sending end wrote; Received what the receiving
	// end read.
	Sent, Received int64
}

// IPerf3Bytes runs an iperf3 TCP client in n that moves size bytes
// (iperf3 -n) to server, or, with reverse, from server to n (-R), and
// returns what iperf3 counted. Unlike IPerf3, which measures a rate over
// a time, it is for tests that compare byte counts with what was sent.
// The server must run (StartIPerf3Server).
func (n *Netns) IPerf3Bytes(ctx context.Context, server netip.AddrPort, size int64, reverse bool) (IPerf3Transfer, error) {
	args := []string{"-c", server.Addr().String(), "-p", strconv.Itoa(int(server.Port())),
		"-n", strconv.FormatInt(size, 10), "-J"}
	if reverse {
		args = append(args, "-R")
	}
	var v struct {
		End struct {
			SumSent struct {
				Bytes int64 `json:"bytes"`
			} `json:"sum_sent"`
			SumReceived struct {
				Bytes int64 `json:"bytes"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := n.iperf3(ctx, args, &v); err != nil {
		return IPerf3Transfer{}, err
	}
	return IPerf3Transfer{Sent: v.End.SumSent.Bytes, Received: v.End.SumReceived.Bytes}, nil
}

// LinkBytes returns the bytes iface in n received and sent, as the
// kernel counts them for `ip -s link` (whole frames, without their
// checksum): what a test compares counters of its own with.
func (n *Netns) LinkBytes(ctx context.Context, iface string) (rx, tx uint64, err error) {
	out, err := n.Run(ctx, "ip", "-j", "-s", "link", "show", "dev", iface)
	if err != nil {
		return 0, 0, err
	}
	var v []struct {
		Stats struct {
			RX struct {
				Bytes uint64 `json:"bytes"`
			} `json:"rx"`
			TX struct {
				Bytes uint64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) != 1 {
		return 0, 0, fmt.Errorf("lab: ip -j -s link show dev %s in %s: %v: %s", iface, n, err, out)
	}
	return v[0].Stats.RX.Bytes, v[0].Stats.TX.Bytes, nil
}
