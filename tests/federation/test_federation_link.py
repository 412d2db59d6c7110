"""The controller <-> agent link over real HTTPS (uvicorn in its own process, a CA made here):
bundle pull and 304, token errors, idempotent event batches, TLS verified by default."""

from __future__ import annotations

import ssl

import httpx
import pytest
from fed_helpers import AGENT_TOKENS, READ_TOKEN, SECRETS, SHA, Controller

from vaquero.federation.backoff import backoff_delay
from vaquero.federation.client import ClientConfig, FederationClient
from vaquero.render.bundle import render_site
from vaquero.sot import load
from vaquero.state.machine import timeline


@pytest.fixture
def controller(tmp_path, applied_sot, pki, tokens_files):
    ctl = Controller(tmp_path, applied_sot, pki, tokens_files)
    ctl.start()
    yield ctl
    ctl.close()


def test_bundle_pull_etag_and_cached_sot(controller, tmp_path):
    tok = AGENT_TOKENS["east-agent-1"]
    with controller.client(tok) as c:
        r = c.get("/v1/agents/east-agent-1/bundle")
        assert r.status_code == 200, r.text
        b = r.json()
        assert r.headers["etag"] == f'"{b["version"]}"' and b["version"].startswith(SHA + "+")
        assert b["sha"] == SHA and b["site"] == "dc-east" and b["plan"] == "p-test-1"
        assert "sites/dc-east.yaml" in b["files"] and "sites/dc-west.yaml" not in b["files"]
        assert "clusters/edge.yaml" not in b["files"]  # dc-west's cluster
        assert b["hosts"]["etcd1"]["intent"] == "install" and b["hosts"]["etcd1"]["state"] == "installing"
        assert b["hosts"]["etcd2"]["intent"] == "localboot" and "edge1" not in b["hosts"]
        assert b["rendered"]["hosts"]["etcd1"]["install"]
        # 304 by If-None-Match and by ?have=
        r2 = c.get("/v1/agents/east-agent-1/bundle", headers={"If-None-Match": r.headers["etag"]})
        assert r2.status_code == 304 and r2.headers["etag"] == r.headers["etag"] and not r2.content
        assert c.get("/v1/agents/east-agent-1/bundle", params={"have": b["version"]}).status_code == 304
        assert c.get("/v1/agents/east-agent-1/bundle", params={"have": "stale"}).status_code == 200

    # The agent's client caches it; the cached SoT folder validates and renders like any SoT.
    client = FederationClient(
        ClientConfig(controller=controller.url, agent="east-agent-1", token=tok, state_dir=tmp_path / "agent", ca_file=str(controller.pki.ca))
    )
    assert client.pull() is True and client.pull() is False
    sot = load(client.sot_path, sha=SHA)
    site = render_site(sot, "dc-east", agent="east-agent-1")
    assert site.hosts["etcd1"].install == b["rendered"]["hosts"]["etcd1"]["install"]
    assert set(site.hosts) == set(b["hosts"])
    client.close()

    # A host's intent changes under the same SHA: a new version, the agent pulls it.
    from fed_helpers import move

    store = controller.applied.store()
    move(store, "etcd1", "rebooting")
    store.close()
    client = FederationClient(
        ClientConfig(controller=controller.url, agent="east-agent-1", token=tok, state_dir=tmp_path / "agent", ca_file=str(controller.pki.ca))
    )
    assert client.bundle is not None and client.version == b["version"]  # from the cache, before any request
    assert client.pull() is True and client.bundle["hosts"]["etcd1"]["intent"] == "localboot"
    client.close()


def test_token_errors(controller):
    with controller.client() as c:
        assert c.get("/v1/agents/east-agent-1/bundle").status_code == 401
        assert c.get("/v1/agents/east-agent-1/bundle", headers={"Authorization": "Bearer not-a-known-token-xxxxxxxx"}).status_code == 401
        assert c.post("/v1/agents/east-agent-1/events", json={"events": []}).status_code == 401
        # another agent's token, even one of the same site: 403
        other = {"Authorization": f"Bearer {AGENT_TOKENS['east-agent-2']}"}
        assert c.get("/v1/agents/east-agent-1/bundle", headers=other).status_code == 403
        assert c.post("/v1/agents/east-agent-1/heartbeat", json={}, headers=other).status_code == 403
        # an API read token is not an agent token; an agent token cannot list agents
        assert c.get("/v1/agents/east-agent-1/bundle", headers={"Authorization": f"Bearer {READ_TOKEN}"}).status_code == 401
        assert c.get("/v1/agents", headers={"Authorization": f"Bearer {AGENT_TOKENS['east-agent-1']}"}).status_code == 401
        # each agent gets its own site's bundle
        west = {"Authorization": f"Bearer {AGENT_TOKENS['west-agent-1']}"}
        r = c.get("/v1/agents/west-agent-1/bundle", headers=west)
        assert r.status_code == 200 and r.json()["site"] == "dc-west"
    log = controller.log.read_text()
    assert "unknown token" in log and "token of agent east-agent-2" in log
    for s in SECRETS:
        assert s not in log


def test_tls_verified_by_default(controller, tmp_path):
    cfg = ClientConfig(controller=controller.url, agent="east-agent-1", token=AGENT_TOKENS["east-agent-1"], state_dir=tmp_path / "a")
    client = FederationClient(cfg)  # no --ca-file: the system CAs do not know our test CA
    with pytest.raises(httpx.ConnectError) as exc:
        client.pull()
    assert isinstance(exc.value.__context__, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc.value)
    client.close()
    client = FederationClient(ClientConfig(**{**cfg.__dict__, "ca_file": str(controller.pki.other_ca)}))
    assert client._round() is False and "CERTIFICATE_VERIFY_FAILED" in (client.last_error or "")
    assert AGENT_TOKENS["east-agent-1"] not in (client.last_error or "")
    client.close()


def test_event_batch_applied_once(controller):
    tok = AGENT_TOKENS["east-agent-1"]
    batch = {
        "events": [
            {"id": "ev-0001-rebooting", "host": "etcd1", "state": "rebooting", "reason": "installer called back", "sha": SHA},
            {"id": "ev-0002-validating", "host": "etcd1", "state": "validating", "reason": "up again", "sha": SHA},
            {"id": "ev-0003-west-host", "host": "edge1", "state": "ready", "reason": "not this agent's site"},
            {"id": "ev-0004-bad-move", "host": "etcd2", "state": "installing", "reason": "ready -> installing is not allowed"},
        ]
    }
    with controller.client(tok) as c:
        first = c.post("/v1/agents/east-agent-1/events", json=batch).json()
        assert first["applied"] == ["ev-0001-rebooting", "ev-0002-validating"] and first["duplicates"] == []
        assert set(first["refused"]) == {"ev-0003-west-host", "ev-0004-bad-move"}
        # The same batch again (its answer was lost): nothing changes.
        second = c.post("/v1/agents/east-agent-1/events", json=batch).json()
        assert second["applied"] == [] and second["duplicates"] == ["ev-0001-rebooting", "ev-0002-validating"]
        assert c.post("/v1/agents/east-agent-1/heartbeat", json={"version": "v1", "sha": SHA, "queued": 3}).json()["ok"] is True
    store = controller.applied.store()
    ids = [e["id"] for e in timeline(store, "etcd1")]
    store.close()
    assert ids.count("ev-0001-rebooting") == 1 and ids.count("ev-0002-validating") == 1
    with controller.client(READ_TOKEN) as c:
        host = c.get("/v1/hosts/etcd1").json()
        assert host["state"] == "validating"
        agents = c.get("/v1/agents").json()["agents"]
        assert [(a["name"], a["version"], a["queued"]) for a in agents] == [("east-agent-1", "v1", 3)]
        events = c.get("/v1/hosts/etcd1/timeline").json()["events"]
        assert [e["actor"] for e in events if e["id"].startswith("ev-")] == ["agent:east-agent-1", "agent:east-agent-1"]


def test_backoff_grows_with_jitter_and_is_capped():
    import random

    rng = random.Random(7)
    delays = [backoff_delay(n, 0.5, 30.0, rng) for n in range(1, 12)]
    assert 0.25 <= delays[0] <= 0.5 and 8 <= delays[5] <= 16 and all(15 <= d <= 30 for d in delays[7:])
    assert len({round(backoff_delay(4, 0.5, 30.0, rng), 6) for _ in range(20)}) > 1


def test_an_event_the_controller_cannot_parse_does_not_block_the_queue(controller, tmp_path):
    cfg = ClientConfig(
        controller=controller.url, agent="east-agent-1", token=AGENT_TOKENS["east-agent-1"], state_dir=tmp_path / "a", ca_file=str(controller.pki.ca)
    )
    client = FederationClient(cfg)
    bad = client.queue.put({"host": "etcd1", "state": "installing", "reason": "huge", "detail": {"blob": "x" * 40000}})
    good = client.queue.put({"host": "etcd1", "state": "installing", "reason": "installer called back"})
    assert client.push() == 2 and len(client.queue) == 0
    store = controller.applied.store()
    ids = [e["id"] for e in timeline(store, "etcd1")]
    store.close()
    assert good in ids and bad not in ids
    client.close()
