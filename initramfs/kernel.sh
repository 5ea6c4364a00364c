#!/bin/sh
# kernel.sh DIR: fetches Debian's current linux-image-amd64 kernel with
# `apt-get download` (never installed on this machine), unpacks it into
# DIR/kernel and runs depmod on its modules, which the .deb ships without
# modules.dep and modules.alias (its postinst would make them). It writes
# DIR/kernel/VERSION (e.g. 6.1.0-56-amd64) last, so an interrupted run is
# redone. Needs apt-get, dpkg-deb and depmod (Debian's kmod).
set -eu
dir=$1
pkg_of() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'; }
pkg=$(pkg_of)
if [ -z "$pkg" ]; then
	apt-get update -qq
	pkg=$(pkg_of)
fi
[ -n "$pkg" ] || { echo "kernel.sh: no linux-image-amd64 in apt's lists" >&2; exit 1; }
version=${pkg#linux-image-}
if [ "$(cat "$dir/kernel/VERSION" 2>/dev/null)" = "$version" ]; then
	exit 0
fi
echo "kernel.sh: fetching $pkg"
rm -rf "$dir/kernel" "$dir/deb"
mkdir -p "$dir/deb" "$dir/kernel"
# apt's download sandbox user cannot write into root's build dir, so the
# download runs as root; it is verified against apt's signed lists either
# way. Stale lists (the .deb gone from the mirror) get one update.
download() { (cd "$dir/deb" && apt-get download -q -o APT::Sandbox::User=root "$pkg"); }
if ! download; then
	apt-get update -qq
	download
fi
deb=$(ls "$dir"/deb/"$pkg"_*.deb)
dpkg-deb -x "$deb" "$dir/kernel"
depmod -b "$dir/kernel" "$version"
rm -rf "$dir/deb"
echo "$version" > "$dir/kernel/VERSION"
