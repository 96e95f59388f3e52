#!/usr/bin/env python3
"""The daemon's side of the benchmark: how long a file takes from its close to
its arrival under its final name on the server, whether the daemon uses CPU
while idle, and how much memory it holds while watching a tree.

    bench/latency.py BINARY SERVER_ROOT PORT [USER [PASSWORD]]

runs ftpmonitor in the foreground with --cooldown 0 against an FTP server on
127.0.0.1:PORT whose files lie under SERVER_ROOT on this machine (bench/run.py
starts one), writes 200 files of 4 KiB one after the other, and prints the
median, 99th percentile and maximum. Arrival is seen with inotify on the
server's directory (the rename to the final name), so measuring costs no CPU
that the daemon or the server would miss.
"""

import ctypes
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IN_MOVED_TO, IN_CREATE, IN_CLOEXEC, IN_NONBLOCK = 0x80, 0x100, 0o2000000, 0o4000


class Inotify:
    """Just enough of inotify(7) to wait for names arriving in one directory."""

    def __init__(self, directory):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(IN_CLOEXEC | IN_NONBLOCK)
        if self.fd < 0 or self.libc.inotify_add_watch(self.fd, os.fsencode(directory), IN_MOVED_TO | IN_CREATE) < 0:
            raise OSError(ctypes.get_errno(), "inotify")
        self.seen = {}

    def wait_for(self, name, deadline):
        """The monotonic time `name` arrived under its final name."""
        while name not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TimeoutError(name)
            now = time.monotonic()
            data = os.read(self.fd, 65536)
            at = 0
            while at < len(data):
                _, mask, _, size = struct.unpack_from("iIII", data, at)
                got = data[at + 16:at + 16 + size].rstrip(b"\0").decode()
                at += 16 + size
                if mask & IN_MOVED_TO:
                    self.seen.setdefault(got, now)
        return self.seen[name]

    def close(self):
        os.close(self.fd)


def cpu_ticks(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def status_kib(pid, key):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def start_daemon(binary, watch, remote, port, user, password, work, cooldown="0", state=None, ready_timeout=30):
    log = work / "ftpmonitor.log"
    env = dict(os.environ, FTPMONITOR_PASSWORD=password)
    proc = subprocess.Popen(
        [binary, "--foreground", "--cooldown", cooldown, "--state-dir", str(state or work / "state"),
         "--pid-file", str(work / "pid"), "--log-file", str(log), "--user", user,
         str(watch), "127.0.0.1", str(port), remote],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + ready_timeout
    while not (log.exists() and "ready:" in log.read_text(errors="replace")):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            sys.exit(f"ftpmonitor did not get ready: {log.read_text(errors='replace')[-400:] if log.exists() else ''}")
        time.sleep(0.02)
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def remote_dir(root, name):
    """A fresh directory on the server's disk, owned like the server's root."""
    d = Path(root) / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    st = os.stat(root)
    os.chown(d, st.st_uid, st.st_gid)
    return d


def percentile(sorted_values, p):
    """Nearest-rank percentile."""
    k = max(0, min(len(sorted_values) - 1, -(-len(sorted_values) * p // 100) - 1))
    return sorted_values[int(k)]


def measure(binary, root, port, user="bench", password="bench", count=200, work=None, idle_seconds=3):
    work = Path(work or tempfile.mkdtemp(prefix="ftpmonitor-latency."))
    watch = work / "watch"
    watch.mkdir(parents=True)
    target = remote_dir(root, "latency")
    arrivals = Inotify(target)
    proc = start_daemon(binary, watch, "/latency", port, user, password, work)
    try:
        latencies = []
        for i in range(count):
            name = f"f{i:03}.bin"
            with open(watch / name, "wb") as f:
                f.write(os.urandom(4096))
            closed = time.monotonic()
            latencies.append((arrivals.wait_for(name, closed + 10) - closed) * 1000)
            time.sleep(0.05)
        time.sleep(0.5)
        before = cpu_ticks(proc.pid)
        time.sleep(idle_seconds)
        idle = cpu_ticks(proc.pid) - before
    finally:
        stop(proc)
        arrivals.close()
        shutil.rmtree(target, ignore_errors=True)
    latencies.sort()
    return dict(count=count, p50_ms=percentile(latencies, 50), p99_ms=percentile(latencies, 99),
                max_ms=latencies[-1], idle_cpu_ticks=idle, idle_seconds=idle_seconds)


def rss_by_mapping(pid, top=6):
    """Resident KiB per mapped file (or [heap], [stack], anonymous), largest first."""
    sizes, name = {}, None
    try:
        for line in open(f"/proc/{pid}/smaps"):
            first = line.split()[0] if line.strip() else ""
            if "-" in first and ":" not in first:
                parts = line.split(None, 5)
                name = parts[5].strip() if len(parts) > 5 else "[anonymous]"
                name = os.path.basename(name) if name.startswith("/") else name
            elif first == "Rss:" and name is not None:
                sizes[name] = sizes.get(name, 0) + int(line.split()[1])
    except OSError:
        return []
    return sorted(sizes.items(), key=lambda kv: -kv[1])[:top]


def memory(binary, root, port, user, password, local, count, work, timeout=600):
    """VmRSS and VmHWM of the daemon once it has synced `count` files of
    `local` and gone idle."""
    work = Path(work)
    work.mkdir(parents=True)
    name = f"memory-{Path(local).name}"
    target = remote_dir(root, name)
    proc = start_daemon(binary, local, f"/{name}", port, user, password, work, cooldown="1")
    try:
        deadline = time.monotonic() + timeout
        while sum(len(f) for _, _, f in os.walk(target)) < count:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the daemon did not sync {count} files of {local}")
            time.sleep(0.2)
        # Idle: no CPU used for a whole second.
        ticks = cpu_ticks(proc.pid)
        while True:
            time.sleep(1)
            now = cpu_ticks(proc.pid)
            if now == ticks:
                break
            ticks = now
        return dict(rss_kib=status_kib(proc.pid, "VmRSS"), hwm_kib=status_kib(proc.pid, "VmHWM"),
                    anon_kib=status_kib(proc.pid, "RssAnon"), file_kib=status_kib(proc.pid, "RssFile"),
                    by_mapping=rss_by_mapping(proc.pid))
    finally:
        stop(proc)
        shutil.rmtree(target, ignore_errors=True)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    binary, root, port = sys.argv[1:4]
    user = sys.argv[4] if len(sys.argv) > 4 else "bench"
    password = sys.argv[5] if len(sys.argv) > 5 else "bench"
    r = measure(binary, root, int(port), user, password)
    print(f"close to arrival, --cooldown 0, {r['count']} files of 4 KiB: p50 {r['p50_ms']:.2f} ms, "
          f"p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.2f} ms; {r['idle_cpu_ticks']} CPU ticks "
          f"in {r['idle_seconds']} s idle")


if __name__ == "__main__":
    main()
