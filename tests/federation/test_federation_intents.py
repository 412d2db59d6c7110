"""Boot intents from the bundle: the agent arms a host the controller moved to netbooting, once per
intent (plan + attempt); a stale bundle or a restart never sends an installed host back into its
installer; a new attempt arms it again; an abandoned install is disarmed."""

from __future__ import annotations

import shutil

import pytest
from fed_helpers import Controller, RunningAgent, free_port, move, wait_for

ETCD1 = "/v1/boot/ipxe/0c-c4-7a-10-00-01"
ETCD2 = "/v1/boot/ipxe/0c-c4-7a-10-00-02"
ETCD3 = "/v1/boot/ipxe/0c-c4-7a-10-00-03"


@pytest.fixture
def ctl(tmp_path, applied_sot, pki, tokens_files):
    c = Controller(tmp_path, applied_sot, pki, tokens_files)
    c.start()
    yield c
    c.close()


def test_intents_arm_once_and_disarm(ctl, tmp_path):
    store = ctl.applied.store()
    move(store, "etcd3", "ready", "pending", "netbooting", plan="p-9", attempt=1)
    state_dir, port = tmp_path / "agent", free_port()
    agent = RunningAgent(ctl, state_dir, port)
    try:
        # etcd1 (installing) and etcd3 (netbooting) are armed from the first bundle; etcd2 (ready) is not
        assert "installing etcd1" in agent.get(ETCD1).text and "installing etcd3" in agent.get(ETCD3).text
        assert "is installed" in agent.get(ETCD2).text
        wait_for(lambda: (r := store.get("/agents/east-agent-1")) is not None and r.value["armed"] == ["etcd1", "etcd3"], 10, "armed hosts in a heartbeat")

        # same plan and attempt, next state: a new bundle, the same intent
        move(store, "etcd3", "installing", plan="p-9", attempt=1)
        wait_for(lambda: agent.client.bundle["hosts"]["etcd3"]["state"] == "installing", 10, "the bundle with etcd3 installing")

        # the installer calls back while the agent still holds a bundle that says install
        agent.client.stop()
        stale = agent.client.bundle
        assert agent.post("/v1/boot/callback/etcd3", {"ok": True}).status_code == 200
        assert agent.fa.apply_intents(stale) == []
        assert "is installed" in agent.get(ETCD3).text

        # a restart from that same stale cache does not re-arm it either; then the event reaches the controller
        agent.stop()
        agent = RunningAgent(ctl, state_dir, port)
        assert "is installed" in agent.get(ETCD3).text
        wait_for(lambda: store.get("/hosts/etcd3").value["actor"] == "agent:east-agent-1", 10, "the callback event applied")
        rec = store.get("/hosts/etcd3").value
        assert (rec["state"], rec["plan"], rec["attempt"]) == ("installing", "p-9", 1)  # the agent's event kept plan and attempt
        move(store, "etcd2", "pending")  # any change: a new bundle, etcd3 still says install
        wait_for(lambda: agent.client.bundle["hosts"]["etcd2"]["state"] == "pending", 10, "a new bundle")
        assert agent.client.bundle["hosts"]["etcd3"]["intent"] == "install" and "is installed" in agent.get(ETCD3).text
        move(store, "etcd3", "rebooting", plan="p-9", attempt=1)  # the playbook goes on
        wait_for(lambda: agent.client.bundle["hosts"]["etcd3"]["intent"] == "localboot", 10, "etcd3's intent localboot")

        # a new attempt: armed again
        move(store, "etcd3", "failed", "pending", "netbooting", plan="p-9", attempt=2)
        wait_for(lambda: "installing etcd3" in agent.get(ETCD3).text, 10, "etcd3 armed for attempt 2")

        # the controller gives up on etcd1: disarmed, served localboot
        move(store, "etcd1", "failed")
        wait_for(lambda: "is installed" in agent.get(ETCD1).text, 10, "etcd1 disarmed")
        wait_for(lambda: store.get("/agents/east-agent-1").value["armed"] == ["etcd3"], 10, "the heartbeat to follow")
    finally:
        agent.stop()
        store.close()


def test_a_bundle_the_agent_cannot_load_is_refused_and_the_old_one_served(ctl, tmp_path):
    store = ctl.applied.store()
    state_dir, port = tmp_path / "agent", free_port()
    agent = RunningAgent(ctl, state_dir, port)
    try:
        good = agent.client.version
        bad = tmp_path / "bad-sot"
        shutil.copytree(ctl.applied.root, bad)
        etcd = bad / "clusters" / "etcd.yaml"
        etcd.write_text(etcd.read_text().replace("profile: flatcar-stable", "profile: no-such-profile", 1))
        store.put("/sites-applied/current", {"sha": "b" * 40, "root": str(bad), "plan": "p-bad"})
        wait_for(lambda: agent.client.rejected is not None, 10, "the bad bundle refused")
        assert agent.client.version == good and "no-such-profile" in (agent.client.rejected_why or "")
        assert "installing etcd1" in agent.get(ETCD1).text
        wait_for(lambda: store.get("/agents/east-agent-1").value.get("rejected") == agent.client.rejected, 10, "the heartbeat to say so")
        agent.stop()
        agent = RunningAgent(ctl, state_dir, port)  # a restart still starts from the good bundle
        assert agent.client.version == good and "installing etcd1" in agent.get(ETCD1).text
    finally:
        agent.stop()
        store.close()
