"""Real `vaquero server` and `vaquero agent` processes on loopback for the resource-limit tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from vaquero.lab.sot import prepare_sot

REPO = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "whsec-limits-" + "5f0c9a2e71d3"
READ_TOKEN = "tok-limits-reader-0123456789abcdef"
APPROVE_TOKEN = "tok-limits-approve-0123456789abcdef"
AGENT_TOKEN = "tok-limits-agent-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def status_kb(self, field: str) -> int:
        """A /proc/<pid>/status memory figure (VmRSS, VmHWM) in kB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _wait_ready(p: Proc, path: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if httpx.get(p.base + path, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if p.proc.poll() is not None or time.monotonic() > deadline:
            p.stop()
            raise AssertionError(f"{path} never answered 200:\n{p.log.read_text()[-4000:]}")
        time.sleep(0.1)


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAQUERO_")}
    return env | (extra or {})


def start_controller(tmp: Path, env: dict[str, str] | None = None, *args: str) -> Proc:
    """`vaquero server` over HTTP with a reader and an approver token and a webhook secret."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "tokens").write_text(f"reader:read:{READ_TOKEN}\napprover:approve:{APPROVE_TOKEN}\n")
    (tmp / "hook-secret").write_text(WEBHOOK_SECRET + "\n")
    port = free_port()
    log = tmp / "server.log"
    cmd = [sys.executable, "-m", "vaquero.cli", "server", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp / "data")]
    cmd += ["--tokens-file", str(tmp / "tokens"), "--webhook-secret-file", str(tmp / "hook-secret"), "--log-level", "warning", *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(env), cwd=tmp)
    p = Proc(proc, port, log)
    _wait_ready(p, "/healthz/ready")
    return p


def start_agent(tmp: Path, env: dict[str, str] | None = None) -> Proc:
    """`vaquero agent --sot` (HTTP only: no DHCP, no TFTP) serving the lab SoT with local kernel/initrd files."""
    tmp.mkdir(parents=True, exist_ok=True)
    kernel, initrd = tmp / "vmlinuz", tmp / "initrd.img"
    kernel.write_bytes(os.urandom(4096))
    initrd.write_bytes(os.urandom(4096))
    sot = prepare_sot(REPO / "inventories" / "lab", tmp / "sot", "lab-linux", kernel, initrd)
    port = free_port()
    log = tmp / "agent.log"
    cmd = [sys.executable, "-m", "vaquero.cli", "agent", "--sot", str(sot), "--listen", "127.0.0.1", "--http-port", str(port)]
    cmd += ["--tftp-port", "0", "--no-dhcp", "--asset-root", str(tmp / "assets"), "--state-dir", str(tmp / "state"), "--log-level", "warning"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env({"VAQUERO_AGENT_TOKEN": AGENT_TOKEN} | (env or {})), cwd=tmp)
    p = Proc(proc, port, log)
    _wait_ready(p, "/healthz")
    return p


def need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            raise AssertionError(f"{tool} is not installed (run scripts/setup.sh)")
