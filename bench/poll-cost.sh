#!/usr/bin/env bash
# The CPU cost of --poll: builds a tree of 20,000 files of 1 KiB in 2,110
# directories in /dev/shm, runs the release binary on it for WINDOW seconds
# with inotify, with --poll 1s and with --poll 5s (the server is unreachable,
# so nothing but watching runs: the daemon only retries its login now and
# then), and prints the CPU time each used, from /proc/PID/stat.
#
#   cargo build --release && bench/poll-cost.sh [WINDOW]
set -euo pipefail
bin=${FTPMONITOR:-target/release/ftpmonitor}
window=${1:-30}
tree=$(mktemp -d /dev/shm/ftpmonitor-poll.XXXXXX)
trap 'rm -rf "$tree"' EXIT
python3 - "$tree/w" <<'PY'
import os, sys
root = sys.argv[1]
for a in range(10):
    for b in range(10):
        for c in range(20):
            d = f"{root}/a{a}/b{b}/c{c}"
            os.makedirs(d, exist_ok=True)
            for i in range(10):
                with open(f"{d}/f{i}", "wb") as f:
                    f.write(b"x" * 1024)
PY
hz=$(getconf CLK_TCK)
run() {
    local st; st=$(mktemp -d "$tree/state.XXXXXX")
    "$bin" --foreground --pid-file "$st/pid" --log-file "$st/log" --state-dir "$st/state" \
        --cooldown 1 --rescan-interval 0 "$@" "$tree/w" 127.0.0.1 1 /up >/dev/null 2>&1 &
    local pid=$!
    sleep 5   # start-up: the first walk and the poll watcher's first scan
    local t0 t1; t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    sleep "$window"
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    awk -v t="$((t1 - t0))" -v hz="$hz" -v w="$window" -v m="${*:-inotify}" \
        'BEGIN { printf "%-12s %6.2f s CPU in %d s\n", m, t / hz, w }'
}
run
run --poll 1s
run --poll 5s
