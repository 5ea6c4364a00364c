package platform

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/homerouter/homerouter/state"
)

// PermLabel is the filesystem label of the persistent partition.
const PermLabel = "perm"

// ext4Label returns the volume label of the ext2/3/4 filesystem in the
// first bytes of a block device or image (its superblock starts at byte
// 1024: s_magic 0xEF53 at 0x38, s_volume_name[16] at 0x78), or "" when it
// holds none.
func ext4Label(sb []byte) string {
	const off = 1024
	if len(sb) < off+0x78+16 {
		return ""
	}
	if binary.LittleEndian.Uint16(sb[off+0x38:]) != 0xEF53 {
		return ""
	}
	name := sb[off+0x78 : off+0x78+16]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return string(name)
}

// findLabelled returns /dev/NAME of the first block device under
// sysBlock (normally /sys/class/block: disks and their partitions) whose
// ext4 label is label, in name order, so the choice is the same at every
// boot.
func findLabelled(sysBlock, devDir, label string) (string, error) {
	return findLabelledBy(sysBlock, devDir, label, ext4Label)
}

// findLabelledBy is findLabelled for the filesystem whose label labelOf
// reads from a device's first 2 KiB.
func findLabelledBy(sysBlock, devDir, label string, labelOf func([]byte) string) (string, error) {
	entries, err := os.ReadDir(sysBlock)
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") || strings.HasPrefix(n, "zram") {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	buf := make([]byte, 2048)
	for _, n := range names {
		dev := filepath.Join(devDir, n)
		f, err := os.Open(dev)
		if err != nil {
			continue
		}
		_, err = f.ReadAt(buf, 0)
		f.Close()
		if err == nil && labelOf(buf) == label {
			return dev, nil
		}
	}
	return "", nil
}

// A nic is an Ethernet link backed by hardware, for the first-boot
// default.
type nic struct {
	name, mac, busPath string
}

// ethernetNICs lists the Ethernet links under sysNet (normally
// /sys/class/net) that have a device behind them (not bridges, veths or
// tunnels), in bus order: the order of their device paths, which on a
// PC is PCI slot order, the order printed on most boxes' ports.
func ethernetNICs(sysNet string) ([]nic, error) {
	entries, err := os.ReadDir(sysNet)
	if err != nil {
		return nil, err
	}
	var nics []nic
	for _, e := range entries {
		dir := filepath.Join(sysNet, e.Name())
		typ, err := os.ReadFile(filepath.Join(dir, "type"))
		if err != nil || strings.TrimSpace(string(typ)) != "1" { // ARPHRD_ETHER
			continue
		}
		dev, err := filepath.EvalSymlinks(filepath.Join(dir, "device"))
		if err != nil {
			continue // virtual
		}
		mac, err := os.ReadFile(filepath.Join(dir, "address"))
		if err != nil {
			continue
		}
		nics = append(nics, nic{name: e.Name(), mac: strings.TrimSpace(string(mac)), busPath: dev})
	}
	sort.Slice(nics, func(i, j int) bool { return nics[i].busPath < nics[j].busPath })
	return nics, nil
}

// DefaultLANAddr is lan0's address in the first-boot interfaces.json.
const DefaultLANAddr = "192.168.42.1/24"

// defaultInterfaces is the interfaces.json a box gets on its first boot:
// the first Ethernet NIC in bus order is uplink0, the second lan0 with
// DefaultLANAddr. Links are named by MAC, so the mapping survives a
// driver that probes in another order later. With one NIC there is only
// uplink0: a router without a LAN port is a config error a person must
// fix, and guessing would be worse.
func defaultInterfaces(nics []nic) ([]byte, error) {
	var cfg state.Interfaces
	if len(nics) > 0 {
		cfg.Interfaces = append(cfg.Interfaces, state.Interface{HardwareAddr: nics[0].mac, Name: "uplink0"})
	}
	if len(nics) > 1 {
		cfg.Interfaces = append(cfg.Interfaces, state.Interface{HardwareAddr: nics[1].mac, Name: "lan0", Addr: DefaultLANAddr})
	}
	if len(cfg.Interfaces) == 0 {
		return nil, fmt.Errorf("no Ethernet NIC found")
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	return append(b, '\n'), err
}

// cmdlineParam returns the value of key=value on the kernel command line,
// "" when absent.
func cmdlineParam(cmdline, key string) string {
	for _, f := range strings.Fields(cmdline) {
		if k, v, ok := strings.Cut(f, "="); ok && k == key {
			if u, err := strconv.Unquote(v); err == nil {
				return u
			}
			return v
		}
	}
	return ""
}
