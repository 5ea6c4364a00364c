package lab

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Browser is headless Chromium (Debian's chromium package) running in a lab
// namespace, driven over the DevTools protocol, so that a test sees a page
// as a person's browser in that namespace would: the DOM after scripts and
// layout, every console message, and a screenshot.
//
// The protocol runs over --remote-debugging-pipe rather than a TCP port,
// because the test process is not in the namespace and cannot reach a port
// on the namespace's loopback. Chromium reads commands from fd 3 and writes
// replies and events to fd 4; a shell opens those from two FIFOs in the
// lab's dir, which the test process holds open too, so the browser is an
// ordinary lab Process (its output kept, stopped by Close) and the pipes
// cross `ip netns exec` as files.
//
// Chromium's own logging (--enable-logging=stderr) is no substitute: it
// prints console.error and console.log alike as INFO:CONSOLE, so it cannot
// tell an error from a message.
type Browser struct {
	// Proc is the browser process; its output is Chromium's stderr.
	Proc *Process

	lab     *Lab
	ns      *Netns
	in, out *os.File // the FIFOs behind Chromium's fd 3 and fd 4
	readerD chan struct{}
	session string // the page's flattened DevTools session

	writeMu sync.Mutex

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan cdpMessage
	console []ConsoleMessage
	settled map[string]int // per loader id: how many of load and networkIdle fired
	loadSig chan struct{}  // one token per lifecycle event, for waiters
	crashed bool
	readErr error

	closeOnce sync.Once
}

// BrowserOptions configures StartBrowser. The zero value is a phone.
type BrowserOptions struct {
	// Desktop emulates a laptop's browser rather than a phone's: no
	// mobile viewport (the page's <meta name="viewport"> is ignored).
	Desktop bool
	// Width and Height are the viewport in CSS pixels; zero means
	// 412x915 (a common Android phone), or 1366x768 with Desktop.
	Width, Height int
}

// ConsoleMessage is one line the browser's DevTools console would show
// for a page: a console API call, an uncaught exception, or a browser
// report such as a resource that failed to load.
type ConsoleMessage struct {
	// Source is "console.TYPE" (console.error, console.log, ...),
	// "exception", or "log.SOURCE" for the browser's own reports
	// (log.network, log.security, ...).
	Source string
	// Level is "error", "warning", "info" or "verbose".
	Level string
	Text  string
	// URL and Line (0-based) say where the message came from, when known.
	URL  string
	Line int
}

// String formats the message as DevTools would list it.
func (m ConsoleMessage) String() string {
	loc := ""
	if m.URL != "" {
		loc = fmt.Sprintf(" (%s:%d)", truncate(m.URL, 80), m.Line+1)
	}
	return fmt.Sprintf("%s %s: %s%s", m.Level, m.Source, m.Text, loc)
}

// truncate shortens s (a data: URL can be long) for messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Page is what Browser.Load saw of one page.
type Page struct {
	URL string
	// HTML is document.documentElement.outerHTML once the page settled:
	// the DOM as the browser built it, not the bytes it was sent.
	HTML string
	// Console is every console message from navigation to the
	// screenshot, in order.
	Console []ConsoleMessage
	// Screenshot is a PNG of the whole page (not only the viewport).
	Screenshot []byte
}

// Errors are the console messages at level error: what DevTools shows in
// red.
func (p *Page) Errors() []ConsoleMessage {
	var r []ConsoleMessage
	for _, m := range p.Console {
		if m.Level == "error" {
			r = append(r, m)
		}
	}
	return r
}

// cdpMessage is a DevTools protocol message in either direction.
type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    string `json:"data"`
	} `json:"error,omitempty"`
}

// StartBrowser starts headless Chromium in n with a fresh profile, HOME and
// TMPDIR in the lab's dir (nothing is written outside the lab), no
// sandbox (it runs as root), no GPU and no D-Bus, and opens one page
// (about:blank) to load URLs in. The lab stops it in Close; call
// Browser.Close to stop it sooner.
func (l *Lab) StartBrowser(ctx context.Context, n *Netns, opt BrowserOptions) (*Browser, error) {
	w, h := 412, 915
	if opt.Desktop {
		w, h = 1366, 768
	}
	if opt.Width == 0 {
		opt.Width = w
	}
	if opt.Height == 0 {
		opt.Height = h
	}
	chromium, err := LookPath("chromium")
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.counter++
	dir := filepath.Join(l.dir, fmt.Sprintf("browser-%d", l.counter))
	l.mu.Unlock()
	home, tmp := filepath.Join(dir, "home"), filepath.Join(dir, "tmp")
	for _, d := range []string{home, tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("lab: browser: %w", err)
		}
	}
	inPath, outPath := filepath.Join(dir, "devtools-in"), filepath.Join(dir, "devtools-out")
	for _, p := range []string{inPath, outPath} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			return nil, fmt.Errorf("lab: browser: mkfifo %s: %w", p, err)
		}
	}
	// Read-write opens of a FIFO never block, and holding both ends means
	// the shell's opens below do not block either. The reader sees no EOF
	// when Chromium exits; calls watch Proc.Exited instead.
	b := &Browser{lab: l, ns: n, pending: map[int64]chan cdpMessage{}, settled: map[string]int{},
		loadSig: make(chan struct{}, 1), readerD: make(chan struct{})}
	if b.in, err = os.OpenFile(inPath, os.O_RDWR, 0); err != nil {
		return nil, fmt.Errorf("lab: browser: %w", err)
	}
	if b.out, err = os.OpenFile(outPath, os.O_RDWR, 0); err != nil {
		b.in.Close()
		return nil, fmt.Errorf("lab: browser: %w", err)
	}
	args := []string{
		"-c", `exec "$0" "$@" 3<"$HR_DEVTOOLS_IN" 4>"$HR_DEVTOOLS_OUT"`, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--user-data-dir=" + filepath.Join(dir, "profile"),
		"--window-size=" + strconv.Itoa(opt.Width) + "," + strconv.Itoa(opt.Height),
		"--hide-scrollbars", "--mute-audio", "--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--remote-debugging-pipe", "about:blank",
	}
	b.Proc, err = l.StartWith(n, StartOptions{Env: []string{
		"HOME=" + home, "TMPDIR=" + tmp, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		// Keep Chromium off the host's buses (a Unix socket path
		// reaches out of a network namespace) and displays.
		"DBUS_SYSTEM_BUS_ADDRESS=disabled:", "DBUS_SESSION_BUS_ADDRESS=disabled:",
		"DISPLAY=", "WAYLAND_DISPLAY=",
		"HR_DEVTOOLS_IN=" + inPath, "HR_DEVTOOLS_OUT=" + outPath,
	}}, "sh", args...)
	if err != nil {
		b.in.Close()
		b.out.Close()
		return nil, err
	}
	go b.read()
	if err := b.openPage(ctx, opt); err != nil {
		b.Close()
		return nil, fmt.Errorf("lab: browser in %s: %w", n, err)
	}
	return b, nil
}

// openPage creates a page target, attaches to it, sets its viewport and
// enables the events Load needs.
func (b *Browser) openPage(ctx context.Context, opt BrowserOptions) error {
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		return err
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		return err
	}
	b.mu.Lock()
	b.session = attached.SessionID
	b.mu.Unlock()
	// --window-size alone does not make a phone: it is not a mobile
	// viewport, and Chromium widens a 412-pixel headless window to 500.
	if err := b.call(ctx, b.session, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": opt.Width, "height": opt.Height, "deviceScaleFactor": 1, "mobile": !opt.Desktop,
	}, nil); err != nil {
		return err
	}
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		if err := b.call(ctx, b.session, m, nil, nil); err != nil {
			return err
		}
	}
	return b.call(ctx, b.session, "Page.setLifecycleEventsEnabled", map[string]any{"enabled": true}, nil)
}

// read delivers replies to their calls and records events, until the
// pipe is closed.
func (b *Browser) read() {
	defer close(b.readerD)
	r := bufio.NewReader(b.out)
	for {
		line, err := r.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			b.readErr = err
			b.mu.Unlock()
			return
		}
		var m cdpMessage
		if err := json.Unmarshal(line[:len(line)-1], &m); err != nil {
			b.lab.logf("lab: browser: bad DevTools message %q: %v", truncate(string(line), 200), err)
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.pending[m.ID]; ok {
				delete(b.pending, m.ID)
				ch <- m
			}
		} else if m.SessionID == b.session || b.session == "" {
			b.event(m)
		}
		b.mu.Unlock()
	}
}

// event records one DevTools event; b.mu is held.
func (b *Browser) event(m cdpMessage) {
	switch m.Method {
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Type        string          `json:"type"`
				Value       json.RawMessage `json:"value"`
				Description string          `json:"description"`
			} `json:"args"`
			StackTrace struct {
				CallFrames []struct {
					URL        string `json:"url"`
					LineNumber int    `json:"lineNumber"`
				} `json:"callFrames"`
			} `json:"stackTrace"`
		}
		if json.Unmarshal(m.Params, &p) != nil {
			return
		}
		var words []string
		for _, a := range p.Args {
			var s string
			switch {
			case a.Type == "string" && json.Unmarshal(a.Value, &s) == nil:
				words = append(words, s)
			case len(a.Value) > 0:
				words = append(words, string(a.Value))
			default:
				words = append(words, a.Description)
			}
		}
		c := ConsoleMessage{Source: "console." + p.Type, Level: consoleLevel(p.Type), Text: strings.Join(words, " ")}
		if f := p.StackTrace.CallFrames; len(f) > 0 {
			c.URL, c.Line = f[0].URL, f[0].LineNumber
		}
		b.console = append(b.console, c)
	case "Runtime.exceptionThrown":
		var p struct {
			Details struct {
				Text       string `json:"text"`
				URL        string `json:"url"`
				LineNumber int    `json:"lineNumber"`
				Exception  struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		if json.Unmarshal(m.Params, &p) != nil {
			return
		}
		d := p.Details
		text := d.Text
		if d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		b.console = append(b.console, ConsoleMessage{Source: "exception", Level: "error", Text: text, URL: d.URL, Line: d.LineNumber})
	case "Log.entryAdded":
		var p struct {
			Entry struct {
				Source     string `json:"source"`
				Level      string `json:"level"`
				Text       string `json:"text"`
				URL        string `json:"url"`
				LineNumber int    `json:"lineNumber"`
			} `json:"entry"`
		}
		if json.Unmarshal(m.Params, &p) != nil {
			return
		}
		e := p.Entry
		b.console = append(b.console, ConsoleMessage{Source: "log." + e.Source, Level: e.Level, Text: e.Text, URL: e.URL, Line: e.LineNumber})
	case "Page.lifecycleEvent":
		var p struct {
			LoaderID string `json:"loaderId"`
			Name     string `json:"name"`
		}
		if json.Unmarshal(m.Params, &p) == nil && (p.Name == "load" || p.Name == "networkIdle") {
			b.settled[p.LoaderID]++
			b.signal()
		}
	case "Inspector.targetCrashed":
		b.crashed = true
		b.signal()
	}
}

// signal wakes a Load waiting for its page to settle; b.mu is held.
func (b *Browser) signal() {
	select {
	case b.loadSig <- struct{}{}:
	default:
	}
}

// consoleLevel maps a console API call to the level DevTools shows it at.
func consoleLevel(typ string) string {
	switch typ {
	case "error", "assert":
		return "error"
	case "warning":
		return "warning"
	case "debug":
		return "verbose"
	default:
		return "info"
	}
}

// call sends a command (to the browser with session "", else to that
// session) and decodes its result into result (nil discards it).
func (b *Browser) call(ctx context.Context, session, method string, params, result any) error {
	b.mu.Lock()
	if b.readErr != nil {
		err := b.readErr
		b.mu.Unlock()
		return fmt.Errorf("%s: DevTools pipe: %w", method, err)
	}
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
	}()

	msg, err := json.Marshal(struct {
		ID        int64  `json:"id"`
		Method    string `json:"method"`
		Params    any    `json:"params,omitempty"`
		SessionID string `json:"sessionId,omitempty"`
	}{id, method, params, session})
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	b.writeMu.Lock()
	_, err = b.in.Write(append(msg, 0))
	b.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: DevTools pipe: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %s (%d) %s", method, m.Error.Message, m.Error.Code, m.Error.Data)
		}
		if result == nil {
			return nil
		}
		if err := json.Unmarshal(m.Result, result); err != nil {
			return fmt.Errorf("%s: result: %w", method, err)
		}
		return nil
	case <-b.Proc.Exited():
		return fmt.Errorf("%s: chromium exited (%v): %s", method, b.Proc.Err(), truncate(b.Proc.Output(), 2000))
	case <-b.readerD:
		return fmt.Errorf("%s: DevTools pipe closed", method)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// Load navigates the page to url and waits until it has settled: its load
// event fired and the network has been idle for half a second (Chromium's
// networkIdle), so that late requests such as the favicon's have had
// their say in the console. It returns the DOM, the console messages since
// the navigation began, and a screenshot of the whole page. A navigation
// that fails (no answer, an unknown host) is an error; an HTTP error
// status is not, as in a browser.
func (b *Browser) Load(ctx context.Context, url string) (*Page, error) {
	start := time.Now()
	b.mu.Lock()
	b.console = nil
	b.mu.Unlock()
	var nav struct {
		LoaderID  string `json:"loaderId"`
		ErrorText string `json:"errorText"`
	}
	if err := b.call(ctx, b.session, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return nil, fmt.Errorf("lab: browser: load %s: %w", truncate(url, 80), err)
	}
	if nav.ErrorText != "" {
		return nil, fmt.Errorf("lab: browser: load %s: %s", truncate(url, 80), nav.ErrorText)
	}
	for {
		b.mu.Lock()
		loaded, crashed := b.settled[nav.LoaderID] == 2, b.crashed
		b.mu.Unlock()
		if crashed {
			return nil, fmt.Errorf("lab: browser: load %s: the page crashed", truncate(url, 80))
		}
		if loaded {
			break
		}
		select {
		case <-b.loadSig:
		case <-b.Proc.Exited():
			return nil, fmt.Errorf("lab: browser: load %s: chromium exited (%v): %s", truncate(url, 80), b.Proc.Err(), truncate(b.Proc.Output(), 2000))
		case <-ctx.Done():
			return nil, fmt.Errorf("lab: browser: load %s: waiting for load and network idle: %w", truncate(url, 80), ctx.Err())
		}
	}
	p := &Page{URL: url}
	if err := b.Eval(ctx, "document.documentElement.outerHTML", &p.HTML); err != nil {
		return nil, fmt.Errorf("lab: browser: load %s: %w", truncate(url, 80), err)
	}
	var metrics struct {
		Content struct {
			Width  float64 `json:"width"`
			Height float64 `json:"height"`
		} `json:"cssContentSize"`
	}
	if err := b.call(ctx, b.session, "Page.getLayoutMetrics", nil, &metrics); err != nil {
		return nil, fmt.Errorf("lab: browser: load %s: %w", truncate(url, 80), err)
	}
	var shot struct {
		Data string `json:"data"`
	}
	if err := b.call(ctx, b.session, "Page.captureScreenshot", map[string]any{
		"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": metrics.Content.Width, "height": metrics.Content.Height, "scale": 1},
	}, &shot); err != nil {
		return nil, fmt.Errorf("lab: browser: load %s: %w", truncate(url, 80), err)
	}
	var err error
	if p.Screenshot, err = base64.StdEncoding.DecodeString(shot.Data); err != nil {
		return nil, fmt.Errorf("lab: browser: load %s: screenshot: %w", truncate(url, 80), err)
	}
	b.mu.Lock()
	p.Console = append([]ConsoleMessage(nil), b.console...)
	b.mu.Unlock()
	b.lab.logf("lab: browser in %s: loaded %s in %v: %d bytes of DOM, %d console messages, %d errors",
		b.ns, truncate(url, 80), time.Since(start).Round(time.Millisecond), len(p.HTML), len(p.Console), len(p.Errors()))
	return p, nil
}

// Eval evaluates a JavaScript expression in the page and decodes its value
// (returned by value, so it must be JSON: a string, number, array or plain
// object) into result. An exception is an error.
func (b *Browser) Eval(ctx context.Context, expr string, result any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := b.call(ctx, b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("evaluate %q: %s %s", truncate(expr, 80), r.Exception.Text, r.Exception.Exception.Description)
	}
	if err := json.Unmarshal(r.Result.Value, result); err != nil {
		return fmt.Errorf("evaluate %q: %w", truncate(expr, 80), err)
	}
	return nil
}

// Close asks Chromium to quit, stops it if it has not within 3 s, and
// closes the pipes. It is safe to call more than once. The lab's Close
// stops the browser too, but only Close releases the pipes.
func (b *Browser) Close() error {
	var err error
	b.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		// Chromium may exit before it answers: the exit is what counts.
		b.call(ctx, "", "Browser.close", nil, nil)
		select {
		case <-b.Proc.Exited():
		case <-ctx.Done():
		}
		b.Proc.Stop(3 * time.Second)
		if err = errors.Join(b.in.Close(), b.out.Close()); err != nil {
			err = fmt.Errorf("lab: browser in %s: close: %w", b.ns, err)
		}
		<-b.readerD
	})
	return err
}
