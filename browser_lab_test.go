package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/homerouter/homerouter/internal/lab"
)

// artifactsEnv names the directory where lab tests leave files for a
// person to look at (screenshots); unset, they go to build/artifacts.
const artifactsEnv = "HOMEROUTER_ARTIFACTS"

// TestStatusPageBrowser loads the status page in a real browser, headless
// Chromium from Debian's package, running in the LAN namespace like a
// phone on the home network that has just taken a DHCP lease. It checks
// what curl cannot: that the page a browser builds and lays out has the
// check tree (rows with ✔ or ✘, indented by depth) and the device table
// with that phone's row, that the browser's console shows no errors (a
// failed resource such as a missing favicon, a blocked inline style, a
// script exception would all show there), and that nothing makes the
// page scroll sideways on the phone's screen. It saves a full-page
// screenshot, and the DOM, as artifacts for a person to look at.
//
// So that a silent console cannot pass by accident, the same browser first
// loads a page that logs a deliberate console.error and throws, and the
// test requires that both are reported, and that console.log is not.
func TestStatusPageBrowser(t *testing.T) {
	t.Parallel()
	bin := lab.RouterBinary(t)
	lab.Require(t, "chromium", "udhcpc", "sh")
	l := lab.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	h, err := lab.NewHome(l, lab.HomeOptions{RouterBinary: bin, NoPeers: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.RouterProc.WaitOutput(ctx, "dhcp4d: serving"); err != nil {
		t.Fatal(err)
	}
	// The phone takes a lease (so the device table has its row) and uses
	// the address, as its own DHCP client would.
	const hostname = "phone"
	lease, err := l.UDHCPC(ctx, h.LAN, "eth0", "-x", "hostname:"+hostname)
	if err != nil {
		t.Fatal(err)
	}
	ones, _ := net.IPMask(net.ParseIP(lease["subnet"]).To4()).Size()
	if _, err := h.LAN.Run(ctx, "ip", "addr", "add", fmt.Sprintf("%s/%d", lease["ip"], ones), "dev", "eth0"); err != nil {
		t.Fatal(err)
	}

	const phoneWidth = 412 // CSS pixels, as a common Android phone
	b, err := l.StartBrowser(ctx, h.LAN, lab.BrowserOptions{Width: phoneWidth, Height: 915})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	}()

	detects := t.Run("console errors are detected", func(t *testing.T) {
		const page = `<!DOCTYPE html><title>self-check</title>
<script>console.log("only a message"); console.warn("only a warning"); console.error("deliberate error", 42);</script>
<script>throw new Error("deliberate exception");</script>`
		p, err := b.Load(ctx, "data:text/html;charset=utf-8,"+url.PathEscape(page))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range p.Errors() {
			got = append(got, m.Source+": "+m.Text)
		}
		want := []string{"console.error: deliberate error 42", "exception: Uncaught Error: deliberate exception"}
		if !slices.EqualFunc(got, want, strings.HasPrefix) {
			t.Fatalf("errors reported for the self-check page: %q, want %q; all messages:\n%s", got, want, messages(p.Console))
		}
	})
	if !detects {
		t.Fatal("without a working detector of console errors, the status page's check would prove nothing")
	}

	// The status page, once, for all the checks below.

	p, err := b.Load(ctx, "http://"+lab.RouterLANIP+"/")
	if err != nil {
		t.Fatal(err)
	}
	saveArtifacts(t, map[string][]byte{"status-page.png": p.Screenshot, "status-page.html": []byte(p.HTML)})
	doc, err := html.Parse(strings.NewReader(p.HTML))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("no console errors", func(t *testing.T) {
		if errs := p.Errors(); len(errs) > 0 {
			t.Errorf("console errors on the status page:\n%s", messages(errs))
		}
	})

	t.Run("check tree", func(t *testing.T) {
		checks := tableRows(doc, "checks")
		names := map[string]bool{}
		for _, r := range checks {
			mark, name, _ := strings.Cut(r[0], " ")
			if mark != "✔" && mark != "✘" {
				t.Errorf("check row %q starts with %q, want ✔ or ✘", r, mark)
			}
			names[name] = true
		}
		for _, n := range []string{"homerouter", "config", "services", "dhcp4d", "httpd"} {
			if !names[n] {
				t.Errorf("table#checks has no row for %s: %q", n, checks)
			}
		}
		// Laid out as a tree: a service's name starts further right
		// than the root's.
		var x struct{ Root, Service float64 }
		if err := b.Eval(ctx, `(() => {
			const left = name => {
				const td = [...document.querySelectorAll("#checks td:first-child")].find(td => td.textContent.trim().endsWith(" " + name));
				const r = document.createRange(); r.selectNodeContents(td); return r.getBoundingClientRect().left;
			};
			return {Root: left("homerouter"), Service: left("dhcp4d")};
		})()`, &x); err != nil {
			t.Fatal(err)
		}
		if x.Service <= x.Root {
			t.Errorf("dhcp4d starts at x=%v, the root at x=%v: want the service indented", x.Service, x.Root)
		}
	})

	t.Run("device table", func(t *testing.T) {
		devices := tableRows(doc, "devices")
		if !slices.ContainsFunc(devices, func(r []string) bool {
			return len(r) >= 3 && r[0] == hostname && r[1] == lease["ip"] && r[2] == lab.LANMAC
		}) {
			t.Errorf("table#devices has no row for %s at %s (%s): %q", hostname, lease["ip"], lab.LANMAC, devices)
		}
		var height float64
		if err := b.Eval(ctx, `document.getElementById("devices").getBoundingClientRect().height`, &height); err != nil {
			t.Fatal(err)
		}
		if height == 0 {
			t.Error("table#devices takes no room on the screen")
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		img, err := png.Decode(bytes.NewReader(p.Screenshot))
		if err != nil {
			t.Fatal(err)
		}
		if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w < phoneWidth || h < 400 {
			t.Errorf("screenshot is %dx%d, want the whole page, at least %d wide", w, h, phoneWidth)
		}
		if n := colours(img); n < 3 {
			t.Errorf("screenshot has %d colours: blank, not a rendered page", n)
		}
	})

	// Nothing makes the page scroll sideways on a phone: wide tables and
	// the log scroll in their own boxes.
	t.Run("fits a phone", func(t *testing.T) {
		var fit struct {
			Width    float64
			Overflow []string
		}
		if err := b.Eval(ctx, `(() => {
			const w = document.documentElement.clientWidth;
			const clipped = e => { for (let a = e.parentElement; a; a = a.parentElement) if (getComputedStyle(a).overflowX != "visible") return true; return false; };
			const out = [...document.body.querySelectorAll("*")].filter(e =>
				e.getBoundingClientRect().right > w + 0.5 && e.parentElement.getBoundingClientRect().right <= w + 0.5 && !clipped(e));
			return {Width: document.documentElement.scrollWidth,
				Overflow: out.map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + ": " + e.textContent.trim().slice(0, 60))};
		})()`, &fit); err != nil {
			t.Fatal(err)
		}
		if fit.Width > phoneWidth || len(fit.Overflow) > 0 {
			t.Errorf("the page is %v wide on a %d-pixel phone; wider than the screen: %q", fit.Width, phoneWidth, fit.Overflow)
		}
	})
}

// messages formats console messages one a line.
func messages(ms []lab.ConsoleMessage) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "  %s\n", m)
	}
	return b.String()
}

// saveArtifacts writes files to $HOMEROUTER_ARTIFACTS (default
// build/artifacts in the repository) and logs where they are.
func saveArtifacts(t *testing.T, files map[string][]byte) {
	t.Helper()
	dir := os.Getenv(artifactsEnv)
	if dir == "" {
		dir = filepath.Join("build", "artifacts")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("artifact: %s (%d bytes)", path, len(b))
	}
}

// tableRows returns the text of each cell (td, not th) of each row of the
// table with that id, whitespace collapsed; rows without td are left out.
func tableRows(doc *html.Node, id string) [][]string {
	var table *html.Node
	for n := range doc.Descendants() {
		if n.DataAtom == atom.Table && attr(n, "id") == id {
			table = n
			break
		}
	}
	if table == nil {
		return nil
	}
	var rows [][]string
	for tr := range table.Descendants() {
		if tr.DataAtom != atom.Tr {
			continue
		}
		var cells []string
		for td := range tr.ChildNodes() {
			if td.DataAtom == atom.Td {
				cells = append(cells, strings.Join(strings.Fields(text(td)), " "))
			}
		}
		if len(cells) > 0 {
			rows = append(rows, cells)
		}
	}
	return rows
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

// colours counts the distinct colours of img, up to 16.
func colours(img image.Image) int {
	seen := map[[4]uint32]bool{}
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			c0, c1, c2, c3 := img.At(x, y).RGBA()
			seen[[4]uint32{c0, c1, c2, c3}] = true
			if len(seen) >= 16 {
				return len(seen)
			}
		}
	}
	return len(seen)
}
