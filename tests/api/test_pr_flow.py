"""Issue 16 end to end: a pull request from its first push to the plan the runner applies.

Every piece is the real one that runs here: a bare git repository with the PR heads under
refs/pull/<n>/head, GitHub's own webhook bodies signed over the exact bytes sent, the controller
app on a standalone SQLite store, its gate and sandbox, and the run worker with its real launcher.
Only GitHub's API is a stand-in (tests/api/github_standin.py checks each request as GitHub would).

The run needs no hardware because every host of this SoT is kept powered off (`power: off`): a
host that is off is only recorded (`config`: in no wave, no host step, no playbook), so the runner
completes the plan without QEMU or a BMC and moves /sites-applied/current, as it does after a real
install. What the runner does on machines is tested in tests/runner and tests/e2e.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import auth, git, push_body
from pr_helpers import Env, merge, pr_body, pr_head
from waiting import wait_until

from vaquero.runner.worker import RunWorker


def hosts_off(work: Path) -> None:
    path = work / "clusters" / "lab.yaml"
    path.write_text(re.sub(r"(?m)^(    roles: .*)$", r"\1\n    power: off", path.read_text()))


def node5(mac: str):
    def edit(work: Path) -> None:
        path = work / "clusters" / "lab.yaml"
        path.write_text(
            path.read_text()
            + f"""  - name: node5
    macs: ["{mac}"]
    roles: [worker]
    power: off
    bmc: {{type: ipmi, address: 127.0.0.1, port: 6235, credential: lab-bmc}}
    ips: {{prov: 10.90.0.15}}
"""
        )

    return edit


@pytest.fixture
def runner(env: Env, tmp_path: Path) -> Iterator[RunWorker]:
    worker = RunWorker(env.store, tmp_path / "data", poll=0.05).start()
    yield worker
    worker.stop()


def approve_and_apply(env: Env, pid: str) -> dict[str, Any]:
    """Approve plan `pid` through the API as read (its digest), then wait for the runner to apply it."""
    read = env.client.get(f"/v1/plans/{pid}", headers=auth("reader"))
    assert read.status_code == 200 and read.json()["state"] == "pending_approval", read.text
    answer = env.client.post(f"/v1/plans/{pid}/approve", json={"digest": read.json()["digest"]}, headers=auth("alice"))
    assert answer.status_code == 200 and answer.json()["state"] == "approved" and answer.json()["approved_by"] == "alice", answer.text
    wait_until(lambda: env.store.get(f"/plans/{pid}").value["state"] in ("succeeded", "failed", "cancelled"), 120, f"the run of plan {pid}")  # type: ignore[union-attr]
    run = env.client.get(f"/v1/runs/{pid}", headers=auth("reader")).json()
    assert run["state"] == "succeeded" and run["error"] is None, run
    return dict(run)


def test_a_pull_request_from_a_failed_check_to_the_plan_the_runner_applies(env: Env, runner: RunWorker) -> None:
    # What the hardware runs: the lab, every host off, pushed, approved and applied by the runner.
    base = env.repo.commit("lab hosts kept off", hosts_off)
    env.hook(push_body(env.repo.url, base), "push")
    env.idle()
    approve_and_apply(env, env.plan_of(base)["id"])
    assert env.store.get("/sites-applied/current").value["sha"] == base  # type: ignore[union-attr]

    # 1. The PR is opened with a MAC that is not one: a failed check run, annotated where the error is.
    bad = pr_head(env.repo, 21, "node5, a typo in its MAC", node5("52:54:00:00:10:0g"))
    assert env.hook(pr_body("opened", 21, bad), "pull_request")["status"] == "queued"
    env.idle()
    [failed] = env.runs_for(bad)
    assert failed["status"] == "completed" and failed["conclusion"] == "failure" and failed["output"]["title"].startswith("invalid: ")
    text = git(env.repo.work, "show", f"{bad}:clusters/lab.yaml").splitlines()
    line = next(i for i, t in enumerate(text, 1) if "10:0g" in t)
    [note] = failed["annotations"]
    assert {"path": "clusters/lab.yaml", "start_line": line, "end_line": line, "annotation_level": "failure"}.items() <= note.items()
    assert env.pull(21)["state"] == "invalid"

    # 2. The fix pushed to the PR: a successful check run with the plan text.
    fixed = pr_head(env.repo, 21, "node5, its MAC fixed", node5("52:54:00:00:10:05"))
    assert env.hook(pr_body("synchronize", 21, fixed), "pull_request")["status"] == "queued"
    env.idle()
    [passed] = env.runs_for(fixed)
    reviewed = env.pull(21)
    assert reviewed["state"] == "planned" and reviewed["head_sha"] == fixed and reviewed["base_sha"] == base
    assert passed["conclusion"] == "success" and passed["output"]["title"] == "valid: 1 config" and passed["annotations"] == []
    summary = passed["output"]["summary"]
    assert "~ host node5 config only (no reboot) [config]" in summary and "1 config-only, 0 to remove" in summary and base[:12] in summary
    assert env.runs_for(bad) == [failed]  # the failed run of the old head stays as it was
    assert env.store.get(f"/revisions/{fixed}") is None  # reviewed, not a revision the runner could pick up

    # 3. Merged: the push of the merge commit to main, then the pull_request closed (merged) delivery.
    merged = merge(env.repo, 21)
    env.hook(push_body(env.repo.url, merged, before=base), "push")
    env.idle()
    assert env.hook(pr_body("closed", 21, fixed, merged=True, merge_sha=merged), "pull_request")["status"] == "merged"
    env.idle()

    # 4. The gate's plan of the merge commit says it is the reviewed plan: the same digest.
    plan = env.plan_of(merged)
    assert plan["state"] == "pending_approval" and plan["base_sha"] == base
    shown = env.client.get(f"/v1/plans/{plan['id']}", headers=auth("reader")).json()["reviewed"]
    assert shown["same"] is True and shown["pull_request"] == 21 and shown["head_sha"] == fixed
    assert shown["reviewed_digest"] == reviewed["digest"] and "SoT is the reviewed head's" in shown["why"]
    assert plan["text"].split("\n")[1:] == reviewed["text"].split("\n")[1:]  # line 0 names the commit

    # 5. Approved through the API: the runner applies exactly that plan.
    run = approve_and_apply(env, plan["id"])
    assert run["plan"] == plan["id"] and run["sha"] == merged and run["previous"]["sha"] == base and run["waves"] == []
    applied = env.store.get("/sites-applied/current").value  # type: ignore[union-attr]
    assert applied["sha"] == merged and applied["plan"] == plan["id"]
    final = env.client.get(f"/v1/plans/{plan['id']}", headers=auth("reader")).json()
    assert final["state"] == "succeeded" and final["digest"] == plan["digest"] and final["approved_by"] == "alice"
    assert final["reviewed"]["reviewed_digest"] == reviewed["digest"]
