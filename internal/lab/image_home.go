package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// The taps an ImageHome makes in its router namespace, for VMOptions.
const (
	ImageUplinkTap = "tapwan"
	ImageLANTap    = "taplan"
)

// ImageHome is the home topology with the router booted under QEMU
// rather than run as a process: NewHome's ISP (with its peers) and LAN
// namespaces, and in between, in the router namespace (the "cables"),
// one bridge per side joining the tap QEMU opens to that side's veth. The
// VM's uplink NIC is then on the ISP's link and its LAN NIC on the
// client's eth0, as make demo wires them. Nothing of it is on the host.
//
//	isp: isp0 ---- wan =brwan= tapwan :router (QEMU): taplan =brlan= lan ---- eth0 :lan
type ImageHome struct {
	*Home
}

// NewImageHome builds an ImageHome in l: NewHome with opt (NoRouter
// forced: the VM is the router), then the bridges and taps. On error the
// caller still closes l, which removes whatever was built.
func NewImageHome(l *Lab, opt HomeOptions) (*ImageHome, error) {
	opt.NoRouter = true
	h, err := NewHome(l, opt)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cables := h.Router
	for _, tap := range []string{ImageUplinkTap, ImageLANTap} {
		if err := l.Tap(cables, tap); err != nil {
			return nil, err
		}
	}
	for _, args := range [][]string{
		{"link", "add", "brwan", "type", "bridge"},
		{"link", "add", "brlan", "type", "bridge"},
		{"link", "set", "wan", "master", "brwan"},
		{"link", "set", "lan", "master", "brlan"},
		{"link", "set", ImageUplinkTap, "master", "brwan"},
		{"link", "set", ImageLANTap, "master", "brlan"},
		{"link", "set", "brwan", "up"},
		{"link", "set", "brlan", "up"},
	} {
		if _, err := cables.Run(ctx, "ip", args...); err != nil {
			return nil, fmt.Errorf("lab: image home: %w", err)
		}
	}
	return &ImageHome{Home: h}, nil
}

// StartVM boots the router under QEMU in the router namespace, its
// uplink NIC on the ISP's side and its LAN NIC on the client's (opt's
// taps are set here).
func (h *ImageHome) StartVM(opt VMOptions) (*VM, error) {
	opt.UplinkTap, opt.LANTap = ImageUplinkTap, ImageLANTap
	return h.lab.StartVM(h.Router, opt)
}

// PermImage writes an ext4 image labelled perm, as the router's /perm
// disk, holding files (name → content) at its top level, into dir, and
// returns its path. 64 MB: room for the router's state and a capture.
func PermImage(dir string, files map[string]string) (string, error) {
	seed, err := os.MkdirTemp(dir, "perm-seed")
	if err != nil {
		return "", fmt.Errorf("lab: perm image: %w", err)
	}
	defer os.RemoveAll(seed)
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(seed, name), []byte(content), 0o644); err != nil {
			return "", fmt.Errorf("lab: perm image: %w", err)
		}
	}
	img := filepath.Join(dir, "perm.img")
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-L", "perm", "-d", seed, img, "64M").CombinedOutput(); err != nil {
		return "", fmt.Errorf("lab: perm image: mke2fs: %v: %s", err, out)
	}
	return img, nil
}
