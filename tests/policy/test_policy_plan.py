"""The policy in `vaquero plan`: window waits with --now, dependency cycles refused by validation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from graphlib import CycleError
from pathlib import Path

import pytest
from policy_fixtures import cluster, sot

from vaquero.plan import make_plan, render_text
from vaquero.policy.waves import schedule
from vaquero.sot import SoTInvalid, load

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def upgraded(tmp_path: Path) -> Path:
    root = tmp_path / "new"
    shutil.copytree(REPO / "inventories" / "federation", root)
    profile = root / "profiles" / "flatcar.yaml"
    profile.write_text(profile.read_text().replace('version: "4152.2.0"', 'version: "4230.1.0"'))
    return root


def test_plan_explains_window_waits_only_with_now(upgraded: Path):
    old, new = load(REPO / "inventories" / "federation"), load(upgraded)
    plain = make_plan(old, new)
    assert "window opens" not in render_text(plain)
    assert all("not_before" not in w for w in plain.to_dict()["waves"])
    now = datetime(2026, 11, 29, 2, 43, tzinfo=UTC)  # a Sunday; etcd's window is tue,thu 02:00-05:00 UTC
    timed = make_plan(old, new, now=now)
    text = render_text(timed)
    assert "wave 1 waits: window opens Tue 2026-12-01 02:00 UTC (cluster etcd, window tue,thu 02:00-05:00 UTC)" in text
    assert "cluster k8s-workers: stage canary (worker1) goes first" in text
    assert "cluster k8s-workers: stage rest (worker2, worker3, worker4, worker5, worker6) starts after stage canary is ready" in text
    assert timed.to_dict()["waves"][0]["not_before"] == "2026-12-01T02:00:00+00:00"
    # same waves with and without now: time only explains, it never reorders
    assert [[s.host for s in w.steps] for w in timed.schedule.waves] == [[s.host for s in w.steps] for w in plain.schedule.waves]


def test_cli_now_option(upgraded: Path):
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vaquero.cli", "plan", *args], cwd=REPO, capture_output=True, text=True, timeout=120)

    res = cli("inventories/federation", str(upgraded), "--now", "2026-11-29T02:43:00", "--format", "json")  # no offset: UTC
    assert res.returncode == 2, res.stderr
    data = json.loads(res.stdout)
    assert data["waves"][0]["not_before"] == "2026-12-01T02:00:00+00:00"
    assert any(d.startswith("wave 1 waits: window opens Tue 2026-12-01 02:00 UTC") for d in data["decisions"])
    res = cli("inventories/federation", str(upgraded), "--now", "next tuesday")
    assert res.returncode == 2 and "is not an ISO 8601 time" in res.stderr


def test_dependency_cycle_is_refused_by_validation(tmp_path: Path):
    root = tmp_path / "cycle"
    shutil.copytree(REPO / "inventories" / "federation", root)
    etcd = root / "clusters" / "etcd.yaml"
    text = etcd.read_text()
    assert "\npolicy:" in text
    etcd.write_text(text.replace("\npolicy:", "\ndepends_on: [k8s-workers]\npolicy:", 1))
    with pytest.raises(SoTInvalid) as err:
        load(root)
    assert [e.message for e in err.value.errors if "dependency cycle" in e.message], [e.message for e in err.value.errors]


def test_planner_refuses_a_cycle_it_was_given_anyway():
    a, b = cluster("a", 1, ("b",)), cluster("b", 1, ("a",))
    with pytest.raises(CycleError):
        schedule(sot(a, b), {"a": {"a-h0": "upgrade"}}, {"a-h0"})
