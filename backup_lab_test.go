package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/homerouter/homerouter/internal/lab"
	"github.com/homerouter/homerouter/services/backup"
	"github.com/homerouter/homerouter/state"
)

// TestBackupLab backs the router up and restores it from the LAN with
// `homerouter backup` and `homerouter restore`, as a person would: a
// backup, an edit of dns.json applied with SIGHUP, and a restore give back
// the backup's files, with the backup's config in force at once, but
// for the uplink's lease, which stays the running router's though the
// restored archive holds another (a backup's lease is of another day);
// a backup whose interfaces.json is broken is refused with its line, and
// /perm does not change.
func TestBackupLab(t *testing.T) {
	bin := lab.RouterBinary(t)
	lab.Require(t, "curl", "dig")
	l := lab.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	perm := t.TempDir()
	ifaces := fmt.Sprintf(`{
  "interfaces": [
    {"hardware_addr": %q, "name": "uplink0"},
    {"hardware_addr": %q, "name": "lan0", "addr": "192.168.42.1/24"}
  ]
}
`, lab.RouterWANMAC, lab.RouterLANMAC)
	dnsBefore := `{"hosts": [{"name": "nas", "addrs": ["192.168.42.20"]}]}` + "\n"
	// The uplink's lease, as the router wrote it: there is no ISP
	// (NoPeers), so the router keeps using it and never rewrites it,
	// and the file and uplink0's address stay as they are unless a
	// restore changes them.
	acked := time.Now().Truncate(time.Second)
	lease := uplinkLease(t, "10.77.0.150/24", "10.77.0.1", acked)
	for name, content := range map[string]string{"interfaces.json": ifaces, "dns.json": dnsBefore, "notes.txt": "the router in the hall\n", "dhcp4-lease.json": lease} {
		if err := os.WriteFile(filepath.Join(perm, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Not in a backup: a packet capture and the update's slots.
	if err := os.WriteFile(filepath.Join(perm, state.CapturePreviousFile), []byte("pcap"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := lab.NewHome(l, lab.HomeOptions{PermDir: perm, NoPeers: true, NoRouter: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.LAN.Run(ctx, "ip", "addr", "add", "192.168.42.2/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	if h.RouterProc, err = l.Start(h.Router, bin, "run", "-perm", perm); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitRouterServing(ctx, ""); err != nil {
		t.Fatal(err)
	}
	pw, err := state.ReadPassword(perm)
	if err != nil {
		t.Fatal(err)
	}
	// The router's own state files are made at start: wait for them, so
	// that the backup is of a settled router.
	for _, f := range []string{"ula.json", "ra-prefixes.json"} {
		if err := lab.WaitFor(ctx, f, func() error { _, err := os.Stat(filepath.Join(perm, f)); return err }); err != nil {
			t.Fatal(err)
		}
	}
	uplinkHas := func(ls map[string]ipLink, addr string) bool { return slices.Contains(ls["uplink0"].addrs(), addr) }
	waitLinks(ctx, t, h.Router, "uplink0 with its lease's 10.77.0.150/24", func(ls map[string]ipLink) bool { return uplinkHas(ls, "10.77.0.150/24") })
	resolves := func(want string) {
		t.Helper()
		if err := lab.WaitFor(ctx, "nas.lan resolving to "+want, func() error {
			r, err := h.LAN.Dig(ctx, "192.168.42.1", "nas.lan", "A")
			if err != nil {
				return err
			}
			if got := strings.Join(r.Data("A"), " "); got != want {
				return fmt.Errorf("nas.lan: %s", r)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	resolves("192.168.42.20")

	work := t.TempDir()
	archive := filepath.Join(work, "backup.tar.gz")
	routerFlags := []string{"-router", "192.168.42.1", "-password", pw}

	t.Run("backup needs the password", func(t *testing.T) {
		out, err := h.LAN.Run(ctx, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://192.168.42.1/backup.tar.gz")
		if err != nil || out != "401" {
			t.Errorf("GET /backup.tar.gz without the password: %q, %v; want 401", out, err)
		}
		out, err = h.LAN.Run(ctx, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "x", "http://192.168.42.1/restore")
		if err != nil || out != "401" {
			t.Errorf("POST /restore without the password: %q, %v; want 401", out, err)
		}
	})

	var backedUp map[string]string
	t.Run("homerouter backup", func(t *testing.T) {
		out, err := h.LAN.Run(ctx, bin, append([]string{"backup", "-o", archive}, routerFlags...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", strings.TrimSpace(out))
		backedUp = byName(readArchive(t, archive))
		if diff := cmp.Diff(permFiles(t, perm), backedUp); diff != "" {
			t.Errorf("the backup is not /perm's files (-perm +backup):\n%s", diff)
		}
		for _, name := range []string{"interfaces.json", "dns.json", "notes.txt", state.PasswordFile, "ula.json", "dhcp4-lease.json"} {
			if _, ok := backedUp[name]; !ok {
				t.Errorf("the backup lacks %s", name)
			}
		}
		if _, ok := backedUp[state.CapturePreviousFile]; ok {
			t.Errorf("the backup holds the packet capture")
		}
	})
	if backedUp == nil {
		t.FailNow()
	}

	t.Run("edit, reload, restore", func(t *testing.T) {
		dnsEdited := `{"hosts": [{"name": "nas", "addrs": ["192.168.42.99"]}]}` + "\n"
		if err := os.WriteFile(filepath.Join(perm, "dns.json"), []byte(dnsEdited), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(perm, "portforwardings.json"), []byte(`{"forwardings": []}`+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := h.RouterProc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		resolves("192.168.42.99")

		// The backup's lease is of another day: another address,
		// gateway and server. The restore must keep the running
		// router's.
		stale := uplinkLease(t, "10.77.0.99/24", "10.77.0.99", acked.Add(-time.Hour))
		restored := writeArchive(t, filepath.Join(work, "stale-lease.tar.gz"), readArchive(t, archive), func(f *backup.File) {
			if f.Name == "dhcp4-lease.json" {
				f.Data = []byte(stale)
			}
		})
		out, err := h.LAN.Run(ctx, bin, append(append([]string{"restore"}, routerFlags...), restored)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", strings.TrimSpace(out))
		if !strings.Contains(out, "removed portforwardings.json") {
			t.Errorf("homerouter restore said %q, want it to name the file it removed", out)
		}
		if !strings.Contains(out, "kept the running router's dhcp4-lease.json") {
			t.Errorf("homerouter restore said %q, want it to say it kept the router's lease", out)
		}
		// The backup's files, with the running router's lease, which
		// is the backup's too: nothing here renews it.
		if diff := cmp.Diff(backedUp, permFiles(t, perm)); diff != "" {
			t.Errorf("/perm after the restore is not the backup (-backup +perm):\n%s", diff)
		}
		if b, err := os.ReadFile(filepath.Join(perm, "dhcp4-lease.json")); err != nil || string(b) != lease {
			t.Errorf("dhcp4-lease.json after the restore: %v\n%s\nwant the running router's\n%s", err, b, lease)
		}
		// The lease in force is the running router's: the status page
		// shows the topic (no stale server or address), and uplink0
		// keeps its address.
		page, err := h.LAN.Run(ctx, "curl", "-sSf", "http://192.168.42.1/")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(page, "10.77.0.99") || !strings.Contains(page, "lease from 10.77.0.1") {
			t.Errorf("the status page after the restore shows the backup's lease (10.77.0.99) or not the router's (from 10.77.0.1):\n%s", page)
		}
		// In force at once: no SIGHUP, no restart.
		resolves("192.168.42.20")
		if ls := links(ctx, t, h.Router); !uplinkHas(ls, "10.77.0.150/24") || uplinkHas(ls, "10.77.0.99/24") {
			t.Errorf("uplink0 after the restore has %v, want the running router's 10.77.0.150/24 only", ls["uplink0"].addrs())
		}
		if _, err := os.Stat(filepath.Join(perm, state.CapturePreviousFile)); err != nil {
			t.Errorf("the restore touched the packet capture: %v", err)
		}
	})

	t.Run("a broken interfaces.json is refused", func(t *testing.T) {
		broken := writeArchive(t, filepath.Join(work, "broken.tar.gz"), readArchive(t, archive), func(f *backup.File) {
			if f.Name == "interfaces.json" {
				// A typo on line 4: "adr" for "addr".
				f.Data = bytes.Replace(f.Data, []byte(`"addr"`), []byte(`"adr"`), 1)
			}
		})
		before := permTree(t, perm)
		out, err := h.LAN.Run(ctx, bin, append(append([]string{"restore"}, routerFlags...), broken)...)
		if err == nil {
			t.Fatalf("homerouter restore of a broken backup succeeded: %s", out)
		}
		t.Logf("%s", strings.TrimSpace(out))
		if want := "interfaces[1].adr: unknown field"; !strings.Contains(out, want) || !strings.Contains(out, "interfaces.json:4:") {
			t.Errorf("homerouter restore said\n%s\nwant it to name %q", out, want)
		}
		if diff := cmp.Diff(before, permTree(t, perm)); diff != "" {
			t.Errorf("a refused restore changed /perm (-before +after):\n%s", diff)
		}
		resolves("192.168.42.20")
	})
	stopRouter(ctx, t, h.RouterProc)
}

// permFiles returns the files of dir that a backup holds, by name.
func permFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := backup.Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	return byName(files)
}

// byName is files by name, each as its mode and content.
func byName(files []backup.File) map[string]string {
	m := map[string]string{}
	for _, f := range files {
		m[f.Name] = fmt.Sprintf("%v %s", f.Mode, f.Data)
	}
	return m
}

// readArchive returns the files of the backup archive at path.
func readArchive(t *testing.T, path string) []backup.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files, err := backup.ReadArchive(f)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// writeArchive writes files, each first passed to edit, as an archive
// at path, and returns path.
func writeArchive(t *testing.T, path string, files []backup.File, edit func(*backup.File)) string {
	t.Helper()
	for i := range files {
		edit(&files[i])
	}
	var b bytes.Buffer
	if err := backup.WriteArchive(&b, files); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// uplinkLease is a dhcp4-lease.json as the router writes it: an hour's
// lease of addr from server (also the gateway), acked at acked.
func uplinkLease(t *testing.T, addr, server string, acked time.Time) string {
	t.Helper()
	l := state.DHCPv4Lease{
		Addr: netip.MustParsePrefix(addr), Router: netip.MustParseAddr(server), ServerID: netip.MustParseAddr(server),
		Duration: state.Duration(time.Hour), T1: state.Duration(30 * time.Minute), T2: state.Duration(52*time.Minute + 30*time.Second),
		Acked: acked, Expiry: acked.Add(time.Hour),
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// permTree is every file and directory under dir (subdirectories and
// dot files too), with its mode and content: for "nothing changed".
func permTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if fi.IsDir() {
			m[rel+"/"] = fi.Mode().String()
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		m[rel] = fi.Mode().String() + " " + string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
