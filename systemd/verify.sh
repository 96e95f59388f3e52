#!/usr/bin/env bash
# Checks the systemd units and the logrotate snippet without systemd running as
# init (CI containers, a developer's machine):
#
#   1. `systemd-analyze verify` on ftpmonitor.service and on an instance of
#      ftpmonitor@.service. verify exits 0 even when it warns about an unknown
#      key or a bad value, so any output at all is a failure here.
#   2. `systemd-analyze security --offline=true`: prints the exposure score of
#      both units and fails above 3.0 (--threshold counts tenths).
#   3. `logrotate --debug` parses ftpmonitor.logrotate (a dry run: nothing is
#      rotated).
#
# verify insists that ExecStart= names an executable and that Documentation=
# man:ftpmonitor(8) resolves. Neither /usr/local/bin/ftpmonitor nor the man page
# is installed on a build machine, so the units are checked as copies in a
# temporary directory, with ExecStart= pointing at a stand-in executable, and
# `man` looks in this repository's man/ directory (MANPATH). Nothing outside
# that temporary directory is touched.
#
# Usage: systemd/verify.sh    (exit 0: all good; non-zero: what failed is printed)
# What is missing of Debian's `systemd`, `man-db` and `logrotate` packages is
# installed when run as root (as CI does); otherwise the script fails.
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
command -v systemd-analyze >/dev/null 2>&1 || need_packages+=(systemd)
command -v man >/dev/null 2>&1 || need_packages+=(man-db)
command -v logrotate >/dev/null 2>&1 || need_packages+=(logrotate)
if [ ${#need_packages[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "systemd/verify.sh: installing ${need_packages[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
    else
        echo "systemd/verify.sh: needs ${need_packages[*]} (apt-get install ${need_packages[*]})" >&2
        exit 1
    fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/units" "$tmp/bin" "$tmp/man"
printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/ftpmonitor"
chmod 0755 "$tmp/bin/ftpmonitor"
ln -s "$PWD/man/man8" "$tmp/man/man8"

# The units as installed, but with the stand-in binary.
sed "s|/usr/local/bin/ftpmonitor|$tmp/bin/ftpmonitor|g" systemd/ftpmonitor.service >"$tmp/units/ftpmonitor.service"
sed "s|/usr/local/bin/ftpmonitor|$tmp/bin/ftpmonitor|g" systemd/ftpmonitor@.service >"$tmp/units/ftpmonitor@.service"
# An instance, so that %i resolves as it will for `systemctl start ftpmonitor@scans`.
cp "$tmp/units/ftpmonitor@.service" "$tmp/units/ftpmonitor@scans.service"
grep -q "$tmp/bin/ftpmonitor --foreground" "$tmp/units/ftpmonitor.service" ||
    { echo "systemd/verify.sh: ExecStart= does not run /usr/local/bin/ftpmonitor --foreground" >&2; exit 1; }

failed=0
systemd-analyze --version | head -n 1
for unit in ftpmonitor.service ftpmonitor@.service ftpmonitor@scans.service; do
    out=$(MANPATH="$tmp/man" systemd-analyze verify --man=yes "$tmp/units/$unit" 2>&1) || true
    if [ -n "$out" ]; then
        echo "FAIL systemd-analyze verify $unit:"
        printf '%s\n' "$out" | sed "s|$tmp/units/||g; s|$tmp/bin/|/usr/local/bin/|g"
        failed=1
    else
        echo "ok   systemd-analyze verify $unit"
    fi
done

for unit in ftpmonitor.service ftpmonitor@scans.service; do
    out=$(systemd-analyze security --offline=true --threshold=30 "$tmp/units/$unit" 2>&1) && status=0 || status=$?
    score=$(printf '%s\n' "$out" | grep 'Overall exposure level' || true)
    if [ "$status" -ne 0 ] || [ -z "$score" ]; then
        echo "FAIL systemd-analyze security $unit (goal: exposure <= 3.0):"
        printf '%s\n' "$out" | grep -v '^✓' || true
        failed=1
    else
        echo "ok   systemd-analyze security $unit: ${score#*: }"
    fi
done

if command -v logrotate >/dev/null 2>&1; then
    # `su ftpmonitor ftpmonitor` needs that user: parse a copy that names root.
    sed 's/^\(\s*\)su ftpmonitor ftpmonitor/\1su root root/; s/create 0640 ftpmonitor ftpmonitor/create 0640 root root/' \
        systemd/ftpmonitor.logrotate >"$tmp/ftpmonitor.logrotate"
    if out=$(logrotate --debug --state "$tmp/logrotate.state" "$tmp/ftpmonitor.logrotate" 2>&1) &&
        ! printf '%s\n' "$out" | grep -qiE '^error|unknown|bad '; then
        echo "ok   logrotate --debug ftpmonitor.logrotate"
    else
        echo "FAIL logrotate --debug ftpmonitor.logrotate:"
        printf '%s\n' "$out"
        failed=1
    fi
else
    echo "skip logrotate --debug (logrotate is not installed)"
fi

exit "$failed"
