"""Issue 16 part 3, the controller side: an inspected machine becomes a pull request with one new host
file, the PR-plan flow plans it, and only the merge plus an approval puts the host in the applied revision.

Real parts as in test_pr_flow.py (bare repository, signed webhook bodies, the app, its gate and sandbox,
the run worker); GitHub's API is the stand-in, which writes the branch, the file and the pull request's
head as real commits and refs in the bare repository. Without a token the proposal is a patch file,
checked with `git apply --check` / `git am` on a clone and `vaquero validate`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_helpers import GITHUB_TOKEN, REPO_FULL_NAME, ROOT, auth, git, push_body
from pr_helpers import Env, pr_body
from test_pr_flow import approve_and_apply, hosts_off
from waiting import wait_until

from vaquero.enroll.proposer import Proposer, Target
from vaquero.gate.github import GitHubClient
from vaquero.inspect import InspectionReport, inspection_key, record_inspection
from vaquero.runner.worker import RunWorker
from vaquero.sot import load
from vaquero.state.leader import NotLeader
from vaquero.state.sqlite import SQLiteStore

MAC = "52:54:00:aa:00:09"
HOST = "new-525400aa0009"
HOSTILE_SERIAL = "{{ lookup('pipe', 'id') }} $(reboot) `id`; | & \"x\" # !!python/object"


def report() -> InspectionReport:
    return InspectionReport.model_validate(
        {
            "boot_mac": MAC,
            "nics": [{"name": "ens3", "mac": MAC}],
            "uuid": "5a9a0001-0000-4000-8000-00000000aa09",
            "serial": HOSTILE_SERIAL,
            "vendor": "QEMU",
            "product": "Standard PC (i440FX + PIIX, 1996) | <b>",
            "cpu_model": "QEMU Virtual CPU version 2.5+",
            "cpus": 2,
            "memory_mib": 2048,
            "disks": [{"name": "vda", "size_bytes": 8 << 30, "rotational": True}],
        }
    )


def discovery_on(work: Path) -> None:
    hosts_off(work)
    site = work / "sites" / "lab.yaml"
    site.write_text(site.read_text() + "discovery: {enabled: true, cluster: lab}\n")


@pytest.fixture
def runner(env: Env, tmp_path: Path) -> Iterator[RunWorker]:
    worker = RunWorker(env.store, tmp_path / "data", poll=0.05).start()
    yield worker
    worker.stop()


def applied_base(env: Env) -> str:
    base = env.repo.commit("lab hosts kept off, discovery on", discovery_on)
    env.hook(push_body(env.repo.url, base), "push")
    env.idle()
    approve_and_apply(env, env.plan_of(base)["id"])
    return base


def record(env: Env) -> dict[str, Any]:
    rec = env.store.get(inspection_key(MAC))
    assert rec is not None
    return dict(rec.value)


def test_a_reported_machine_becomes_a_pull_request_that_is_planned_merged_approved_and_applied(
    env: Env, runner: RunWorker, tmp_path: Path, captured_logs: Any
) -> None:
    env.github.bare = env.repo.bare
    base = applied_base(env)
    target = Target(
        data_dir=tmp_path / "data",
        client=GitHubClient(GITHUB_TOKEN, env.app.state.settings.github_api),
        repo=REPO_FULL_NAME,
        repo_url=env.repo.url,
        secrets=(GITHUB_TOKEN,),
    )
    # GitHub fails the first branch creation: the record stays new, with the error and a retry time.
    env.github.fail["POST git/refs"] = 1
    now = [1000.0]
    proposer = Proposer(env.store, target, interval=3600, clock=lambda: now[0])
    record_inspection(env.store, report(), site="lab", agent="lab-agent")
    assert proposer.run_once() == 0
    failed = record(env)
    assert failed["status"] == "new" and "creating the branch: GitHub answered 500" in failed["last_error"] and failed["retry_at"] > now[0]
    assert proposer.run_once() == 0 and record(env)["attempts"] == 1  # not before retry_at
    # A branch left by the failed round (say GitHub created it, then the answer was lost) is reused.
    git(env.repo.bare, "update-ref", f"refs/heads/vaquero/enroll-{MAC.replace(':', '')}", base)

    # The running proposer, woken by the machine reporting again (the interval is an hour).
    proposer.start()
    try:
        wait_until(lambda: proposer.rounds == 3, 60, "the proposer's first round (before retry_at: nothing to do)")
        assert record(env)["status"] == "new"
        now[0] = failed["retry_at"] + 1
        record_inspection(env.store, report(), site="lab", agent="lab-agent")
        wait_until(lambda: record(env)["status"] != "new", 120, "the proposal")
    finally:
        proposer.stop()
    proposed = record(env)
    assert proposed["status"] == "proposed" and proposed["reports"] == 2, proposed
    proposal = proposed["proposal"]
    number = proposal["number"]
    assert proposal | {"number": 0, "url": ""} == {
        "kind": "pull",
        "number": 0,
        "url": "",
        "branch": "vaquero/enroll-525400aa0009",
        "path": f"hosts/{HOST}.yaml",
        "host": HOST,
        "address": "10.90.0.2",
        "network": "prov",
        "mac": MAC,
    }
    pull = env.github.pulls[number]
    assert pull["base"]["ref"] == "main" and "Nothing is installed until this is merged and its plan approved." in pull["body"]
    assert "<b>" not in pull["body"]

    # Exactly one new file, at the applied commit, and it validates with the applied revision.
    head = git(env.repo.bare, "rev-parse", f"refs/pull/{number}/head")
    assert git(env.repo.bare, "diff", "--name-status", base, head) == f"A\thosts/{HOST}.yaml"
    text = git(env.repo.bare, "show", f"{head}:hosts/{HOST}.yaml")
    assert yaml.safe_load(text)["serial"] == HOSTILE_SERIAL
    check = tmp_path / "check"
    git(tmp_path, "clone", "-q", env.repo.url, str(check))
    git(check, "checkout", "-q", head)
    assert load(check).host(HOST) is not None

    # Proposed once: another report and another round change nothing.
    record_inspection(env.store, report(), site="lab", agent="lab-agent")
    assert proposer.run_once() == 0 and record(env)["proposal"]["number"] == number and len(env.github.pulls) == 1

    # The PR-plan flow plans the PR's head: the new host is installed by it, once merged and approved.
    env.hook(pr_body("opened", number, head), "pull_request")
    env.idle()
    planned = env.pull(number)
    assert planned["state"] == "planned" and planned["base_sha"] == base, planned
    assert f"+ host {HOST}" in planned["text"], planned["text"]
    # Nothing armed or installed: no revision of the head, the host unknown to the applied revision and the state machine.
    assert env.store.get(f"/revisions/{head}") is None
    assert env.store.get("/sites-applied/current").value["sha"] == base  # type: ignore[union-attr]
    assert env.client.get(f"/v1/hosts/{HOST}", headers=auth("reader")).status_code == 404

    # The reviewer adds what the report could not say (here: keep it off, no hardware in this test).
    git(env.repo.work, "fetch", "-q", "origin", f"vaquero/enroll-{MAC.replace(':', '')}")
    git(env.repo.work, "checkout", "-q", "-B", "review", "FETCH_HEAD")
    path = env.repo.work / "hosts" / f"{HOST}.yaml"
    path.write_text(path.read_text() + "power: off\n")
    git(env.repo.work, "commit", "-q", "-am", "review: keep the new host off")
    git(env.repo.work, "push", "-q", "origin", f"HEAD:refs/pull/{number}/head", f"HEAD:refs/heads/vaquero/enroll-{MAC.replace(':', '')}")
    reviewed_head = git(env.repo.work, "rev-parse", "HEAD")
    env.hook(pr_body("synchronize", number, reviewed_head), "pull_request")
    env.idle()
    reviewed = env.pull(number)
    assert reviewed["state"] == "planned" and f"host {HOST}" in reviewed["text"]

    # Merged (the push of the merge commit, then the closed delivery), approved, applied.
    git(env.repo.work, "checkout", "-q", "main")
    git(env.repo.work, "merge", "-q", "--no-ff", "-m", f"Merge pull request #{number}", "review")
    git(env.repo.work, "push", "-q", "origin", "HEAD:main")
    merged = git(env.repo.work, "rev-parse", "HEAD")
    env.hook(push_body(env.repo.url, merged, before=base), "push")
    env.idle()
    env.hook(pr_body("closed", number, reviewed_head, merged=True, merge_sha=merged), "pull_request")
    env.idle()
    plan = env.plan_of(merged)
    assert plan["state"] == "pending_approval" and f"host {HOST}" in plan["text"]
    assert env.client.get(f"/v1/plans/{plan['id']}", headers=auth("reader")).json()["reviewed"]["same"] is True
    assert load(env.store.get("/sites-applied/current").value["root"]).host(HOST) is None  # type: ignore[union-attr]
    approve_and_apply(env, plan["id"])
    applied = env.store.get("/sites-applied/current").value  # type: ignore[union-attr]
    assert applied["sha"] == merged and load(applied["root"]).host(HOST) is not None

    # The listing, and the token nowhere but in the Authorization header.
    listed = env.client.get("/v1/inspections", headers=auth("reader"))
    assert listed.status_code == 200 and listed.json()["count"] == 1
    [item] = listed.json()["inspections"]
    assert item["status"] == "merged" and item["proposal"]["number"] == number and item["report"]["serial"] == HOSTILE_SERIAL
    assert env.client.get("/v1/inspections").status_code == 401
    assert "/v1/inspections" in env.client.get("/openapi.json").json()["paths"]
    records = json.dumps([r.value for r in env.store.list("/")])
    assert GITHUB_TOKEN not in records and GITHUB_TOKEN not in captured_logs.getvalue() and GITHUB_TOKEN not in listed.text
    assert "enroll: machine 52:54:00:aa:00:09 proposed as new-525400aa0009" in captured_logs.getvalue()


def test_a_pull_request_closed_without_merging_rejects_the_machine_until_it_is_forgotten(env: Env, runner: RunWorker, tmp_path: Path) -> None:
    env.github.bare = env.repo.bare
    applied_base(env)
    target = Target(
        data_dir=tmp_path / "data",
        client=GitHubClient(GITHUB_TOKEN, env.app.state.settings.github_api),
        repo=REPO_FULL_NAME,
        repo_url=env.repo.url,
        secrets=(GITHUB_TOKEN,),
    )
    proposer = Proposer(env.store, target, interval=3600)
    record_inspection(env.store, report(), site="lab", agent="lab-agent")
    assert proposer.run_once() == 1
    number = record(env)["proposal"]["number"]
    head = git(env.repo.bare, "rev-parse", f"refs/pull/{number}/head")

    # A fork's pull request closed with another number changes nothing; ours closed unmerged rejects it.
    env.hook(pr_body("closed", number + 100, head, fork=True), "pull_request")
    env.idle()
    assert record(env)["status"] == "proposed"
    env.hook(pr_body("closed", number, head), "pull_request")
    env.idle()
    rejected = record(env)
    assert rejected["status"] == "rejected" and rejected["closed_at"] > 0
    # Never proposed again, however often it reports; its address is offered to the next machine.
    record_inspection(env.store, report(), site="lab", agent="lab-agent")
    other = report().model_dump() | {"boot_mac": "52:54:00:aa:00:10", "nics": [{"name": "ens3", "mac": "52:54:00:aa:00:10"}], "uuid": None}
    record_inspection(env.store, InspectionReport.model_validate(other), site="lab", agent="lab-agent")
    assert proposer.run_once() == 1 and len(env.github.pulls) == 2
    second = env.store.get(inspection_key("52:54:00:aa:00:10"))
    assert second is not None and second.value["proposal"]["address"] == rejected["proposal"]["address"]
    assert record(env)["status"] == "rejected"
    listed = env.client.get("/v1/inspections", headers=auth("reader")).json()
    assert sorted(i["status"] for i in listed["inspections"]) == ["proposed", "rejected"]

    # Forgotten by an operator (not a reader): its next report starts over as new.
    assert env.client.delete(f"/v1/inspections/{MAC}", headers=auth("reader")).status_code == 403
    assert env.client.delete("/v1/inspections/not-a-mac", headers=auth("alice")).status_code == 422
    gone = env.client.delete(f"/v1/inspections/{MAC.replace(':', '-').upper()}", headers=auth("alice"))
    assert gone.status_code == 200 and gone.json() == {"mac": MAC, "forgotten": True}
    assert env.store.get(inspection_key(MAC)) is None
    assert env.client.delete(f"/v1/inspections/{MAC}", headers=auth("alice")).status_code == 404
    assert record_inspection(env.store, report(), site="lab", agent="lab-agent")["status"] == "new"


def test_without_a_token_the_proposal_is_a_patch_that_git_applies_and_that_validates(env: Env, tmp_path: Path) -> None:
    base = env.repo.commit("lab hosts kept off, discovery on", discovery_on)
    env.apply_main()
    target = Target(data_dir=tmp_path / "data", repo_url=env.repo.url, cache=env.app.state.settings.cache)
    record_inspection(env.store, report(), site="lab", agent="lab-agent")
    assert Proposer(env.store, target, interval=60).run_once() == 1
    proposal = record(env)["proposal"]
    patch = Path(proposal["path"])
    assert proposal["kind"] == "patch" and patch == tmp_path / "data" / "enrollments" / "52-54-00-aa-00-09.patch"
    assert proposal["file"] == f"hosts/{HOST}.yaml" and "Nothing is installed until this is merged" in patch.read_text()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", env.repo.url, str(clone))
    assert git(clone, "rev-parse", "HEAD") == base
    git(clone, "apply", "--check", str(patch))
    git(clone, "am", "-q", str(patch))
    assert git(clone, "diff", "--name-status", base, "HEAD") == f"A\thosts/{HOST}.yaml"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "vaquero"), "validate", str(clone)], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )
    assert done.returncode == 0 and "5 host(s)" in done.stdout, done.stdout + done.stderr
    assert env.github.requests == [] or all("/pulls" not in r.path and "/git/refs" not in r.path for r in env.github.requests)


def test_at_most_max_open_proposals_await_review_at_once(tmp_path: Path) -> None:
    root = tmp_path / "sot"
    shutil.copytree(ROOT / "inventories" / "lab", root)
    discovery_on(root)
    store = SQLiteStore(tmp_path / "store.sqlite")
    try:
        store.put("/sites-applied/current", {"sha": None, "root": str(root)})
        macs = ["52:54:00:aa:00:21", "52:54:00:aa:00:22", "52:54:00:aa:00:23"]
        for mac in macs:
            body = report().model_dump() | {"boot_mac": mac, "nics": [{"name": "ens3", "mac": mac}], "uuid": None}
            record_inspection(store, InspectionReport.model_validate(body), site="lab", agent="lab-agent")
        proposer = Proposer(store, Target(data_dir=tmp_path / "data"), interval=60, max_open=2)
        assert proposer.run_once() == 2 and proposer.run_once() == 0
        status = {mac: store.get(inspection_key(mac)).value["status"] for mac in macs}  # type: ignore[union-attr]
        assert sorted(status.values()) == ["new", "proposed", "proposed"], status
        # one reviewed and closed: the waiting machine gets its turn
        first = store.get(inspection_key(macs[0]))
        assert first is not None
        store.put(first.key, first.value | {"status": "rejected"})
        assert proposer.run_once() == 1
        assert [store.get(inspection_key(mac)).value["status"] for mac in macs] == ["rejected", "proposed", "proposed"]  # type: ignore[union-attr]
    finally:
        store.close()


def test_a_machine_whose_file_would_not_validate_is_refused_with_the_reason(tmp_path: Path) -> None:
    # A clone of node1 (its SMBIOS UUID) with other MACs: the host file would give the SoT a duplicate UUID.
    root = tmp_path / "sot"
    shutil.copytree(ROOT / "inventories" / "lab", root)
    discovery_on(root)
    store = SQLiteStore(tmp_path / "store.sqlite")
    try:
        store.put("/sites-applied/current", {"sha": None, "root": str(root)})
        clone = report().model_dump() | {"uuid": "5a9a0001-0000-4000-8000-000000001001"}
        record_inspection(store, InspectionReport.model_validate(clone), site="lab", agent="lab-agent")
        assert Proposer(store, Target(data_dir=tmp_path / "data"), interval=60).run_once() == 0
        rec = store.get(inspection_key(MAC))
        assert rec is not None
        refused = rec.value
        assert refused["status"] == "refused" and refused["proposal"] is None, refused
        assert f"hosts/{HOST}.yaml:" in refused["reason"] and "duplicate UUID 5a9a0001-0000-4000-8000-000000001001" in refused["reason"]
        assert not (tmp_path / "data" / "enrollments").exists()
    finally:
        store.close()


def test_a_git_failure_leaves_the_record_new_with_the_error_and_a_backoff(tmp_path: Path, captured_logs: Any) -> None:
    root = tmp_path / "sot"
    shutil.copytree(ROOT / "inventories" / "lab", root)
    discovery_on(root)
    store = SQLiteStore(tmp_path / "store.sqlite")
    try:
        store.put("/sites-applied/current", {"sha": "a" * 40, "root": str(root)})
        record_inspection(store, report(), site="lab", agent="lab-agent")
        now = [5000.0]
        # Nothing listens on port 9 of loopback; the URL's credentials must not reach the record.
        target = Target(data_dir=tmp_path / "data", repo_url="https://bob:tok3n-in-url@127.0.0.1:9/o/sot.git", cache=tmp_path / "cache")
        proposer = Proposer(store, target, interval=60, clock=lambda: now[0])
        for attempt, wait in ((1, 10.0), (2, 20.0)):
            assert proposer.run_once() == 0
            value = store.get(inspection_key(MAC)).value  # type: ignore[union-attr]
            assert value["status"] == "new" and value["attempts"] == attempt and value["retry_at"] == now[0] + wait, value
            assert "git clone failed" in value["last_error"] and "tok3n-in-url" not in json.dumps(value)
            now[0] = value["retry_at"]
        assert not (tmp_path / "data" / "enrollments").exists()
        assert "git clone failed" in captured_logs.getvalue() and "tok3n-in-url" not in captured_logs.getvalue()
    finally:
        store.close()


def test_a_controller_that_does_not_lead_proposes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "sot"
    shutil.copytree(ROOT / "inventories" / "lab", root)
    discovery_on(root)
    store = SQLiteStore(tmp_path / "store.sqlite")
    try:
        store.put("/sites-applied/current", {"sha": None, "root": str(root)})
        record_inspection(store, report(), site="lab", agent="lab-agent")

        def follower() -> None:
            raise NotLeader("another controller holds the lease")

        assert Proposer(store, Target(data_dir=tmp_path / "data"), interval=60, leader=follower).run_once() == 0
        value = store.get(inspection_key(MAC)).value  # type: ignore[union-attr]
        assert value["status"] == "new" and value["proposal"] is None and "attempts" not in value
        assert Proposer(store, Target(data_dir=tmp_path / "data"), interval=60, leader=lambda: None).run_once() == 1  # the leader does
    finally:
        store.close()
