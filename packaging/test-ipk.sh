#!/usr/bin/env bash
# packaging/test-ipk.sh IPK ARCH: check an OpenWrt package's structure (an
# opkg tar.gz of debian-binary, control.tar.gz, data.tar.gz), its control
# fields and scripts, and that its meshd is a static binary for the router's
# CPU. No OpenWrt here to install it on.
set -euo pipefail
ipk="${1:?usage: packaging/test-ipk.sh FILE.ipk ARCH}"
arch="${2:?usage: packaging/test-ipk.sh FILE.ipk ARCH}"
fail() {
	printf 'test-ipk: FAIL: %s: %s\n' "$ipk" "$*" >&2
	exit 1
}
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
tar xzf "$ipk" -C "$dir"
[[ "$(cat "$dir/debian-binary")" == 2.0 ]] || fail "debian-binary is not 2.0"
mkdir "$dir/control" "$dir/data"
tar xzf "$dir/control.tar.gz" -C "$dir/control"
tar xzf "$dir/data.tar.gz" -C "$dir/data"
grep -qx "Architecture: $arch" "$dir/control/control" || fail "Architecture is not $arch"
grep -qx "Package: meshd" "$dir/control/control" || fail "Package is not meshd"
grep -qx /etc/meshd/meshd.toml "$dir/control/conffiles" || fail "/etc/meshd/meshd.toml is not a conffile"
for f in postinst prerm; do
	[[ -x "$dir/control/$f" ]] || fail "no executable $f"
	sh -n "$dir/control/$f" || fail "$f: syntax error"
done
for f in usr/bin/meshd usr/bin/meshctl etc/init.d/meshd; do
	[[ -x "$dir/data/$f" ]] || fail "/$f missing or not executable"
done
[[ -f "$dir/data/etc/meshd/meshd.toml" && -f "$dir/data/lib/upgrade/keep.d/meshd" ]] ||
	fail "configuration or sysupgrade keep list missing"
sh -n "$dir/data/etc/init.d/meshd" || fail "init script: syntax error"
grep -q '^USE_PROCD=1' "$dir/data/etc/init.d/meshd" || fail "init script is not a procd script"
if command -v file >/dev/null 2>&1; then
	desc="$(file -b "$dir/data/usr/bin/meshd")"
	case "$arch" in
	mipsel_*) want="32-bit LSB executable, MIPS" ;;
	aarch64_*) want="64-bit LSB executable, ARM aarch64" ;;
	arm_*) want="32-bit LSB executable, ARM" ;;
	*) fail "unknown architecture $arch" ;;
	esac
	[[ "$desc" == *"$want"* && "$desc" == *"statically linked"* ]] ||
		fail "meshd is \"$desc\", want a static $want"
fi
echo "$(basename "$ipk"): ok"
