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
and on the emulated BMCs sharing two cores, take ~0.6 s (--latency 0: 1.2x). The limit counts
sessions (a BMC's slot is held from its login to its logout), so at most 16 are open at once at
the BMCs; figures in docs/benchmarks.md. Real BMCs answer slower than the default 0.05 s. The
concurrent p99 includes the wait for the c=16 limit (all 100 BMCs are submitted at once).

Then the cross-process case: the same BMCs power-cycled (``vaquero.metal.power`` with
``state: cycled``) by ``ansible-playbook playbooks/power.yml`` with ``--forks 50`` (one module
process per host, sharing one BMC guard folder), against the same action from one process with the
limit 16. The BMCs count the IPMI sessions open on them; the peak is merged over the emulator
processes from their time-stamped logs (CLOCK_MONOTONIC, one clock for the machine).

Ends with one line per figure: ``<figure name> ratio <value> (raw numbers)``; exits 0 when no
operation was lost or duplicated and no side opened more sessions than the limit (1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from vaquero.bmc import BmcError, BootDevice, BootMode, Endpoint, Guard, GuardPolicy, open_bmc
from vaquero.bmc.actions import ensure_power
from vaquero.bmc.fleetguard import GUARD_DIR_ENV

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


def reset_sessions(control_ports: list[int]) -> None:
    for cp in control_ports:
        req = urllib.request.Request(f"http://127.0.0.1:{cp}/sessions/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()


def peak_sessions(control_ports: list[int]) -> int:
    """IPMI sessions open at once over every emulator process, from their merged logs."""
    events: list[tuple[float, int]] = []
    for cp in control_ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{cp}/sessions", timeout=10) as r:
            events += [(float(t), int(d)) for t, d in json.loads(r.read())["events"]]
    now = peak = 0
    for _, d in sorted(events):  # at one instant a close (-1) sorts before an open: never an invented overlap
        now += d
        peak = max(peak, now)
    return peak


def power_actions(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> tuple[int, int]:
    """(lost, duplicated) when every BMC was to get exactly one power-on or power-cycle."""
    lost = dup = 0
    for port in after:
        d = sum(after[port].get(op, 0) - before.get(port, {}).get(op, 0) for op in ("power_on", "power_cycle"))
        lost += d < 1
        dup += max(0, d - 1)
    return lost, dup


def cycle_one(ep: Endpoint, guard: Guard, policy: GuardPolicy, errors: list[str], mu: threading.Lock) -> None:
    try:
        with open_bmc(ep, guard, policy) as bmc:
            ensure_power(bmc, "cycled")
    except BmcError as exc:
        with mu:
            errors.append(f"{ep.host} cycle: {exc.kind}: {exc.message}")


def cross_process(args: argparse.Namespace, tmp: Path, eps: list[Endpoint], control: list[int]) -> int:
    """ansible-playbook power.yml (forks 50) vs one process (limit 16): wall time and peak sessions."""
    root = Path(__file__).resolve().parents[1]
    bindir = Path(sys.executable).parent
    pw = tmp / "bmc-pw"
    pw.write_text(PASSWORD)
    pw.chmod(0o600)
    hosts = {
        ep.host: {
            "vaquero_bmc": {"type": "ipmi", "address": ep.address, "port": ep.port, "username": ep.username, "password_file": str(pw)},
            "vaquero_host": {"power": "cycled"},
        }
        for ep in eps
    }
    inv = tmp / "inventory.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {"fleet": {"hosts": hosts}}}}))
    guard_dir = tmp / "guard"
    env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}", "ANSIBLE_LOCALHOST_WARNING": "false", GUARD_DIR_ENV: str(guard_dir)}
    cmd = [str(bindir / "ansible-playbook"), "-i", str(inv), "--forks", str(args.forks), "--limit", "fleet"]
    cmd += ["-e", f"ansible_python_interpreter={sys.executable}", str(root / "playbooks" / "power.yml")]

    before = counts(control)
    reset_sessions(control)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=3600)
    play = time.perf_counter() - t0
    play_peak = peak_sessions(control)
    mid = counts(control)
    if proc.returncode != 0:
        print("# ansible-playbook failed:\n" + "\n".join("# " + line for line in proc.stdout.splitlines()[-30:]))

    errors: list[str] = []
    mu = threading.Lock()
    guard = Guard(concurrency=args.concurrency, policy=GuardPolicy(attempt_timeout=10, deadline=60, retries=2))
    reset_sessions(control)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(eps)) as pool:
        for f in [pool.submit(cycle_one, ep, guard, GuardPolicy(attempt_timeout=10, deadline=120, retries=2), errors, mu) for ep in eps]:
            f.result()
    one = time.perf_counter() - t0
    one_peak = peak_sessions(control)
    after = counts(control)

    play_lost, play_dup = power_actions(before, mid)
    one_lost, one_dup = power_actions(mid, after)
    for e in errors[:10]:
        print(f"# error: {e}")
    n = len(eps)
    print(f"# cross-process: {n} BMCs power-cycled (state: cycled), limit {args.concurrency}")
    print(f"# ansible-playbook power.yml --forks {args.forks}: {play:.2f}s, rc {proc.returncode}, lost {play_lost}, duplicated {play_dup}")
    print(f"#   peak {play_peak} sessions")
    print(f"# one process, {n} threads, limit {args.concurrency}: {one:.2f}s, {len(errors)} errors, lost {one_lost}, duplicated {one_dup}")
    print(f"#   peak {one_peak} sessions")
    print(
        f"bmc cross-process wall ratio {play / one:.1f} "
        f"(ansible-playbook forks {args.forks} {play:.2f}s / one process c={args.concurrency} {one:.2f}s, {n} BMCs)"
    )
    print(
        f"bmc cross-process peak sessions ratio {play_peak / max(1, one_peak):.2f} "
        f"(ansible-playbook forks {args.forks}: {play_peak} sessions at once, one process: {one_peak}, limit {args.concurrency}, counted at the BMCs)"
    )
    bad = play_lost + play_dup + one_lost + one_dup + len(errors) + (proc.returncode != 0)
    bad += (play_peak > args.concurrency) + (one_peak > args.concurrency)
    lost, dup = play_lost + one_lost, play_dup + one_dup
    print(f"bmc cross-process lost_or_duplicated ratio {(lost + dup) / (2 * n):.3f} ({lost} lost, {dup} duplicated, {2 * n} power actions)")
    return bad


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
    ap.add_argument("--forks", type=int, default=50, help="ansible-playbook forks of the cross-process case")
    ap.add_argument("--no-cross-process", action="store_true", help="skip the ansible-playbook case")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vq-bmc-bench-"))
    print(f"# emulator logs, inventory and guard folder in {tmp}")
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
            log = open(tmp / f"emulator-{i}.log", "wb")
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
            log.close()  # the child keeps its own descriptor
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
        reset_sessions(control)
        con_lat: list[float] = []
        con_err: list[str] = []
        guard = Guard(concurrency=args.concurrency, policy=policy)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.bmcs) as pool:  # every BMC at once: the guard's limit does the throttling
            for f in [pool.submit(one_bmc, ep, guard, con_lat, con_err, mu) for ep in eps]:
                f.result()
        con = time.perf_counter() - t0
        con_peak = peak_sessions(control)
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
        print(f"#   concurrent peak {con_peak} IPMI sessions open at once, counted at the BMCs")
        print(f"bmc fanout speedup ratio {seq / con:.1f} (sequential {seq:.2f}s, concurrent {con:.2f}s, c={args.concurrency}, {args.bmcs} BMCs)")
        print(
            f"bmc fanout p99 latency ratio {p99(con_lat) / p99(seq_lat):.2f} "
            f"(concurrent p99 {p99(con_lat) * 1000:.1f} ms incl. waiting for the limit, sequential p99 {p99(seq_lat) * 1000:.1f} ms per operation)"
        )
        bad = seq_lost + seq_dup + con_lost + con_dup + len(seq_err) + len(con_err)
        print(f"bmc fanout lost_or_duplicated ratio {bad / (2 * nops):.3f} ({seq_lost + con_lost} lost, {seq_dup + con_dup} duplicated, {2 * nops} operations)")
        bad += con_peak > args.concurrency
        if not args.no_cross_process:
            bad += cross_process(args, tmp, eps, control)
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
