"""Two `vaquero server` processes on one Store: both serve the API, exactly one (the holder of the
leader lease) runs the plan worker; when it dies (SIGKILL) the other takes over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from api_helpers import TOKENS, free_port


def _start(tmp_path: Path, name: str, store: Path) -> tuple[subprocess.Popen, Path, int]:
    port = free_port()
    log = tmp_path / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAQUERO_")}
    cmd = [sys.executable, "-m", "vaquero.cli", "server", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / name)]
    cmd += ["--store", f"sqlite://{store}", "--tokens-file", str(tmp_path / "tokens")]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    return proc, log, port


def _leads(log: Path) -> bool:
    return any("starting the run worker" in json.loads(line).get("msg", "") for line in log.read_text().splitlines() if line.startswith("{"))


def _wait(pred, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if pred():
                return time.monotonic() - start
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_one_leader_runs_the_worker_and_fails_over(tmp_path):
    (tmp_path / "tokens").write_text("".join(f"{n}:{role}:{tok}\n" for n, (role, tok) in TOKENS.items()))
    store = tmp_path / "shared" / "store.sqlite"
    a, log_a, port_a = _start(tmp_path, "a", store)
    b = None
    try:
        _wait(lambda: _leads(log_a), 30, "server a to lead")
        b, log_b, port_b = _start(tmp_path, "b", store)
        for port in (port_a, port_b):
            _wait(lambda port=port: httpx.get(f"http://127.0.0.1:{port}/healthz/ready", timeout=2).status_code == 200, 30, "ready")
        time.sleep(2)
        assert not _leads(log_b), "two controllers run plans at once"
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        took = _wait(lambda: _leads(log_b), 30, "server b to take over")
        assert took < 15  # the lease TTL (5 s) plus margins, not a hang
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)
