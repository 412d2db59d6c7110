"""Issue 10 items 12 and 13: webhook bodies are bounded before the HMAC, and bad JSON is a 4xx.

Against a real `vaquero server` process; memory is read from /proc/<pid>/status (VmHWM, the peak
resident set), so a body buffered even briefly would show.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from sec_limits_helpers import WEBHOOK_SECRET, Proc, start_controller

from vaquero.api.webhook import MAX_BODY

FIXTURES = Path("/work/shared/fixtures/github-webhooks")
BIG = 50 * 1024 * 1024


def _sign(body: bytes) -> str:
    return "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


def _hook(ctl: Proc, body: bytes, event: str = "ping", delivery: str | None = None) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": _sign(body),
    }
    return httpx.post(ctl.base + "/v1/webhooks/github", content=body, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory):
    if not (FIXTURES / "ping" / "payload.json").is_file():
        pytest.fail(f"missing fixtures in {FIXTURES}")
    p = start_controller(tmp_path_factory.mktemp("webhook-limits"))
    yield p
    p.stop()


def _raw_post(port: int, signature: str | None, length: int, send_body: bool) -> bytes:
    """Headers declaring `length` bytes, then (optionally) as much of the body as the server takes; the answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = "POST /v1/webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n"
    head += f"X-GitHub-Delivery: {uuid.uuid4()}\r\nContent-Length: {length}\r\n"
    if signature:
        head += f"X-Hub-Signature-256: {signature}\r\n"
    s.sendall(head.encode() + b"\r\n")
    if send_body:
        chunk = b"[" * (1 << 20)
        try:
            for _ in range(length // len(chunk)):
                s.sendall(chunk)
        except OSError:
            pass  # the server answered and closed: the rest is not read, as intended
    try:
        answer = s.recv(4096)
    except OSError:
        answer = b""
    s.close()
    return answer


def test_declared_oversize_refused_before_any_body_byte(ctl: Proc) -> None:
    answer = _raw_post(ctl.port, "sha256=" + "0" * 64, MAX_BODY + 1, send_body=False)
    assert answer.startswith(b"HTTP/1.1 413 "), answer


def test_no_content_length_is_411(ctl: Proc) -> None:
    s = socket.create_connection(("127.0.0.1", ctl.port), timeout=30)
    s.sendall(
        b"POST /v1/webhooks/github HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=00\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"5\r\n{\"a\":\r\n"
    )
    assert s.recv(4096).startswith(b"HTTP/1.1 411 ")
    s.close()


def test_ten_concurrent_50mb_unsigned_bodies_cost_no_memory(ctl: Proc) -> None:
    warm = _raw_post(ctl.port, None, 10, send_body=False)  # the same code path once, so its imports are not counted
    assert warm.startswith(b"HTTP/1.1 401 ")
    before = ctl.status_kb("VmHWM")
    answers: list[bytes] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        # Half declare 50 MB with a made-up signature (refused on their Content-Length), half 20 MB
        # (under the cap) with no signature at all (refused before the body): neither is read, let alone hashed.
        a = _raw_post(ctl.port, "sha256=" + "0" * 64, BIG, send_body=True) if i % 2 else _raw_post(ctl.port, None, 20 << 20, send_body=True)
        with lock:
            answers.append(a)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(answers) == 10
    codes = sorted(a[9:12].decode() for a in answers)
    assert codes == ["401"] * 5 + ["413"] * 5, answers
    grown_kb = ctl.status_kb("VmHWM") - before
    print(f"peak RSS growth for 10 concurrent unsigned bodies (5 x 50 MB, 5 x 20 MB): {grown_kb} kB")
    assert grown_kb < 8 * 1024, f"peak RSS grew by {grown_kb} kB"
    # Still serving, and a real delivery works.
    ping = (FIXTURES / "ping" / "payload.json").read_bytes()
    resp = _hook(ctl, ping)
    assert resp.status_code == 200 and resp.json()["status"] == "pong", resp.text


def test_large_but_allowed_signed_body_is_read_and_checked(ctl: Proc) -> None:
    doc = json.loads((FIXTURES / "ping" / "payload.json").read_bytes())
    doc["padding"] = "x" * (3 << 20)  # above the small-body threshold: the bounded large-body path
    body = json.dumps(doc).encode()
    resp = _hook(ctl, body)
    assert resp.status_code == 200 and resp.json()["status"] == "pong", resp.text
    bad = httpx.post(
        ctl.base + "/v1/webhooks/github",
        content=body,
        headers={"X-GitHub-Event": "ping", "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": _sign(body + b" ")},
        timeout=60,
    )
    assert bad.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        b'{"zen": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
        b"[" * 200_000 + b"]" * 200_000,
        b'{"a": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001,
        b'{"zen": "unterminated',
        b"\xff\xfe not utf-8",
    ],
    ids=["nested-arrays", "top-level-nesting", "nested-objects", "truncated", "not-utf8"],
)
def test_bad_signed_json_is_4xx_and_records_nothing(ctl: Proc, body: bytes) -> None:
    delivery = str(uuid.uuid4())
    resp = _hook(ctl, body, delivery=delivery)
    assert resp.status_code == 400, resp.text
    assert "internal" not in resp.text
    # Nothing was recorded for that delivery: the same id with a good body is handled, not a duplicate.
    good = _hook(ctl, (FIXTURES / "ping" / "payload.json").read_bytes(), delivery=delivery)
    assert good.status_code == 200 and good.json()["status"] == "pong", good.text
