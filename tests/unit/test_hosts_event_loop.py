"""GET /v1/hosts never waits for the Store on the event loop: with a real `vaquero server` on a real
etcd, a hosts request whose Store read is held up leaves the server answering everything else.

Between the server and etcd sits a TCP proxy that holds the one read the hosts list makes of
`/sites-applied/current` until the test lets it go; the Store timeout is long (120 s), so a read
made on the event loop would freeze the whole server for as long as the proxy holds it.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from requirements import need
from waiting import wait_until

from vaquero.state.etcd import EtcdStore

TOKEN = "tok-hosts-loop-reader-0123456789abcdef"
PREFIX = "/h9loop"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HoldingProxy:
    """Forwards TCP to etcd; once armed, holds the first client chunk containing `pattern` until released."""

    def __init__(self, upstream: int, pattern: bytes) -> None:
        self.upstream = upstream
        self.pattern = pattern
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.armed = threading.Event()
        self.held = threading.Event()
        self.release = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, inspect: bool) -> None:
        seen = b""
        try:
            while data := src.recv(65536):
                if inspect and self.armed.is_set():
                    seen = (seen + data)[-8192:]
                    if self.pattern in seen:
                        self.armed.clear()
                        self.held.set()
                        self.release.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[int]:
    binary = need("etcd", "etcd-server")
    client, peer = _free_port(), _free_port()
    cmd = [binary, "--name", "h9", "--data-dir", str(tmp_path / "etcd"), "--listen-client-urls", f"http://127.0.0.1:{client}"]
    cmd += ["--advertise-client-urls", f"http://127.0.0.1:{client}", "--listen-peer-urls", f"http://127.0.0.1:{peer}"]
    cmd += ["--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}", "--initial-cluster", f"h9=http://127.0.0.1:{peer}"]
    with open(tmp_path / "etcd.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{client}/health", timeout=5).json().get("health") == "true", 120, "etcd healthy")
        yield client
    finally:
        _stop(proc)


def test_a_held_store_read_of_the_host_list_does_not_stall_the_server(tmp_path: Path, etcd: int) -> None:
    store = EtcdStore([f"http://127.0.0.1:{etcd}"], prefix=PREFIX, timeout=30)
    store.put("/hosts/node1", {"name": "node1", "state": "ready", "since": 0})
    store.close()
    proxy = HoldingProxy(etcd, base64.b64encode(f"{PREFIX}/sites-applied/current".encode()))
    (tmp_path / "tokens").write_text(f"reader:read:{TOKEN}\n")
    port = _free_port()
    cmd = [sys.executable, "-m", "vaquero.cli", "server", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data"), "--no-worker"]
    cmd += ["--store", f"etcd://127.0.0.1:{proxy.port}{PREFIX}?timeout=120", "--tokens-file", str(tmp_path / "tokens"), "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAQUERO_")}
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    result: dict[str, httpx.Response | BaseException] = {}

    def list_hosts() -> None:
        try:
            result["hosts"] = httpx.get(f"{base}/v1/hosts", headers=auth, timeout=300)
        except BaseException as exc:
            result["hosts"] = exc

    try:
        # Up, and the follower has loaded the hosts: the list is served from its cache path.
        wait_until(lambda: httpx.get(f"{base}/v1/hosts", headers=auth, timeout=10).json()["count"] == 1, 120, "the host list")
        proxy.armed.set()
        caller = threading.Thread(target=list_hosts, daemon=True)
        caller.start()
        assert proxy.held.wait(120), (tmp_path / "server.log").read_text()[-3000:]
        # The hosts request is now waiting for etcd. The server still answers, at once and in full:
        assert httpx.get(f"{base}/healthz/live", timeout=60).json() == {"status": "live"}
        got = httpx.get(f"{base}/v1/hosts/node1", headers=auth, timeout=60)
        assert got.status_code == 200 and got.json()["state"] == "ready"
        assert "hosts" not in result  # ...while the held request has not been answered
        proxy.release.set()
        caller.join(300)
        response = result["hosts"]
        assert isinstance(response, httpx.Response), response
        assert response.status_code == 200 and response.json()["count"] == 1
    finally:
        proxy.close()
        _stop(server)
