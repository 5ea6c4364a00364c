#!/bin/sh
# disk.sh OUT VMLINUZ INITRAMFS [PERM_DIR]: writes a disk image that boots
# the router on a PC's BIOS (or SeaBIOS): an MBR with syslinux's boot
# code, partition 1 a FAT filesystem with syslinux, the kernel and the
# initramfs, partition 2 an ext4 filesystem labelled "perm", holding
# PERM_DIR's files when given (empty: the first boot writes the default
# interfaces.json). Nothing is mounted: mtools and mke2fs -d write the
# filesystems as files, so no loop device or root mount is needed.
# Write the image to the router's SSD with dd; see README.md. APPEND
# replaces the kernel command line.
set -eu
out=$1 kernel=$2 initrd=$3 perm=${4:-}
boot_mb=${BOOT_MB:-256}
perm_mb=${PERM_MB:-256}
append=${APPEND:-console=tty0 console=ttyS0,115200 panic=10}
syslinux_dir=/usr/lib/syslinux
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$out.tmp"' EXIT
trap 'exit 1' INT TERM

cat > "$tmp/syslinux.cfg" <<CFG
DEFAULT homerouter
SERIAL 0 115200
LABEL homerouter
  LINUX /vmlinuz
  INITRD /initramfs.cpio.gz
  APPEND $append
CFG
# FAT16 (type e below), with the partition's offset as hidden sectors,
# which the boot sector needs to find itself.
mkfs.vfat -F 16 -h 2048 -n HRBOOT -C "$tmp/boot.img" $((boot_mb * 1024)) >/dev/null
export MTOOLS_SKIP_CHECK=1
mcopy -i "$tmp/boot.img" "$kernel" ::vmlinuz
mcopy -i "$tmp/boot.img" "$initrd" ::initramfs.cpio.gz
mcopy -i "$tmp/boot.img" "$tmp/syslinux.cfg" ::syslinux.cfg
syslinux --install "$tmp/boot.img"

truncate -s "${perm_mb}M" "$tmp/perm.img"
if [ -n "$perm" ]; then
	mke2fs -q -F -t ext4 -L perm -E root_owner=0:0 -d "$perm" "$tmp/perm.img" "${perm_mb}M"
else
	mke2fs -q -F -t ext4 -L perm -E root_owner=0:0 "$tmp/perm.img" "${perm_mb}M"
fi

rm -f "$out.tmp"
truncate -s $((1 + boot_mb + perm_mb))M "$out.tmp"
sfdisk -q "$out.tmp" <<PART
label: dos
start=2048, size=$((boot_mb * 2048)), type=e, bootable
start=$((2048 + boot_mb * 2048)), size=$((perm_mb * 2048)), type=83
PART
dd if="$syslinux_dir/mbr/mbr.bin" of="$out.tmp" bs=440 count=1 conv=notrunc status=none
dd if="$tmp/boot.img" of="$out.tmp" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$tmp/perm.img" of="$out.tmp" bs=1M seek=$((1 + boot_mb)) conv=notrunc,sparse status=none
mv "$out.tmp" "$out"
echo "disk.sh: $out: boot ${boot_mb} MiB, perm ${perm_mb} MiB${perm:+ from $perm}"
