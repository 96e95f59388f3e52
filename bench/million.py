#!/usr/bin/env python3
"""ftpmonitor with a million files: the first push, a run with nothing
changed, the daemon watching the synced tree, and a sync after the kernel's
event queue overflowed. One run of each, against the benchmark's pure-ftpd
on loopback.

    sudo TMPDIR=/dev/shm bench/million.py [--files 1000000] [--binary B]

The tree: FILES one-byte files in 100 top directories of 100 directories
each (10,100 directories, 100 files in each leaf at a million). It needs
about 3 GiB of memory on tmpfs for both sides, and about 15 minutes on
2 cores. It raises fs.inotify.max_user_watches if it is below the tree's
directories. The overflow: the daemon is stopped (SIGSTOP) while 6,000 files
are written into directories it watches, more events than the kernel's queue
(fs.inotify.max_queued_events, 16,384 by default) holds.
"""

import argparse
import os
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import latency  # noqa: E402
import run  # noqa: E402

QUEUED = Path("/proc/sys/fs/inotify/max_queued_events")
# Each new file is 4 events (create, open, modify, close): more than the
# kernel's default queue of 16,384.
BURST = 6000
WATCHES = Path("/proc/sys/fs/inotify/max_user_watches")


def say(msg):
    print(f"million: {msg}", file=sys.stderr, flush=True)


def gen(root, files):
    per_leaf = 100
    leaves = -(-files // per_leaf)
    made = 0
    for leaf in range(leaves):
        d = root / f"d{leaf // 100:02}" / f"e{leaf % 100:02}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(min(per_leaf, files - made)):
            fd = os.open(d / f"f{i:02}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, b"x")
            os.close(fd)
        made += min(per_leaf, files - made)


def count_files(root):
    return sum(len(f) for _, _, f in os.walk(root))


def once(binary, local, remote, state, work, port):
    env = dict(os.environ, FTPMONITOR_PASSWORD=run.PASSWORD)
    argv = [str(binary), "--once", "--foreground", "--parallel", "4", "--user", run.USER,
            "--state-dir", str(state), "--pid-file", str(work / "pid"), "--log-file", str(work / "once.log"),
            str(local), "127.0.0.1", str(port), remote]
    wall, code, cpu, peak = run.timed(argv, env, work / "once.out", 3600)
    if code != 0:
        sys.exit(f"--once exited {code}: {(work / 'once.out').read_text(errors='replace')[-600:]}")
    return wall, cpu, peak


def inotify_watches(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            n += sum(1 for line in open(f"/proc/{pid}/fdinfo/{fd}") if line.startswith("inotify wd:"))
        except OSError:
            pass
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--binary", default=str(run.REPO / "target/release/ftpmonitor"))
    ap.add_argument("--port", type=int, default=2141)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: pure-ftpd needs it, and the inotify limits are set for the overflow")
    binary = Path(args.binary).resolve()
    import tempfile
    work = Path(tempfile.mkdtemp(prefix="ftpmonitor-million-"))
    server = None
    try:
        local = work / "tree"
        local.mkdir()
        t = time.monotonic()
        gen(local, args.files)
        dirs = sum(1 for _ in local.rglob("*") if _.is_dir()) + 1
        say(f"{args.files} files in {dirs} directories made in {time.monotonic() - t:.0f} s")
        if int(WATCHES.read_text()) < dirs + 1000:
            WATCHES.write_text(str(dirs + 1000))
        server = run.Server(work, args.port, (32000, 32099))
        state = work / "state"
        latency.remote_dir(server.root, "m")
        rows = []

        say("first push (--once)")
        wall, cpu, peak = once(binary, local, "/m", state, work, args.port)
        got = count_files(server.root / "m")
        rows.append(("first push, `--once`", f"{wall:.1f} s ({args.files / wall:,.0f} files/s)",
                     f"CPU {cpu:.1f} s, peak RSS {peak / 1024:.0f} MiB, {got:,} files on the server"))
        if got != args.files:
            sys.exit(f"the server holds {got} files, not {args.files}")

        say("nothing changed (--once again)")
        wall, cpu, peak = once(binary, local, "/m", state, work, args.port)
        rows.append(("nothing changed, `--once` again", f"{wall:.2f} s",
                     f"CPU {cpu:.2f} s, peak RSS {peak / 1024:.0f} MiB"))

        say("the daemon over the synced tree")
        started = time.monotonic()
        proc = latency.start_daemon(str(binary), local, "/m", args.port, run.USER, run.PASSWORD, work,
                                    cooldown="1", state=state, ready_timeout=600)
        try:
            ready = time.monotonic() - started
            ticks = latency.cpu_ticks(proc.pid)
            while True:
                time.sleep(1)
                now = latency.cpu_ticks(proc.pid)
                if now == ticks:
                    break
                ticks = now
            time.sleep(3)
            idle = latency.cpu_ticks(proc.pid) - now
            rss = latency.status_kib(proc.pid, "VmRSS")
            hwm = latency.status_kib(proc.pid, "VmHWM")
            watches = inotify_watches(proc.pid)
            lost = (work / "ftpmonitor.log").read_text(errors="replace").count("event queue overflow")
            rows.append(("daemon start over the synced tree", f"ready after {ready:.1f} s",
                         f"RSS {rss / 1024:.0f} MiB once idle (peak {hwm / 1024:.0f} MiB), {watches:,} inotify "
                         f"watches, {idle} CPU ticks in 3 s idle, {lost} event queue overflows at start"))

            say(f"{BURST:,} new files in watched directories written while the daemon is stopped (SIGSTOP): "
                f"their {4 * BURST:,} events overflow the kernel's queue of {QUEUED.read_text().strip()}")
            log = work / "ftpmonitor.log"
            before = log.read_text(errors="replace")
            os.kill(proc.pid, signal.SIGSTOP)
            # Into directories the daemon watches: every file is events
            # (a new directory would be walked, needing only one).
            new = [local / "d00" / f"e{i // 100 % 100:02}" / f"new{i:05}" for i in range(BURST)]
            for p in new:
                p.write_bytes(b"y")
            t = time.monotonic()
            os.kill(proc.pid, signal.SIGCONT)
            deadline = time.monotonic() + 900
            targets = [server.root / "m" / p.relative_to(local) for p in new]
            while not all(p.exists() for p in targets):
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit("the burst did not arrive")
                time.sleep(0.1)
            synced = time.monotonic() - t
            # The log is written in batches: give it a moment.
            until = time.monotonic() + 10
            while True:
                text = log.read_text(errors="replace")[len(before):]
                overflowed = "event queue overflow" in text
                if overflowed or time.monotonic() > until:
                    break
                time.sleep(0.2)
            rows.append((f"{BURST:,} new files while events were lost",
                         f"all on the server {synced:.1f} s after SIGCONT",
                         "after an event queue overflow (watch rebuilt, whole tree reconciled)" if overflowed
                         else "no overflow happened: events only"))
            rss = latency.status_kib(proc.pid, "VmRSS")
            hwm = latency.status_kib(proc.pid, "VmHWM")
            rows.append(("daemon after the burst", f"RSS {rss / 1024:.0f} MiB", f"peak {hwm / 1024:.0f} MiB"))
        finally:
            latency.stop(proc)

        print(f"ftpmonitor with {args.files:,} one-byte files in {dirs:,} directories, pure-ftpd on loopback, "
              f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs\n")
        print("| run | time | notes |\n|---|---|---|")
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]} |")
    finally:
        if server:
            server.stop()
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
