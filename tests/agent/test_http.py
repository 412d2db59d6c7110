"""The agent's HTTP boot server, driven as ASGI (no sockets)."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest

from vaquero.agent.http import BootApp
from vaquero.agent.state import BootStates

pytestmark = pytest.mark.anyio

ADMIN = {"Authorization": "Bearer t0ken"}


def script_token(text: str) -> str:
    """The install token the served iPXE script carries, as the installer gets it."""
    m = re.search(r"vaquero\.callback=\S+\?token=([A-Za-z0-9_-]+)", text)
    assert m is not None, text
    return m.group(1)


@pytest.fixture
def client(app: BootApp):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.90.0.11", 4444)), base_url="http://agent")


async def test_chain_and_scripts_by_mac(client, app):
    r = await client.get("/boot.ipxe")
    assert r.status_code == 200 and "${netX/mac:hexhyp}" in r.text
    r = await client.get("/v1/boot/ipxe/52-54-00-00-10-01")
    assert r.status_code == 200 and "sanboot" in r.text and "kernel" not in r.text  # never armed: localboot
    assert app.states.get("node1").last_script == "localboot"
    r = await client.head("/v1/boot/ipxe/52-54-00-00-10-01")
    assert r.status_code == 200 and r.content == b"" and int(r.headers["content-length"]) > 0


async def test_unknown_and_malformed_mac(client, app, caplog):
    with caplog.at_level(logging.WARNING):
        r = await client.get("/v1/boot/ipxe/52-54-00-00-10-99")
    assert r.status_code == 200 and "unknown MAC" in r.text and "kernel" not in r.text
    assert app.unknown_macs == {"52-54-00-00-10-99": 1}
    assert any(getattr(rec, "host", None) == "52-54-00-00-10-99" for rec in caplog.records)
    r = await client.get("/v1/boot/ipxe/..%2f..%2fetc")
    assert r.status_code == 400
    assert all(app.states.get(h).state == "none" for h in app.bundle.hosts)


async def test_invented_macs_are_counted_up_to_a_bound(client, app, monkeypatch):
    import vaquero.agent.http as agent_http

    monkeypatch.setattr(agent_http, "MAX_UNKNOWN_MACS", 3)
    for i in range(5):
        assert (await client.get(f"/v1/boot/ipxe/02-00-00-00-00-{i:02x}")).status_code == 200
    assert (await client.get("/v1/boot/ipxe/02-00-00-00-00-00")).status_code == 200
    assert app.unknown_macs == {"02-00-00-00-00-00": 2, "02-00-00-00-00-01": 1, "02-00-00-00-00-02": 1}


async def test_install_callback_localboot_cycle(client, app, tmp_path):
    r = await client.post("/v1/boot/install/node1", headers=ADMIN)
    assert r.status_code == 200 and r.json()["state"] == "install"
    r = await client.get("/v1/boot/ipxe/52-54-00-00-10-01")
    assert "kernel --name vmlinuz" in r.text and "vaquero.callback=http://10.90.0.1:8080/v1/boot/callback/node1?token=" in r.text
    token = script_token(r.text)
    assert f"vaquero.config=http://10.90.0.1:8080/v1/boot/config/node1?token={token}" in r.text
    report = {"ip": "10.90.0.11", "dns": "10.90.0.1", "ntp": "10.90.0.1"}
    r = await client.post(f"/v1/boot/callback/node1?token={token}", json=report)
    assert r.status_code == 200 and r.json() == {"host": "node1", "state": "installed", "script": "localboot"}
    r = await client.get("/v1/boot/ipxe/52-54-00-00-10-01")
    assert "kernel" not in r.text and "sanboot" in r.text  # no reinstall loop
    st = (await client.get("/v1/boot/status/node1")).json()
    assert st["state"] == "installed" and st["report"]["dns"] == "10.90.0.1" and st["report"]["_client"] == "10.90.0.11"
    assert token not in json.dumps(st)
    # the state survives a restart
    again = BootStates(tmp_path / "state" / "boot-states.json")
    assert again.get("node1").state == "installed" and again.get("node1").report["ntp"] == "10.90.0.1"


async def test_bad_callbacks_change_nothing(client, app, caplog):
    await client.post("/v1/boot/install/node2", headers=ADMIN)
    token = script_token((await client.get("/v1/boot/ipxe/52-54-00-00-10-02")).text)
    cb = f"/v1/boot/callback/node2?token={token}"
    assert (await client.get(f"/v1/boot/config/node2?token={token}")).status_code == 200  # binds the token to this client
    before = {h: app.states.to_dict(h) for h in app.bundle.hosts}
    with caplog.at_level(logging.WARNING):
        r1 = await client.post(cb, content=b"{not json")
        r2 = await client.post(cb, content=b"[1, 2]")
        r3 = await client.post(f"/v1/boot/callback/ghost?token={token}", json={})
        r4 = await client.post("/v1/boot/callback/node3", json={})  # node3 is not installing: it has no token
        r5 = await client.post(cb, content=b"x" * (70 << 10))
    assert (r1.status_code, r2.status_code, r3.status_code, r4.status_code, r5.status_code) == (400, 400, 403, 401, 413)
    assert "another host" in r3.json()["error"] and "install token" in r4.json()["error"]
    assert {h: app.states.to_dict(h) for h in app.bundle.hosts} == before
    hosts = {getattr(rec, "host", None) for rec in caplog.records}
    assert {"node2", "ghost", "node3"} <= hosts
    assert all(token not in rec.getMessage() for rec in caplog.records)
    # a second callback after success is refused too: the token was used
    assert (await client.post(cb, json={})).status_code == 200
    assert (await client.post(cb, json={})).status_code == 401


async def test_admin_needs_token_and_known_host(client, app):
    assert (await client.post("/v1/boot/install/node1")).status_code == 401
    assert (await client.post("/v1/boot/install/node1", headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await client.post("/v1/boot/install/ghost", headers=ADMIN)).status_code == 404
    app.unready["node4"] = "assets not ready: sha256 mismatch"
    r = await client.post("/v1/boot/install/node4", headers=ADMIN)
    assert r.status_code == 409 and "assets not ready" in r.json()["error"]
    assert app.states.get("node1").state == "none" and app.states.get("node4").state == "none"
    await client.post("/v1/boot/install/node1", headers=ADMIN)
    r = await client.post("/v1/boot/localboot/node1", headers=ADMIN)
    assert r.json()["state"] == "none" and "kernel" not in (await client.get("/v1/boot/ipxe/52-54-00-00-10-01")).text


async def test_assets_range_head_and_refusals(client):
    full = bytes(range(256)) * 4096
    r = await client.get("/assets/lab-linux/vmlinuz")
    assert r.status_code == 200 and r.content == full and r.headers["content-length"] == str(len(full))
    assert r.headers["accept-ranges"] == "bytes"
    r = await client.head("/assets/lab-linux/vmlinuz")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == str(len(full))
    r = await client.get("/assets/lab-linux/vmlinuz", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == full[10:20] and r.headers["content-range"] == f"bytes 10-19/{len(full)}"
    r = await client.get("/assets/lab-linux/vmlinuz", headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == full[-5:]
    r = await client.get("/assets/lab-linux/vmlinuz", headers={"Range": f"bytes={len(full) - 3}-"})
    assert r.content == full[-3:]
    r = await client.get("/assets/lab-linux/vmlinuz", headers={"Range": f"bytes={len(full)}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(full)}"
    r = await client.get("/assets/lab-linux/empty")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "0"
    assert (await client.get("/assets/lab-linux/link")).status_code == 404  # symlink out of the root
    assert (await client.get("/assets/lab-linux")).status_code == 404  # no directory listings
    assert (await client.get("/assets/lab-linux/")).status_code == 404
    assert (await client.get("/assets/nope")).status_code == 404
    r = await client.get("/ipxe/ipxe.efi")
    assert r.status_code == 200 and r.content == b"MZ-efi"


async def raw(app: BootApp, path: str, method: str = "GET") -> tuple[int, bytes]:
    """Call the app with a path exactly as given (HTTP clients normalise '..' away)."""
    out: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(msg):
        out.append(msg)

    scope = {"type": "http", "method": method, "path": path, "headers": [], "client": ("10.90.0.66", 1)}
    await app(scope, receive, send)
    return out[0]["status"], b"".join(m.get("body", b"") for m in out[1:])


async def test_path_escapes_refused(app, caplog):
    with caplog.at_level(logging.WARNING):
        for bad in (
            "/assets/../secret",
            "/assets/lab-linux/../../secret",
            "/assets//etc/passwd",
            "/assets/lab-linux/./vmlinuz",
            "/ipxe/../secret",
            "/ipxe//etc/passwd",
            "/assets/lab-linux/\\..\\x",
            "/assets/a\x00b",
        ):
            status, body = await raw(app, bad)
            assert status == 400 and b"secret" not in body, bad
    assert sum("path escape refused" in r.getMessage() for r in caplog.records) == 8
    assert all(getattr(r, "host", None) == "10.90.0.66" for r in caplog.records if "escape" in r.getMessage())


async def test_configs(client):
    await client.post("/v1/boot/install/node1", headers=ADMIN)
    token = script_token((await client.get("/v1/boot/ipxe/52-54-00-00-10-01")).text)
    r = await client.get(f"/v1/boot/config/node1?token={token}")
    assert r.status_code == 200 and r.text.startswith("#cloud-config") and "hostname: node1" in r.text
    r = await client.get(f"/v1/boot/nocloud/node1/{token}/meta-data")
    assert "local-hostname: node1" in r.text
    assert (await client.get(f"/v1/boot/nocloud/node1/meta-data?token={token}")).status_code == 200
    assert (await client.get(f"/v1/boot/nocloud/node1/{token}/passwd")).status_code == 404
    assert (await client.get("/v1/boot/config/node1")).status_code == 401
    assert (await client.get("/v1/boot/nocloud/node1/meta-data")).status_code == 401
    assert (await client.get(f"/v1/boot/config/ghost?token={token}")).status_code == 403


async def test_misc(client):
    assert (await client.get("/healthz")).text == "ok\n"
    assert (await client.put("/boot.ipxe")).status_code == 405
    assert (await client.get("/v1/boot/status/ghost")).status_code == 404
    assert json.loads((await client.get("/v1/boot/status/node1")).text)["script"] == "localboot"
