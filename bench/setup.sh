#!/usr/bin/env bash
# Installs what bench/run.py needs, from Debian's (or Ubuntu's) packages:
#
#   sudo bench/setup.sh
#
# * the peers and tools: lftp, rclone, curl, openssl (apt-get install);
# * the server: pure-ftpd. An installed `pure-ftpd` is used as it is. Otherwise
#   its package is NOT installed (installing it starts a system FTP service on
#   port 21): `apt-get download` fetches it and `dpkg -x` unpacks it under
#   target/bench-servers/pure-ftpd, and only the shared libraries it links
#   against are installed. bench/run.py starts it itself, on 127.0.0.1 only.
set -Eeuo pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$REPO/target/bench-servers

say() { printf 'bench setup: %s\n' "$*"; }
die() { printf 'bench setup: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (apt-get); e.g. sudo $0"
command -v apt-get >/dev/null && command -v dpkg >/dev/null || die "needs a Debian-like system (apt-get, dpkg)"

missing=()
for tool in lftp rclone curl openssl python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if command -v pure-ftpd >/dev/null; then
  say "pure-ftpd: using $(command -v pure-ftpd)"
elif [[ -x $DIR/pure-ftpd/usr/sbin/pure-ftpd ]]; then
  say "pure-ftpd: already unpacked in $DIR/pure-ftpd"
else
  mkdir -p "$DIR/debs"
  say "pure-ftpd: apt-get download, unpacked into $DIR/pure-ftpd"
  (cd "$DIR/debs" && apt-get download -q -o APT::Sandbox::User=root pure-ftpd >/dev/null) || {
    apt-get update -qq
    (cd "$DIR/debs" && apt-get download -q -o APT::Sandbox::User=root pure-ftpd >/dev/null)
  } || die "apt-get download pure-ftpd failed"
  dpkg -x "$(ls -t "$DIR"/debs/pure-ftpd_*.deb | head -1)" "$DIR/pure-ftpd"
  # The libraries it links against: the lib* packages among its dependencies.
  libs=$(apt-cache depends pure-ftpd | awk '/Depends: lib/ {print $2}' | sort -u)
  if [[ -n $libs ]]; then
    say "apt-get install ${libs//$'\n'/ }"
    # shellcheck disable=SC2086
    apt-get install -y -qq $libs >/dev/null
  fi
fi
say "done; now: cargo build --release && sudo TMPDIR=/dev/shm bench/run.py"
