"""Issue 10 item 14 (and 13 for the agents' routes): what an agent sends is bounded before it is
parsed or stored. Against a real `vaquero server` process with the federation SoT applied."""

from __future__ import annotations

import json
import shutil
import socket
import time
import uuid

import httpx
import pytest
from sec_limits_helpers import READ_TOKEN, REPO, Proc, start_controller

from vaquero.federation.server import MAX_BODY
from vaquero.state.sqlite import SQLiteStore

SHA = "5e7c0ffee" + "0" * 31
AGENT = "east-agent-1"
AGENT_TOKEN = "agt-east1-limits-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("heartbeat")
    root = tmp / "sot"
    shutil.copytree(REPO / "inventories" / "federation", root)
    store = SQLiteStore(tmp / "store.sqlite")
    store.put("/sites-applied/current", {"sha": SHA, "root": str(root), "plan": "p-limits-1"})
    store.close()
    (tmp / "agent-tokens").write_text(f"{AGENT}:agent:{AGENT_TOKEN}\n")
    p = start_controller(tmp / "ctl", None, "--store", str(tmp / "store.sqlite"), "--agent-tokens-file", str(tmp / "agent-tokens"), "--no-worker")
    yield p
    p.stop()


def _post(ctl: Proc, path: str, content: bytes) -> httpx.Response:
    headers = {"Authorization": f"Bearer {AGENT_TOKEN}", "Content-Type": "application/json"}
    return httpx.post(ctl.base + path, content=content, headers=headers, timeout=60)


def _stored(ctl: Proc) -> dict | None:
    resp = httpx.get(ctl.base + "/v1/agents", headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    return next((a for a in resp.json()["agents"] if a["name"] == AGENT), None)


def _beat(ctl: Proc, **fields: object) -> httpx.Response:
    return _post(ctl, f"/v1/agents/{AGENT}/heartbeat", json.dumps({"version": "v-test", **fields}).encode())


def test_huge_armed_list_refused_before_parsing_and_nothing_stored(ctl: Proc) -> None:
    ok = _beat(ctl, armed=["etcd1"], agent_version="before")
    assert ok.status_code == 200, ok.text
    before = _stored(ctl)
    assert before is not None and before["armed"] == ["etcd1"]
    peak = ctl.status_kb("VmHWM")
    # The attack: 100,000 names of 100 characters (about 10 MB of JSON).
    body = json.dumps({"version": "v-evil", "armed": ["x" * 100] * 100_000}).encode()
    resp = _post(ctl, f"/v1/agents/{AGENT}/heartbeat", body)
    assert resp.status_code == 413, resp.text
    grown = ctl.status_kb("VmHWM") - peak
    print(f"peak RSS growth for a {len(body)} byte heartbeat: {grown} kB")
    assert grown < 8 * 1024
    assert _stored(ctl)["version"] == "v-test" and _stored(ctl)["agent_version"] == "before"


def test_body_without_length_is_counted_while_read(ctl: Proc) -> None:
    s = socket.create_connection(("127.0.0.1", ctl.port), timeout=30)
    s.sendall(
        f"POST /v1/agents/{AGENT}/heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {AGENT_TOKEN}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    chunk = b"[" * (256 << 10)
    answer = b""
    try:
        for _ in range(2 * MAX_BODY // len(chunk)):
            s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    except OSError:
        pass  # answered and closed before the end: expected
    s.settimeout(30)
    try:
        answer = s.recv(4096)
    except OSError:
        pass
    s.close()
    assert answer.startswith(b"HTTP/1.1 413 "), answer


@pytest.mark.parametrize(
    "armed, why",
    [
        (["x" * 100], "name longer than an RFC 1123 label"),
        (["Etcd1"], "upper case"),
        (["etcd1\nforged: line"], "control character"),
        ([f"node-{i}" for i in range(500)], "more names than the site has hosts"),
    ],
)
def test_out_of_bounds_heartbeat_is_422_and_stores_nothing(ctl: Proc, armed: list[str], why: str) -> None:
    assert _beat(ctl, armed=["etcd1"], agent_version="good").status_code == 200
    resp = _beat(ctl, armed=armed, agent_version="bad")
    assert resp.status_code == 422, (why, resp.text)
    assert _stored(ctl)["agent_version"] == "good", why


@pytest.mark.parametrize("field, value", [("queued", -1), ("queued", 1 << 60), ("started", "NaN"), ("agent_version", "v" * 65), ("rejected_why", "r" * 1001)])
def test_scalar_fields_bounded(ctl: Proc, field: str, value: object) -> None:
    body = json.dumps({"version": "v-test", field: value}).replace('"NaN"', "NaN").encode()
    resp = _post(ctl, f"/v1/agents/{AGENT}/heartbeat", body)
    assert resp.status_code == 422, (field, resp.text)


def test_only_the_sites_hosts_are_stored_as_armed(ctl: Proc) -> None:
    resp = _beat(ctl, armed=["etcd1", "etcd1", "edge1", "not-a-host"])
    assert resp.status_code == 200, resp.text
    assert _stored(ctl)["armed"] == ["etcd1"]  # edge1 is dc-west's; duplicates and unknown names dropped


@pytest.mark.parametrize("depth", [200_000, 30])
def test_deeply_nested_event_detail_is_4xx(ctl: Proc, depth: int) -> None:
    detail = '{"a": ' + "[" * depth + "]" * depth + "}"
    ev = f'{{"id": "ev-{uuid.uuid4().hex}", "host": "etcd1", "state": "installing", "detail": {detail}}}'
    resp = _post(ctl, f"/v1/agents/{AGENT}/events", f'{{"events": [{ev}]}}'.encode())
    assert resp.status_code in (400, 422), resp.text
    assert "internal" not in resp.text


def test_event_fields_bounded(ctl: Proc) -> None:
    bad_host = {"id": f"ev-{uuid.uuid4().hex}", "host": "x" * 100, "state": "installing"}
    bad_time = {"id": f"ev-{uuid.uuid4().hex}", "host": "etcd1", "state": "installing", "time": 1e300}
    for ev in (bad_host, bad_time):
        resp = _post(ctl, f"/v1/agents/{AGENT}/events", json.dumps({"events": [ev]}).encode())
        assert resp.status_code == 422, resp.text
    # A well-formed batch still goes through.
    ok = {"id": f"ev-{uuid.uuid4().hex}", "host": "etcd1", "state": "installing", "time": time.time()}
    resp = _post(ctl, f"/v1/agents/{AGENT}/events", json.dumps({"events": [ok]}).encode())
    assert resp.status_code == 200, resp.text
    assert ok["id"] in {*resp.json()["applied"], *resp.json()["refused"]}


def test_declared_oversize_events_refused_before_reading(ctl: Proc) -> None:
    s = socket.create_connection(("127.0.0.1", ctl.port), timeout=30)
    s.sendall(
        f"POST /v1/agents/{AGENT}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {AGENT_TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {100 * MAX_BODY}\r\n\r\n".encode()
    )
    answer = s.recv(4096)
    s.close()
    assert answer.startswith(b"HTTP/1.1 413 "), answer

