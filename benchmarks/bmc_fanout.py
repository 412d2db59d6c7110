"""BMC fan-out: set the boot device (pxe, once, UEFI) and power-cycle 100 emulated IPMI BMCs,
one after the other, then all at once through the guard with the global concurrency limit 16.

The BMCs are vaquero.bmc.emulator (pyghmi's server) on loopback UDP ports, spread over a few
processes; each takes ``--latency`` seconds to process a command (real BMCs take 10-500 ms),
without holding up the others. Every operation goes through the full driver path: IPMI login
(RMCP+ RAKP), the command(s), logout, the per-BMC lock, the breaker and the global limit.
Each BMC counts what it executed; the script checks that nothing was lost or done twice.

    python benchmarks/bmc_fanout.py [--bmcs 100] [--concurrency 16] [--latency 0.05]

Each BMC gets its own IPMI session (login, the operations, logout) in each run. The floor of the
concurrent run is CPU: 100 logins and 300 commands of pure-Python RMCP+ crypto, on the client
and on the emulated BMCs sharing two cores, take ~0.6 s (--latency 0: 1.2x). Measured here:
--latency 0.025 ~9x, the default 0.05 ~11x; real BMCs answer slower than either. The
concurrent p99 includes the wait for the c=16 limit (all 100 BMCs are submitted at once).

Ends with one line per figure: ``<figure name> ratio <value> (raw numbers)``; exits 0 when no
operation was lost or duplicated (1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vaquero.bmc import BmcError, BootDevice, BootMode, Endpoint, Guard, GuardPolicy, open_bmc

PASSWORD = "bench-Pw-7731"


def free_udp_range(count: int) -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count >= 65000:
            continue
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free UDP port range")


def free_tcp() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def counts(control_ports: list[int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for cp in control_ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{cp}/", timeout=10) as r:
            for port, st in json.loads(r.read()).items():
                out[port] = st["counts"]
    return out


def one_bmc(ep: Endpoint, guard: Guard, latencies: list[float], errors: list[str], mu: threading.Lock) -> None:
    with open_bmc(ep, guard) as bmc:  # one IPMI session per BMC, logged out at the end
        _ops(bmc, ep, latencies, errors, mu)


def _ops(bmc, ep: Endpoint, latencies: list[float], errors: list[str], mu: threading.Lock) -> None:
    for op in ("boot", "cycle"):
        t0 = time.perf_counter()
        try:
            if op == "boot":
                bmc.set_boot_device(BootDevice.PXE, persistent=False, mode=BootMode.UEFI)
            else:
                bmc.power_cycle()
        except BmcError as exc:
            with mu:
                errors.append(f"{ep.host} {op}: {exc.kind}: {exc.message}")
            return
        with mu:
            latencies.append(time.perf_counter() - t0)


def p99(values: list[float]) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(0.99 * (len(s) - 1)))] if s else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bmcs", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds each emulated BMC takes per command (real BMCs: 20-500 ms)")
    ap.add_argument("--processes", type=int, default=4, help="emulator processes the BMCs are spread over")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vq-bmc-bench-"))
    pwfile = tmp / "pw"
    pwfile.write_text(PASSWORD)
    base = free_udp_range(args.bmcs)
    per = -(-args.bmcs // args.processes)
    procs: list[subprocess.Popen[bytes]] = []
    control: list[int] = []
    try:
        for i in range(args.processes):
            first, n = base + i * per, min(per, args.bmcs - i * per)
            if n <= 0:
                break
            cp = free_tcp()
            control.append(cp)
            cmd = [sys.executable, "-m", "vaquero.bmc.emulator", "--port", str(first), "--count", str(n), "--password-file", str(pwfile)]
            cmd += ["--control-port", str(cp), "--latency", str(args.latency), "--acpi-delay", "0"]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        end = time.monotonic() + 20
        while True:
            try:
                counts(control)
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)

        eps = [Endpoint("ipmi", "127.0.0.1", "admin", PASSWORD, host=f"node{i:03d}", port=base + i) for i in range(args.bmcs)]
        policy = GuardPolicy(attempt_timeout=10, deadline=60, retries=2)
        mu = threading.Lock()

        # the concurrent run goes first and pays every IPMI login; the sequential run reuses the
        # sessions (pyghmi keeps them): if anything, this favours the sequential side
        before = counts(control)
        con_lat: list[float] = []
        con_err: list[str] = []
        guard = Guard(concurrency=args.concurrency, policy=policy)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.bmcs) as pool:  # every BMC at once: the guard's limit does the throttling
            for f in [pool.submit(one_bmc, ep, guard, con_lat, con_err, mu) for ep in eps]:
                f.result()
        con = time.perf_counter() - t0
        mid = counts(control)

        seq_lat: list[float] = []
        seq_err: list[str] = []
        guard = Guard(concurrency=args.concurrency, policy=policy)
        t0 = time.perf_counter()
        for ep in eps:
            one_bmc(ep, guard, seq_lat, seq_err, mu)
        seq = time.perf_counter() - t0
        after = counts(control)

        def check(a: dict[str, dict[str, int]], b: dict[str, dict[str, int]]) -> tuple[int, int]:
            lost = dup = 0
            for port in b:
                for op in ("set_boot", "power_cycle"):
                    d = b[port].get(op, 0) - a.get(port, {}).get(op, 0)
                    lost += d < 1
                    dup += max(0, d - 1)
            return lost, dup

        con_lost, con_dup = check(before, mid)
        seq_lost, seq_dup = check(mid, after)
        for e in (seq_err + con_err)[:10]:
            print(f"# error: {e}")
        nops = 2 * args.bmcs
        print(f"# {args.bmcs} BMCs x (set boot device + power cycle), BMC latency {args.latency * 1000:.0f} ms/command, {len(procs)} emulator processes")
        print(f"# sequential: {seq:.2f}s, {len(seq_lat)}/{nops} ok, p99 {p99(seq_lat) * 1000:.1f} ms, lost {seq_lost}, duplicated {seq_dup}")
        print(f"# concurrent: {con:.2f}s, {len(con_lat)}/{nops} ok, p99 {p99(con_lat) * 1000:.1f} ms, lost {con_lost}, duplicated {con_dup}")
        print(f"bmc fanout speedup ratio {seq / con:.1f} (sequential {seq:.2f}s, concurrent {con:.2f}s, c={args.concurrency}, {args.bmcs} BMCs)")
        print(
            f"bmc fanout p99 latency ratio {p99(con_lat) / p99(seq_lat):.2f} "
            f"(concurrent p99 {p99(con_lat) * 1000:.1f} ms incl. waiting for the limit, sequential p99 {p99(seq_lat) * 1000:.1f} ms per operation)"
        )
        bad = seq_lost + seq_dup + con_lost + con_dup + len(seq_err) + len(con_err)
        print(f"bmc fanout lost_or_duplicated ratio {bad / (2 * nops):.3f} ({seq_lost + con_lost} lost, {seq_dup + con_dup} duplicated, {2 * nops} operations)")
        return 0 if bad == 0 else 1
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
