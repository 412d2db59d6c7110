"""Correcting drift through the gate: power drift becomes a plan that waits for approval like any
other (or is approved by the clusters' own auto_apply policy), is approved through the API by its
digest, and the run worker's power step (playbooks/power.yml, ansible-playbook for real) powers the
emulated IPMI BMC back on; the next round finds no drift."""

from __future__ import annotations

import shutil

import pytest
from api_helpers import auth, make_settings, start_live
from bmc_helpers import LAB_SOT, PASSWORD, ipmitool, start_ipmi_fleet, stop
from lab_hooks import COMMAND_HOOKS
from waiting import wait_until

from vaquero.bmc import Guard, GuardPolicy
from vaquero.drift.observer import DriftObserver
from vaquero.gate import records as r
from vaquero.gate.drift_plans import open_plan, propose
from vaquero.runner.worker import RunWorker
from vaquero.sot import load
from vaquero.state.machine import Event, transition
from vaquero.state.rounds import CURRENT_KEY
from vaquero.state.sqlite import SQLiteStore

pytestmark = pytest.mark.slow

POLICY = GuardPolicy(attempt_timeout=2.0, deadline=5.0, retries=1, breaker_reset=60.0)


def lab_copy(tmp_path, ports: dict[int, int] | None = None, auto_apply: bool = False):
    root = tmp_path / "sot"
    shutil.copytree(LAB_SOT, root)
    (root / "hooks" / "lab-hooks.yaml").write_text(COMMAND_HOOKS)  # the lab's validate hook asks an agent
    cluster = root / "clusters" / "lab.yaml"
    text = cluster.read_text()
    for old, new in (ports or {}).items():
        text = text.replace(f"port: {old},", f"port: {new},")
    if auto_apply:
        text = text.replace("policy:\n", "policy:\n  auto_apply: true\n", 1)
    cluster.write_text(text)
    return root


def test_power_drift_is_a_plan_waiting_for_approval_then_the_run_powers_the_host_back_on(tmp_path, monkeypatch):
    monkeypatch.setenv("VAQUERO_LAB_BMC_PASSWORD", PASSWORD)
    monkeypatch.delenv("VAQUERO_CONTENT_DIR", raising=False)  # the checkout's real playbooks
    uuids = tuple(str(h.uuid) for _, _, h in load(LAB_SOT, semantic=False).hosts())
    fleet = start_ipmi_fleet(tmp_path, count=4, uuids=uuids)  # power.yml checks each BMC's identity first
    store = SQLiteStore(tmp_path / "store.sqlite")
    live = None
    obs = None
    try:
        root = lab_copy(tmp_path, {6231 + i: fleet.port + i for i in range(4)})
        store.put(CURRENT_KEY, {"root": str(root), "sha": None, "label": "lab"})
        for i in range(4):
            transition(store, Event(f"node{i + 1}", "ready", None, actor="test", reason="installed"))
            ipmitool(fleet.endpoint(i), "chassis", "power", "on")
        ipmitool(fleet.endpoint(1), "chassis", "power", "off")  # node2, out of band

        obs = DriftObserver(
            store,
            Guard(policy=POLICY, guard_dir="auto"),  # the same guard folder as the playbook's modules
            interval=0.2,
            policy=POLICY,
            agent_timeout=0.3,
            correct=lambda sot, found: propose(store, sot, found),
        ).start()
        pid = wait_until(lambda: open_plan(store), what="a drift plan")
        plan = store.get(r.plan_key(pid)).value
        assert plan["state"] == "pending_approval" and plan["kind"] == "drift" and plan["approved_by"] is None
        assert [(h["host"], h["action"]) for h in plan["plan"]["hosts"]] == [("node2", "power")]
        assert "node2: power is off (observed " in plan["text"] and "the SoT wants it on" in plan["text"]
        assert plan["digest"] == r.plan_digest(plan)
        rounds = obs.rounds
        wait_until(lambda: obs.rounds >= rounds + 2, what="two more rounds")
        assert [rec.value["id"] for rec in store.list("/plans/") if rec.value.get("kind") == "drift"] == [pid]  # one open plan, not one a round
        assert fleet.bmc_state(1)["power"] == "off"  # nothing acted before approval

        live = start_live(make_settings(tmp_path), store)
        assert live.client.post(f"/v1/plans/{pid}/approve", json={"digest": "0" * 64}, headers=auth("alice")).status_code == 409
        resp = live.client.post(f"/v1/plans/{pid}/approve", json={"digest": plan["digest"]}, headers=auth("alice"))
        assert resp.status_code == 200 and resp.json()["state"] == "approved"

        assert RunWorker(store, tmp_path / "data").tick()
        assert store.get(r.run_key(pid)).value["state"] == "succeeded"
        assert fleet.bmc_state(1)["power"] == "on"
        wait_until(lambda: (store.get("/drift/node2").value["power"], store.get("/drift/node2").value["findings"]) == ("on", []), what="node2 no longer drifts")
        assert open_plan(store) is None
    finally:
        if obs is not None:
            obs.stop()
        if live is not None:
            live.stop()
        stop(fleet.proc)
        store.close()


def test_auto_apply_clusters_get_an_approved_drift_plan_and_only_power_is_planned(tmp_path):
    store = SQLiteStore(tmp_path / "store.sqlite")
    try:
        root = lab_copy(tmp_path, auto_apply=True)
        store.put(CURRENT_KEY, {"root": str(root), "sha": None, "label": "lab"})
        sot = load(root, semantic=False)
        shown_only = [{"host": "node1", "kind": "boot", "action": "boot_disk", "reason": "node1: boot override is pxe"}]
        assert propose(store, sot, shown_only) is None  # a boot override or an armed agent is shown, not planned
        power = [{"host": "node3", "kind": "power", "action": "power_on", "reason": "node3: power is off (observed 12:03:04 via ipmi), the SoT wants it on"}]
        plan = propose(store, sot, power)
        assert plan is not None and plan["state"] == "approved" and plan["approved_by"] == "policy:auto_apply"
        assert store.get(r.pending_key(plan["id"])) is None
        assert propose(store, sot, power) is None  # one open drift plan at a time
    finally:
        store.close()


def test_a_refused_drift_plan_is_not_proposed_again_until_the_drift_changes_or_clears(tmp_path):
    store = SQLiteStore(tmp_path / "store.sqlite")
    try:
        root = lab_copy(tmp_path)
        store.put(CURRENT_KEY, {"root": str(root), "sha": None, "label": "lab"})
        sot = load(root, semantic=False)
        node3 = [{"host": "node3", "kind": "power", "action": "power_on", "reason": "node3: power is off"}]
        first = propose(store, sot, node3)
        assert first is not None and first["state"] == "pending_approval"
        store.put(r.plan_key(first["id"]), first | {"state": "rejected", "rejected_by": "alice"})
        assert propose(store, sot, node3) is None  # rejected: not again every round
        node4 = [*node3, {"host": "node4", "kind": "power", "action": "power_on", "reason": "node4: power is off"}]
        second = propose(store, sot, node4)  # the drift changed: a new plan, for all of it
        assert second is not None and [h["host"] for h in second["plan"]["hosts"]] == ["node3", "node4"]
        store.put(r.plan_key(second["id"]), second | {"state": "failed"})
        assert propose(store, sot, node4) is None  # a failed correction does not loop
        assert propose(store, sot, []) is None  # the drift cleared...
        third = propose(store, sot, node4)  # ...and came back: proposed again
        assert third is not None and third["id"] not in (first["id"], second["id"])
    finally:
        store.close()
