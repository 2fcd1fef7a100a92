#!/usr/bin/env bash
# packaging/test-deb.sh DEB: install meshd's Debian package on this machine
# (root; .ci/run runs it on a clean Debian), check what it installed, check
# the unit with systemd-analyze verify, run the installed binary the way the
# unit does (as the meshd user, with /etc/meshd/meshd.toml) until it is
# ready and stops cleanly, then remove and purge the package and check that
# nothing is left. CI cannot run systemd as PID 1, so the service itself is
# not started by systemd here.
set -euo pipefail
deb="${1:?usage: packaging/test-deb.sh dist/meshd_VERSION_amd64.deb}"
fail() {
	printf 'test-deb: FAIL: %s\n' "$*" >&2
	exit 1
}
[[ "$(id -u)" == 0 ]] || fail "needs root (dpkg -i)"
if dpkg -s meshd >/dev/null 2>&1; then
	fail "meshd is already installed here; this test installs and purges it"
fi
version="$(dpkg-deb -f "$deb" Version)"

echo "--- dpkg -i $deb"
dpkg -i "$deb"
for f in /usr/bin/meshd /usr/bin/meshctl /usr/lib/systemd/system/meshd.service \
	/usr/lib/sysusers.d/meshd.conf /usr/share/meshd/systemd/lora.conf /etc/meshd/meshd.toml \
	/usr/share/meshd/grafana/meshd.json /usr/share/meshd/prometheus/meshd-alerts.yml \
	/usr/share/doc/meshd/operations.md /usr/share/doc/meshd/copyright; do
	[[ -f "$f" ]] || fail "$f not installed"
done
grep -qx /etc/meshd/meshd.toml /var/lib/dpkg/info/meshd.conffiles || fail "/etc/meshd/meshd.toml is not a conffile"
getent passwd meshd >/dev/null || fail "the postinst did not create the meshd user"
[[ "$(getent passwd meshd | cut -d: -f7)" == */nologin ]] || fail "the meshd user has a login shell"
got="$(meshd version)"
[[ "$got" == "meshd $version" ]] || fail "meshd version says \"$got\", the package is $version"
echo "meshd version: $got"
if command -v file >/dev/null 2>&1; then
	desc="$(file -b /usr/bin/meshd)"
	[[ "$desc" == *"statically linked"* ]] || fail "/usr/bin/meshd is not static: $desc"
fi
meshd config show --config /etc/meshd/meshd.toml >/dev/null || fail "the packaged configuration does not load"

echo "--- systemd-analyze verify"
if command -v systemd-analyze >/dev/null 2>&1; then
	out="$(systemd-analyze verify /usr/lib/systemd/system/meshd.service 2>&1)" ||
		fail "systemd-analyze verify: $out"
	# verify also reports problems it does not count as errors.
	[[ -z "$out" ]] || fail "systemd-analyze verify warns: $out"
	echo "unit verified"
	sec="$(systemd-analyze security --offline=true /usr/lib/systemd/system/meshd.service 2>/dev/null |
		tail -1 || true)"
	echo "systemd-analyze security: ${sec:-not available}"
else
	fail "no systemd-analyze (Debian: apt-get install systemd)"
fi

echo "--- run as the unit does (user meshd, /etc/meshd/meshd.toml)"
# What StateDirectory=meshd and UMask=0077 would do.
install -d -o meshd -g meshd -m 0700 /var/lib/meshd
log="$(mktemp)"
# Loopback and ephemeral ports: CI machines may run other meshd tests.
(umask 077 && exec setpriv --reuid=meshd --regid=meshd --clear-groups --inh-caps=-all \
	env MESHD_LISTEN=/ip4/127.0.0.1/tcp/0 MESHD_MDNS=false MESHD_API=off MESHD_METRICS=127.0.0.1:0 \
	/usr/bin/meshd run --config /etc/meshd/meshd.toml) >"$log" 2>&1 &
pid=$!
if ! setpriv --reuid=meshd --regid=meshd --clear-groups meshctl --data-dir /var/lib/meshd wait --for 60s; then
	cat "$log" >&2
	kill "$pid" 2>/dev/null || true
	fail "meshd did not become ready"
fi
setpriv --reuid=meshd --regid=meshd --clear-groups meshctl --data-dir /var/lib/meshd status
[[ "$(stat -c %U:%a /var/lib/meshd/api.sock)" == meshd:600 ]] || fail "api.sock is not meshd's, mode 0600"
bad="$(find /var/lib/meshd -perm /077 -print)"
[[ -z "$bad" ]] || fail "files in /var/lib/meshd readable by others: $bad"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[[ "$rc" == 0 ]] || {
	cat "$log" >&2
	fail "meshd exited with $rc after SIGTERM"
}
grep -q 'ready' "$log" || fail "no ready log line"
rm -f "$log"
echo "started, ready, stopped cleanly"

echo "--- dpkg -r, dpkg --purge"
dpkg -r meshd
[[ ! -e /usr/bin/meshd && ! -e /usr/lib/systemd/system/meshd.service ]] || fail "dpkg -r left files"
[[ -f /etc/meshd/meshd.toml ]] || fail "dpkg -r removed the configuration (a conffile stays until purge)"
[[ -d /var/lib/meshd ]] || fail "dpkg -r removed the data directory (only purge does)"
dpkg --purge meshd
[[ ! -e /etc/meshd && ! -e /var/lib/meshd ]] || fail "dpkg --purge left /etc/meshd or /var/lib/meshd"
if dpkg -s meshd >/dev/null 2>&1; then
	fail "dpkg still knows meshd after the purge"
fi
echo "package test passed"
