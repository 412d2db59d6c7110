"""A real partition: the controller runs in a network namespace behind a veth; the test takes the
veth down. The agent (the real boot server, fed from its bundle cache) keeps serving, queues its
events on disk, survives a restart during the partition, and replays each event exactly once when
the link is back; then the controller process itself is stopped and restarted, and a batch whose
answer was lost is sent twice."""

from __future__ import annotations

import io
import logging

import pytest
from fed_helpers import AGENT_TOKENS, SECRETS, SHA, Controller, RunningAgent, free_port, need_root_netns, wait_for

from vaquero.logs import JsonFormatter
from vaquero.state.machine import current, timeline

pytestmark = pytest.mark.slow

ETCD1_MAC = "0c-c4-7a-10-00-01"


@pytest.fixture
def ctl(tmp_path, applied_sot, pki, tokens_files):
    need_root_netns()
    c = Controller(tmp_path, applied_sot, pki, tokens_files, netns=True)
    try:
        c.start()
        yield c
    finally:
        c.close()


@pytest.fixture
def agent_logs():
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("vaquero")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield buf
    logger.removeHandler(handler)
    logger.setLevel(old)


def test_partition_restart_and_exactly_once_replay(ctl, tmp_path, agent_logs):
    state_dir = tmp_path / "agent"
    port = free_port()
    agent = RunningAgent(ctl, state_dir, port)
    try:
        wait_for(lambda: agent.client.connected and agent.client.last_sync is not None, 15, "first sync")
        assert agent.client.bundle is not None and agent.client.bundle["sha"] == SHA
        # the controller moved etcd1 to installing: arm it on the agent (what a runner would do)
        assert agent.post("/v1/boot/install/etcd1").status_code == 200
        assert "installing etcd1" in agent.get(f"/v1/boot/ipxe/{ETCD1_MAC}").text

        # -- partition: the veth goes down; the controller keeps running on the other side --
        ctl.cut()
        wait_for(lambda: agent.client.failures >= 2, 15, "the agent to notice the partition")
        assert agent.get("/boot.ipxe").status_code == 200
        # the installer calls back: the host gets localboot at once, the event is queued on disk
        r = agent.post("/v1/boot/callback/etcd1", {"status": "ok"})
        assert r.status_code == 200, r.text
        script = agent.get(f"/v1/boot/ipxe/{ETCD1_MAC}").text
        assert "sanboot" in script and "installed" in script, script
        ids = [e["id"] for e in agent.client.queue.peek()]
        assert len(ids) == 1
        ids.append(agent.client.enqueue("etcd1", "rebooting", "powered on from the local disk"))

        # -- agent restart during the partition: serves from the cache, keeps the queue --
        agent.stop()
        agent = RunningAgent(ctl, state_dir, port)
        assert not agent.client.connected and agent.client.bundle is not None
        assert [e["id"] for e in agent.client.queue.peek()] == ids
        assert agent.get(f"/v1/boot/ipxe/{ETCD1_MAC}").text == script
        assert agent.get("/v1/boot/status/etcd1").json()["state"] == "installed"
        assert agent.get("/v1/boot/config/etcd1").status_code == 401  # its install token was used by the callback
        ids.append(agent.client.enqueue("etcd1", "validating", "host answered after reboot"))
        store = ctl.applied.store()
        assert current(store, "etcd1")["state"] == "installing"  # nothing reached the controller

        # -- the link is back: the queue is replayed, in order, each event once --
        ctl.heal()
        wait_for(lambda: len(agent.client.queue) == 0, 20, "the queue to drain")
        events = timeline(store, "etcd1")
        assert [e["id"] for e in events if e["id"] in ids] == ids
        assert [e["state"] for e in events if e["id"] in ids] == ["installing", "rebooting", "validating"]
        assert current(store, "etcd1")["state"] == "validating"
        wait_for(lambda: agent.client.connected, 10, "reconnected")

        # -- the controller process stops; events queue; the answer to the first replay is lost --
        agent.client.stop()
        ctl.stop()
        lost = agent.client.enqueue("etcd1", "ready", "validate hooks passed")
        kept = agent.client.enqueue("etcd1", "pending", "operator asked for a reinstall")
        kept2 = agent.client.enqueue("etcd1", "netbooting", "powered on into the installer")
        ctl.start()
        batch = agent.client.queue.peek()
        with ctl.client(AGENT_TOKENS["east-agent-1"]) as c:  # the controller applies it, the agent never hears
            assert c.post("/v1/agents/east-agent-1/events", json={"events": batch}).json()["applied"] == [lost, kept, kept2]
        agent.client.start()  # replays the same batch: duplicates, acknowledged, nothing applied twice
        wait_for(lambda: len(agent.client.queue) == 0, 20, "the queue to drain again")
        all_ids = [e["id"] for e in timeline(store, "etcd1")]
        for i in [*ids, lost, kept, kept2]:
            assert all_ids.count(i) == 1, i
        assert current(store, "etcd1")["state"] == "netbooting"
        # the controller sees the agent, and its new bundle (etcd1's intent is install again)
        wait_for(lambda: agent.client.bundle["hosts"]["etcd1"]["intent"] == "install", 10, "the new bundle")
        heartbeat = store.get("/agents/east-agent-1")
        assert heartbeat is not None and heartbeat.value["sha"] == SHA
        store.close()
    finally:
        agent.stop()

    logs = agent_logs.getvalue() + ctl.log.read_text()
    assert "controller unreachable" in logs and "event queued" in logs
    for secret in SECRETS:
        assert secret not in logs
    for f in state_dir.rglob("*"):
        if f.is_file():
            assert AGENT_TOKENS["east-agent-1"].encode() not in f.read_bytes(), f
