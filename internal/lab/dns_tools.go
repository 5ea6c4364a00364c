package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// This file has the DNS clients of the lab: dig for single questions and
// dnsperf for load, both run inside a namespace.

// DigRR is one record of dig's answer section.
type DigRR struct {
	Name string // as dig prints it, with the final dot
	TTL  int
	Type string // "A", "AAAA", "PTR", "CNAME", ...
	Data string // the rest of the line: an address, a name
}

// DigResult is one dig answer.
type DigResult struct {
	// Status is the rcode: "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED".
	Status string
	// Flags are the header's flags: "qr", "aa", "rd", "ra", "tc".
	Flags []string
	// Answer is the answer section.
	Answer []DigRR
	// Output is what dig printed.
	Output string
}

// Data returns the data of the answer's records of type rrType, in order.
func (r *DigResult) Data(rrType string) []string {
	var out []string
	for _, rr := range r.Answer {
		if rr.Type == rrType {
			out = append(out, rr.Data)
		}
	}
	return out
}

// String is the status and the answer, for messages.
func (r *DigResult) String() string {
	var b strings.Builder
	b.WriteString(r.Status)
	for _, rr := range r.Answer {
		fmt.Fprintf(&b, "; %s %d %s %s", rr.Name, rr.TTL, rr.Type, rr.Data)
	}
	if len(r.Answer) == 0 {
		b.WriteString(", empty answer")
	}
	return b.String()
}

// DigError is a dig run that got no answer. Exit 9 is dig's "no reply
// from server".
type DigError struct {
	Query  string
	Exit   int
	Output string
}

func (e *DigError) Error() string {
	return fmt.Sprintf("dig %s: exit %d: %s", e.Query, e.Exit, strings.TrimSpace(e.Output))
}

// TimedOut reports whether dig got no reply at all (no answer, no
// refusal) within its timeout: what a silent server or a dropping
// firewall gives.
func (e *DigError) TimedOut() bool {
	return e.Exit == 9 && strings.Contains(e.Output, "timed out") && !strings.Contains(e.Output, "refused")
}

var (
	digHeaderRE = regexp.MustCompile(`->>HEADER<<- opcode: \w+, status: (\w+), id: \d+`)
	digFlagsRE  = regexp.MustCompile(`^;; flags: ([a-z ]*);`)
)

// Dig asks server (an address; an IPv6 link-local one with %zone) for
// name and qtype with dig in n, and returns the answer. opts go to dig
// as they are: "+tcp", "+time=2", "+tries=1", "-p", "5300". For qtype
// PTR name may be an address (dig -x). By default dig waits 5 s and tries once more
// after a timeout; set +time and +tries for a test that expects no
// answer. A run without an answer returns a *DigError.
func (n *Netns) Dig(ctx context.Context, server, name, qtype string, opts ...string) (*DigResult, error) {
	args := []string{"@" + server, "+noall", "+comments", "+answer", "+nocookie"}
	args = append(args, opts...)
	if _, err := netip.ParseAddr(name); err == nil && qtype == "PTR" {
		args = append(args, "-x", name) // the reverse name of an address
	} else {
		args = append(args, name, qtype)
	}
	query := strings.Join(args, " ")
	cmd := n.Command(ctx, "dig", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil, &DigError{Query: query, Exit: ee.ExitCode(), Output: out.String()}
	}
	if err != nil {
		return nil, fmt.Errorf("lab: dig %s in %s: %w", query, n, err)
	}
	r, err := ParseDig(out.String())
	if err != nil {
		return nil, fmt.Errorf("lab: dig %s in %s: %w", query, n, err)
	}
	return r, nil
}

// ParseDig reads the output of `dig +noall +comments +answer` for one
// question.
func ParseDig(out string) (*DigResult, error) {
	r := &DigResult{Output: out}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, ";") {
			if m := digHeaderRE.FindStringSubmatch(line); m != nil {
				if r.Status != "" {
					return nil, fmt.Errorf("more than one answer in dig's output:\n%s", out)
				}
				r.Status = m[1]
			}
			if m := digFlagsRE.FindStringSubmatch(line); m != nil {
				r.Flags = strings.Fields(m[1])
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 5 {
			return nil, fmt.Errorf("unexpected line %q in dig's output:\n%s", line, out)
		}
		ttl, err := strconv.Atoi(f[1])
		if err != nil {
			return nil, fmt.Errorf("bad TTL in %q: %w", line, err)
		}
		r.Answer = append(r.Answer, DigRR{Name: f[0], TTL: ttl, Type: f[3], Data: strings.Join(f[4:], " ")})
	}
	if r.Status == "" {
		return nil, fmt.Errorf("no header in dig's output:\n%s", out)
	}
	return r, nil
}

// DnsperfResult is what one dnsperf run measured.
type DnsperfResult struct {
	Sent, Completed, Lost int
	// QPS is the completed queries per second.
	QPS float64
	// AvgLatency is the average latency in seconds.
	AvgLatency float64
	// RunTime is the run's length in seconds.
	RunTime float64
	// Codes is dnsperf's "Response codes" line: "NOERROR 1000 (100.00%)".
	Codes string
	// Output is what dnsperf printed.
	Output string
}

// String is a one-line summary for the log.
func (r DnsperfResult) String() string {
	return fmt.Sprintf("%d sent, %d completed, %d lost in %.2f s: %.0f queries/s, average latency %.3f ms; %s",
		r.Sent, r.Completed, r.Lost, r.RunTime, r.QPS, r.AvgLatency*1000, r.Codes)
}

var dnsperfFields = map[string]*regexp.Regexp{
	"sent":      regexp.MustCompile(`Queries sent:\s+(\d+)`),
	"completed": regexp.MustCompile(`Queries completed:\s+(\d+)`),
	"lost":      regexp.MustCompile(`Queries lost:\s+(\d+)`),
	"qps":       regexp.MustCompile(`Queries per second:\s+([0-9.]+)`),
	"latency":   regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`),
	"runtime":   regexp.MustCompile(`Run time \(s\):\s+([0-9.]+)`),
}

var dnsperfCodesRE = regexp.MustCompile(`Response codes:\s+(.*)`)

// ParseDnsperf reads dnsperf's statistics.
func ParseDnsperf(out string) (DnsperfResult, error) {
	r := DnsperfResult{Output: out}
	v := map[string]float64{}
	for k, re := range dnsperfFields {
		m := re.FindStringSubmatch(out)
		if m == nil {
			return r, fmt.Errorf("no %s in dnsperf's output:\n%s", k, out)
		}
		f, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return r, fmt.Errorf("dnsperf's %s %q: %w", k, m[1], err)
		}
		v[k] = f
	}
	r.Sent, r.Completed, r.Lost = int(v["sent"]), int(v["completed"]), int(v["lost"])
	r.QPS, r.AvgLatency, r.RunTime = v["qps"], v["latency"], v["runtime"]
	if m := dnsperfCodesRE.FindStringSubmatch(out); m != nil {
		r.Codes = strings.TrimSpace(m[1])
	}
	return r, nil
}

// Dnsperf runs dnsperf in n against server with the queries in dataFile
// (one "NAME TYPE" a line) and returns its statistics. extra goes to
// dnsperf: "-l", "10" (seconds) or "-n", "1" (once through the file),
// "-c", "4" (clients), "-q", "100" (outstanding queries).
func (n *Netns) Dnsperf(ctx context.Context, server string, port uint16, dataFile string, extra ...string) (DnsperfResult, error) {
	args := append([]string{"-s", server, "-p", strconv.Itoa(int(port)), "-d", dataFile}, extra...)
	cmd := n.Command(ctx, "dnsperf", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	r, err := ParseDnsperf(out.String())
	if runErr != nil || err != nil {
		return r, fmt.Errorf("lab: dnsperf %s in %s: %v, %v", strings.Join(args, " "), n, runErr, err)
	}
	return r, nil
}
