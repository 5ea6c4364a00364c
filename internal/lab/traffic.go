package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// This file has the endpoints of traffic through the router: web servers,
// an echo server and a long-lived session, iperf3, and the views of the
// kernel a firewall test asserts on (nft, sysctl). Every server is a lab
// Process, so it dies with the lab.

// URL is http://ADDR:PORT/path for an address and port, with an IPv6
// address in brackets (curl needs -g for those; HTTPGet passes it).
func URL(ap netip.AddrPort, path string) string {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return "http://" + ap.String() + path
}

// RemotePath is the path of the CGI script every WebServer has: it
// answers with the address the request came from, as the server saw it
// (REMOTE_ADDR, an IPv6 address in brackets). That is how a test sees
// whether the router masqueraded a connection.
const RemotePath = "/cgi-bin/remote"

// remoteCGI is RemotePath's script: BusyBox httpd runs it with REMOTE_ADDR
// set to the peer's address.
const remoteCGI = `#!/bin/sh
# Written by the homerouter lab: answer with the client's address.
printf 'Content-Type: text/plain\r\n\r\n%s\n' "$REMOTE_ADDR"
`

// WebServer is a BusyBox httpd serving a directory with index.html (Body
// and a newline) and RemotePath.
type WebServer struct {
	*Process
	// Addr is where it listens.
	Addr netip.AddrPort
	// Body is index.html's content without its trailing newline.
	Body string
	// Dir is its document root, where a test may put more files.
	Dir string
}

// URL is the server's URL for path.
func (w *WebServer) URL(path string) string { return URL(w.Addr, path) }

// StartWebServer starts `busybox httpd -f -vv` in n on addr (which must be
// an address of n: add IPv6 ones with nodad) and waits until it listens.
// Its document root is a fresh dir in the lab's dir. With -vv httpd logs
// each request's peer and URL ("10.77.0.1:40000: url:/x"), so Output tells
// which requests arrived.
func (l *Lab) StartWebServer(ctx context.Context, n *Netns, addr netip.AddrPort, body string) (*WebServer, error) {
	l.mu.Lock()
	l.counter++
	seq := l.counter
	l.mu.Unlock()
	dir := filepath.Join(l.dir, fmt.Sprintf("www-%s-%d", n.role, seq))
	if err := os.MkdirAll(filepath.Join(dir, "cgi-bin"), 0o755); err != nil {
		return nil, fmt.Errorf("lab: web server: %w", err)
	}
	files := []struct {
		path, content string
		perm          os.FileMode
	}{
		{"index.html", body + "\n", 0o644},
		{strings.TrimPrefix(RemotePath, "/"), remoteCGI, 0o755},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.path), []byte(f.content), f.perm); err != nil {
			return nil, fmt.Errorf("lab: web server: %w", err)
		}
	}
	// An empty config, so that the host's /etc/httpd.conf (if any)
	// never applies.
	conf, err := l.WriteFile(fmt.Sprintf("httpd-%d.conf", seq), "", 0o644)
	if err != nil {
		return nil, err
	}
	p, err := l.Start(n, "busybox", "httpd", "-f", "-vv", "-c", conf, "-p", addr.String(), "-h", dir)
	if err != nil {
		return nil, err
	}
	if err := WaitListening(ctx, n, p, "tcp", addr); err != nil {
		return nil, err
	}
	return &WebServer{Process: p, Addr: addr, Body: body, Dir: dir}, nil
}

// WaitListening waits until something in n listens on addr (proto "tcp"
// or "udp"), giving up at once if p (the server, may be nil) exits.
func WaitListening(ctx context.Context, n *Netns, p *Process, proto string, addr netip.AddrPort) error {
	flag := "-Htln"
	if proto == "udp" {
		flag = "-Huln"
	}
	what := fmt.Sprintf("a listener on %s/%s in %s", addr, proto, n)
	return WaitFor(ctx, what, func() error {
		if p != nil {
			select {
			case <-p.Exited():
				return Abort(fmt.Errorf("exited (%v): %s", p.Err(), strings.TrimSpace(p.Output())))
			default:
			}
		}
		out, err := n.Run(ctx, "ss", flag)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			// ss shows a dual-stack wildcard as *:PORT.
			local, err := netip.ParseAddrPort(strings.Replace(f[3], "*:", "[::]:", 1))
			if err != nil {
				continue
			}
			// A socket on the unspecified address listens on addr too
			// (an IPv6 one on IPv4 addresses as well: dual stack).
			any := local.Addr().IsUnspecified() && (local.Addr().Is6() || addr.Addr().Is4())
			if local == addr || (local.Port() == addr.Port() && any) {
				return nil
			}
		}
		return fmt.Errorf("not listening yet: %q", strings.TrimSpace(out))
	})
}

// CurlError is a failed curl run. Exit is curl's exit code: 28 when it
// timed out (no answer at all, what a dropping firewall gives), 7 when
// the connection was refused or the host unreachable (an answer).
type CurlError struct {
	URL    string
	Exit   int
	Output string
}

func (e *CurlError) Error() string {
	return fmt.Sprintf("curl %s: exit %d: %s", e.URL, e.Exit, e.Output)
}

// TimedOut reports whether curl got no answer within its timeout.
func (e *CurlError) TimedOut() bool { return e.Exit == 28 }

// HTTPGet fetches url with curl in n, giving up after timeout, and returns
// the body. extra goes to curl before the URL (e.g. "--interface", ADDR to
// send from that source address). A failure whose curl ran is a
// *CurlError.
func (n *Netns) HTTPGet(ctx context.Context, url string, timeout time.Duration, extra ...string) (string, error) {
	secs := strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64)
	args := append([]string{"-sS", "-g", "--fail", "--max-time", secs, "--connect-timeout", secs}, extra...)
	cmd := n.Command(ctx, "curl", append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.String(), &CurlError{URL: url, Exit: ee.ExitCode(), Output: strings.TrimSpace(stderr.String())}
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("lab: curl %s in %s: %w", url, n, err)
	}
	return stdout.String(), nil
}

// NFT runs nft with args in n (e.g. "list", "ruleset") and returns its
// output. Only n's own tables are visible there.
func (n *Netns) NFT(ctx context.Context, args ...string) (string, error) {
	return n.Run(ctx, "nft", args...)
}

// Ruleset is `nft list ruleset` in n.
func (n *Netns) Ruleset(ctx context.Context) (string, error) {
	return n.NFT(ctx, "list", "ruleset")
}

// Sysctl reads a sysctl of n's own (net.* keys are per namespace), e.g.
// net.ipv4.ip_forward.
func (n *Netns) Sysctl(ctx context.Context, key string) (string, error) {
	out, err := n.Run(ctx, "sysctl", "-n", key)
	return strings.TrimSpace(out), err
}

// SetSysctl sets a sysctl of n's own.
func (n *Netns) SetSysctl(ctx context.Context, key, value string) error {
	_, err := n.Run(ctx, "sysctl", "-q", "-w", key+"="+value)
	return err
}

// StartEchoServer starts a BusyBox nc in n that accepts TCP connections on
// port (every address of n) and echoes what each sends, and waits until
// it listens.
func (l *Lab) StartEchoServer(ctx context.Context, n *Netns, port uint16) (*Process, error) {
	p, err := l.Start(n, "busybox", "nc", "-ll", "-p", strconv.Itoa(int(port)), "-e", "/bin/cat")
	if err != nil {
		return nil, err
	}
	if err := WaitListening(ctx, n, p, "tcp", netip.AddrPortFrom(netip.IPv6Unspecified(), port)); err != nil {
		return nil, err
	}
	return p, nil
}

// Session is one TCP connection from a lab namespace, held open by a
// BusyBox nc whose stdin the test writes: an ssh-like session that lives
// as long as the test wants, and that a test can prove alive by sending a
// line through it.
type Session struct {
	*Process
	seq int
}

// Dial opens a Session from n to addr, which must run an echo server
// (StartEchoServer), and proves it with a first round trip.
func (l *Lab) Dial(ctx context.Context, n *Netns, addr netip.AddrPort) (*Session, error) {
	p, err := l.StartWith(n, StartOptions{Stdin: true}, "busybox", "nc", addr.Addr().String(), strconv.Itoa(int(addr.Port())))
	if err != nil {
		return nil, err
	}
	s := &Session{Process: p}
	if err := s.Echo(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Echo sends a numbered line through the session and waits for it to
// come back: the connection is alive and passes data both ways.
func (s *Session) Echo(ctx context.Context) error {
	s.seq++
	line := fmt.Sprintf("lab session line %d", s.seq)
	if err := s.Write(line + "\n"); err != nil {
		return err
	}
	return s.WaitOutput(ctx, line)
}

// StartIPerf3Server starts `iperf3 -s` in n bound to addr and waits until
// it listens. It serves one test at a time, as many as asked for.
func (l *Lab) StartIPerf3Server(ctx context.Context, n *Netns, addr netip.AddrPort) (*Process, error) {
	p, err := l.Start(n, "iperf3", "-s", "-B", addr.Addr().String(), "-p", strconv.Itoa(int(addr.Port())))
	if err != nil {
		return nil, err
	}
	if err := WaitListening(ctx, n, p, "tcp", addr); err != nil {
		return nil, err
	}
	return p, nil
}

// IPerf3Result is what one iperf3 TCP run measured.
type IPerf3Result struct {
	// SentBPS and ReceivedBPS are the sender's and the receiver's
	// throughput in bits per second.
	SentBPS, ReceivedBPS float64
	// Retransmits counts the sender's TCP retransmissions.
	Retransmits int
}

// iperf3 runs the iperf3 client in n with args (which ask for -J) and
// decodes its JSON report into v.
func (n *Netns) iperf3(ctx context.Context, args []string, v any) error {
	cmd := n.Command(ctx, "iperf3", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var e struct {
		Error string `json:"error"`
	}
	if err := errors.Join(json.Unmarshal(stdout.Bytes(), &e), json.Unmarshal(stdout.Bytes(), v)); err != nil {
		return fmt.Errorf("lab: iperf3 %s in %s: %v, %v: %s %s", strings.Join(args, " "), n, runErr, err, stdout.String(), stderr.String())
	}
	if e.Error != "" || runErr != nil {
		return fmt.Errorf("lab: iperf3 %s in %s: %v: %s %s", strings.Join(args, " "), n, runErr, e.Error, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// IPerf3 runs an iperf3 TCP client in n against server for d (whole
// seconds) and returns what it measured. extra goes to iperf3 (e.g. "-P",
// "2").
func (n *Netns) IPerf3(ctx context.Context, server netip.AddrPort, d time.Duration, extra ...string) (IPerf3Result, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	args := append([]string{"-c", server.Addr().String(), "-p", strconv.Itoa(int(server.Port())),
		"-t", strconv.Itoa(secs), "-J"}, extra...)
	var v struct {
		End struct {
			SumSent struct {
				BitsPerSecond float64 `json:"bits_per_second"`
				Retransmits   int     `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := n.iperf3(ctx, args, &v); err != nil {
		return IPerf3Result{}, err
	}
	return IPerf3Result{
		SentBPS:     v.End.SumSent.BitsPerSecond,
		ReceivedBPS: v.End.SumReceived.BitsPerSecond,
		Retransmits: v.End.SumSent.Retransmits,
	}, nil
}
