#!/usr/bin/env bash
# Prepares the interop test suite (tests/interop.rs): real FTP daemons from Debian.
#
#   sudo tests/interop/setup.sh          # idempotent; prints what it did
#   cargo test --test interop -- --ignored
#
# The server packages (pure-ftpd, vsftpd, proftpd-core + proftpd-mod-crypto for
# proftpd's mod_tls) conflict with each other as packages (all "Provides/Conflicts:
# ftp-server"), so they are NOT installed: `apt-get download` fetches them and
# `dpkg -x` unpacks each into its own directory under $FTPMONITOR_INTEROP_DIR
# (default: <repo>/target/interop-servers; the tests read the same variable).
# The server configs the tests use are the templates next to this script.
# Nothing of theirs lands in /usr, /etc or systemd, and no daemon is started here.
#
# What IS changed on the machine (Debian/Ubuntu, as root):
#   * apt-get install of the shared libraries those binaries link against (the
#     lib* entries of the packages' Depends), plus openssl (certificates and
#     password hashes are made at test time) and passwd (useradd, chpasswd);
#   * a system user `ftpmon-test` (home /, shell nologin) for vsftpd, which
#     only authenticates real users through PAM (service name without a file in
#     /etc/pam.d, so PAM's `other` stack, i.e. pam_unix). Its password is random,
#     made here, and kept in $DIR/vsftpd-user (mode 600) for the tests.
#
# Environment: FTPMONITOR_INTEROP_DIR (cache dir), FORCE=1 (download and unpack again).
set -Eeuo pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd -- "$HERE/../.." && pwd)
DIR=${FTPMONITOR_INTEROP_DIR:-$REPO/target/interop-servers}
FORCE=${FORCE:-0}
PACKAGES=(pure-ftpd vsftpd proftpd-core proftpd-mod-crypto)   # mod-crypto: proftpd's mod_tls.so
TEST_USER=ftpmon-test

say() { printf 'interop setup: %s\n' "$*"; }
die() { printf 'interop setup: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (apt-get, useradd); e.g. sudo $0"
command -v apt-get >/dev/null && command -v dpkg >/dev/null || die "needs a Debian-like system (apt-get, dpkg)"

mkdir -p "$DIR/debs"
chmod 755 "$DIR"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'; }

UPDATED=0
apt_update_once() {
  if [[ $UPDATED == 0 ]]; then
    say "apt-get update"
    apt-get update -qq
    UPDATED=1
  fi
}

# ------------------------------------------------------------ server packages ----
for pkg in "${PACKAGES[@]}"; do
  ver=$(candidate "$pkg")
  if [[ -z $ver || $ver == "(none)" ]]; then
    apt_update_once
    ver=$(candidate "$pkg")
  fi
  [[ -n $ver && $ver != "(none)" ]] || die "apt knows no package $pkg"
  stamp=$DIR/$pkg/.extracted-version
  if [[ $FORCE != 1 && -f $stamp && $(cat "$stamp") == "$ver" ]]; then
    say "$pkg $ver: already unpacked in $DIR/$pkg"
    continue
  fi
  # the .deb for this version; apt-get download names it pkg_version_arch.deb (':' escaped)
  deb=$(find "$DIR/debs" -maxdepth 1 -name "${pkg}_${ver//:/%3a}_*.deb" -print -quit)
  if [[ -z $deb || $FORCE == 1 ]]; then
    say "$pkg $ver: apt-get download"
    # run as root: the _apt sandbox user may not be able to write into the repo's target dir
    if ! (cd "$DIR/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >/dev/null); then
      apt_update_once
      (cd "$DIR/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >/dev/null) \
        || die "apt-get download $pkg=$ver failed"
    fi
    deb=$(find "$DIR/debs" -maxdepth 1 -name "${pkg}_${ver//:/%3a}_*.deb" -print -quit)
    [[ -n $deb ]] || die "apt-get download $pkg left no .deb in $DIR/debs"
  fi
  say "$pkg $ver: dpkg -x $(basename "$deb") -> $DIR/$pkg"
  rm -rf "$DIR/$pkg"
  mkdir -p "$DIR/$pkg"
  dpkg -x "$deb" "$DIR/$pkg"
  printf '%s\n' "$ver" >"$stamp"
done

# ------------------------------------------------------------ shared libraries ----
# Every lib* package the server packages depend on (first alternative, no versions),
# plus the tools the tests call.
want=(openssl passwd)
for pkg in "${PACKAGES[@]}"; do
  deb=$(find "$DIR/debs" -maxdepth 1 -name "${pkg}_*.deb" -print | sort | tail -n 1)
  deps=$(dpkg-deb -f "$deb" Depends Pre-Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/:any//; s/[[:space:]]//g')
  for d in $deps; do
    case $d in
      lib*) want+=("$d") ;;
    esac
  done
done
missing=()
for p in $(printf '%s\n' "${want[@]}" | sort -u); do
  installed "$p" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  apt_update_once
  say "apt-get install ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "libraries and tools: all present"
fi

BINARIES=(
  "$DIR/pure-ftpd/usr/sbin/pure-ftpd"
  "$DIR/pure-ftpd/usr/bin/pure-pw"
  "$DIR/vsftpd/usr/sbin/vsftpd"
  "$DIR/proftpd-core/usr/sbin/proftpd"
  "$DIR/proftpd-mod-crypto/usr/lib/proftpd/mod_tls.so"
)
for b in "${BINARIES[@]}"; do
  [[ -f $b ]] || die "$b is missing after unpacking"
  if ldd "$b" | grep -q 'not found'; then
    ldd "$b" | grep 'not found' >&2
    die "$b: shared libraries missing (see above)"
  fi
done
say "ldd: every binary finds its libraries"

# ------------------------------------------------------------ vsftpd's user ----
# vsftpd changes into the user's home before it applies local_root, so the home
# must exist: "/" (nothing is created; each test chroots the user into its own root)
if ! id "$TEST_USER" >/dev/null 2>&1; then
  say "useradd --system $TEST_USER (home /, shell /usr/sbin/nologin)"
  useradd --system --no-create-home --home-dir / --shell /usr/sbin/nologin "$TEST_USER"
elif [[ $(getent passwd "$TEST_USER" | cut -d: -f6) != / ]]; then
  say "usermod --home / $TEST_USER"
  usermod --home / "$TEST_USER"
fi
pwfile=$DIR/vsftpd-user
if [[ ! -s $pwfile || $FORCE == 1 ]] || ! grep -q "^$TEST_USER:" "$pwfile"; then
  pass=$(openssl rand -hex 16)
  (umask 077 && printf '%s:%s\n' "$TEST_USER" "$pass" >"$pwfile")
  say "new random password for $TEST_USER (kept in $pwfile)"
else
  pass=$(sed -n "s/^$TEST_USER://p" "$pwfile")
fi
# always (re)set it: the cache dir may have been rebuilt while the user stayed
printf '%s:%s\n' "$TEST_USER" "$pass" | chpasswd
chmod 600 "$pwfile"

# ------------------------------------------------------------ summary ----
say "ready in $DIR:"
say "  $("$DIR/pure-ftpd/usr/sbin/pure-ftpd" --help 2>&1 | head -n 1)"
say "  vsftpd $(cat "$DIR/vsftpd/.extracted-version")"
say "  $("$DIR/proftpd-core/usr/sbin/proftpd" -v 2>&1 | head -n 1)"
say "  $(openssl version)"
say "run: cargo test --test interop -- --ignored"
