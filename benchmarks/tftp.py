"""TFTP: the agent's server vs dnsmasq's, 20 concurrent curl clients fetching ipxe.efi.

Both servers serve the same folder on loopback (dnsmasq on port 69, it cannot use another;
the agent on 6969), block size 1432, dnsmasq with --edns-packet-max=16384 (see LAB.md).
Each round starts 20 curl processes at once, each fetching the file `--fetches` times in a
row; the figure is the median round time of the agent over dnsmasq's (lower is better,
target <= 1.2). The agent runs in its own process, as in production.

    python benchmarks/tftp.py [--rounds 7] [--clients 20] [--fetches 5] [--blksize 1432]
"""

from __future__ import annotations

import argparse
import hashlib
import os
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


def one_round(port: int, name: str, clients: int, fetches: int, blksize: int, out: Path) -> float:
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
        raise SystemExit(f"curl failed against port {port}: {rcs}")
    return took


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


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
            "--log-facility=-",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    agent = subprocess.Popen([sys.executable, "-c", AGENT, str(root), "6969"], stdout=subprocess.PIPE)
    extra = [subprocess.Popen([sys.executable, "-c", AGENT, str(root), "6969"], stdout=subprocess.PIPE) for _ in range(args.workers - 1)]
    try:
        assert agent.stdout is not None
        agent.stdout.readline()
        wait_tftp(69, "ipxe.efi", want)
        wait_tftp(6969, "ipxe.efi", want)
        times: dict[str, list[float]] = {"dnsmasq": [], "vaquero": []}
        cpu0 = {"dnsmasq": cpu_seconds(dnsmasq.pid), "vaquero": cpu_seconds(agent.pid)}
        for _ in range(args.rounds):  # interleaved, so drift hits both alike
            times["dnsmasq"].append(one_round(69, "ipxe.efi", args.clients, args.fetches, args.blksize, tmp / "out"))
            times["vaquero"].append(one_round(6969, "ipxe.efi", args.clients, args.fetches, args.blksize, tmp / "out"))
        cpu = {"dnsmasq": cpu_seconds(dnsmasq.pid) - cpu0["dnsmasq"], "vaquero": cpu_seconds(agent.pid) - cpu0["vaquero"]}
        for c in range(args.clients):
            got = hashlib.sha256((tmp / "out" / str(c) / "f0").read_bytes()).hexdigest()
            if got != want:
                raise SystemExit("a fetched file does not match")
        d, v = statistics.median(times["dnsmasq"]), statistics.median(times["vaquero"])
        size = (root / "ipxe.efi").stat().st_size
        n = args.clients * args.fetches
        print(f"# {n} fetches of {size} bytes per round, {args.clients} concurrent curl clients, blksize {args.blksize}, {args.rounds} rounds")
        print(f"# dnsmasq rounds: {' '.join(f'{t:.3f}' for t in times['dnsmasq'])}")
        print(f"# vaquero rounds: {' '.join(f'{t:.3f}' for t in times['vaquero'])}")
        print(f"# server CPU over all rounds: dnsmasq {cpu['dnsmasq']:.2f} s, vaquero {cpu['vaquero']:.2f} s")
        print(f"tftp_time_vs_dnsmasq ratio {v / d:.2f} (vaquero {v:.3f} s, dnsmasq {d:.3f} s median per round; target <= 1.2)")
    finally:
        for p in (agent, dnsmasq, *extra):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
