"""The run worker with real ansible-runner launches (playbooks standing in for BMC and netboot),
and with a recording launcher for restart and pause cases."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until

from vaquero.plan import make_plan
from vaquero.runner import records as R
from vaquero.runner.ansible import Launch, RunContext, record
from vaquero.runner.worker import RunWorker
from vaquero.sot import empty_sot, load
from vaquero.state.machine import current, timeline
from vaquero.state.sqlite import SQLiteStore

PASSWORD = "lab-bmc-Secret-4711"


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(tmp_path / "state.db")
    yield s
    s.close()


def approve(store: SQLiteStore, sot_dir: Path, pid: str = "p1", sha: str = "a" * 40) -> dict[str, Any]:
    plan = make_plan(empty_sot(), load(sot_dir, sha=sha))
    value = {"id": pid, "sha": sha, "root": str(sot_dir), "label": "lab", "state": "approved", "plan": plan.to_dict(), "cancel_requested": False}
    store.put(R.plan_key(pid), value)
    return value


def states(store: SQLiteStore, host: str) -> list[str]:
    return [e["state"] for e in timeline(store, host)]


def test_apply_runs_waves_records_timeline_and_keeps_secrets_out(store, lab_sot, content, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VAQUERO_LAB_BMC_PASSWORD", PASSWORD)
    # The controller's own secrets live in its environment too; none may reach the artifacts.
    # An operator's own variables too, whatever their names: ansible-playbook's environment is an allow-list.
    controller_secrets = {"VAQUERO_WEBHOOK_SECRET": "webhook-secret-7c1f0a", "VAQUERO_API_TOKENS": "ops:admin:api-token-55e2b9d0aa"}
    controller_secrets |= {"MY_DB_PASSWORD": "db-pw-0b9d41c2", "DATABASE_URL": "postgresql://u:url-pw-6e20aa@db/x"}
    for name, value in controller_secrets.items():
        monkeypatch.setenv(name, value)
    approve(store, lab_sot)
    worker = RunWorker(store, tmp_path / "data")
    start = time.monotonic()
    assert worker.tick()
    took = time.monotonic() - start
    run = store.get(R.run_key("p1")).value
    assert run["state"] == "succeeded", run
    assert [w["state"] for w in run["waves"]] == ["done", "done"]
    assert store.get(R.plan_key("p1")).value["state"] == "succeeded"
    assert store.get(R.CURRENT_KEY).value == {**store.get(R.CURRENT_KEY).value, "sha": "a" * 40, "root": str(lab_sot), "plan": "p1"}
    for host in ("node1", "node2", "node3", "node4"):
        h = current(store, host)
        assert h["state"] == "ready" and h["plan"] == "p1" and h["sha"] == "a" * 40
        seq = [s for i, s in enumerate(states(store, host)) if i == 0 or s != states(store, host)[i - 1]]
        assert seq == ["pending", "powering_off", "netbooting", "installing", "rebooting", "validating", "ready"]
        hooks = [e for e in timeline(store, host) if e["detail"].get("hook")]
        assert hooks and hooks[0]["detail"]["hook"]["attempts"][0]["output"].strip() == f"validated {host}"
    # Waves in plan order: wave 1 hosts were ready before wave 2 hosts started.
    w1_ready = max(e["time"] for h in ("node1", "node2") for e in timeline(store, h) if e["state"] == "ready")
    w2_start = min(e["time"] for h in ("node3", "node4") for e in timeline(store, h) if e["state"] == "pending")
    assert w1_ready < w2_start
    # The secret reached the play only as a blanked variable, and nowhere in the artifacts.
    artifacts = tmp_path / "data" / "runs" / "p1"
    assert (artifacts / "install" / "artifacts").is_dir()
    for secret in (PASSWORD, *controller_secrets.values()):
        grep = subprocess.run(["grep", "-r", "-l", secret, str(artifacts)], capture_output=True, text=True)
        assert grep.returncode == 1, f"secret found in {grep.stdout}"
    assert "pw=[]" in "".join(p.read_text() for p in artifacts.glob("*/artifacts/*/job_events/*.json"))
    commands = list(artifacts.glob("*/artifacts/*/command"))
    assert commands and all(not set(json.loads(c.read_text())["env"]) & {*controller_secrets, "VAQUERO_LAB_BMC_PASSWORD"} for c in commands)
    print(f"4 hosts, 2 waves, 2 ansible-runner launches: {took:.1f}s")


def test_failed_host_is_retried_per_policy(store, lab_sot, content, tmp_path) -> None:
    (content / "node2.fail").write_text("once")
    approve(store, lab_sot)
    RunWorker(store, tmp_path / "data").tick()
    run = store.get(R.run_key("p1")).value
    print({h: (s["attempt"], s["state"], s["error"]) for h, s in R.steps(store, "p1").items()}, run["decisions"])
    assert run["state"] == "succeeded", run
    step = store.get(R.step_key("p1", "node2")).value
    assert step["attempt"] == 2 and step["failures"] == 1 and step["state"] == "succeeded"
    seq = states(store, "node2")
    assert "failed" in seq and seq[-1] == "ready" and seq.index("failed") < len(seq) - 1 - seq[::-1].index("pending")
    assert any("retry" in d["text"] for d in run["decisions"])
    assert store.get(R.step_key("p1", "node1")).value["attempt"] == 1


def test_halt_when_retries_are_used_up(store, lab_sot, content, tmp_path) -> None:
    text = (lab_sot / "clusters" / "lab.yaml").read_text().replace("retries: 1", "retries: 0")
    (lab_sot / "clusters" / "lab.yaml").write_text(text)
    (content / "node1.fail").write_text("once")
    approve(store, lab_sot)
    RunWorker(store, tmp_path / "data").tick()
    run = store.get(R.run_key("p1")).value
    assert run["state"] == "failed" and "halt" in run["error"]
    assert [w["state"] for w in run["waves"]] == ["failed", "pending"]
    assert current(store, "node1")["state"] == "failed" and current(store, "node3") is None
    assert store.get(R.plan_key("p1")).value["state"] == "failed"
    assert store.get(R.CURRENT_KEY) is None


def test_abort_cancels_the_playbook(store, lab_sot, content, tmp_path) -> None:
    # far longer than the test may wait: the run can only end in time if the cancel stops the playbook
    (content / "sleep").write_text("3600")
    approve(store, lab_sot)
    worker = RunWorker(store, tmp_path / "data")
    t = threading.Thread(target=worker.tick)
    t.start()
    wait_until(lambda: (current(store, "node1") or {}).get("state") == "netbooting", 120, "node1 to netboot")
    R.update(store, R.plan_key("p1"), lambda p: {**p, "cancel_requested": True})
    t.join(300)
    assert not t.is_alive(), "the cancel did not stop the playbook"
    run = store.get(R.run_key("p1")).value
    assert run["state"] == "cancelled" and store.get(R.plan_key("p1")).value["state"] == "cancelled"
    assert current(store, "node1")["state"] == "failed" and "cancel" in current(store, "node1")["reason"]
    assert current(store, "node3") is None


class Recorder:
    """A launcher that records what it was asked and plays the host events of a good install."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, ctx: RunContext, private: Path, root: Path, playbook: str, hosts: list[str], **kw: Any) -> Launch:
        self.calls.append(list(hosts))
        for h in hosts:
            for s in ("powering_off", "netbooting", "installing", "rebooting", "validating", "ready"):
                record(ctx, h, s, "recorded")
        return Launch("successful", 0, kw["ident"], {})


def test_restart_mid_run_never_installs_a_host_twice(store, lab_sot, tmp_path) -> None:
    text = (lab_sot / "clusters" / "lab.yaml").read_text().replace("retries: 1", "retries: 1\n  max_failures: 1")
    (lab_sot / "clusters" / "lab.yaml").write_text(text)
    plan = approve(store, lab_sot)
    # A controller ran wave 1 and stopped: node1 was installing, node2 had only been powered off.
    store.put(R.plan_key("p1"), {**plan, "state": "running", "run": "p1"})
    waves = [{"number": w["number"], "state": "pending"} for w in plan["plan"]["waves"]]
    waves[0]["state"] = "running"
    store.put(
        R.run_key("p1"), {"id": "p1", "plan": "p1", "sha": plan["sha"], "state": "running", "waves": waves, "worker": "old", "heartbeat": 0, "decisions": []}
    )
    ctx = RunContext(store, "p1", "p1", plan["sha"], {"node1": 1, "node2": 1})
    for host, upto in (("node1", "installing"), ("node2", "powering_off")):
        store.put(
            R.step_key("p1", host),
            {"host": host, "cluster": "lab", "action": "add", "wave": 1, "state": "running", "attempt": 1, "failures": 0, "playbook": "install.yml"},
        )
        for s in ("pending", "powering_off", "netbooting", "installing"):
            record(ctx, host, s, "before the restart")
            if s == upto:
                break
    rec = Recorder()
    worker = RunWorker(store, tmp_path / "data", launcher=rec)
    assert worker.tick()
    assert rec.calls and all("node1" not in c for c in rec.calls), rec.calls
    assert ["node2"] in rec.calls
    n1 = store.get(R.step_key("p1", "node1")).value
    assert n1["state"] == "failed" and "not started again" in n1["error"]
    assert current(store, "node1")["state"] == "failed"
    assert current(store, "node2")["state"] == "ready"
    seq = states(store, "node2")
    assert seq.count("powering_off") == 2 and "failed" in seq  # interrupted, recorded, started again
    run = store.get(R.run_key("p1")).value
    # node1's failure is tolerated (max_failures 1): the rollout went on, but the run is not a success.
    assert run["resumed"] == 1 and run["state"] == "failed" and "node1" in run["error"]
    assert rec.calls == [["node2"], ["node3", "node4"]]
    assert store.get(R.CURRENT_KEY) is None


def test_pause_holds_new_steps_until_resume(store, lab_sot, tmp_path) -> None:
    approve(store, lab_sot)
    rec = Recorder()
    worker = RunWorker(store, tmp_path / "data", launcher=rec)
    store.put(R.run_key("p1"), {"id": "p1", "paused": True})
    t = threading.Thread(target=worker.tick)
    t.start()
    wait_until(lambda: store.get(R.run_key("p1")).value.get("state") == "paused", 60, "the run to report it is paused")
    assert rec.calls == []  # it got as far as holding, and launched nothing
    R.update(store, R.run_key("p1"), lambda r: {**r, "paused": False})
    t.join(120)
    assert not t.is_alive() and store.get(R.run_key("p1")).value["state"] == "succeeded"
    assert rec.calls == [["node1", "node2"], ["node3", "node4"]]


class FailingRecorder(Recorder):
    """Every launch on the new revision fails its hosts at validation; the rollback launch succeeds."""

    def __init__(self, new_root: Path) -> None:
        super().__init__()
        self.new_root = new_root
        self.roots: list[Path] = []

    def __call__(self, ctx: RunContext, private: Path, root: Path, playbook: str, hosts: list[str], **kw: Any) -> Launch:
        self.roots.append(root)
        if root != self.new_root:
            return super().__call__(ctx, private, root, playbook, hosts, **kw)
        self.calls.append(list(hosts))
        failures = {}
        for h in hosts:
            for s in ("draining", "powering_off", "netbooting", "installing", "rebooting", "validating"):
                record(ctx, h, s, "recorded")
            record(ctx, h, "failed", "validate hook failed")
            failures[h] = "validate hook failed"
        return Launch("failed", 2, kw["ident"], failures)


def test_rollback_returns_failed_hosts_to_the_previous_revision(store, lab_sot, tmp_path) -> None:
    import shutil

    old_root = tmp_path / "old"
    shutil.copytree(lab_sot, old_root)
    text = (lab_sot / "clusters" / "lab.yaml").read_text().replace("on_failure: retry", "on_failure: rollback")
    (lab_sot / "clusters" / "lab.yaml").write_text(text)
    prof = lab_sot / "profiles" / "lab-linux.yaml"
    prof.write_text(prof.read_text().replace('version: "1"', 'version: "2"'))
    # Revision 1 is applied and every host is ready on it.
    store.put(R.CURRENT_KEY, {"sha": "1" * 40, "root": str(old_root), "plan": "p0"})
    ctx = RunContext(store, "p0", "p0", "1" * 40, {})
    for h in ("node1", "node2", "node3", "node4"):
        record(ctx, h, "ready", "installed before")
    plan = make_plan(load(old_root, sha="1" * 40), load(lab_sot, sha="2" * 40))
    store.put(R.plan_key("p2"), {"id": "p2", "sha": "2" * 40, "root": str(lab_sot), "state": "approved", "plan": plan.to_dict(), "cancel_requested": False})
    rec = FailingRecorder(lab_sot)
    RunWorker(store, tmp_path / "data", launcher=rec).tick()
    run = store.get(R.run_key("p2")).value
    assert run["state"] == "failed" and "rollback" in run["error"]
    # The first wave failed on the new revision, was rolled back on the old tree, and no other wave ran.
    assert rec.roots[0] == lab_sot and rec.roots[1] == old_root and len(rec.calls) == 2
    assert rec.calls[0] == rec.calls[1]
    for h in rec.calls[0]:
        step = store.get(R.step_key("p2", h)).value
        assert step["rolled_back"] is True and step["rollback_to"] == "1" * 40
        assert current(store, h)["state"] == "ready" and current(store, h)["sha"] == "1" * 40
    assert store.get(R.CURRENT_KEY).value["sha"] == "1" * 40


def test_upgrade_rollback_flag_rolls_back_on_halt(store, lab_sot, tmp_path) -> None:
    import shutil

    old_root = tmp_path / "old"
    shutil.copytree(lab_sot, old_root)
    text = (lab_sot / "clusters" / "lab.yaml").read_text().replace("on_failure: retry", "on_failure: halt")
    (lab_sot / "clusters" / "lab.yaml").write_text(text + "upgrade:\n  strategy: reinstall\n  rollback: true\n")
    prof = lab_sot / "profiles" / "lab-linux.yaml"
    prof.write_text(prof.read_text().replace('version: "1"', 'version: "2"'))
    store.put(R.CURRENT_KEY, {"sha": "1" * 40, "root": str(old_root), "plan": "p0"})
    ctx = RunContext(store, "p0", "p0", "1" * 40, {})
    for h in ("node1", "node2", "node3", "node4"):
        record(ctx, h, "ready", "installed before")
    plan = make_plan(load(old_root, sha="1" * 40), load(lab_sot, sha="2" * 40))
    store.put(R.plan_key("p2"), {"id": "p2", "sha": "2" * 40, "root": str(lab_sot), "state": "approved", "plan": plan.to_dict(), "cancel_requested": False})
    rec = FailingRecorder(lab_sot)
    RunWorker(store, tmp_path / "data", launcher=rec).tick()
    run = store.get(R.run_key("p2")).value
    assert run["state"] == "failed" and "halt" in run["error"]
    assert rec.roots[1] == old_root and any("upgrade.rollback" in d["text"] for d in run["decisions"])
    assert all(current(store, h)["sha"] == "1" * 40 for h in rec.calls[0])


def test_waits_for_a_window_and_a_stopping_controller_leaves_the_run_for_the_next(store, lab_sot, tmp_path) -> None:
    from datetime import UTC, datetime, timedelta

    later = datetime.now(UTC) + timedelta(hours=6)
    start, end = later.strftime("%H:00"), (later + timedelta(hours=1)).strftime("%H:00")
    text = (lab_sot / "clusters" / "lab.yaml").read_text().replace("  retries: 1\n", f'  retries: 1\n  windows: [{{start: "{start}", end: "{end}"}}]\n')
    (lab_sot / "clusters" / "lab.yaml").write_text(text)
    approve(store, lab_sot)
    rec = Recorder()
    worker = RunWorker(store, tmp_path / "data", launcher=rec, hold_timeout=0.5)
    t = threading.Thread(target=worker.tick)
    t.start()
    def waiting_for_window() -> bool:
        return any("window opens" in d["text"] for d in store.get(R.run_key("p1")).value.get("decisions") or [])

    wait_until(waiting_for_window, 60, "the run to wait for its window")
    run = store.get(R.run_key("p1")).value
    assert rec.calls == [] and run["state"] == "running", run  # waiting for the window is not a failure
    assert any("window opens" in d["text"] for d in run["decisions"])
    worker.stop()
    t.join(60)
    assert not t.is_alive()
    assert store.get(R.run_key("p1")).value["state"] == "running" and store.get(R.plan_key("p1")).value["state"] == "running"
