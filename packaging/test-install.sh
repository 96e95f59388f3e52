#!/usr/bin/env bash
# Installs the Debian package into a fresh Debian root and checks, step by step,
# what the package must and must not leave behind:
#
#   install  -> the user ftpmonitor, /var/lib/ftpmonitor and /var/log/ftpmonitor,
#               the conffiles, units that systemd-analyze verify accepts, nothing
#               enabled or started;
#   start    -> `systemctl enable --now ftpmonitor@job` against a pure-ftpd on
#               127.0.0.1; a file in the watch directory arrives on the server;
#   upgrade  -> a second .deb with a higher version: the running instance is
#               restarted on the new binary, an edited conffile, the journal and
#               the user are kept, syncing goes on;
#   remove   -> stopped, binary and units gone; conffiles, config, journal, logs
#               and user kept;
#   purge    -> conffiles, journal, logs, runtime directory and the enable link
#               gone; the user and the operator's own config file kept.
#
# Where it runs: the root boots in systemd-nspawn (systemd as PID 1, the real
# units, started by systemctl) when it can; where a container cannot boot, in a
# chroot with `dpkg -i`, and the ExecStart= line of the installed unit run by
# hand as the user ftpmonitor (no restart-on-upgrade check there: nothing runs
# the units). FTPMONITOR_PKGTEST_MODE=nspawn|chroot forces one (default auto).
#
# The root: debootstrap --variant=minbase of the host's Debian release from the
# mirror in apt's sources, cached under target/pkgtest/ (made once, about a
# minute; every run works on a fresh copy). The FTP server: pure-ftpd from
# tests/interop/setup.sh, run on the host's loopback, which the container and
# the chroot share. Every wait has a deadline; the container, the daemon, the
# server and the chroot's mounts are stopped and removed on every exit.
#
# Usage (as root): packaging/test-install.sh      exit 0: every check passed
# Environment: FTPMONITOR_PKGTEST_DEB (a built .deb: skips `cargo deb`),
#   FTPMONITOR_PKGTEST_DIR (work and cache dir), FTPMONITOR_PKGTEST_MIRROR,
#   FTPMONITOR_PKGTEST_SUITE, FTPMONITOR_PKGTEST_MODE.

# The checks are shell code run inside the root: their $ expand there, not here.
# shellcheck disable=SC2016
set -Eeuo pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd -- "$HERE/.." && pwd)
WORK=${FTPMONITOR_PKGTEST_DIR:-$REPO/target/pkgtest}
MODE=${FTPMONITOR_PKGTEST_MODE:-auto}
SERVERS=${FTPMONITOR_INTEROP_DIR:-$REPO/target/interop-servers}
# What the root holds besides minbase: the package's Depends (adduser) and
# Recommends (logrotate), systemd to boot, man-db and procps for the checks.
INCLUDE=systemd,systemd-sysv,dbus,adduser,logrotate,procps,man-db
MACHINE=ftpmonitor-pkgtest
ROOT=$WORK/root

say() { printf 'pkgtest: %s\n' "$*"; }
die() { printf 'pkgtest: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, dpkg in the root, systemd-nspawn)"
case $MODE in auto | nspawn | chroot) ;; *) die "FTPMONITOR_PKGTEST_MODE=$MODE: use auto, nspawn or chroot" ;; esac

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v nsenter >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
    say "apt-get install ${need[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$WORK"
LOGS=$WORK/logs
rm -rf "$LOGS" "$WORK/debs" "$WORK/ftp"
mkdir -p "$LOGS" "$WORK/debs"

# ---------------------------------------------------------------- cleanup ----
NSPAWN_PID='' LEADER='' FTPD_PID='' DAEMON_PID='' MOUNTED=()
cleanup() {
    local status=$?
    set +e
    if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID"
        wait_gone "$DAEMON_PID" 20 || kill -KILL "$DAEMON_PID"
    fi
    if [[ -n $NSPAWN_PID ]] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        # SIGTERM to nspawn halts the container cleanly; PID 1's death ends the rest.
        kill -TERM "$NSPAWN_PID"
        if ! wait_gone "$NSPAWN_PID" 30; then
            [[ -n $LEADER ]] && kill -KILL "$LEADER"
            kill -KILL "$NSPAWN_PID"
            wait_gone "$NSPAWN_PID" 10
        fi
    fi
    if [[ -n $FTPD_PID ]] && kill -0 "$FTPD_PID" 2>/dev/null; then
        kill -TERM "$FTPD_PID"
        wait_gone "$FTPD_PID" 10 || kill -KILL "$FTPD_PID"
    fi
    local m
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        m=${MOUNTED[i]}
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    # Never remove a tree that still has something mounted in it.
    if [[ -d $ROOT ]]; then
        if grep -q " ${ROOT}[/ ]" /proc/self/mounts; then
            echo "pkgtest: error: $ROOT still has mounts; not removed" >&2
            status=1
        else
            rm -rf "$ROOT"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_gone PID SECONDS: the process (a child of this shell, or not) has ended.
wait_gone() {
    local deadline=$((SECONDS + $2))
    while kill -0 "$1" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
    wait "$1" 2>/dev/null || true
}

# ---------------------------------------------------------------- the root ----
# shellcheck source=/dev/null
. /etc/os-release
SUITE=${FTPMONITOR_PKGTEST_SUITE:-${VERSION_CODENAME:-}}
[[ $ID == debian && -n $SUITE ]] || [[ -n ${FTPMONITOR_PKGTEST_SUITE:-} ]] ||
    die "not a Debian host: set FTPMONITOR_PKGTEST_SUITE (and FTPMONITOR_PKGTEST_MIRROR)"

# The Debian mirror apt uses (deb822 .sources or one-line sources.list).
mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        awk -v suite="$SUITE" '
            /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri = ""; ok = 0; next }
            tolower($1) == "uris:" { uri = $2 }
            tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
            END { if (uri != "" && ok) print uri }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        awk -v suite="$SUITE" '$1 == "deb" && $0 !~ /\[/ && $3 == suite { print $2 }' "$f"
    done
}
BASE=$WORK/base-$SUITE
STAMP="$SUITE minbase $INCLUDE"
if [[ ! -f $BASE/.pkgtest-stamp || $(cat "$BASE/.pkgtest-stamp") != "$STAMP" ]]; then
    MIRROR=${FTPMONITOR_PKGTEST_MIRROR:-$(mirror | head -n 1)}
    [[ -n $MIRROR ]] || die "no mirror for $SUITE in apt's sources: set FTPMONITOR_PKGTEST_MIRROR"
    say "debootstrap $SUITE (minbase + $INCLUDE) from $MIRROR into $BASE (cached for later runs)"
    rm -rf "$BASE" "$BASE.new"
    timeout 900 debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$BASE.new" "$MIRROR" \
        >"$LOGS/debootstrap.log" 2>&1 || { tail -n 20 "$LOGS/debootstrap.log" >&2; die "debootstrap failed"; }
    chroot "$BASE.new" apt-get clean
    echo "$STAMP" >"$BASE.new/.pkgtest-stamp"
    mv "$BASE.new" "$BASE"
else
    say "root: cached $BASE"
fi
rm -rf "$ROOT"
cp -a "$BASE" "$ROOT"

# ---------------------------------------------------------------- packages ----
if [[ -n ${FTPMONITOR_PKGTEST_DEB:-} ]]; then
    DEB1=$FTPMONITOR_PKGTEST_DEB
    [[ -f $DEB1 ]] || die "FTPMONITOR_PKGTEST_DEB=$DEB1: no such file"
else
    command -v cargo-deb >/dev/null || die "cargo-deb is not installed: cargo install cargo-deb"
    say "cargo deb"
    (cd "$REPO" && cargo deb --locked) >"$LOGS/cargo-deb.log" 2>&1 ||
        { tail -n 20 "$LOGS/cargo-deb.log" >&2; die "cargo deb failed"; }
    DEB1=$(tail -n 1 "$LOGS/cargo-deb.log")
fi
VER1=$(dpkg-deb -f "$DEB1" Version)
VER2=$VER1+pkgtest1
cp "$DEB1" "$WORK/debs/old.deb"
# The upgrade: the same package under a higher version. Repacked with dpkg-deb
# rather than made by `cargo deb --deb-version`, which deletes every other
# version of the package from target/debian/, the one just built included.
rm -rf "$WORK/debs/new"
dpkg-deb -R "$DEB1" "$WORK/debs/new"
sed -i "s/^Version: .*/Version: $VER2/" "$WORK/debs/new/DEBIAN/control"
dpkg-deb --root-owner-group -b "$WORK/debs/new" "$WORK/debs/new.deb" >/dev/null
rm -rf "$WORK/debs/new"
dpkg --compare-versions "$VER2" gt "$VER1" || die "$VER2 does not sort after $VER1"
say "packages: $VER1 and, for the upgrade, $VER2"

# ---------------------------------------------------------------- FTP server ----
timeout 600 bash "$REPO/tests/interop/setup.sh" >"$LOGS/interop-setup.log" 2>&1 ||
    { tail -n 20 "$LOGS/interop-setup.log" >&2; die "tests/interop/setup.sh failed"; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=''
for _ in $(seq 50); do
    p=$((31000 + RANDOM % 900))
    if port_free "$p"; then PORT=$p; break; fi
done
[[ -n $PORT ]] || die "no free port in 31000-31899"
# Passive ports: 20 of their own for each hundred control ports, below Linux's ephemeral range.
block=$(((PORT - 31000) / 100))
PASV_MIN=$((32000 + block * 20)) PASV_MAX=$((32000 + block * 20 + 19))
RUN=$WORK/ftp/run FTPROOT=$WORK/ftp/root
mkdir -p "$RUN" "$FTPROOT"
chown 65534:65534 "$FTPROOT"
FTP_USER=pkgtest FTP_PASSWORD=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s:%s:65534:65534::%s/./::::::::::::\n' "$FTP_USER" "$(printf '%s\n' "$FTP_PASSWORD" | openssl passwd -6 -stdin)" \
    "$FTPROOT" >"$RUN/pureftpd.passwd"
chmod 600 "$RUN/pureftpd.passwd"
"$SERVERS/pure-ftpd/usr/bin/pure-pw" mkdb "$RUN/pureftpd.pdb" -f "$RUN/pureftpd.passwd" </dev/null >/dev/null
ftpd_args=()
while read -r flag value; do
    [[ -z $flag || $flag == \#* ]] && continue
    ftpd_args+=("$flag" ${value:+"$value"})
done < <(sed -e "s|{{ADDRESS}}|127.0.0.1|g; s|{{PORT}}|$PORT|g; s|{{PASV_MIN}}|$PASV_MIN|g" \
    -e "s|{{PASV_MAX}}|$PASV_MAX|g; s|{{RUN}}|$RUN|g" "$REPO/tests/interop/pure-ftpd.conf")
grep -q '{{' < <(printf '%s\n' "${ftpd_args[@]}") && die "tests/interop/pure-ftpd.conf has a placeholder this script does not fill"
"$SERVERS/pure-ftpd/usr/sbin/pure-ftpd" "${ftpd_args[@]}" </dev/null >"$LOGS/pure-ftpd.log" 2>&1 &
FTPD_PID=$!

# ---------------------------------------------------------------- helpers ----
failed() {
    echo "FAIL $*"
    echo "---- diagnostics"
    in_root sh -c 'systemctl status --no-pager "ftpmonitor@*" 2>&1; journalctl --no-pager -n 40 -u "ftpmonitor@*" 2>&1;
        tail -n 20 /var/log/ftpmonitor/job.log 2>&1' || true
    [[ -f $LOGS/daemon.log ]] && tail -n 20 "$LOGS/daemon.log"
    tail -n 5 "$LOGS/pure-ftpd.log" "$RUN/xferlog" 2>/dev/null
    exit 1
}
# check DESCRIPTION COMMAND...: the command succeeds (on the host).
check() {
    local what=$1
    shift
    if "$@" >"$LOGS/last-check.out" 2>&1; then echo "ok   $what"; else cat "$LOGS/last-check.out"; failed "$what"; fi
}
# in_root COMMAND...: runs it inside the root (the booted container or the chroot).
in_container() { nsenter --target "$LEADER" --all --root --wd=/ env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@"; }
in_root() {
    if [[ $MODE == nspawn ]]; then
        in_container "$@"
    else
        chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@"
    fi
}
# check_root DESCRIPTION SHELL-CODE: the code succeeds inside the root.
check_root() { check "$1" in_root sh -ec "$2"; }
# wait_for DESCRIPTION SECONDS COMMAND...: polls until the command succeeds.
wait_for() {
    local what=$1 secs=$2 deadline=$((SECONDS + $2))
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || failed "$what (waited $secs s)"
        sleep 0.2
    done
    echo "ok   $what"
}
arrived() { cmp -s "$ROOT/srv/drop/$1" "$FTPROOT/incoming/$1"; }
wait_for "pure-ftpd listens on 127.0.0.1:$PORT" 20 eval '! port_free $PORT'

# ---------------------------------------------------------------- boot ----
boot() {
    systemd-nspawn --quiet --register=no --keep-unit --machine="$MACHINE" -D "$ROOT" -b \
        --bind-ro="$WORK/debs:/debs" </dev/null >"$LOGS/console.log" 2>&1 &
    NSPAWN_PID=$!
    local deadline=$((SECONDS + 60)) state=''
    while ((SECONDS < deadline)) && kill -0 "$NSPAWN_PID" 2>/dev/null; do
        LEADER=$(pgrep -P "$NSPAWN_PID" | head -n 1 || true)
        if [[ -n $LEADER ]]; then
            state=$(in_container timeout 5 systemctl is-system-running 2>/dev/null || true)
            [[ $state == running || $state == degraded ]] && return 0
        fi
        sleep 0.5
    done
    echo "the container did not boot (state: ${state:-none}); last console lines:"
    tail -n 10 "$LOGS/console.log"
    return 1
}
if [[ $MODE != chroot ]]; then
    if boot; then
        MODE=nspawn
        say "mode nspawn: the root booted with systemd as PID 1 ($(in_container systemctl is-system-running || true))"
    else
        [[ $MODE == nspawn ]] && die "FTPMONITOR_PKGTEST_MODE=nspawn, but the container does not boot"
        kill -TERM "$NSPAWN_PID" 2>/dev/null || true
        wait_gone "$NSPAWN_PID" 30 || kill -KILL "$NSPAWN_PID"
        NSPAWN_PID='' LEADER=''
        MODE=chroot
    fi
fi
if [[ $MODE == chroot ]]; then
    say "mode chroot: dpkg -i into a chroot, the unit's ExecStart= run by hand"
    mount -t proc proc "$ROOT/proc" && MOUNTED+=("$ROOT/proc")
    mount -t tmpfs -o mode=0755 tmpfs "$ROOT/run" && MOUNTED+=("$ROOT/run")
    mkdir -p "$ROOT/debs" && cp "$WORK/debs/"*.deb "$ROOT/debs/"
fi

# ---------------------------------------------------------------- install ----
say "step 1: install $VER1"
check_root "fresh root: no user ftpmonitor" '! getent passwd ftpmonitor'
check_root "dpkg -i $VER1" 'dpkg -i /debs/old.deb'
check_root "user and group ftpmonitor: system uid, no login shell, home /var/lib/ftpmonitor" '
    IFS=: read -r name _ uid gid _ home shell <<EOF
$(getent passwd ftpmonitor)
EOF
    [ "$uid" -lt 1000 ] && [ "$home" = /var/lib/ftpmonitor ] && [ "$shell" = /usr/sbin/nologin ]
    [ "$(getent group ftpmonitor | cut -d: -f3)" = "$gid" ]'
check_root "/var/lib/ftpmonitor and /var/log/ftpmonitor: ftpmonitor:ftpmonitor 0750" '
    [ "$(stat -c "%U:%G %a" /var/lib/ftpmonitor)" = "ftpmonitor:ftpmonitor 750" ]
    [ "$(stat -c "%U:%G %a" /var/log/ftpmonitor)" = "ftpmonitor:ftpmonitor 750" ]'
check_root "conffiles: the example config and the logrotate snippet" '
    c=$(dpkg-query -W -f="\${Conffiles}" ftpmonitor)
    echo "$c" | grep -q "^ /etc/ftpmonitor/ftpmonitor.toml.example "
    echo "$c" | grep -q "^ /etc/logrotate.d/ftpmonitor "'
check_root "/usr/bin/ftpmonitor runs" '/usr/bin/ftpmonitor --version | grep -q "^ftpmonitor "'
check_root "man pages and bash, zsh and fish completions" '
    man -w ftpmonitor && man -w ftpmonitor-check && man -w ftpmonitor-status
    test -s /usr/share/bash-completion/completions/ftpmonitor
    test -s /usr/share/zsh/vendor-completions/_ftpmonitor
    test -s /usr/share/fish/vendor_completions.d/ftpmonitor.fish'
check_root "systemd-analyze verify: both units and an instance, no output" '
    out=$(systemd-analyze verify --man=yes /usr/lib/systemd/system/ftpmonitor.service \
        /usr/lib/systemd/system/ftpmonitor@.service:ftpmonitor@job.service 2>&1)
    [ -z "$out" ] || { echo "$out"; exit 1; }'
check_root "logrotate --debug parses /etc/logrotate.d/ftpmonitor" '
    out=$(logrotate --debug /etc/logrotate.d/ftpmonitor 2>&1) || { echo "$out"; exit 1; }
    ! echo "$out" | grep -qiE "^error|unknown|bad "'
if [[ $MODE == nspawn ]]; then
    check_root "nothing enabled or running after the install" '
        [ "$(systemctl is-enabled ftpmonitor.service)" = disabled ]
        ! systemctl is-active --quiet ftpmonitor.service
        ! pgrep -x ftpmonitor'
fi

# ---------------------------------------------------------------- start ----
say "step 2: start ftpmonitor@job"
mkdir -p "$ROOT/srv/drop"
printf 'before the start\n' >"$ROOT/srv/drop/first.txt"
cat >"$ROOT/etc/ftpmonitor/job.toml" <<EOF
watch-dir     = "/srv/drop"
host          = "127.0.0.1"
port          = $PORT
remote-dir    = "/incoming"
user          = "$FTP_USER"
password-file = "job.password"
cooldown      = "200ms"
EOF
printf '%s\n' "$FTP_PASSWORD" >"$ROOT/etc/ftpmonitor/job.password"
check_root "the password file: root:ftpmonitor 0640" 'chown root:ftpmonitor /etc/ftpmonitor/job.password && chmod 0640 /etc/ftpmonitor/job.password'
EXEC=$(sed -n 's/^ExecStart=//p' "$ROOT/usr/lib/systemd/system/ftpmonitor@.service" | sed 's/%i/job/g')
[[ $EXEC == /usr/bin/ftpmonitor\ * ]] || die "unexpected ExecStart= in the installed unit: $EXEC"

start_job() {
    if [[ $MODE == nspawn ]]; then
        check_root "systemctl enable --now ftpmonitor@job" 'timeout 60 systemctl enable --now ftpmonitor@job'
        check_root "ftpmonitor@job is active, as user ftpmonitor" '
            systemctl is-active --quiet ftpmonitor@job
            pid=$(systemctl show -p MainPID --value ftpmonitor@job)
            [ "$(ps -o user= -p "$pid")" = ftpmonitor ]'
    else
        # What systemd would do first: RuntimeDirectory= and StateDirectory=.
        check_root "/run/ftpmonitor and /var/lib/ftpmonitor/job, as systemd makes them" '
            install -d -o ftpmonitor -g ftpmonitor -m 0755 /run/ftpmonitor
            install -d -o ftpmonitor -g ftpmonitor -m 0750 /var/lib/ftpmonitor/job'
        # shellcheck disable=SC2086 # the unit's command line, split as systemd splits this one
        chroot --userspec=ftpmonitor:ftpmonitor "$ROOT" env -i PATH=/usr/bin:/bin LC_ALL=C $EXEC \
            </dev/null >>"$LOGS/daemon.log" 2>&1 &
        DAEMON_PID=$!
        echo "ok   started as ftpmonitor: $EXEC"
    fi
}
start_job
wait_for "first.txt (there before the start) arrives on the server" 30 arrived first.txt
printf 'while it runs\n' >"$ROOT/srv/drop/second.txt"
wait_for "second.txt (written while it runs) arrives on the server" 30 arrived second.txt
check_root "PID file, journal and log file of the instance" '
    test -s /run/ftpmonitor/job.pid && test -s /var/lib/ftpmonitor/job/journal.sqlite
    grep -q "second.txt" /var/log/ftpmonitor/job.log'
check "the password is in no log line" sh -c "! grep -rqF '$FTP_PASSWORD' '$ROOT/var/log/ftpmonitor' '$LOGS/daemon.log' 2>/dev/null"

# ---------------------------------------------------------------- upgrade ----
say "step 3: upgrade to $VER2"
echo '# edited by the operator' >>"$ROOT/etc/ftpmonitor/ftpmonitor.toml.example"
uid_before=$(in_root id -u ftpmonitor)
if [[ $MODE == nspawn ]]; then
    pid_before=$(in_root systemctl show -p MainPID --value ftpmonitor@job)
fi
check_root "dpkg -i $VER2" 'dpkg -i /debs/new.deb && [ "$(dpkg-query -W -f="\${Version}" ftpmonitor)" = "'"$VER2"'" ]'
if [[ $MODE == nspawn ]]; then
    check_root "ftpmonitor@job restarted on the new binary" '
        systemctl is-active --quiet ftpmonitor@job
        pid=$(systemctl show -p MainPID --value ftpmonitor@job)
        [ "$pid" != "'"$pid_before"'" ] && [ "$pid" != 0 ]
        exe=$(readlink /proc/$pid/exe); [ "$exe" = /usr/bin/ftpmonitor ]'
else
    echo "skip restart on upgrade (chroot: no systemd runs the units); restarting by hand"
    kill -TERM "$DAEMON_PID"
    wait_gone "$DAEMON_PID" 30 || failed "the daemon did not stop on SIGTERM"
    DAEMON_PID=''
    start_job
fi
check_root "the operator's edit of the conffile is kept" 'tail -n 1 /etc/ftpmonitor/ftpmonitor.toml.example | grep -q "edited by the operator"'
check_root "same user, journal kept" '[ "$(id -u ftpmonitor)" = "'"$uid_before"'" ] && test -s /var/lib/ftpmonitor/job/journal.sqlite'
printf 'after the upgrade\n' >"$ROOT/srv/drop/third.txt"
wait_for "third.txt (after the upgrade) arrives on the server" 30 arrived third.txt

# ---------------------------------------------------------------- remove ----
say "step 4: remove"
if [[ $MODE == chroot ]]; then
    # prerm stops the units through systemd; here the daemon is ours to stop.
    kill -TERM "$DAEMON_PID"
    wait_gone "$DAEMON_PID" 30 || failed "the daemon did not stop on SIGTERM"
    DAEMON_PID=''
fi
check_root "dpkg -r ftpmonitor" 'dpkg -r ftpmonitor'
check_root "binary, units, man page gone" '
    [ ! -e /usr/bin/ftpmonitor ] && [ ! -e /usr/lib/systemd/system/ftpmonitor@.service ]
    [ ! -e /usr/share/man/man8/ftpmonitor.8.gz ]
    [ "$(dpkg-query -W -f="\${db:Status-Abbrev}" ftpmonitor)" = "rc " ]'
check_root "kept: conffiles, config, journal, logs, user" '
    test -f /etc/ftpmonitor/ftpmonitor.toml.example && test -f /etc/logrotate.d/ftpmonitor
    test -f /etc/ftpmonitor/job.toml && test -s /var/lib/ftpmonitor/job/journal.sqlite
    test -s /var/log/ftpmonitor/job.log && getent passwd ftpmonitor'
if [[ $MODE == nspawn ]]; then
    # pgrep sees the container's processes only (its own PID namespace).
    check_root "stopped: ftpmonitor@job inactive, no ftpmonitor process" '
        ! systemctl is-active --quiet ftpmonitor@job
        ! pgrep -x ftpmonitor'
fi

# ---------------------------------------------------------------- purge ----
say "step 5: purge"
check_root "dpkg -P ftpmonitor" 'dpkg -P ftpmonitor'
check_root "gone: conffiles, journal, logs, runtime dir, enable link, the package" '
    [ ! -e /etc/ftpmonitor/ftpmonitor.toml.example ] && [ ! -e /etc/logrotate.d/ftpmonitor ]
    [ ! -e /var/lib/ftpmonitor ] && [ ! -e /var/log/ftpmonitor ] && [ ! -e /run/ftpmonitor ]
    ! ls /etc/systemd/system/*.wants/ftpmonitor* 2>/dev/null
    ! dpkg-query -W ftpmonitor 2>/dev/null'
check_root "kept: the user ftpmonitor and the operator's own config" 'getent passwd ftpmonitor && test -f /etc/ftpmonitor/job.toml'

say "all checks passed ($MODE, $((SECONDS)) s)"
