"""Fixtures for the Store conformance suite: an SQLite file per test, and a real 3-member etcd
cluster (Debian etcd-server) on free loopback ports, started once per session and always killed
at the end. Every etcd test gets its own key prefix, so tests share the cluster without seeing
each other's keys.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from requirements import need

from vaquero.state.etcd import EtcdStore
from vaquero.state.sqlite import SQLiteStore
from vaquero.state.store import Store

ETCD = shutil.which("etcd")
FIGURES: dict[str, str] = {}  # measured numbers, printed at the end of the session


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: if pytest dies (even kill -9), the kernel kills etcd too.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


class EtcdMember:
    def __init__(self, name: str, base: Path, client_port: int, peer_port: int) -> None:
        self.name = name
        self.data_dir = base / name
        self.client_url = f"http://127.0.0.1:{client_port}"
        self.peer_url = f"http://127.0.0.1:{peer_port}"
        self.log = base / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class EtcdCluster:
    def __init__(self, base: Path, size: int = 3) -> None:
        self.base = base
        ports = _free_ports(2 * size)
        self.members = [EtcdMember(f"m{i}", base, ports[2 * i], ports[2 * i + 1]) for i in range(size)]
        self.initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def url(self, prefix: str) -> str:
        return "etcd://" + ",".join(e.removeprefix("http://") for e in self.endpoints) + prefix

    def start_member(self, m: EtcdMember) -> None:
        assert not m.running
        args = [
            ETCD or "etcd",
            "--name", m.name,
            "--data-dir", str(m.data_dir),
            "--listen-client-urls", m.client_url,
            "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.peer_url,
            "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", self.initial,
            "--initial-cluster-token", f"vaquero-test-{self.base.name}",
            "--initial-cluster-state", "new",
            "--heartbeat-interval", "100",
            "--election-timeout", "1000",
        ]  # fmt: skip
        with open(m.log, "ab") as log:
            m.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def start(self) -> None:
        for m in self.members:
            self.start_member(m)
        self.wait_healthy()

    def kill(self, m: EtcdMember) -> None:
        assert m.proc is not None
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(timeout=10)
        m.proc = None

    def restart(self, m: EtcdMember) -> None:
        self.start_member(m)

    def status(self, m: EtcdMember) -> dict[str, object] | None:
        try:
            r = httpx.post(m.client_url + "/v3/maintenance/status", content="{}", timeout=1)
            data: dict[str, object] = r.json()
            return data if r.status_code == 200 else None
        except (httpx.HTTPError, json.JSONDecodeError):
            return None

    def leader(self) -> EtcdMember | None:
        for m in self.members:
            if not m.running:
                continue
            st = self.status(m)
            header = st.get("header") if st else None
            if st and isinstance(header, dict) and st.get("leader") and st.get("leader") == header.get("member_id"):
                return m
        return None

    def wait_healthy(self, timeout: float = 30) -> None:
        """Every running member reports health and one of them leads."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = True
            for m in self.members:
                if not m.running:
                    continue
                try:
                    r = httpx.get(m.client_url + "/health", timeout=1)
                    ok = ok and r.status_code == 200 and r.json().get("health") == "true"
                except (httpx.HTTPError, json.JSONDecodeError):
                    ok = False
            if ok and self.leader() is not None:
                return
            time.sleep(0.1)
        logs = "\n".join(f"--- {m.name}\n{m.log.read_text()[-2000:]}" for m in self.members if m.log.exists())
        raise RuntimeError(f"etcd cluster not healthy after {timeout}s\n{logs}")

    def heal(self) -> None:
        for m in self.members:
            if not m.running:
                self.restart(m)
        self.wait_healthy()

    def stop(self) -> None:
        for m in self.members:
            if m.running:
                self.kill(m)


def _remove_stale_dirs() -> None:
    """Data dirs of earlier sessions killed with -9 (their etcd died with them: PR_SET_PDEATHSIG)."""
    for d in Path(tempfile.gettempdir()).glob("vaquero-etcd-*"):
        try:
            pid = int((d / "owner.pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):
            continue


@pytest.fixture(scope="session")
def etcd_cluster() -> Iterator[EtcdCluster]:
    need("etcd", "etcd-server")
    _remove_stale_dirs()
    base = Path(tempfile.mkdtemp(prefix="vaquero-etcd-"))
    (base / "owner.pid").write_text(str(os.getpid()))
    cluster = EtcdCluster(base)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def etcd_prefix() -> str:
    return f"/test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["sqlite", "etcd"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for open_store: a fresh SQLite file, or a fresh prefix on the shared etcd cluster."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'state.db'}"
    cluster: EtcdCluster = request.getfixturevalue("etcd_cluster")
    cluster.heal()
    return cluster.url(request.getfixturevalue("etcd_prefix"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    from vaquero.state import open_store

    s = open_store(store_url)
    assert isinstance(s, SQLiteStore | EtcdStore)
    try:
        yield s
    finally:
        s.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("vaquero state: measured figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture
def figures() -> dict[str, str]:
    return FIGURES
