"""TFTP: the agent's server vs dnsmasq's, 20 concurrent curl clients fetching ipxe.efi.

Both servers serve the same folder on loopback (dnsmasq on port 69, it cannot use another;
the agent on 6969), block size 1432, dnsmasq with --edns-packet-max=16384 (see LAB.md).
Each round starts 20 curl processes at once, each fetching the file `--fetches` times in a
row; every fetched file is checked (sha256) after each round. The figure is the median round
time of the agent over dnsmasq's (lower is better, target <= 1.2). The agent runs in its own
process(es), as in production.

Logging is the same on both sides, as each runs by default: both log every transfer, to a file
of their own (dnsmasq its `sent FILE to ADDRESS` line, the agent at INFO in its JSON format).
dnsmasq cannot be made quiet about transfers (`--quiet-tftp` only drops its "file not found"
lines), so "both quiet" is not on offer. The log files are read afterwards: each must hold at
least one line per transfer, else the run fails. The CPU figure is the user + system time of each server's whole process tree (every
process started for it and its descendants, read from /proc before they exit, reaped children
included).

    python benchmarks/tftp.py [--rounds 7] [--clients 20] [--fetches 5] [--blksize 1432]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AGENT = r"""
import sys, signal, threading
from pathlib import Path
from vaquero.agent.tftp import TftpServer
from vaquero.logs import setup_logging
setup_logging(sys.argv[3], stream=open(sys.argv[4], "a", buffering=1))
s = TftpServer(Path(sys.argv[1]))
s.bind(("127.0.0.1", int(sys.argv[2])), reuse_port=True)
threading.Thread(target=s.serve, daemon=True).start()
print("ready", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
stop.wait()
s.stop()
"""


def wait_tftp(port: int, name: str, want: str) -> None:
    for _ in range(50):
        r = subprocess.run(["curl", "-s", "--max-time", "2", "-o", "-", f"tftp://127.0.0.1:{port}/{name}"], capture_output=True)
        if r.returncode == 0 and hashlib.sha256(r.stdout).hexdigest() == want:
            return
        time.sleep(0.1)
    raise SystemExit(f"TFTP server on port {port} never served {name} correctly")


def one_round(port: int, name: str, clients: int, fetches: int, blksize: int, out: Path, want: str) -> float:
    urls = []
    for i in range(fetches):
        urls += [f"tftp://127.0.0.1:{port}/{name}", "-o", str(out / f"f{i}")]
    t0 = time.perf_counter()
    procs = []
    for c in range(clients):
        cmd = ["curl", "-s", "--max-time", "60", "--tftp-blksize", str(blksize), *[u.replace(str(out), str(out / str(c))) for u in urls]]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
    rcs = [p.wait() for p in procs]
    took = time.perf_counter() - t0
    if any(rcs):
        raise SystemExit(f"curl failed against port {port}: exit statuses {rcs}")
    for c in range(clients):
        for i in range(fetches):
            got = hashlib.sha256((out / str(c) / f"f{i}").read_bytes()).hexdigest()
            if got != want:
                raise SystemExit(f"port {port}: client {c}, fetch {i}: sha256 {got}, expected {want}")
            (out / str(c) / f"f{i}").unlink()
    return took


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def tree_cpu(roots: list[int]) -> tuple[float, int]:
    """(user + system CPU seconds, processes) of `roots` and all their descendants, reaped children included."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parent[int(entry.name)] = int(fields[1])
    members = {pid for pid in roots if pid in parent}
    grew = True
    while grew:
        children = {pid for pid, ppid in parent.items() if ppid in members} - members
        members |= children
        grew = bool(children)
    ticks = 0
    for pid in members:
        fields = _stat(pid)
        if fields is not None:  # utime, stime, cutime, cstime
            ticks += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK"), len(members)


def count_lines(path: Path, pattern: str) -> int:
    return sum(1 for line in path.read_text(errors="replace").splitlines() if re.search(pattern, line))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--fetches", type=int, default=5)
    ap.add_argument("--blksize", type=int, default=1432)
    ap.add_argument("--file", default="/usr/lib/ipxe/ipxe.efi")
    ap.add_argument("--workers", type=int, default=1, help="agent TFTP worker processes sharing the port")
    args = ap.parse_args()
    for tool in ("dnsmasq", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    if os.environ.get("VQ_BENCH_NETNS") != "1" and os.geteuid() == 0 and shutil.which("unshare"):
        # A private network namespace: port 69 and loopback traffic of our own, nobody else's.
        env = {**os.environ, "VQ_BENCH_NETNS": "1"}
        return subprocess.call(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, *sys.argv], env=env)
    tmp = Path(tempfile.mkdtemp(prefix="vq-bench-tftp-"))
    tmp.chmod(0o755)  # dnsmasq drops to nobody and must read the root
    root = tmp / "root"
    root.mkdir()
    shutil.copyfile(os.path.realpath(args.file), root / "ipxe.efi")
    dnsmasq_log, agent_log = tmp / "dnsmasq.log", tmp / "agent.log"
    want = hashlib.sha256((root / "ipxe.efi").read_bytes()).hexdigest()
    for c in range(args.clients):
        (tmp / "out" / str(c)).mkdir(parents=True)
    dnsmasq = subprocess.Popen(
        [
            "dnsmasq",
            "-k",
            "-C",
            "/dev/null",
            "--port=0",
            "--enable-tftp",
            f"--tftp-root={root}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--edns-packet-max=16384",
            "--tftp-max=500",
            f"--pid-file={tmp}/dnsmasq.pid",
            f"--log-facility={dnsmasq_log}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    agent_cmd = [sys.executable, "-c", AGENT, str(root), "6969", "info", str(agent_log)]
    agents = [subprocess.Popen(agent_cmd, stdout=subprocess.PIPE) for _ in range(args.workers)]
    try:
        for agent in agents:
            assert agent.stdout is not None
            agent.stdout.readline()
        wait_tftp(69, "ipxe.efi", want)
        wait_tftp(6969, "ipxe.efi", want)
        times: dict[str, list[float]] = {"dnsmasq": [], "vaquero": []}
        roots = {"dnsmasq": [dnsmasq.pid], "vaquero": [a.pid for a in agents]}
        cpu0 = {k: tree_cpu(pids)[0] for k, pids in roots.items()}
        for _ in range(args.rounds):  # interleaved, so drift hits both alike
            times["dnsmasq"].append(one_round(69, "ipxe.efi", args.clients, args.fetches, args.blksize, tmp / "out", want))
            times["vaquero"].append(one_round(6969, "ipxe.efi", args.clients, args.fetches, args.blksize, tmp / "out", want))
        cpu, procs = {}, {}
        for k, pids in roots.items():
            seconds, procs[k] = tree_cpu(pids)
            cpu[k] = seconds - cpu0[k]
        for k, proc_list in (("dnsmasq", [dnsmasq]), ("vaquero", agents)):
            if any(p.poll() is not None for p in proc_list):
                raise SystemExit(f"a {k} server process exited during the run: its CPU time is not all counted")
        d, v = statistics.median(times["dnsmasq"]), statistics.median(times["vaquero"])
        size = (root / "ipxe.efi").stat().st_size
        n = args.clients * args.fetches
        # Read the logs back: the logging must be what the output says it was, on both sides.
        transfers = n * args.rounds
        lines = {"dnsmasq": count_lines(dnsmasq_log, r"dnsmasq-tftp.*\bsent\b"), "vaquero": count_lines(agent_log, r"tftp sending ")}
        for k, got in lines.items():
            if got < transfers:
                raise SystemExit(f"{k} wrote {got} transfer log line(s) for {transfers} transfers: the logging was not equal")
        print(f"# {n} fetches of {size} bytes per round, {args.clients} concurrent curl clients, blksize {args.blksize}, {args.rounds} rounds")
        print(f"# logging: both log every transfer to a file (dnsmasq {lines['dnsmasq']} lines, agent {lines['vaquero']} JSON lines at INFO)")
        print(f"# dnsmasq rounds: {' '.join(f'{t:.3f}' for t in times['dnsmasq'])}")
        print(f"# vaquero rounds: {' '.join(f'{t:.3f}' for t in times['vaquero'])}")
        print(
            f"# server CPU over all rounds, whole process trees: dnsmasq {cpu['dnsmasq']:.2f} s ({procs['dnsmasq']} process(es)), "
            f"vaquero {cpu['vaquero']:.2f} s ({procs['vaquero']} process(es), {args.workers} worker(s))"
        )
        print(f"tftp_time_vs_dnsmasq ratio {v / d:.2f} (vaquero {v:.3f} s, dnsmasq {d:.3f} s median per round; both logging; target <= 1.2)")
        print(
            f"tftp_cpu_vs_dnsmasq ratio {cpu['vaquero'] / cpu['dnsmasq']:.2f} (vaquero {cpu['vaquero']:.2f} s, dnsmasq {cpu['dnsmasq']:.2f} s "
            f"CPU of the whole process tree for {transfers} transfers; both logging)"
        )
    finally:
        for p in (*agents, dnsmasq):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
