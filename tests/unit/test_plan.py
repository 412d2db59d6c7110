"""`vaquero plan`: actions, reasons, waves and policy, on real copies of the example SoTs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vaquero.plan import make_plan, render_text
from vaquero.sot import empty_sot, load
from vaquero.sot.validate import resolve_count

REPO = Path(__file__).resolve().parents[2]


def copy(tmp_path: Path, base: str, name: str = "new") -> Path:
    dst = tmp_path / name
    shutil.copytree(REPO / "inventories" / base, dst)
    return dst


def edit(root: Path, file: str, old: str, new: str) -> None:
    path = root / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def actions(plan) -> dict[str, str]:
    return {h.host: h.action for h in plan.hosts}


def check_policy(plan, sot) -> None:
    """No wave takes more than max_concurrent hosts of a cluster or leaves fewer than min_available up."""
    for wave in plan.schedule.waves:
        per_cluster: dict[str, int] = {}
        for step in wave.steps:
            per_cluster[step.cluster] = per_cluster.get(step.cluster, 0) + 1
        for name, count in per_cluster.items():
            cluster = sot.clusters[name]
            assert count <= cluster.policy.max_concurrent
            need = resolve_count(cluster.policy.min_available, len(cluster.hosts))
            assert len(cluster.hosts) - count >= need or need == 0


def test_new_site_installs_every_host_in_policy_sized_waves():
    new = load(REPO / "inventories" / "lab")
    plan = make_plan(empty_sot(), new)
    assert actions(plan) == {f"node{i}": "add" for i in range(1, 5)}
    assert [len(w.steps) for w in plan.schedule.waves] == [2, 2]
    assert plan.summary["add"] == 4
    text = render_text(plan)
    assert "+ host node1 will be installed [add]" in text
    assert "Plan: 4 to add" in text


def test_identical_revisions_have_no_changes():
    sot = load(REPO / "inventories" / "lab")
    plan = make_plan(sot, load(REPO / "inventories" / "lab"))
    assert not plan.has_changes
    assert "No changes" in render_text(plan)


def test_each_kind_of_host_change(tmp_path):
    old = load(REPO / "inventories" / "lab")
    root = copy(tmp_path, "lab")
    edit(root, "clusters/lab.yaml", '"52:54:00:00:10:01"', '"52:54:00:00:10:41"')  # node1: new NIC -> reinstall
    edit(root, "clusters/lab.yaml", "ips: {prov: 10.90.0.12}", "ips: {prov: 10.90.0.22}")  # node2: config only
    edit(root, "clusters/lab.yaml", "ips: {prov: 10.90.0.13}", "ips: {prov: 10.90.0.13}\n    power: \"off\"")  # node3: power
    text = (root / "clusters/lab.yaml").read_text()
    cut = text.index("  - name: node4")
    (root / "clusters/lab.yaml").write_text(text[:cut])  # node4 removed
    plan = make_plan(old, load(root))
    assert actions(plan) == {"node1": "reinstall", "node2": "config", "node3": "power", "node4": "remove"}
    reasons = {h.host: h.reasons for h in plan.hosts}
    assert "macs: ['52:54:00:00:10:01'] -> ['52:54:00:00:10:41']" in reasons["node1"]
    assert "ips.prov: 10.90.0.12 -> 10.90.0.22" in reasons["node2"]
    assert "power: on -> off" in reasons["node3"]
    waved = {s.host for w in plan.schedule.waves for s in w.steps}
    assert "node2" not in waved  # config-only changes need no wave
    assert {"node1", "node3", "node4"} <= waved


def test_profile_upgrade_respects_min_available_and_dependencies(tmp_path):
    old = load(REPO / "inventories" / "federation")
    root = copy(tmp_path, "federation")
    edit(root, "profiles/flatcar.yaml", 'version: "4152.2.0"', 'version: "4230.1.0"')
    new = load(root)
    plan = make_plan(old, new)
    upgraded = {h.host for h in plan.hosts if h.action == "upgrade"}
    assert upgraded == {h.name for c in new.clusters.values() if c.profile == "flatcar-stable" for h in c.hosts}
    check_policy(plan, new)
    wave_of = {s.host: w.number for w in plan.schedule.waves for s in w.steps}
    last = {c: max(wave_of[h.name] for h in new.clusters[c].hosts) for c in ("etcd", "k8s-control")}
    first = {c: min(wave_of[h.name] for h in new.clusters[c].hosts) for c in ("k8s-control", "k8s-workers")}
    assert first["k8s-control"] > last["etcd"]
    assert first["k8s-workers"] > last["k8s-control"]
    # `first: [worker1]` and the canary stage put worker1 alone in the first workers wave.
    assert [s.host for s in plan.schedule.waves[first["k8s-workers"] - 1].steps] == ["worker1"]
    assert any("waits for etcd" in d for d in plan.schedule.decisions)


def test_template_content_change_upgrades_hosts_of_that_profile(tmp_path):
    old = load(REPO / "inventories" / "federation")
    root = copy(tmp_path, "federation")
    (root / "templates/debian-12.preseed.j2").write_text((root / "templates/debian-12.preseed.j2").read_text() + "# tuned\n")
    plan = make_plan(old, load(root))
    assert set(actions(plan).values()) == {"upgrade"}
    assert {h.cluster for h in plan.hosts} == {"storage", "edge"}
    assert all(any("content changed" in r for r in h.reasons) for h in plan.hosts)


def test_site_network_change_is_config_only(tmp_path):
    old = load(REPO / "inventories" / "lab")
    root = copy(tmp_path, "lab")
    edit(root, "sites/lab.yaml", "dns: [10.90.0.1]", "dns: [10.90.0.1, 10.90.0.2]")
    plan = make_plan(old, load(root))
    assert plan.hosts == []
    assert [(s.kind, s.name, s.action) for s in plan.scopes] == [("site", "lab", "change")]
    assert plan.schedule.waves == []


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vaquero.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_cli_exit_codes_and_json(tmp_path):
    res = _cli("plan", "-", "inventories/lab")
    assert res.returncode == 2, res.stderr
    res = _cli("plan", "inventories/lab", "inventories/lab")
    assert res.returncode == 0, res.stderr
    res = _cli("plan", "-", "inventories/lab", "--format", "json")
    data = json.loads(res.stdout)
    assert data["summary"]["add"] == 4 and len(data["waves"]) == 2
    res = _cli("validate", "inventories/federation")
    assert res.returncode == 0 and "valid: 2 site(s), 5 cluster(s), 18 host(s)" in res.stdout
    broken = copy(tmp_path, "lab", "broken")
    edit(broken, "clusters/lab.yaml", "site: lab\n", "site: nowhere\n")
    res = _cli("validate", str(broken), "--format", "json")
    assert res.returncode == 1
    err = json.loads(res.stdout)["errors"][0]
    assert err["file"] == "clusters/lab.yaml" and err["field"] == "site" and err["line"] == 4
    res = _cli("validate", str(tmp_path / "nowhere"))
    assert res.returncode == 1 and "no such folder" in res.stderr


@pytest.mark.parametrize("base", ["lab", "federation"])
def test_schema_accepts_the_examples(base):
    import jsonschema  # a test dependency (schemathesis needs it): missing is an error, not a skip
    import yaml

    res = _cli("schema")
    schema = json.loads(res.stdout)
    for path in sorted((REPO / "inventories" / base).rglob("*.yaml")):
        if path.parent.name in ("sites", "profiles", "clusters", "hooks"):
            for doc in yaml.safe_load_all(path.read_text()):
                jsonschema.validate(doc, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"apiVersion": "vaquero/v1", "kind": "Site", "name": "x", "networks": [], "bogus": 1}, schema)


def test_committed_schema_matches_the_models():
    """docs/schema/sot-v1.schema.json is what editors load; it must not drift from the models."""
    res = _cli("schema")
    assert json.loads(res.stdout) == json.loads((REPO / "docs/schema/sot-v1.schema.json").read_text()), "run: vaquero schema > docs/schema/sot-v1.schema.json"
