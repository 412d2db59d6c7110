"""CLI start-up: `vaquero --help` and `vaquero validate` against the least a Python process can do.

Each round runs, one after the other and in alternating order (so a burst of load on the machine
falls on both sides), four processes from the same interpreter:

- `vaquero --help` beside `python -c pass`: what building the parser costs over starting Python
  at all. Target: ratio <= 5 (it was 51 when every command imported FastAPI and httpx up front).
- `vaquero validate inventories/lab` beside `python -c "from vaquero.sot import load; load(...)"`:
  the same validation of the same tree in one process, with no command line and no bounded child.
  This peer does the work the command cannot skip (import pydantic, YAML and Jinja, read, check),
  so the ratio is what the command adds: its own start and the second interpreter that validates
  under memory and time limits (a bare `import yaml, pydantic, jinja2` would also charge the
  validation itself to the command).

The figure of each pair is the median over the rounds of the command over its peer (lower is
better). Ends with one line per figure: ``<name> ratio <value> (raw numbers)``; exits 0 when
every command succeeded (1 otherwise).

    python benchmarks/cli_start.py [--rounds 21] [--sot inventories/lab]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def vaquero_command() -> list[str]:
    """The console script people run, or the module when the package is not installed here."""
    script = Path(sys.executable).with_name("vaquero")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "vaquero.cli"]


def timed(cmd: list[str], env: dict[str, str], expect: str | None = None) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    took = time.perf_counter() - t0
    if res.returncode != 0 or (expect is not None and expect not in res.stdout):
        raise SystemExit(f"{' '.join(cmd)}: exit {res.returncode}\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--sot", default="inventories/lab", help="SoT folder to validate, relative to the repository (default %(default)s)")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "controller"), os.environ.get("PYTHONPATH")]))}
    vaquero = vaquero_command()
    pairs = {
        "cli_help_start": (
            ([*vaquero, "--help"], "usage: vaquero", "vaquero --help"),
            ([sys.executable, "-c", "pass"], None, "python -c pass"),
        ),
        "cli_validate_start": (
            ([*vaquero, "validate", args.sot], ": valid:", f"vaquero validate {args.sot}"),
            ([sys.executable, "-c", f"from vaquero.sot import load; load({args.sot!r})"], None, "python -c 'from vaquero.sot import load; load(...)'"),
        ),
    }
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in pairs}
    for _ in (1, 2):  # warm the page cache and the .pyc files; not counted
        for (cmd, expect, _label), (peer, peer_expect, _peer_label) in pairs.values():
            timed(cmd, env, expect)
            timed(peer, env, peer_expect)
    for i in range(args.rounds):
        for name, ((cmd, expect, _label), (peer, peer_expect, _peer_label)) in pairs.items():
            ours, theirs = times[name]
            if i % 2:
                theirs.append(timed(peer, env, peer_expect))
                ours.append(timed(cmd, env, expect))
            else:
                ours.append(timed(cmd, env, expect))
                theirs.append(timed(peer, env, peer_expect))
    for name, ((_cmd, _expect, label), (_peer, _peer_expect, peer_label)) in pairs.items():
        ours, theirs = times[name]
        ratio = statistics.median(o / t for o, t in zip(ours, theirs, strict=True))
        print(
            f"{name} ratio {ratio:.2f} ({label} {statistics.median(ours) * 1000:.0f} ms, {peer_label} {statistics.median(theirs) * 1000:.0f} ms, "
            f"median of {args.rounds} rounds)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
