package platform

import (
	"bytes"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// BootLabel is the FAT label of the boot partition, which holds the
// kernel and initramfs a cold boot runs (initramfs/disk.sh makes it).
const BootLabel = "HRBOOT"

// BootDir is where PID 1 mounts the boot partition, for the update to
// install a committed image on it.
const BootDir = "/boot"

// fatLabel returns the volume label in a FAT boot sector (FAT12/16: the
// label at byte 43 and "FAT1" at 54; FAT32: at 71 and 82), or "" when
// sector is none: an MBR ends in 0x55AA too, but has no "FAT" there.
func fatLabel(sector []byte) string {
	if len(sector) < 512 || sector[510] != 0x55 || sector[511] != 0xAA {
		return ""
	}
	for _, at := range []struct{ label, fstype int }{{43, 54}, {71, 82}} {
		if bytes.HasPrefix(sector[at.fstype:], []byte("FAT")) {
			return strings.TrimRight(string(sector[at.label:at.label+11]), " \x00")
		}
	}
	return ""
}

// MountBoot mounts the boot partition, the FAT filesystem labelled
// BootLabel, on BootDir and returns BootDir; "" when there is none (the
// router booted over the network) or it does not mount, which is logged:
// updates then work, but a commit does not reach cold boots.
func (s *System) MountBoot() string {
	dev, err := findLabelledBy("/sys/class/block", "/dev", BootLabel, fatLabel)
	if err != nil || dev == "" {
		s.logger.Printf("boot partition: none labelled %s (%v): booted over the network", BootLabel, err)
		return ""
	}
	if err := os.MkdirAll(BootDir, 0o755); err != nil {
		s.problem("boot partition: %v", err)
		return ""
	}
	if err := unix.Mount(dev, BootDir, "vfat", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "flush"); err != nil {
		s.problem("boot partition: mount %s on %s: %v", dev, BootDir, err)
		return ""
	}
	// Shutdown's sync writes what the update put there before a reboot
	// or kexec; "flush" writes it sooner.
	s.logger.Printf("boot partition: %s on %s", dev, BootDir)
	return BootDir
}
