#!/usr/bin/env python3
"""ftpmonitor's benchmark: it pushes generated trees to a real pure-ftpd on
loopback, beside lftp, rclone and curl, and prints how it compares.

    sudo bench/setup.sh                 # once: the peers and pure-ftpd from Debian
    cargo build --release
    sudo TMPDIR=/dev/shm bench/run.py   # everything, about 15 minutes on 2 cores
    sudo TMPDIR=/dev/shm bench/run.py --quick          # one run of each, smaller set
    sudo TMPDIR=/dev/shm bench/run.py --only small,big --reps 5

Every run is timed as a whole (process start to exit), the tools take turns
(the order rotates every round, so that drift on a shared host hits all of
them alike), each run's remote tree is compared with the local one on the
server's disk (paths, sizes, content, and whether mtimes were kept), and the
report gives medians, the spread, and ftpmonitor's time divided by the
fastest peer's. See bench/README.md.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import pwd
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import latency  # noqa: E402  (bench/latency.py)

USER, PASSWORD = "bench", "bench"
MTIME = 1_700_000_000  # every generated file's mtime: 2023-11-14 22:13:20 UTC
KIB, MIB = 1024, 1024 * 1024

# ----------------------------------------------------------------- workloads --


def content(key, size):
    """Deterministic bytes for one file: a PRNG seeded by the file's key."""
    rng = random.Random(key)
    if size <= 8 * MIB:
        return [rng.randbytes(size)]
    return (rng.randbytes(min(8 * MIB, size - at)) for at in range(0, size, 8 * MIB))


def write_file(path, key, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for part in content(key, size):
            f.write(part)
    os.utime(path, (MTIME, MTIME))


def gen_small(d):
    for i in range(20):
        for j in range(100):
            write_file(d / f"d{i:02}" / f"f{j:03}.bin", f"small/{i}/{j}", 4 * KIB)


def gen_tree(d):
    for a in range(10):
        for b in range(10):
            for c in range(20):
                for f in range(10):
                    write_file(d / f"a{a}" / f"b{b}" / f"c{c:02}" / f"f{f}.txt", f"tree/{a}/{b}/{c}/{f}", KIB)


def gen_mixed(d):
    rng = random.Random("mixed")
    for i in range(500):
        size = int(round(KIB * (8 * KIB) ** rng.random()))  # log-uniform, 1 KiB .. 8 MiB
        write_file(d / f"m{i % 10}" / f"file{i:03}.dat", f"mixed/{i}", size)


def gen_big(size):
    return lambda d: write_file(d / "big.bin", f"big/{size}", size)


def gen_watch(d):
    for i in range(21):
        for j in range(100):
            write_file(d / f"w{i:02}" / f"f{j:03}.txt", f"watch/{i}/{j}", KIB)


DATASETS = {
    "small": (gen_small, "2,000 × 4 KiB in 20 dirs"),
    "tree": (gen_tree, "20,000 × 1 KiB in 2,110 dirs (10×10×20 leaves of 10 files)"),
    "mixed": (gen_mixed, "500 files, 1 KiB–8 MiB log-uniform, 10 dirs"),
    "big": (gen_big(512 * MIB), "1 file of 512 MiB"),
    "big256": (gen_big(256 * MIB), "1 file of 256 MiB"),
    "watch": (gen_watch, "2,100 × 1 KiB in 21 dirs"),
}

# workload -> (dataset, TLS?, peers, phases, target ratio of ftpmonitor to the fastest peer)
WORKLOADS = {
    "small": ("small", False, ["lftp", "rclone", "curl-Z"], ["first", "again"], {"first": 0.6, "again": 0.5}),
    "tree": ("tree", False, ["lftp", "rclone", "curl-Z"], ["first", "again"], {"first": 0.45, "again": 0.1}),
    "mixed": ("mixed", False, ["lftp", "rclone", "curl-Z"], ["first"], {"first": 0.8}),
    "big": ("big", False, ["lftp", "rclone", "curl-T"], ["first"], {"first": 1.1}),
    "ftps-small": ("small", True, ["lftp", "curl-Z"], ["first"], {"first": 0.5}),
    "ftps-big": ("big256", True, ["lftp", "curl-T"], ["first"], {"first": 1.1}),
}
DEFAULT_ORDER = ["small", "tree", "mixed", "big", "ftps-small", "ftps-big"]


def dataset(work, name, keep_dir):
    """The generated tree `name`, made once (kept in `keep_dir` if given)."""
    base = Path(keep_dir) if keep_dir else work / "data"
    d = base / name
    stamp = base / f".{name}.done"
    if stamp.exists() and d.is_dir():
        return d
    shutil.rmtree(d, ignore_errors=True)
    say(f"generating {name}: {DATASETS[name][1]}")
    d.mkdir(parents=True)
    DATASETS[name][0](d)
    stamp.write_text("1")
    return d


# -------------------------------------------------------------------- server --


def say(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def die(msg):
    say(f"error: {msg}")
    sys.exit(1)


def run_quiet(argv, **kw):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def find_server():
    for cand in [os.environ.get("PURE_FTPD"), shutil.which("pure-ftpd"),
                 str(REPO / "target/bench-servers/pure-ftpd/usr/sbin/pure-ftpd"),
                 str(REPO / "target/interop-servers/pure-ftpd/usr/sbin/pure-ftpd")]:
        if cand and os.access(cand, os.X_OK):
            pw = Path(cand).parent.parent / "bin" / "pure-pw"
            pw = str(pw) if os.access(pw, os.X_OK) else shutil.which("pure-pw")
            if pw:
                return cand, pw
    die("no pure-ftpd found: run bench/setup.sh (or set PURE_FTPD)")


class Pki:
    """A throwaway CA and a server certificate it signed for 127.0.0.1."""

    def __init__(self, d):
        d.mkdir(parents=True, exist_ok=True)
        ossl = lambda *a: run_quiet(["openssl", *a], cwd=d)  # noqa: E731
        ossl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
        ossl("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        ossl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "srv.key")
        ossl("req", "-new", "-key", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
        (d / "ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "srv.pem", "-days", "2", "-extfile", "ext")
        (d / "pure-ftpd.pem").write_text((d / "srv.pem").read_text() + (d / "srv.key").read_text())
        self.ca = d / "ca.pem"
        self.server_pem = d / "pure-ftpd.pem"


class Server:
    """pure-ftpd in the foreground on 127.0.0.1: one virtual user chrooted to
    a fresh root owned by nobody; with TLS, required on control and data."""

    def __init__(self, work, port, pasv, pki=None):
        self.dir = work / ("server-tls" if pki else "server")
        self.root = self.dir / "root"
        self.port, self.pki = port, pki
        self.root.mkdir(parents=True)
        nobody = pwd.getpwnam("nobody")
        os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
        binary, pure_pw = find_server()
        # SHA-512-crypt: pure-pw's own argon2id costs seconds per login here,
        # which would weigh on every tool that opens connections.
        hashed = run_quiet(["openssl", "passwd", "-6", "-salt", "ftpbench", PASSWORD]).stdout.strip()
        (self.dir / "passwd").write_text(f"{USER}:{hashed}:{nobody.pw_uid}:{nobody.pw_gid}::{self.root}/./::::::::::::\n")
        run_quiet([pure_pw, "mkdb", str(self.dir / "pdb"), "-f", str(self.dir / "passwd")])
        argv = [binary, "-S", f"127.0.0.1,{port}", "-p", f"{pasv[0]}:{pasv[1]}", "-l", f"puredb:{self.dir / 'pdb'}",
                "-E", "-H", "-A", "-f", "none", "-c", "50", "-C", "50", "-I", "15",
                "-O", f"clf:{self.dir / 'xfer.log'}"]
        if pki:
            argv += ["-Y", "3", "-2", str(pki.server_pem)]
        self.version = server_version(binary)
        self.log = open(self.dir / "server.log", "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    if s.recv(3) == b"220":
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                die(f"pure-ftpd did not start on port {port}: {(self.dir / 'server.log').read_text()[-500:]}")
            time.sleep(0.05)

    def stores(self):
        try:
            return sum(1 for line in open(self.dir / "xfer.log") if '"PUT ' in line)
        except FileNotFoundError:
            return 0

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def server_version(binary):
    out = subprocess.run([binary, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    return out.split("\n")[0].split(" [")[0] or "pure-ftpd"


# --------------------------------------------------------------------- tools --


class Ctx:
    def __init__(self, args, work, plain, tls, binary):
        self.args, self.work, self.plain, self.tls, self.binary = args, work, plain, tls, binary
        # Other builds to run beside it (tool "ftpmonitor:NAME"), e.g. the one before a change.
        self.compare = {f"ftpmonitor:{Path(p).name}": Path(p).resolve() for p in args.compare}
        self.obscured = run_quiet(["rclone", "obscure", PASSWORD]).stdout.strip() if shutil.which("rclone") else ""
        (work / "home").mkdir(exist_ok=True)
        (work / "rclone.conf").write_text("")


def tool_cmd(ctx, tool, local, remote, tls, run_dir, again):
    """argv and environment of one run of `tool` pushing `local` to `remote`."""
    srv = ctx.tls if tls else ctx.plain
    env = dict(os.environ, HOME=str(ctx.work / "home"), LC_ALL="C")
    if tool.startswith("ftpmonitor"):
        env["FTPMONITOR_PASSWORD"] = PASSWORD
        binary = ctx.compare[tool] if tool in ctx.compare else ctx.binary
        argv = [str(binary), "--once", "--foreground", "--pid-file", str(run_dir / "pid"),
                "--log-file", str(run_dir / "log"), "--state-dir", str(run_dir / "state"),
                "--parallel", "4", "--user", USER]
        if tls:
            argv += ["--tls", "--ca-file", str(srv.pki.ca)]
        return argv + [str(local), "127.0.0.1", str(srv.port), remote], env
    if tool == "lftp":
        ssl = ("set ftp:ssl-force yes; set ftp:ssl-protect-data yes; set ssl:verify-certificate yes; "
               f"set ssl:ca-file {srv.pki.ca}; ") if tls else "set ftp:ssl-allow no; "
        script = (f"set cmd:fail-exit yes; set xfer:log no; set net:max-retries 3; set net:reconnect-interval-base 1; "
                  f"set net:timeout 30; {ssl}open -u {USER},{PASSWORD} -p {srv.port} 127.0.0.1; "
                  f"mirror -R --parallel=4 {local} {remote}")
        return ["lftp", "-c", script], env
    if tool == "rclone":
        env.update(RCLONE_CONFIG=str(ctx.work / "rclone.conf"), RCLONE_FTP_HOST="127.0.0.1",
                   RCLONE_FTP_PORT=str(srv.port), RCLONE_FTP_USER=USER, RCLONE_FTP_PASS=ctx.obscured)
        argv = ["rclone", "copy", str(local), f":ftp:{remote}", "--transfers", "4", "--stats", "0", "-q"]
        if tls:
            env["RCLONE_FTP_EXPLICIT_TLS"] = "true"
            argv += ["--ca-cert", str(srv.pki.ca)]
        return argv, env
    base = ["curl", "-sS", "--globoff", "--ftp-create-dirs", "-u", f"{USER}:{PASSWORD}"]
    if tls:
        base += ["--ssl-reqd", "--cacert", str(srv.pki.ca)]
    url = f"ftp://127.0.0.1:{srv.port}{remote}"
    if tool == "curl-T":
        (f,) = [p for p in local.rglob("*") if p.is_file()]
        return base + ["-T", str(f), f"{url}/{f.relative_to(local)}"], env
    if tool == "curl-Z":
        cfg = run_dir / "curl.cfg"
        with open(cfg, "w") as out:
            for p in sorted(local.rglob("*")):
                if p.is_file():
                    out.write(f'url = "{url}/{p.relative_to(local)}"\nupload-file = "{p}"\n')
        return base + ["-Z", "--parallel-max", "4", "--no-progress-meter", "--retry", "3", "--retry-delay", "1",
                       "-K", str(cfg)], env
    raise ValueError(tool)


TOOL_NOTE = {
    "ftpmonitor": "`ftpmonitor --once --parallel 4`",
    "lftp": "`lftp -c 'mirror -R --parallel=4'`",
    "rclone": "`rclone copy --transfers 4`",
    "curl-Z": "`curl -Z --parallel-max 4`, one config line pair per file",
    "curl-T": "`curl -T` (one STOR)",
}


def tcp_active_opens():
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("ActiveOpens")])


def timed(argv, env, log_path, timeout):
    """Runs argv; returns wall seconds, exit code, CPU seconds (user + system)
    and peak RSS (KiB). The peak is VmHWM read every 10 ms while it runs:
    getrusage's ru_maxrss would count this Python process's size at the fork."""
    with open(log_path, "wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        peak = [0]
        done = threading.Event()

        def watch():
            while not done.wait(0.01):
                try:
                    for line in open(f"/proc/{proc.pid}/status"):
                        if line.startswith("VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]))
                except OSError:
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        done.set()
        watcher.join()
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, proc.returncode, usage.ru_utime + usage.ru_stime, peak[0]


# -------------------------------------------------------------------- verify --


def snapshot(root):
    """Files (size, mtime, digest) and directories below `root`."""
    files, dirs = {}, set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for d in dirnames:
            dirs.add(os.path.normpath(os.path.join(rel, d)))
        for name in filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h = hashlib.blake2b(digest_size=16)
            with open(p, "rb") as f:
                while chunk := f.read(4 * MIB):
                    h.update(chunk)
            files[os.path.normpath(os.path.join(rel, name))] = (st.st_size, int(st.st_mtime), h.hexdigest())
    return files, dirs


def verify(local_snap, remote_root):
    """None if the remote tree holds exactly the local files (and directories)
    byte for byte, else what differs; plus whether every mtime was kept."""
    if not remote_root.is_dir():
        return "the remote directory is missing", False
    lf, ld = local_snap
    rf, rd = snapshot(remote_root)
    missing = sorted(set(lf) - set(rf))
    extra = sorted(set(rf) - set(lf))
    wrong = sorted(p for p in set(lf) & set(rf) if (lf[p][0], lf[p][2]) != (rf[p][0], rf[p][2]))
    if missing or extra or wrong or ld - rd:
        parts = [f"{len(x)} {what} (e.g. {x[0]})" for x, what in
                 [(missing, "missing"), (extra, "extra"), (wrong, "different"), (sorted(ld - rd), "dirs missing")] if x]
        return "; ".join(parts), False
    return None, all(lf[p][1] == rf[p][1] for p in lf)


# ----------------------------------------------------------------------- run --


def run_workload(ctx, wl, results):
    ds_name, tls, peers, phases, _ = WORKLOADS[wl]
    local = dataset(ctx.work, ds_name, ctx.args.data_dir)
    local_snap = snapshot(local)
    nbytes = sum(v[0] for v in local_snap[0].values())
    srv = ctx.tls if tls else ctx.plain
    tools = ["ftpmonitor", *ctx.compare] + [t for t in peers if not ctx.args.tools or t in ctx.args.tools]
    reps = ctx.args.reps
    last = {}  # tool -> (remote, run_dir) of its last verified first push

    def one(tool, phase, rep, remote, run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
        argv, env = tool_cmd(ctx, tool, local, remote, tls, run_dir, phase == "again")
        os.sync()
        opens, stores = tcp_active_opens(), srv.stores()
        wall, rc, cpu, rss = timed(argv, env, run_dir / "output.txt", ctx.args.timeout)
        opens, stores = tcp_active_opens() - opens, srv.stores() - stores
        err, mtimes = verify(local_snap, srv.root / remote.lstrip("/"))
        note = ""
        if rc != 0:
            out = (run_dir / "output.txt").read_text(errors="replace").strip().splitlines()
            note = f"exit {rc}" + (f": {out[-1][:120]}" if out else "")
        row = dict(workload=wl, phase=phase, tool=tool, rep=rep, wall=wall, cpu=cpu, rss_kib=rss, conns=opens,
                   stores=stores, ok=err is None, error=err, mtimes=mtimes, note=note, bytes=nbytes)
        results.append(row)
        status = "ok" if err is None else f"NOT VERIFIED: {err}"
        say(f"{wl} {phase} {tool} #{rep}: {wall:.3f} s, {stores} STORs, ~{opens} TCP connections, {status}"
            + (f" ({note})" if note else ""))
        return err is None

    for rep in range(reps):
        order = tools[rep % len(tools):] + tools[:rep % len(tools)]
        for tool in order:
            remote = f"/{wl}-{tool}-{rep}"
            run_dir = ctx.work / "runs" / f"{wl}-{tool}-{rep}"
            if one(tool, "first", rep, remote, run_dir):
                if tool in last:
                    shutil.rmtree(srv.root / last[tool][0].lstrip("/"), ignore_errors=True)
                last[tool] = (remote, run_dir)
            elif not ctx.args.keep:
                shutil.rmtree(srv.root / remote.lstrip("/"), ignore_errors=True)
    if "again" in phases:
        again_tools = [t for t in tools if t in last and not t.startswith("curl")]  # curl cannot skip a file
        for rep in range(reps):
            order = again_tools[rep % len(again_tools):] + again_tools[:rep % len(again_tools)]
            for tool in order:
                remote, run_dir = last[tool]
                # ftpmonitor runs again on the state its last push left.
                one(tool, "again", rep, remote, run_dir if tool.startswith("ftpmonitor") else run_dir / f"again-{rep}")
    if not ctx.args.keep:
        for remote, _ in last.values():
            shutil.rmtree(srv.root / remote.lstrip("/"), ignore_errors=True)


def run_latency(ctx, results):
    say("latency: 200 files of 4 KiB, one after the other, --cooldown 0")
    lat = latency.measure(str(ctx.binary), str(ctx.plain.root), ctx.plain.port, USER, PASSWORD,
                          count=200, work=ctx.work / "latency")
    results.append(dict(workload="latency", **lat))
    say(f"latency: p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms, max {lat['max_ms']:.2f} ms, "
        f"{lat['idle_cpu_ticks']} CPU ticks in {lat['idle_seconds']} s idle")


def run_memory(ctx, results, ds_name):
    local = dataset(ctx.work, ds_name, ctx.args.data_dir)
    count = sum(len(f) for _, _, f in os.walk(local))
    say(f"memory: the daemon watching {count} files ({ds_name})")
    mem = latency.memory(str(ctx.binary), str(ctx.plain.root), ctx.plain.port, USER, PASSWORD, str(local), count,
                         work=ctx.work / f"memory-{ds_name}")
    results.append(dict(workload=f"memory-{ds_name}", files=count, **mem))
    say(f"memory ({count} files): VmRSS {mem['rss_kib'] / 1024:.1f} MiB (anonymous {mem['anon_kib'] / 1024:.1f} MiB, "
        f"file {mem['file_kib'] / 1024:.1f} MiB), peak {mem['hwm_kib'] / 1024:.1f} MiB; resident by mapping: "
        + ", ".join(f"{name} {kib / 1024:.1f} MiB" for name, kib in mem.get("by_mapping", [])))


# -------------------------------------------------------------------- report --


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()
    return (f"{platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} × {cpu}, "
            f"{mem:.0f} GiB RAM; load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def versions(ctx):
    out = [ctx.plain.version]
    for argv in (["lftp", "--version"], ["rclone", "version"], ["curl", "--version"]):
        if shutil.which(argv[0]):
            line = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
            line = line.split("\n")[0].replace("LFTP | Version", "lftp").split(" | ")[0]
            out.append(" ".join(line.split()[:2]))
    v = subprocess.run([str(ctx.binary), "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
    git = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout.strip()
    return f"{v} ({git})" if git else v, ", ".join(out)


def fmt_s(x):
    return f"{x:.3f} s" if x < 10 else f"{x:.1f} s"


def report(ctx, results, started, command):
    ftpm_version, peer_versions = versions(ctx)
    lines = [f"Measured {started:%Y-%m-%d %H:%M} with `{command}`", "",
             f"- machine: {machine()}", f"- ftpmonitor: {ftpm_version}; peers: {peer_versions}",
             "- pure-ftpd on 127.0.0.1, files on the same machine; medians of "
             f"{ctx.args.reps} runs per cell, every run's remote tree verified", ""]
    cells = {}
    for r in results:
        if r["workload"] in WORKLOADS:
            cells.setdefault((r["workload"], r["phase"]), {}).setdefault(r["tool"], []).append(r)
    summary = ["| workload | ftpmonitor | fastest peer | ftpmonitor ÷ peer | target |", "|---|---|---|---|---|"]
    detail = ["| workload | tool | median | min–max | MB/s | CPU s | peak RSS | TCP conns | STORs | mtimes | verified |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (wl, phase), by_tool in cells.items():
        label = f"{wl}, {'first push' if phase == 'first' else 'nothing changed, run again'}"
        med = {}
        for tool, rows in by_tool.items():
            good = [r for r in rows if r["ok"]]
            if not good:
                detail.append(f"| {label} | {tool} | FAIL | | | | | | | | 0/{len(rows)}: {rows[0]['error']} |")
                continue
            walls = [r["wall"] for r in good]
            med[tool] = statistics.median(walls)
            mbs = good[0]["bytes"] / med[tool] / 1e6 if phase == "first" else 0
            notes = "; ".join(sorted({r["note"] for r in rows if r["note"]}))
            detail.append(
                f"| {label} | {tool} | {fmt_s(med[tool])} | {min(walls):.3f}–{max(walls):.3f} | "
                f"{mbs:.0f} | {statistics.median(r['cpu'] for r in good):.2f} | "
                f"{statistics.median(r['rss_kib'] for r in good) / 1024:.1f} MiB | "
                f"{int(statistics.median(r['conns'] for r in good))} | {int(statistics.median(r['stores'] for r in good))} | "
                f"{'kept' if all(r['mtimes'] for r in good) else 'not kept'} | {len(good)}/{len(rows)}"
                + (f" ({notes})" if notes else "") + " |")
        peers = {t: m for t, m in med.items() if not t.startswith("ftpmonitor")}
        target = WORKLOADS[wl][4].get(phase)
        if "ftpmonitor" in med and peers:
            best = min(peers, key=peers.get)
            ratio = med["ftpmonitor"] / peers[best]
            mark = "" if target is None else (" ✓" if ratio <= target else " ✗")
            summary.append(f"| {label} | {fmt_s(med['ftpmonitor'])} | {best} {fmt_s(peers[best])} | "
                           f"**{ratio:.2f}×**{mark} | ≤ {target}× |")
    extra = []
    for r in results:
        if r["workload"] == "latency":
            extra.append(f"| watch latency, 200 × 4 KiB, `--cooldown 0`, close → final name on the server | "
                         f"p50 **{r['p50_ms']:.2f} ms**, p99 **{r['p99_ms']:.2f} ms**, max {r['max_ms']:.2f} ms | "
                         f"p50 ≤ 1.5 ms, p99 ≤ 5 ms |")
            extra.append(f"| CPU while idle (after the latency run) | {r['idle_cpu_ticks']} ticks in "
                         f"{r['idle_seconds']} s | 0 |")
        if r["workload"].startswith("memory-"):
            target = "≤ 6.5 MiB" if r["files"] <= 2100 else "≤ 30 MiB"
            extra.append(f"| resident memory watching {r['files']:,} files (VmRSS once synced and idle) | "
                         f"**{r['rss_kib'] / 1024:.1f} MiB**: {r['anon_kib'] / 1024:.1f} MiB anonymous, "
                         f"{r['file_kib'] / 1024:.1f} MiB file pages (the binary, libc); "
                         f"peak {r['hwm_kib'] / 1024:.1f} MiB | {target} |")
    lines += ["### ftpmonitor against the fastest peer", ""] + summary + [""]
    if extra:
        lines += ["| measure | ftpmonitor | target |", "|---|---|---|"] + extra + [""]
    lines += ["### Every tool", "", "Tools: " + "; ".join(f"{k}: {v}" for k, v in TOOL_NOTE.items()) + ".",
              "TCP conns: control and data connections opened during the run (from /proc/net/snmp: "
              "approximate on a shared host). STORs: uploads the server logged. mtimes: whether the remote "
              "files kept the local modification times.", ""] + detail
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- main --


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", help="comma-separated workloads: " + ",".join(DEFAULT_ORDER) + ",latency,memory")
    ap.add_argument("--tools", help="comma-separated peers to run (ftpmonitor always runs): lftp,rclone,curl-Z,curl-T")
    ap.add_argument("--reps", type=int, default=3, help="runs per tool and workload (default 3)")
    ap.add_argument("--quick", action="store_true", help="one run each of small, big, ftps-small, latency, memory")
    ap.add_argument("--binary", default=str(REPO / "target/release/ftpmonitor"), help="ftpmonitor to measure")
    ap.add_argument("--compare", action="append", default=[], metavar="BINARY",
                    help="another ftpmonitor build to run beside it, e.g. the one before a change (repeatable)")
    ap.add_argument("--data-dir", help="keep the generated trees here between runs")
    ap.add_argument("--port", type=int, default=2121, help="plain FTP port; FTPS uses PORT+1 (default 2121)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per run")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.md"), help="where the report goes too")
    args = ap.parse_args()
    if os.geteuid() != 0:
        die("run as root: pure-ftpd needs it to chroot and switch to nobody (e.g. sudo bench/run.py)")
    if args.quick:
        args.reps = 1
        wanted = ["small", "big", "ftps-small", "latency", "memory"]
    else:
        wanted = DEFAULT_ORDER + ["latency", "memory"]
    if args.only:
        wanted = args.only.split(",")
    args.tools = args.tools.split(",") if args.tools else None
    for w in wanted:
        if w not in WORKLOADS and w not in ("latency", "memory"):
            die(f"unknown workload {w!r}; pick from {', '.join(DEFAULT_ORDER)}, latency, memory")
    binary = Path(args.binary)
    if not os.access(binary, os.X_OK):
        die(f"no ftpmonitor at {binary}: build it with `cargo build --release`, or give --binary")
    for t in ("openssl", "lftp", "rclone", "curl"):
        if not shutil.which(t):
            die(f"{t} is not installed: run bench/setup.sh")
    started = datetime.datetime.now()
    work = Path(tempfile.mkdtemp(prefix="ftpmonitor-bench."))
    os.chmod(work, 0o755)
    say(f"work directory {work}")
    plain = tls = None
    results = []
    try:
        plain = Server(work, args.port, (30000, 30099))
        if any(WORKLOADS.get(w, (0, False))[1] for w in wanted):
            tls = Server(work, args.port + 1, (30100, 30199), Pki(work / "pki"))
        ctx = Ctx(args, work, plain, tls, binary.resolve())
        for w in wanted:
            if w == "latency":
                run_latency(ctx, results)
            elif w == "memory":
                run_memory(ctx, results, "watch")
                if not args.quick:
                    run_memory(ctx, results, "tree")
            else:
                run_workload(ctx, w, results)
        command = "sudo TMPDIR=/dev/shm bench/run.py" + "".join(f" {a}" for a in sys.argv[1:])
        text = report(ctx, results, started, command)
    finally:
        for s in (plain, tls):
            if s:
                s.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"kept {work}")
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    say(f"report written to {out}")


if __name__ == "__main__":
    main()
