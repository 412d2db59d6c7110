"""The agent's uvicorn protocol with the pre-rendered fast path, over real sockets."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn

from vaquero.agent.fasthttp import BootHttpProtocol


@pytest.fixture
def server(app):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    cfg = uvicorn.Config(app, http=BootHttpProtocol, loop="uvloop", lifespan="off", access_log=False, log_config=None)
    srv = uvicorn.Server(cfg)
    t = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    deadline = time.monotonic() + 60  # bounds a hang only
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield port, app
    srv.should_exit = True
    t.join(5)


def exchange(port: int, raw: bytes, expect: int) -> list[bytes]:
    """Send raw bytes on one connection; read `expect` responses (content-length framed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(raw)
    buf = b""
    out = []
    while len(out) < expect:
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, f"connection closed after {len(out)} responses"
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        is_head = b"HEAD" in raw and len(out) == 0 and raw.startswith(b"HEAD")
        if is_head:
            length = 0
        while len(rest) < length:
            rest += s.recv(65536)
        out.append(head + b"\r\n\r\n" + rest[:length])
        buf = rest[length:]
    s.close()
    return out


def test_fast_and_slow_paths_pipelined_in_order(server):
    port, app = server
    req = (
        b"GET /boot.ipxe HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /v1/boot/status/node1 HTTP/1.1\r\nHost: a\r\n\r\n"  # slow path (ASGI)
        b"GET /v1/boot/ipxe/52-54-00-00-10-01 HTTP/1.1\r\nHost: a\r\n\r\n"  # fast path queued behind it
        b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    r = exchange(port, req, 4)
    assert b"chain --autofree" in r[0]
    assert b'"host": "node1"' in r[1]
    assert b"sanboot" in r[2]
    assert r[3].endswith(b"ok\n")
    assert all(x.startswith(b"HTTP/1.1 200") for x in r)
    assert app.states.get("node1").scripts_served == 1


def test_head_http10_and_close(server):
    port, _ = server
    (r,) = exchange(port, b"HEAD /boot.ipxe HTTP/1.1\r\nHost: a\r\n\r\n", 1)
    assert r.startswith(b"HTTP/1.1 200") and r.endswith(b"\r\n\r\n") and b"content-length: " in r
    (r,) = exchange(port, b"GET /boot.ipxe HTTP/1.0\r\n\r\n", 1)
    assert b"chain" in r
    (r,) = exchange(port, b"GET /boot.ipxe HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 1)
    assert b"chain" in r and b"connection: close" in r.lower()


def test_state_change_visible_on_fast_path(server):
    port, app = server
    app.states.arm("node1")
    app.rebuild(only="node1")
    (r,) = exchange(port, b"GET /v1/boot/ipxe/52-54-00-00-10-01 HTTP/1.1\r\nHost: a\r\n\r\n", 1)
    assert b"kernel --name vmlinuz" in r
    body = b'{"ip": "10.90.0.11"}'
    token = app.states.token("node1").encode()
    head = b"POST /v1/boot/callback/node1?token=%s HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n" % token
    (r,) = exchange(port, head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body), 1)
    assert b'"state": "installed"' in r
    (r,) = exchange(port, b"GET /v1/boot/ipxe/52-54-00-00-10-01 HTTP/1.1\r\nHost: a\r\n\r\n", 1)
    assert b"sanboot" in r and b"kernel" not in r
    (r,) = exchange(port, b"GET /assets/../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n", 1)
    assert r.startswith(b"HTTP/1.1 400")
    (r,) = exchange(port, b"GET /v1/boot/ipxe/%35%32-54-00-00-10-01 HTTP/1.1\r\nHost: a\r\n\r\n", 1)  # percent-encoded: slow path, same answer
    assert b"sanboot" in r
