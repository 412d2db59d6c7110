"""Issue 10 items 7, 8 and 13 (agent): an authenticated provisioning network, against a real agent process.

- item 7: the admin routes (arm, disarm) deny by default: no token configured, the agent makes one
  (0600 in its state folder) and anonymous or wrong callers get 401 and change nothing;
- item 8: the config and the callback need the host's one-time install token: missing or wrong
  -> 401, another host's -> 403, replayed after the callback -> 401, and nothing changes;
- item 13: a non-ASCII bearer token and `Range: bytes=-<5000 digits>` get a 4xx or a whole-file
  200, never a 500.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sec_agent_helpers import KERNEL, MACS, AgentProc, script_token
from waiting import wait_until


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentProc]:
    a = AgentProc(tmp_path)
    try:
        yield a
    finally:
        a.stop()


def snapshot(agent: AgentProc) -> dict[str, Any]:
    """What an attacker could try to change: every host's state and the scripts hosts get
    (not the counters of scripts served, which reading the scripts moves)."""
    served = ("last_script", "last_script_at", "scripts_served")
    return {h: ({k: v for k, v in agent.status(h).items() if k not in served}, agent.script(h)) for h in MACS}


def secrets_in_log(agent: AgentProc, *values: str) -> list[str]:
    text = agent.log.read_text(errors="replace")
    return [v[:6] + "..." for v in values if v in text]


def test_admin_routes_deny_by_default(agent: AgentProc) -> None:
    token_file = agent.state_dir / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert str(token_file) in agent.log.read_text()  # where the operator finds it ...
    assert secrets_in_log(agent, agent.admin_token) == []  # ... never its value
    before = snapshot(agent)
    with agent.client() as c:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic " + agent.admin_token}, {"Authorization": "Bearer"}):
            for route in ("/v1/boot/install/node1", "/v1/boot/localboot/node1", "/v1/boot/install/ghost"):
                r = c.post(route, headers=headers)
                assert r.status_code == 401, (route, headers, r.text)
    # item 13: a bearer token that is not ASCII (latin-1 and invalid UTF-8 bytes), and an absurdly long one
    for value in (b"Bearer \xc3\xa9t\xc3\xa9", b"Bearer \xff\xfe\x80", b"Bearer " + b"x" * 8000, "Bearer ĉapelo".encode()):
        head = b"POST /v1/boot/install/node1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 0\r\n"
        answer = agent.raw(head + b"Authorization: " + value + b"\r\n\r\n")
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer[:200]
    assert snapshot(agent) == before
    assert agent.status("node1")["state"] == "none" and "kernel" not in agent.script("node1")
    # the right token works
    with agent.client() as c:
        r = c.post("/v1/boot/install/node1", headers=agent.admin())
        assert r.status_code == 200 and r.json()["state"] == "install"
    assert "kernel --name vmlinuz" in agent.script("node1")


def test_install_tokens_bind_config_and_callback(agent: AgentProc, tmp_path: Path) -> None:
    with agent.client() as c:
        for h in ("node1", "node2"):
            assert c.post(f"/v1/boot/install/{h}", headers=agent.admin()).status_code == 200
    t1, t2 = script_token(agent.script("node1")), script_token(agent.script("node2"))
    assert t1 != t2 and len(t1) >= 40
    assert "token=" not in agent.script("node3")  # not armed: localboot, no token
    with agent.client() as c:
        unknown = c.get("/v1/boot/ipxe/52-54-00-00-10-99").text
        assert "token" not in unknown and "kernel" not in unknown  # an unknown MAC never gets one

        # -- the config: only with the host's own token --
        assert c.get("/v1/boot/config/node1").status_code == 401
        assert c.get("/v1/boot/config/node1?token=").status_code == 401
        assert c.get("/v1/boot/config/node1?token=" + "A" * 43).status_code == 401
        assert c.get("/v1/boot/config/node1?token=%ff%fe" + "A" * 40).status_code == 401
        assert c.get(f"/v1/boot/config/node1?token={t2}").status_code == 403
        assert c.get(f"/v1/boot/nocloud/node1/{t2}/user-data").status_code == 403
        assert c.get("/v1/boot/nocloud/node1/meta-data").status_code == 401
        assert c.get("/v1/boot/config/node3").status_code == 401
        before = snapshot(agent)

        # -- the callback: missing, wrong, another host's token --
        for query, code in (("", 401), ("?token=nope", 401), ("?token=" + "B" * 43, 401), (f"?token={t2}", 403), ("?token=" + "C" * 5000, 401)):
            r = c.post(f"/v1/boot/callback/node1{query}", json={"ok": True})
            assert r.status_code == code, (query, r.text)
        assert c.post(f"/v1/boot/callback/node2?token={t1}", json={"ok": True}).status_code == 403
        assert c.post(f"/v1/boot/callback/node1?token={t1}", json={"ok": True, "mac": "52:54:00:00:10:02"}).status_code == 403  # another host's MAC
        assert snapshot(agent) == before

        # -- the legitimate installer: config (several times), then one callback --
        for _ in range(2):
            r = c.get(f"/v1/boot/config/node1?token={t1}")
            assert r.status_code == 200 and r.text.startswith("#cloud-config") and "hostname: node1" in r.text
        assert "local-hostname: node1" in c.get(f"/v1/boot/nocloud/node1/{t1}/meta-data").text
        r = c.post(f"/v1/boot/callback/node1?token={t1}", json={"ok": True, "mac": "52:54:00:00:10:01"})
        assert r.status_code == 200 and r.json()["state"] == "installed"
        after = snapshot(agent)
        assert after["node1"][0]["state"] == "installed" and "kernel" not in after["node1"][1]

        # -- replayed: refused, and nothing moves (state, report, served script) --
        assert c.post(f"/v1/boot/callback/node1?token={t1}", json={"evil": True}).status_code == 401
        assert c.get(f"/v1/boot/config/node1?token={t1}").status_code == 401
        assert snapshot(agent) == after

    # -- a token is bound to the address that used it first --
    with agent.client() as c:
        assert c.get(f"/v1/boot/config/node2?token={t2}").status_code == 200  # from 127.0.0.1
    with agent.client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
        assert other.get(f"/v1/boot/config/node2?token={t2}").status_code == 403
        assert other.post(f"/v1/boot/callback/node2?token={t2}", json={}).status_code == 403
    assert agent.status("node2")["state"] == "install"

    # the tokens never reach the log, the status answers, nor a file but the 0600 state file
    assert secrets_in_log(agent, t1, t2, agent.admin_token) == []
    assert all(t not in json.dumps(agent.status(h)) for h in MACS for t in (t1, t2))
    state_file = agent.state_dir / "boot-states.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and p != state_file and t2.encode() in p.read_bytes()]
    assert leaked == []

    # -- a restart keeps the armed host's token: its installer can still finish --
    agent.stop()
    again = AgentProc(tmp_path)
    try:
        assert script_token(again.script("node2")) == t2
        with again.client() as c:
            assert c.post(f"/v1/boot/callback/node1?token={t1}", json={}).status_code == 401
            assert c.post(f"/v1/boot/callback/node2?token={t2}", json={}).status_code == 200
        assert again.status("node2")["state"] == "installed"
    finally:
        again.stop()


@pytest.mark.parametrize(
    "rng",
    [
        "bytes=-" + "9" * 5000,
        "bytes=" + "9" * 5000 + "-",
        "bytes=0-" + "9" * 5000,
        "bytes=" + "1" * 4300 + "-" + "2" * 4300,
        "bytes=99999999999999999999-",
        "bytes=-99999999999999999999",
        "bytes=5-3",
        "bytes=0-0,-1",
        "bytes=" + "0-1," * 2000,
        "bytes=\u00e9-",
    ],
)
def test_absurd_ranges_never_500(agent: AgentProc, rng: str) -> None:
    answer = agent.raw(
        b"GET /assets/lab-linux/vmlinuz HTTP/1.1\r\nHost: a\r\nConnection: close\r\nRange: " + rng.encode("utf-8") + b"\r\n\r\n"
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert status in (200, 206, 416, 400, 431), head
    if status == 200:
        assert body == KERNEL
    if status == 206:
        assert len(body) < len(KERNEL) and body in KERNEL
    with agent.client() as c:
        assert c.get("/healthz").status_code == 200  # the agent is still up


def test_access_log_never_holds_install_tokens(tmp_path: Path) -> None:
    agent = AgentProc(tmp_path, extra=["--access-log"])
    try:
        with agent.client() as c:
            assert c.post("/v1/boot/install/node1", headers=agent.admin()).status_code == 200
            token = script_token(agent.script("node1"))
            assert c.get(f"/v1/boot/config/node1?token={token}").status_code == 200
            assert c.get(f"/v1/boot/nocloud/node1/{token}/user-data").status_code == 200
            assert c.post(f"/v1/boot/callback/node1?token={token}", json={}).status_code == 200
        # a request's access-log line is written once its answer is sent: the last one may still be on its way
        def logged() -> str | None:
            text = agent.log.read_text(errors="replace")
            return text if "POST /v1/boot/callback/node1" in text else None

        text = wait_until(logged, what="the callback's access-log line")
        assert "/v1/boot/nocloud/node1/***/user-data" in text
        assert "/v1/boot/config/node1" in text and "/v1/boot/callback/node1" in text  # the requests are logged ...
        assert secrets_in_log(agent, token, agent.admin_token) == []  # ... without their tokens
    finally:
        agent.stop()
