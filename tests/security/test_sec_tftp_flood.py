"""Issue 10 item 9: a flood of unacknowledged TFTP read requests must not kill or wedge TFTP.

The server runs in its own process with a low file-descriptor limit (the flood would need more
sockets than it has), the flood comes from 1,100 loopback UDP sockets that never ACK, and curl
(a real TFTP client) downloads a file during and after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_until

from vaquero.agent.tftp import MAX_SESSIONS, TftpServer

FLOOD = 1100
FD_LIMIT = 512  # below what 1,100 sessions would need

SERVER = textwrap.dedent(
    """
    import json, os, resource, sys
    from pathlib import Path
    resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))
    from vaquero.agent.tftp import TftpServer
    srv = TftpServer(Path(sys.argv[1]), timeout=1.0, retries=3, max_sessions={max_sessions})
    host, port = srv.start(("127.0.0.1", 0))
    print(port, flush=True)
    for line in sys.stdin:
        alive = srv._thread is not None and srv._thread.is_alive()
        stats = dict(sessions=srv.sessions, busy=srv.busy, evicted=srv.evicted, errors=srv.errors, restarts=srv.restarts, alive=alive)
        print(json.dumps(stats), flush=True)
    srv.stop()
    """
)


def _need_curl() -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed (run scripts/setup.sh)")


def _curl(port: int, name: str, out: Path) -> subprocess.CompletedProcess[bytes]:
    cmd = ["curl", "-sS", "--max-time", "60", "--tftp-blksize", "1432", "-o", str(out), f"tftp://127.0.0.1:{port}/{name}"]
    return subprocess.run(cmd, capture_output=True, timeout=90)


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rrq(name: str) -> bytes:
    return b"\x00\x01" + name.encode() + b"\x00octet\x00"


@pytest.fixture
def payload(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "root"
    root.mkdir()
    data = os.urandom(3 << 20)
    (root / "ipxe.efi").write_bytes(data)
    return root, hashlib.sha256(data).hexdigest()


@pytest.fixture
def server_proc(payload: tuple[Path, str], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    _need_curl()
    root, _ = payload
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(limit=FD_LIMIT, max_sessions=MAX_SESSIONS), str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "tftp.log", "w"),
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip().isdigit(), (tmp_path / "tftp.log").read_text()
    yield proc, int(line)
    proc.kill()
    proc.wait(10)


def _stats(proc: subprocess.Popen[str]) -> dict[str, int]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("stats\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def test_rrq_flood_neither_kills_nor_blocks_tftp(server_proc, payload, tmp_path):
    proc, port = server_proc
    _root, digest = payload
    baseline = _fds(proc.pid)
    flood: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.sendto(_rrq("ipxe.efi"), ("127.0.0.1", port))
            flood.append(s)
        # Every request was seen (answered, evicted or refused) and the session count stayed capped.
        deadline = time.monotonic() + 60
        while True:
            st = _stats(proc)
            if st["sessions"] + st["evicted"] + st["busy"] >= FLOOD:
                break
            assert time.monotonic() < deadline, st
            time.sleep(0.1)
        assert st["alive"] and st["restarts"] == 0 and st["errors"] == 0, st
        assert st["sessions"] <= MAX_SESSIONS, st
        assert st["evicted"] >= FLOOD - MAX_SESSIONS, st
        assert _fds(proc.pid) <= baseline + MAX_SESSIONS + 8

        # The flood still holds its sessions: a real client gets through anyway.
        out = tmp_path / "during"
        res = _curl(port, "ipxe.efi", out)
        assert res.returncode == 0, res.stderr
        assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
    finally:
        for s in flood:
            s.close()

    # Unacknowledged sessions time out; the sockets they held are given back.
    deadline = time.monotonic() + 60
    while _fds(proc.pid) > baseline + 4 or _stats(proc)["sessions"]:
        assert time.monotonic() < deadline, (baseline, _fds(proc.pid), _stats(proc))
        time.sleep(0.2)
    out = tmp_path / "after"
    res = _curl(port, "ipxe.efi", out)
    assert res.returncode == 0, res.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
    st = _stats(proc)
    assert st["alive"] and st["restarts"] == 0, st


def test_busy_answer_when_every_transfer_moves(payload, tmp_path):
    """With the cap reached by transfers that are all making progress, a new request gets a TFTP error, not silence."""
    _need_curl()
    root, _ = payload
    srv = TftpServer(root, timeout=1.0, retries=3, max_sessions=1)
    _h, port = srv.start(("127.0.0.1", 0))
    try:
        # One transfer that has been acknowledged once (so it is not evictable), then left waiting.
        mover = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        mover.settimeout(10)
        mover.sendto(_rrq("ipxe.efi"), ("127.0.0.1", port))
        pkt, peer = mover.recvfrom(65536)
        assert pkt[:4] == b"\x00\x03\x00\x01"
        mover.sendto(b"\x00\x04\x00\x01", peer)
        pkt, _ = mover.recvfrom(65536)
        assert pkt[:4] == b"\x00\x03\x00\x02"
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.settimeout(10)
        other.sendto(_rrq("ipxe.efi"), ("127.0.0.1", port))
        pkt, _ = other.recvfrom(65536)
        assert pkt[:2] == b"\x00\x05" and b"busy" in pkt
        assert srv.busy == 1 and srv.sessions == 1
        mover.close()
        other.close()
    finally:
        srv.stop()


def test_waiting_ack_is_read_before_an_eviction(payload, tmp_path):
    """A boot storm: the server reads a new request before the ACK already waiting in a full
    server's one transfer. That transfer is moving and must stay; the newcomer gets "busy".
    The server process is stopped while both packets arrive, so it finds them in that order."""
    _need_curl()
    root, _ = payload
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(limit=FD_LIMIT, max_sessions=1), str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "tftp.log", "w"),
        text=True,
    )
    mover = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    newcomer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        mover.settimeout(10)
        newcomer.settimeout(10)
        mover.sendto(_rrq("ipxe.efi"), ("127.0.0.1", port))
        pkt, peer = mover.recvfrom(65536)
        assert pkt[:4] == b"\x00\x03\x00\x01"
        os.kill(proc.pid, signal.SIGSTOP)
        wait_until(lambda: Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T", what="the server stopped")
        newcomer.sendto(_rrq("ipxe.efi"), ("127.0.0.1", port))
        mover.sendto(b"\x00\x04\x00\x01", peer)
        os.kill(proc.pid, signal.SIGCONT)
        pkt, _ = mover.recvfrom(65536)
        assert pkt[:4] == b"\x00\x03\x00\x02"
        pkt, _ = newcomer.recvfrom(65536)
        assert pkt[:2] == b"\x00\x05" and b"busy" in pkt
        st = _stats(proc)
        assert st["evicted"] == 0 and st["busy"] == 1 and st["sessions"] == 1, st
    finally:
        mover.close()
        newcomer.close()
        proc.kill()
        proc.wait(10)


def test_loop_that_dies_is_restarted(payload, tmp_path, monkeypatch):
    _need_curl()
    root, digest = payload
    srv = TftpServer(root, timeout=0.2, retries=3)
    boom = threading.Event()
    real_sweep = srv._sweep

    def sweep_once_broken(sessions: dict) -> None:
        if not boom.is_set():
            boom.set()
            raise RuntimeError("injected fault in the server loop")
        real_sweep(sessions)

    monkeypatch.setattr(srv, "_sweep", sweep_once_broken)
    _h, port = srv.start(("127.0.0.1", 0))
    try:
        deadline = time.monotonic() + 30
        while srv.restarts < 1:
            assert time.monotonic() < deadline, "the loop did not die and restart"
            time.sleep(0.05)
        out = tmp_path / "after-restart"
        res = _curl(port, "ipxe.efi", out)
        assert res.returncode == 0, res.stderr
        assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
        assert srv._thread is not None and srv._thread.is_alive()
    finally:
        srv.stop()


def test_exception_in_one_session_ends_only_that_session(payload, tmp_path, monkeypatch):
    _need_curl()
    root, digest = payload
    (root / "poison").write_bytes(b"p" * 5000)
    srv = TftpServer(root, timeout=0.5, retries=3)
    real_packets = srv.cache.packets

    def packets(name: str, data: bytes, blksize: int) -> tuple[bytes, ...]:
        if name == "poison":
            raise RuntimeError("injected fault in one session")
        return real_packets(name, data, blksize)

    monkeypatch.setattr(srv.cache, "packets", packets)
    _h, port = srv.start(("127.0.0.1", 0))
    try:
        bad = _curl(port, "poison", tmp_path / "poison")
        assert bad.returncode != 0
        out = tmp_path / "good"
        res = _curl(port, "ipxe.efi", out)
        assert res.returncode == 0, res.stderr
        assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
        assert srv.errors >= 1 and srv.restarts == 0
        deadline = time.monotonic() + 30
        while srv.sessions:
            assert time.monotonic() < deadline, srv.sessions
            time.sleep(0.05)
    finally:
        srv.stop()
