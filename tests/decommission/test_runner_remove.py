"""The runner's side of decommissioning, without QEMU: a `remove` step runs decommission.yml on the
inventory of the revision that still has the host, ends `removed`, and a step the runner does not
run makes the run fail, never `succeeded` with a skipped step."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from vaquero.plan import make_plan
from vaquero.runner import records as R
from vaquero.runner.ansible import Launch, RunContext, record
from vaquero.runner.worker import RunWorker, run_outcome
from vaquero.sot import load
from vaquero.state.machine import current, timeline
from vaquero.state.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parents[2]
OLD, NEW = "1" * 40, "2" * 40


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(tmp_path / "state.db")
    yield s
    s.close()


def drop_node4(sot: Path) -> None:
    """The new revision: node4 is taken out of the SoT (its five lines in the cluster)."""
    path = sot / "clusters" / "lab.yaml"
    lines = path.read_text().splitlines(keepends=True)
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "- name: node4")
    path.write_text("".join(lines[:start] + lines[start + 6 :]))
    assert "node4" not in path.read_text()


@pytest.fixture
def revisions(tmp_path: Path, store: SQLiteStore) -> tuple[Path, Path]:
    """Revision 1 (four hosts, applied, all ready) and revision 2 (node4 removed), planned and approved."""
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(REPO / "inventories" / "lab", old)
    shutil.copytree(old, new)
    drop_node4(new)
    store.put(R.CURRENT_KEY, {"sha": OLD, "root": str(old), "plan": "p0"})
    ctx = RunContext(store, "p0", "p0", OLD, {})
    for h in ("node1", "node2", "node3", "node4"):
        record(ctx, h, "ready", "installed before")
    plan = make_plan(load(old, sha=OLD), load(new, sha=NEW))
    assert [(h.host, h.action) for h in plan.hosts] == [("node4", "remove")]
    store.put(R.plan_key("p2"), {"id": "p2", "sha": NEW, "root": str(new), "state": "approved", "plan": plan.to_dict(), "cancel_requested": False})
    return old, new


class Decommissioner:
    """A launcher that records what it was given and plays the host events of a decommission
    (or of a wipe that fails), reading the host from the inventory tree it was handed."""

    def __init__(self, wipe_fails: str | None = None) -> None:
        self.calls: list[tuple[str, Path, list[str]]] = []
        self.seen: dict[str, dict[str, Any]] = {}
        self.wipe_fails = wipe_fails

    def __call__(self, ctx: RunContext, private: Path, root: Path, playbook: str, hosts: list[str], **kw: Any) -> Launch:
        self.calls.append((playbook, root, list(hosts)))
        failures = {}
        for h in hosts:
            found = load(root, semantic=False).host(h)
            assert found is not None, f"{h} is not in the inventory tree {root}"
            self.seen[h] = found[1].model_dump(mode="json")
            record(ctx, h, "draining", "pre_shutdown hooks", key=f"{ctx.run}:{h}:drain")
            record(ctx, h, "wiping", "armed for a wipe, boot pxe once, power cycled", key=f"{ctx.run}:{h}:wiping")
            if self.wipe_fails:
                failures[h] = f"task 'Wait for the wipe callback' failed: {self.wipe_fails}"
                record(ctx, h, "failed", failures[h], key=f"{ctx.run}:{h}:failed")
                continue
            record(ctx, h, "powering_off", "wiped: 2097152 bytes zeroed on vda", detail={"bytes": 2097152}, key=f"{ctx.run}:{h}:off")
            record(ctx, h, "removed", "powered off (read back), disarmed", key=f"{ctx.run}:{h}:removed")
        return Launch("failed" if failures else "successful", 2 if failures else 0, kw["ident"], failures)


def test_a_skipped_or_pending_step_makes_the_run_fail() -> None:
    ok = {"host": "a", "state": R.STEP_SUCCEEDED}
    assert run_outcome({"a": ok}) == (R.SUCCEEDED, None)
    state, error = run_outcome({"a": ok, "b": {"host": "b", "state": R.STEP_SKIPPED, "error": "not run: no playbook"}})
    assert state == R.FAILED and error is not None and "b: not run: no playbook" in error
    state, error = run_outcome({"a": ok, "b": {"host": "b", "state": R.STEP_PENDING}})
    assert state == R.FAILED and error is not None and "b: pending" in error


def test_remove_runs_decommission_with_the_previous_revisions_host(store, revisions, tmp_path) -> None:
    old, _ = revisions
    launcher = Decommissioner()
    assert RunWorker(store, tmp_path / "data", launcher=launcher).tick()
    # node4 is in no tree but the old one: its BMC, MACs and uuid come from there.
    assert launcher.calls == [("decommission.yml", old, ["node4"])]
    assert launcher.seen["node4"]["uuid"] == "5a9a0001-0000-4000-8000-000000001004"
    assert launcher.seen["node4"]["bmc"]["port"] == 6234 and launcher.seen["node4"]["macs"] == ["52:54:00:00:10:04"]
    step = store.get(R.step_key("p2", "node4")).value
    assert step["state"] == R.STEP_SUCCEEDED and step["playbook"] == "decommission.yml" and step["sot_sha"] == OLD
    host = current(store, "node4")
    assert host is not None and host["state"] == "removed" and host["plan"] == "p2"
    assert [e["state"] for e in timeline(store, "node4")][-5:] == ["pending", "draining", "wiping", "powering_off", "removed"]
    run = store.get(R.run_key("p2")).value
    assert run["state"] == R.SUCCEEDED, run
    assert store.get(R.CURRENT_KEY).value["sha"] == NEW


def test_a_failed_wipe_fails_the_host_never_removed(store, revisions, tmp_path) -> None:
    launcher = Decommissioner(wipe_fails="the wipe of node4 reported a failure: no disk found")
    RunWorker(store, tmp_path / "data", launcher=launcher).tick()
    host = current(store, "node4")
    assert host is not None and host["state"] == "failed" and "no disk found" in host["reason"]
    assert "removed" not in [e["state"] for e in timeline(store, "node4")]
    step = store.get(R.step_key("p2", "node4")).value
    assert step["state"] == R.STEP_FAILED and "no disk found" in step["error"]
    assert store.get(R.run_key("p2")).value["state"] == R.FAILED
    assert store.get(R.CURRENT_KEY).value["sha"] == OLD


def test_without_the_previous_revision_nothing_is_powered(store, revisions, tmp_path) -> None:
    old, _ = revisions
    shutil.rmtree(old)  # the tree that had node4 is gone: node4 cannot be identified
    launcher = Decommissioner()
    RunWorker(store, tmp_path / "data", launcher=launcher).tick()
    assert launcher.calls == []
    step = store.get(R.step_key("p2", "node4")).value
    assert step["state"] == R.STEP_FAILED and step["error"].startswith("not run: host node4 cannot be decommissioned")
    assert "nothing was powered or wiped" in step["error"]
    assert current(store, "node4")["state"] == "ready"  # untouched
    run = store.get(R.run_key("p2")).value
    assert run["state"] == R.FAILED and "node4" in run["error"]


def test_an_action_without_playbook_is_a_failed_step(store, revisions, tmp_path) -> None:
    rec = store.get(R.plan_key("p2")).value
    rec["plan"]["waves"][0]["steps"][0]["action"] = "teleport"
    store.put(R.plan_key("p2"), rec)
    launcher = Decommissioner()
    RunWorker(store, tmp_path / "data", launcher=launcher).tick()
    assert launcher.calls == []
    step = store.get(R.step_key("p2", "node4")).value
    assert step["state"] == R.STEP_FAILED and step["error"] == "not run: the runner has no playbook for action teleport"
    run = store.get(R.run_key("p2")).value
    assert run["state"] == R.FAILED and "teleport" in run["error"]
