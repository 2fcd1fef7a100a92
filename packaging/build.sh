#!/usr/bin/env bash
# packaging/build.sh: static meshd and meshctl binaries for linux/amd64,
# arm64, armv7 and mipsle, the Debian packages (amd64, arm64, armhf) and the
# OpenWrt packages (.ipk), into $OUT (default dist/). Run from anywhere:
#
#   packaging/build.sh                   # everything
#   ARCHES="amd64" packaging/build.sh    # one architecture (a .deb only)
#   VERSION=1.2.3 packaging/build.sh
#
# Binaries are static (CGO_ENABLED=0), reproducible (-trimpath, file times
# from the commit) and stripped (-s -w); the version is stamped into
# internal/version. Go's build cache makes a second run take seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT="${OUT:-dist}"
ARCHES="${ARCHES:-amd64 arm64 armv7 mipsle}"
# Reproducible: file times in the packages are the commit's time.
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
export SOURCE_DATE_EPOCH
# Debian-sortable: 0.0.0~git<date>.<commit> before the first tag; a tag
# v1.2.3 on the commit gives 1.2.3.
if [[ -z "${VERSION:-}" ]]; then
	if tag="$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null)"; then
		VERSION="${tag#v}"
	else
		VERSION="0.0.0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d).$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
	fi
fi
export VERSION

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
# The packager, built once (nfpm is a dependency of packaging/go.mod only).
mkpkg="$OUT/.mkpkg"
(cd packaging && go build -o "$mkpkg" ./cmd/mkpkg)

ldflags="-s -w -X meshd.dev/meshd/internal/version.Version=$VERSION"

# build GOARCH NAME [ENV...]: meshd and meshctl into $OUT/NAME/.
build() {
	local goarch="$1" name="$2"
	shift 2
	local dir="$OUT/$name"
	mkdir -p "$dir"
	local start=$SECONDS
	env CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" "$@" \
		go build -trimpath -ldflags "$ldflags" -o "$dir/" ./daemon/cmd/meshd ./apps/meshctl
	printf '%-8s meshd %s bytes, meshctl %s bytes (%ds)\n' "$name" \
		"$(stat -c %s "$dir/meshd")" "$(stat -c %s "$dir/meshctl")" $((SECONDS - start))
}

# pkg KIND GOARCH NAME [IPK_ARCH]: one package from $OUT/NAME/.
pkg() {
	local kind="$1" goarch="$2" name="$3" ipkarch="${4:-}" file
	if [[ "$kind" == deb ]]; then
		file="$OUT/meshd_${VERSION}_$(debarch "$name").deb"
	else
		file="$OUT/meshd_${VERSION}_${ipkarch}.ipk"
	fi
	GOARCH="$goarch" BIN="$OUT/$name" IPK_ARCH="$ipkarch" \
		"$mkpkg" -config "packaging/nfpm-$kind.yaml" -packager "$kind" -o "$file"
	printf '%-40s %s bytes\n' "$(basename "$file")" "$(stat -c %s "$file")"
}

debarch() {
	case "$1" in
	armv7) echo armhf ;;
	*) echo "$1" ;;
	esac
}

for arch in $ARCHES; do
	case "$arch" in
	amd64)
		build amd64 amd64
		pkg deb amd64 amd64
		;;
	arm64)
		build arm64 arm64
		pkg deb arm64 arm64
		pkg ipk arm64 arm64 aarch64_cortex-a53
		;;
	armv7)
		build arm armv7 GOARM=7
		pkg deb arm7 armv7
		pkg ipk arm7 armv7 arm_cortex-a7_neon-vfpv4
		;;
	mipsle)
		# OpenWrt's MIPS routers (ramips, ath79 little-endian) have no FPU.
		build mipsle mipsle GOMIPS=softfloat
		pkg ipk mipsle mipsle mipsel_24kc
		;;
	*)
		echo "packaging/build.sh: unknown architecture $arch (amd64, arm64, armv7, mipsle)" >&2
		exit 2
		;;
	esac
done
rm -f "$mkpkg"
