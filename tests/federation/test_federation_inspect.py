"""Discovery over the federation: a report the agent accepted reaches the controller's store at
/inspections/<mac> through POST /v1/agents/{agent}/inspections, and one accepted while the
controller is down waits in the agent's inbox and is replayed when it is back. The controller is
`ctl_main.py` in its own process (TLS, agent tokens), the agent the real boot server and sync loop."""

from __future__ import annotations

import httpx
import pytest
import yaml
from fed_helpers import AGENT_TOKENS, SECRETS, Applied, Controller, RunningAgent, free_port, wait_for

from vaquero.inspect.records import inspection_key

pytestmark = pytest.mark.slow

KNOWN = "0c:c4:7a:10:00:01"  # etcd1, dc-east


def report(mac: str, serial: str = "VQ-FED-1") -> dict:
    return {"boot_mac": mac, "nics": [{"name": "eno1", "mac": mac}], "uuid": "8f1c2b9e-3d4a-4e5f-9a0b-1c2d3e4f5a6b", "serial": serial,
            "cpus": 4, "memory_mib": 8192, "disks": [{"name": "nvme0n1", "size_bytes": 512 << 30, "rotational": False}]}  # fmt: skip


@pytest.fixture
def discovering(applied_sot: Applied) -> Applied:
    """The example SoT with dc-east enrolling unknown machines into its k8s-workers cluster."""
    path = applied_sot.root / "sites" / "dc-east.yaml"
    site = yaml.safe_load(path.read_text())
    site["discovery"] = {"enabled": True, "cluster": "k8s-workers"}
    path.write_text(yaml.safe_dump(site, sort_keys=False))
    return applied_sot


def test_reports_reach_the_store_and_are_replayed_after_an_outage(discovering, tmp_path, pki, tokens_files) -> None:
    ctl = Controller(tmp_path, discovering, pki, tokens_files)
    ctl.start()
    agent = None
    try:
        agent = RunningAgent(ctl, tmp_path / "agent", free_port())
        wait_for(lambda: agent.client.connected and agent.client.last_sync is not None, 15, "first sync")
        store = ctl.applied.store()
        first = "52:54:00:aa:00:01"
        r = httpx.post(f"{agent.base}/v1/inspect/52-54-00-aa-00-01", json=report(first), timeout=5)
        assert r.status_code == 202, r.text
        wait_for(lambda: store.get(inspection_key(first)) is not None, 20, "the report in the controller's store")
        rec = store.get(inspection_key(first))
        assert rec is not None
        assert rec.value["site"] == "dc-east" and rec.value["agent"] == "east-agent-1" and rec.value["status"] == "new"
        assert rec.value["report"]["serial"] == "VQ-FED-1" and rec.value["report"]["disks"][0]["size_bytes"] == 512 << 30
        wait_for(lambda: len(agent.client.inbox or []) == 0, 10, "the inbox to empty")
        # a known host's MAC never gets this far
        assert httpx.post(f"{agent.base}/v1/inspect/0c-c4-7a-10-00-01", json=report(KNOWN), timeout=5).status_code == 409

        # -- the controller is down: the report is accepted, kept, and not lost --
        agent.client.stop()
        ctl.stop()
        second = "52:54:00:aa:00:02"
        assert httpx.post(f"{agent.base}/v1/inspect/52-54-00-aa-00-02", json=report(second, "VQ-FED-2"), timeout=5).status_code == 202
        agent.client.start()
        wait_for(lambda: agent.client.failures >= 2, 15, "the agent to notice the outage")
        assert len(agent.client.inbox or []) == 1 and store.get(inspection_key(second)) is None
        ctl.start()
        wait_for(lambda: store.get(inspection_key(second)) is not None, 30, "the replayed report")
        wait_for(lambda: len(agent.client.inbox or []) == 0, 10, "the inbox to empty")
        assert store.get(inspection_key(second)).value["report"]["serial"] == "VQ-FED-2"  # type: ignore[union-attr]
        store.close()
    finally:
        if agent is not None:
            agent.stop()
        ctl.stop()

    # the route itself: another agent's site has discovery off, a known MAC, a bad body, no token
    ctl.start()
    try:
        with ctl.client(AGENT_TOKENS["west-agent-1"]) as c:
            r = c.post("/v1/agents/west-agent-1/inspections", json=report("52:54:00:aa:00:03"))
            assert r.status_code == 404 and "discovery is off" in r.json()["detail"]
        with ctl.client(AGENT_TOKENS["east-agent-1"]) as c:
            assert c.post("/v1/agents/east-agent-1/inspections", json=report(KNOWN)).status_code == 409
            assert c.post("/v1/agents/east-agent-1/inspections", json={**report("52:54:00:aa:00:04"), "cpus": -1}).status_code == 422
            assert c.post("/v1/agents/east-agent-1/inspections", content=b"[" * 100_000).status_code in (400, 422)
            assert c.post("/v1/agents/east-agent-2/inspections", json=report("52:54:00:aa:00:05")).status_code == 403
        with ctl.client() as c:
            assert c.post("/v1/agents/east-agent-1/inspections", json=report("52:54:00:aa:00:06")).status_code == 401
        store = ctl.applied.store()
        assert {r.key for r in store.list("/inspections/")} == {inspection_key("52:54:00:aa:00:01"), inspection_key("52:54:00:aa:00:02")}
        store.close()
    finally:
        ctl.close()
    logs = ctl.log.read_text()
    for secret in SECRETS:
        assert secret not in logs
