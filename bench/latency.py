#!/usr/bin/env python3
"""Time from a file's close to its arrival under its final name on the server.

Runs ftpmonitor in the foreground with --cooldown 0 against an FTP server whose
root directory is on this machine, writes 30 files of 4 KiB one after the
other, and for each one measures the time from close() to the moment the final
name exists in the server's directory on disk.

    bench/latency.py BINARY SERVER_ROOT PORT [USER] [PASSWORD]

e.g. against the pure-ftpd the shared benchmark starts, or any local server
whose files lie under SERVER_ROOT (the remote directory used is /lat).
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    binary, root, port = sys.argv[1:4]
    user = sys.argv[4] if len(sys.argv) > 4 else "bench"
    password = sys.argv[5] if len(sys.argv) > 5 else "bench"
    work = tempfile.mkdtemp(prefix="ftpmonitor-latency.")
    watch = os.path.join(work, "watch")
    os.mkdir(watch)
    remote = os.path.join(root, "lat")
    shutil.rmtree(remote, ignore_errors=True)
    log = os.path.join(work, "log")
    env = dict(os.environ, FTPMONITOR_PASSWORD=password)
    proc = subprocess.Popen(
        [binary, "--foreground", "--cooldown", "0", "--state-dir", os.path.join(work, "state"),
         "--pid-file", os.path.join(work, "pid"), "--log-file", log, "--user", user,
         watch, "127.0.0.1", port, "/lat"],
        env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not (os.path.exists(log) and "ready:" in open(log).read()):
            if time.monotonic() > deadline:
                sys.exit("ftpmonitor did not get ready within 10 s")
            time.sleep(0.01)
        latencies = []
        for i in range(30):
            name = f"f{i}.bin"
            with open(os.path.join(watch, name), "wb") as f:
                f.write(os.urandom(4096))
            start = time.monotonic()
            target = os.path.join(remote, name)
            while not os.path.exists(target):
                if time.monotonic() - start > 10:
                    sys.exit(f"{name} did not arrive within 10 s")
                time.sleep(0.0005)
            latencies.append((time.monotonic() - start) * 1000)
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    latencies.sort()
    print(f"close to arrival, --cooldown 0, 30 files of 4 KiB: median {statistics.median(latencies):.1f} ms, "
          f"min {latencies[0]:.1f} ms, max {latencies[-1]:.1f} ms")


if __name__ == "__main__":
    main()
