"""A real `vaquero agent` process on loopback, serving the lab SoT, for the agent's security tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
LAB_SOT = REPO / "inventories" / "lab"
MACS = {"node1": "52-54-00-00-10-01", "node2": "52-54-00-00-10-02", "node3": "52-54-00-00-10-03"}
KERNEL = bytes(range(256)) * 64  # 16 KiB stands in for the lab kernel
_TOKEN = re.compile(r"vaquero\.callback=\S+?\?token=([A-Za-z0-9_-]+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def script_token(script: str) -> str:
    """The install token an armed host's iPXE script carries (what the installer gets on its cmdline)."""
    m = _TOKEN.search(script)
    assert m is not None, f"no install token in the script:\n{script}"
    assert "vaquero.config=" in script and f"?token={m.group(1)}" in script.split("vaquero.config=", 1)[1]
    return m.group(1)


class AgentProc:
    """`python -m vaquero.agent` with no DHCP/TFTP, on 127.0.0.1, its own state folder and log."""

    def __init__(self, tmp: Path, *, extra: list[str] | None = None, scheme: str = "http", verify: Any = True, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.state_dir = tmp / "state"
        self.log = tmp / "agent.log"
        assets = tmp / "assets" / "lab-linux"
        assets.mkdir(parents=True, exist_ok=True)
        (assets / "vmlinuz").write_bytes(KERNEL)
        self.base = f"{scheme}://127.0.0.1:{self.port}"
        self.verify = verify
        cmd = [
            sys.executable, "-m", "vaquero.agent", "--sot", str(LAB_SOT), "--listen", "127.0.0.1", "--http-port", str(self.port),
            "--tftp-port", "0", "--no-dhcp", "--no-fetch-assets", "--asset-root", str(tmp / "assets"), "--state-dir", str(self.state_dir),
            "--base-url", self.base, *(extra or []),
        ]  # fmt: skip
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("VAQUERO_")}
        child_env.update(env or {})
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env, cwd=REPO)
        try:
            wait_for(self._up, 60, "the agent to answer /healthz")
        except AssertionError:
            self.stop()
            raise AssertionError(f"the agent did not start; its log:\n{self.log.read_text(errors='replace')[-3000:]}") from None

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the agent exited ({self.proc.returncode}); its log:\n{self.log.read_text(errors='replace')[-3000:]}")
        try:
            return self.client().get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=20, verify=self.verify, **kw)

    @property
    def admin_token(self) -> str:
        return (self.state_dir / "admin-token").read_text().strip()

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def script(self, host: str) -> str:
        with self.client() as c:
            return c.get(f"/v1/boot/ipxe/{MACS[host]}").text

    def status(self, host: str) -> dict[str, Any]:
        with self.client() as c:
            r = c.get(f"/v1/boot/status/{host}")
            assert r.status_code == 200, r.text
            result: dict[str, Any] = r.json()
            return result

    def raw(self, request: bytes) -> bytes:
        """One request written byte for byte (clients refuse to send malformed headers); the whole answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as s:
            s.sendall(request)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(20)
