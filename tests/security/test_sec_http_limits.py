"""Issue 10 items 10 and 11: slowloris and SSE floods against the real agent and controller processes.

Each flood is bounded in count and time. A probe counts as slow when it does not get its 200
within its 1 s timeout; the requirement (p99 under 1 s) is asserted as zero slow probes.
"""

from __future__ import annotations

import select
import shutil
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from sec_limits_helpers import APPROVE_TOKEN, READ_TOKEN, REPO, Proc, start_agent, start_controller

from vaquero.api.events import MAX_STREAMS

SLOWLORIS = 300
CAP = 200  # VAQUERO_HTTP_MAX_CONNECTIONS for these servers: the slowloris alone exceeds it
FLOOD_SECONDS = 14.0  # longer than the 10 s header timeout
PROBE_TIMEOUT = 1.0


class Slowloris(threading.Thread):
    """`count` connections that send a request line, then one header line every `interval` s, never finishing.

    A connection the server closes is replaced (as a real attacker would), up to `max_total` connections.
    """

    def __init__(self, port: int, count: int, interval: float = 2.0, max_total: int = 3000) -> None:
        super().__init__(daemon=True)
        self.port, self.count, self.interval, self.max_total = port, count, interval, max_total
        self.stop = threading.Event()
        self.opened = 0
        self.closed_by_server = 0
        self.answers: Counter[str] = Counter()
        self.socks: list[socket.socket] = []

    def _open(self) -> socket.socket | None:
        if self.opened >= self.max_total:
            return None
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
        except OSError:
            return None
        s.setblocking(False)
        self.opened += 1
        return s

    def run(self) -> None:
        self.socks = [s for s in (self._open() for _ in range(self.count)) if s is not None]
        while not self.stop.wait(self.interval):
            readable, _, _ = select.select(self.socks, [], [], 0) if self.socks else ([], [], [])
            for s in readable:
                self._closed(s)
            for s in list(self.socks):
                try:
                    s.send(b"X-Slow: 1\r\n")
                except OSError:
                    self._closed(s)

    def _closed(self, s: socket.socket) -> None:
        if s not in self.socks:
            return
        try:
            data = s.recv(200)
        except OSError:
            data = b""
        self.answers[data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1 ") else "closed"] += 1
        self.closed_by_server += 1
        s.close()
        self.socks.remove(s)
        fresh = self._open()
        if fresh is not None:
            self.socks.append(fresh)

    def close(self) -> None:
        self.stop.set()
        self.join(30)
        for s in self.socks:
            s.close()


def _probe(url: str, headers: dict[str, str] | None = None) -> bool:
    """True when the URL answered 200 within PROBE_TIMEOUT (a fresh connection each time)."""
    try:
        return httpx.get(url, headers=headers, timeout=PROBE_TIMEOUT).status_code == 200
    except httpx.HTTPError:
        return False


def _under_slowloris(server: Proc, probes: list[tuple[str, dict[str, str] | None]]) -> tuple[int, int, Slowloris]:
    flood = Slowloris(server.port, SLOWLORIS)
    flood.start()
    total = slow = 0
    try:
        deadline = time.monotonic() + 30
        while flood.opened < SLOWLORIS:  # the whole flood is connected before probing starts
            assert flood.is_alive() and time.monotonic() < deadline, flood.opened
            time.sleep(0.05)
        end = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < end:
            for path, headers in probes:
                total += 1
                slow += not _probe(server.base + path, headers)
            time.sleep(0.05)
    finally:
        flood.close()
    print(f"slowloris: {flood.opened} connections opened, {flood.closed_by_server} shed by the server {dict(flood.answers)}; {slow}/{total} probes over 1 s")
    return total, slow, flood


def test_slowloris_against_agent(tmp_path: Path) -> None:
    agent = start_agent(tmp_path / "agent", {"VAQUERO_HTTP_MAX_CONNECTIONS": str(CAP)})
    try:
        baseline = agent.fds()
        total, slow, flood = _under_slowloris(agent, [("/healthz", None), ("/boot.ipxe", None)])
        assert slow == 0, f"{slow} of {total} probes missed their {PROBE_TIMEOUT} s"
        assert total >= 20
        # The server shed the slow connections itself: evicted at the cap (503) or timed out (408).
        assert flood.closed_by_server >= SLOWLORIS - CAP, flood.answers
        assert set(flood.answers) <= {"408", "503", "closed"}, flood.answers
        # A real boot script after the flood, and the connections it held are given back.
        boot = httpx.get(agent.base + "/boot.ipxe", timeout=5)
        assert boot.status_code == 200 and boot.text.startswith("#!ipxe")
        deadline = time.monotonic() + 30
        while agent.fds() > baseline + 5:
            assert time.monotonic() < deadline, (baseline, agent.fds())
            time.sleep(0.1)
        assert agent.proc.poll() is None
    finally:
        agent.stop()


def test_slowloris_against_controller(tmp_path: Path) -> None:
    ctl = start_controller(tmp_path / "ctl", {"VAQUERO_HTTP_MAX_CONNECTIONS": str(CAP)})
    try:
        reader = {"Authorization": f"Bearer {READ_TOKEN}"}
        total, slow, flood = _under_slowloris(ctl, [("/healthz/live", None), ("/v1/plans", reader)])
        assert slow == 0, f"{slow} of {total} probes missed their {PROBE_TIMEOUT} s"
        assert total >= 20
        assert flood.closed_by_server >= SLOWLORIS - CAP, flood.answers
        assert set(flood.answers) <= {"408", "503", "closed"}, flood.answers
        assert ctl.proc.poll() is None
    finally:
        ctl.stop()


def test_header_timeout_idle_and_partial_connections_closed_with_408(tmp_path: Path) -> None:
    ctl = start_controller(tmp_path / "ctl")
    try:
        silent = socket.create_connection(("127.0.0.1", ctl.port), timeout=60)
        partial = socket.create_connection(("127.0.0.1", ctl.port), timeout=60)
        partial.sendall(b"GET /healthz/live HTTP/1.1\r\nHost: x\r\n")
        for s in (silent, partial):
            answer = s.recv(1000)  # blocks until the server gives up on the headers
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert b"connection: close" in answer.lower()
            assert s.recv(1000) == b""  # and closes
            s.close()
        # Oversized headers: 431, not a buffer that grows.
        big = socket.create_connection(("127.0.0.1", ctl.port), timeout=30)
        big.sendall(b"GET /healthz/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (200 << 10) + b"\r\n\r\n")
        assert big.recv(1000).startswith(b"HTTP/1.1 431 ")
        big.close()
        assert _probe(ctl.base + "/healthz/live")
    finally:
        ctl.stop()


def _open_sse(port: int) -> tuple[socket.socket, bytes]:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(f"GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {READ_TOKEN}\r\nAccept: text/event-stream\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return s, head


def test_sse_streams_capped_and_probes_stay_responsive(tmp_path: Path) -> None:
    sot = tmp_path / "sots" / "lab"
    shutil.copytree(REPO / "inventories" / "lab", sot)
    ctl = start_controller(tmp_path / "ctl", None, "--allow-source", str(tmp_path / "sots"))
    streams: list[tuple[socket.socket, bytes]] = []
    try:
        streams = [_open_sse(ctl.port) for _ in range(2 * MAX_STREAMS)]
        codes = Counter(head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/1.1 ") else "none" for _, head in streams)
        assert codes == {"200": MAX_STREAMS, "503": MAX_STREAMS}, codes

        reader = {"Authorization": f"Bearer {READ_TOKEN}"}
        total = slow = 0
        for _ in range(40):
            for path, headers in (("/healthz/live", None), ("/healthz/ready", None), ("/v1/plans", reader)):
                total += 1
                slow += not _probe(ctl.base + path, headers)
        assert slow == 0, f"{slow} of {total} probes missed their {PROBE_TIMEOUT} s with {MAX_STREAMS} streams open"

        # The open streams still carry events: queue a revision and see it on one of them.
        resp = httpx.post(ctl.base + "/v1/revisions", json={"source": str(sot)}, headers={"Authorization": f"Bearer {APPROVE_TOKEN}"}, timeout=30)
        assert resp.status_code in (200, 202), resp.text
        open_streams = [s for s, head in streams if b" 200 " in head[:13]]
        for s in (open_streams[0], open_streams[-1]):
            seen = b""
            deadline = time.monotonic() + 30
            while b"event: revision" not in seen:
                assert time.monotonic() < deadline, seen[-500:]
                seen += s.recv(65536)
    finally:
        for s, _ in streams:
            s.close()
    try:
        # Closed streams free their slots.
        deadline = time.monotonic() + 30
        while True:
            s, head = _open_sse(ctl.port)
            s.close()
            if b" 200 " in head[:13]:
                break
            assert time.monotonic() < deadline, head
            time.sleep(0.2)
    finally:
        ctl.stop()


def test_connection_cap_refuses_when_every_connection_is_busy(tmp_path: Path) -> None:
    """At the cap with no idle or slow connection to evict, a new connection gets 503 and the server keeps going."""
    ctl = start_controller(tmp_path / "ctl", {"VAQUERO_HTTP_MAX_CONNECTIONS": "20"})
    busy: list[socket.socket] = []
    try:
        # Requests whose headers are complete and whose body is still awaited: busy, not evictable.
        head = b"POST /v1/webhooks/github HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=00\r\nContent-Length: 1000\r\n\r\n"
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", ctl.port), timeout=10)
            s.sendall(head)
            busy.append(s)
        # One more: 503 once the server has taken all 20 (until then it is served and closed here).
        deadline = time.monotonic() + 30
        while True:
            extra = socket.create_connection(("127.0.0.1", ctl.port), timeout=2)
            try:
                answer = extra.recv(1000)
            except TimeoutError:
                answer = b""
            extra.close()
            if answer:
                break
            assert time.monotonic() < deadline
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        # Finishing one busy request frees a slot (its body is refused by signature, 401).
        busy[0].sendall(b"x" * 1000)
        assert busy[0].recv(1000).startswith(b"HTTP/1.1 401 ")
    finally:
        for s in busy:
            s.close()
    try:
        deadline = time.monotonic() + 30
        while not _probe(ctl.base + "/healthz/live"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert ctl.proc.poll() is None
    finally:
        ctl.stop()


def _send_body(port: int, path: str, head: bytes, chunks: int, chunk: bytes) -> bytes:
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode() + head + b"\r\n")
    try:
        for _ in range(chunks):
            s.sendall(chunk)
    except OSError:
        pass  # refused and closed before the end: expected
    try:
        answer = s.recv(4096)
    except OSError:
        answer = b""
    s.close()
    return answer


def test_body_size_capped_on_every_route(tmp_path: Path) -> None:
    """25 MB on the controller (any route, before the application sees it), 1 MB on the agent."""
    ctl = start_controller(tmp_path / "ctl")
    agent = start_agent(tmp_path / "agent")
    try:
        auth = f"Authorization: Bearer {APPROVE_TOKEN}\r\n".encode()
        declared = _send_body(ctl.port, "/v1/revisions", auth + f"Content-Length: {30 << 20}\r\n".encode(), 0, b"")
        assert declared.startswith(b"HTTP/1.1 413 "), declared
        piece = b"[" * (1 << 20)
        framed = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        chunked = _send_body(ctl.port, "/v1/revisions", auth + b"Transfer-Encoding: chunked\r\n", 30, framed)
        assert chunked.startswith(b"HTTP/1.1 413 "), chunked
        small = httpx.post(ctl.base + "/v1/revisions", json={"source": "/nowhere"}, headers={"Authorization": f"Bearer {APPROVE_TOKEN}"}, timeout=30)
        assert small.status_code == 422, small.text  # an ordinary body still reaches the application
        to_agent = _send_body(agent.port, "/v1/boot/callback/node1", f"Content-Length: {2 << 20}\r\n".encode(), 0, b"")
        assert to_agent.startswith(b"HTTP/1.1 413 "), to_agent
        assert ctl.proc.poll() is None and agent.proc.poll() is None
    finally:
        ctl.stop()
        agent.stop()
