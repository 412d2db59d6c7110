"""End to end: a rolling upgrade of a 4-host QEMU cluster under `vaquero standalone`.

The cluster is installed from revision 1 (stages: the control host first, then the workers, at
most 2 at once), then revision 2 changes the profile: every host is drained (a pre_shutdown hook
that records the order), netbooted into the new profile and validated (one validate hook fails
once on node3, so node3 is retried by the failure budget). While it runs the test samples host
states: min_available (2) must never be violated. At most 2 VMs run at once (2 cores, TCG).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from test_install_standalone import PASSWORD, assert_no_secret, collapse, lab  # noqa: F401 - the lab fixture

POLICY = {
    "max_concurrent": 2,
    "min_available": 2,
    "on_failure": "retry",
    "retries": 1,
    "stages": [{"name": "control-plane", "roles": ["control"]}, {"name": "workers", "roles": ["worker"]}],
}


def hooks_v2(marks: Path) -> str:
    return f"""\
apiVersion: vaquero/v1
kind: Hook
name: record-drain
type: command
command: "echo {{{{ host.name }}}} $(date +%s.%N) >> {marks}/drain-order.log; echo drained {{{{ host.name }}}}"
timeout: 30
---
apiVersion: vaquero/v1
kind: Hook
name: agent-saw-callback
type: http_check
url: "http://10.90.0.1:8080/v1/boot/status/{{{{ host.name }}}}"
status: 200
body: '"installed"'
timeout: 10
retries: 3
---
apiVersion: vaquero/v1
kind: Hook
name: flaky-validate
type: command
command: >-
  if [ {{{{ host.name }}}} = node3 ] && [ ! -e {marks}/node3.failed-once ];
  then touch {marks}/node3.failed-once; echo "validation of node3 fails once"; exit 1; fi; echo "validated {{{{ host.name }}}}"
timeout: 30
"""


@pytest.mark.e2e
def test_rolling_upgrade_of_four_hosts(lab, tmp_path: Path) -> None:  # noqa: F811 - the imported fixture
    t0 = time.monotonic()
    hosts = ["node1", "node2", "node3", "node4"]
    lab = lab(hosts)
    sha1 = lab.make_repo(policy=POLICY)
    lab.start()
    lab.standalone_start(f"{lab.repo}@main")
    plan1 = lab.wait_plan(sha1, ("succeeded", "failed", "cancelled"), timeout=300)
    assert plan1["state"] == "succeeded", f"{lab.store.get('/runs/' + plan1['id'])}\n{lab.log()}"
    installed = time.monotonic() - t0
    assert all(lab.store.get(f"/hosts/{h}")["sha"] == sha1 for h in hosts)

    # Revision 2: a new profile version (every host is upgraded), drain and validate hooks.
    marks = tmp_path / "marks"
    marks.mkdir()
    prof = lab.repo / "profiles" / "lab-linux.yaml"
    doc = yaml.safe_load(prof.read_text())
    doc["version"] = "2"
    prof.write_text(yaml.safe_dump(doc, sort_keys=False))
    (lab.repo / "hooks" / "lab-hooks.yaml").write_text(hooks_v2(marks))
    cluster = lab.repo / "clusters" / "lab.yaml"
    doc = yaml.safe_load(cluster.read_text())
    doc["hooks"] = {"pre_shutdown": ["record-drain"], "validate": ["agent-saw-callback", "flaky-validate"]}
    cluster.write_text(yaml.safe_dump(doc, sort_keys=False))
    sha2 = lab.commit("lab-linux 2, drain and validate hooks")

    t1 = time.monotonic()
    queued = lab.api("POST", "/v1/revisions", {"source": f"{lab.repo}@main"})
    assert queued["status"] in (200, 202), queued
    plan2 = lab.wait_plan(sha2, ("pending_approval", "approved", "running", "invalid"), timeout=60)
    assert plan2["state"] == "pending_approval", plan2
    waves = [[s["host"] for s in w["steps"]] for w in plan2["plan"]["waves"]]
    assert waves == [["node1"], ["node2", "node3"], ["node4"]], waves
    assert lab.api("POST", f"/v1/plans/{plan2['id']}/approve", {"digest": plan2["digest"]})["status"] == 200

    samples: list[dict[str, str]] = []

    def sample() -> None:
        states = {h: (lab.store.get(f"/hosts/{h}") or {}).get("state", "?") for h in hosts}
        samples.append(states)

    plan2 = lab.wait_plan(sha2, ("succeeded", "failed", "cancelled"), timeout=420, on_tick=sample)
    upgraded = time.monotonic() - t1
    run = lab.store.get(f"/runs/{plan2['id']}")
    assert plan2["state"] == "succeeded", f"{run}\n{lab.log()}"

    # min_available 2 was never violated, and the upgrade really took hosts down.
    ready_counts = [sum(1 for s in st.values() if s == "ready") for st in samples]
    assert len(samples) > 20 and min(ready_counts) >= 2, (min(ready_counts), [s for s in samples if sum(v == "ready" for v in s.values()) < 2][:3])
    assert min(ready_counts) < 4
    # Every host ends ready at revision 2.
    for h in hosts:
        rec = lab.store.get(f"/hosts/{h}")
        assert rec["state"] == "ready" and rec["sha"] == sha2 and rec["plan"] == plan2["id"], rec
    # The drain order respected the stages: the control host first, node4 last; and every worker
    # was drained only after node1 was ready again at revision 2.
    drains = [line.split() for line in (marks / "drain-order.log").read_text().splitlines()]
    order = [d[0] for d in drains]
    first = list(dict.fromkeys(order))  # node3 is drained again by its retry (the step starts over)
    assert first[0] == "node1" and set(first[1:3]) == {"node2", "node3"} and first[3] == "node4", order
    assert order.count("node3") == 2 and order.count("node1") == order.count("node2") == order.count("node4") == 1, order
    assert order.index("node4") > len(order) - 2, order  # node4's wave waited for node3's retry
    node1_ready = max(e["time"] for e in lab.timeline("node1") if e["state"] == "ready" and e.get("plan") == plan2["id"])
    assert all(float(t) > node1_ready for name, t in drains if name != "node1")
    # node3's validation failed once: the failure is in its timeline with the hook's output, and it was retried.
    step = lab.store.get(f"/run-steps/{plan2['id']}/node3")
    assert step["attempt"] == 2 and step["failures"] == 1 and step["state"] == "succeeded", step
    ev3 = [e for e in lab.timeline("node3") if e.get("plan") == plan2["id"]]
    failed = [e for e in ev3 if e["state"] == "failed"]
    assert (failed and "flaky-validate" in failed[0]["reason"]) or any(
        e["detail"].get("hook", {}).get("name") == "flaky-validate" and not e["detail"]["hook"]["ok"] for e in ev3
    )
    outputs = [a["output"] for e in ev3 if e["detail"].get("hook") for a in e["detail"]["hook"]["attempts"]]
    assert any("validation of node3 fails once" in o for o in outputs)
    seq = collapse([e["state"] for e in ev3])
    assert seq[:3] == ["pending", "draining", "powering_off"] and seq.count("validating") == 2 and seq[-1] == "ready", seq
    assert any("retry" in d["text"] for d in run["decisions"])
    for h in ("node1", "node2", "node4"):
        assert lab.store.get(f"/run-steps/{plan2['id']}/{h}")["attempt"] == 1
    assert lab.store.get("/sites-applied/current")["sha"] == sha2
    assert_no_secret(lab.data)
    assert PASSWORD not in lab.log(10**7)
    print(f"\nrolling upgrade e2e: install of 4 hosts {installed:.1f}s, upgrade (with one retry) {upgraded:.1f}s, {len(samples)} state samples")
