"""Plans on pull requests: real signed `pull_request` / `check_suite` bodies (GitHub's examples,
rewritten to a local bare repository whose PR heads sit under refs/pull/<n>/head as on GitHub),
the real gate and sandbox, and a local stand-in for GitHub's checks, statuses and comments API."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from api_helpers import GITHUB_TOKEN, REPO_FULL_NAME, SECRETS, add_host, auth, git, make_settings, push_body, webhook_headers
from fastapi.testclient import TestClient
from github_standin import GitHubStandIn
from pr_helpers import HOOK, bad_macs, merge, pr_body, pr_head, run_body, suite_body

from vaquero.api.app import create_app
from vaquero.state.sqlite import SQLiteStore


def test_opened_pr_gets_a_check_run_with_its_plan_and_nothing_is_applied(env, captured_logs):
    base = env.apply_main()
    head = pr_head(env.repo, 7, "add node5", add_host("node5", 5))
    answer = env.hook(pr_body("opened", 7, head), "pull_request")
    assert answer["code"] == 202 and answer["status"] == "queued" and answer["pull_request"] == 7 and answer["sha"] == head
    env.idle()
    pull = env.pull(7)
    assert pull["state"] == "planned" and pull["head_sha"] == head and pull["base_sha"] == base and pull["fork"] is False
    assert "+ host node5 will be installed [add]" in pull["text"] and pull["reported_via"] == "check_run"
    [run] = env.runs_for(head)
    assert run["status"] == "completed" and run["conclusion"] == "success" and run["name"] == "vaquero/plan"
    assert run["output"]["title"] == "valid: 1 add" and "+ host node5 will be installed [add]" in run["output"]["summary"]
    assert base[:12] in run["output"]["summary"] and run["annotations"] == []
    assert run["details_url"] == "https://vaquero.example.invalid/v1/pulls/7"
    # First in progress, then completed: two requests on one check run.
    calls = [(req.method, req.body["status"]) for req in env.github.requests if "/check-runs" in req.path]
    assert calls == [("POST", "in_progress"), ("PATCH", "completed")]
    # A PR plan is for review: no revision, no plan the runner could pick up.
    assert env.store.get(f"/revisions/{head}") is None
    assert [p.value["sha"] for p in env.store.list("/plans/")] == [base]
    # The same head again (a check suite GitHub sends alongside): nothing planned twice.
    again = env.hook(suite_body("requested", 7, head), "check_suite")
    assert again["status"] == "known" and again["code"] == 200
    # A re-run asked for plans it again, on a new check run.
    rerun = env.hook(suite_body("rerequested", 7, head), "check_suite")
    assert rerun["status"] == "queued" and rerun["pull_requests"] == [7]
    env.idle()
    assert len(env.runs_for(head)) == 2
    # So does "Re-run" on the check run itself.
    rerun = env.hook(run_body(7, head), "check_run")
    assert rerun["status"] == "queued" and rerun["pull_requests"] == [7]
    env.idle()
    assert [run["conclusion"] for run in env.runs_for(head)] == ["success"] * 3
    for secret in SECRETS:
        assert secret not in captured_logs.getvalue()


def test_validation_errors_fail_the_check_run_with_annotations_at_file_and_line(env):
    env.apply_main()
    head = pr_head(env.repo, 3, "one bad mac", bad_macs(1))
    env.hook(pr_body("opened", 3, head), "pull_request")
    env.idle()
    pull = env.pull(3)
    assert pull["state"] == "invalid" and pull["plan"] is None
    [run] = env.runs_for(head)
    assert run["conclusion"] == "failure" and run["output"]["title"].startswith("invalid: ")
    text = git(env.repo.work, "show", f"{head}:clusters/lab.yaml")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "not-a-mac-0" in t)
    assert {"path": "clusters/lab.yaml", "start_line": line, "end_line": line, "annotation_level": "failure"}.items() <= run["annotations"][0].items()
    assert run["annotations"][0]["title"].endswith("macs") and f"clusters/lab.yaml:{line}" in run["output"]["summary"]

    # A new push to the PR with 60 errors: every one annotated, at most 50 per request (the stand-in checks).
    head2 = pr_head(env.repo, 3, "many bad macs", bad_macs(60))
    answer = env.hook(pr_body("synchronize", 3, head2), "pull_request")
    assert answer["status"] == "queued"
    env.idle()
    [run2] = env.runs_for(head2)
    errors = env.pull(3)["errors"]
    located = [e for e in errors if e["file"] and e["line"]]
    assert len(located) >= 60 and len(run2["annotations"]) == len(located)
    lines = {n["start_line"] for n in run2["annotations"]}
    text2 = git(env.repo.work, "show", f"{head2}:clusters/lab.yaml").splitlines()
    assert {i for i, t in enumerate(text2, 1) if "not-a-mac-" in t} <= lines
    sizes = [len(req.body.get("output", {}).get("annotations", [])) for req in env.github.requests if req.body.get("head_sha") == head2]
    assert max(sizes) == 50 and sum(sizes) == len(located)


def test_closing_without_merge_drops_the_plan(env):
    env.apply_main()
    head = pr_head(env.repo, 5, "add node6", add_host("node6", 6))
    env.hook(pr_body("opened", 5, head), "pull_request")
    env.idle()
    assert env.pull(5)["state"] == "planned"
    answer = env.hook(pr_body("closed", 5, head), "pull_request")
    assert answer["status"] == "dropped" and answer["code"] == 200
    assert env.store.get("/pulls/5") is None
    assert env.client.get("/v1/pulls/5", headers=auth("reader")).status_code == 404
    # Reopened: planned again.
    env.hook(pr_body("reopened", 5, head), "pull_request")
    env.idle()
    assert env.pull(5)["state"] == "planned"


def test_fork_pr_is_planned_never_applied_and_other_bases_are_ignored(env):
    env.apply_main()
    head = pr_head(env.repo, 9, "from a fork", add_host("node7", 7))
    answer = env.hook(pr_body("opened", 9, head, fork=True), "pull_request")
    assert answer["status"] == "queued" and answer["fork"] is True
    env.idle()
    pull = env.pull(9)
    assert pull["fork"] is True and pull["state"] == "planned"
    [run] = env.runs_for(head)
    assert "from a fork" in run["output"]["summary"] and "never applied" in run["output"]["summary"]
    assert env.store.get(f"/revisions/{head}") is None
    # Into another branch: ignored, nothing fetched.
    other = env.hook(pr_body("opened", 10, head, base_ref="release"), "pull_request")
    assert other["status"] == "ignored" and "release" in other["reason"]
    # Into another repository's main (the delivery names ours): ignored too.
    elsewhere = json.loads(pr_body("opened", 10, head))
    elsewhere["pull_request"]["base"]["repo"] |= {"id": 99, "full_name": "someone/else"}
    body = json.dumps(elsewhere).encode()
    answer = env.hook(body, "pull_request")
    assert answer["status"] == "ignored" and "another repository" in answer["reason"]
    # A head SHA that is not a SHA, a number that is not a PR number: 400, nothing queued.
    odd = json.loads(pr_body("opened", 11, head))
    odd["pull_request"]["head"]["sha"] = "main; rm -rf /"
    body = json.dumps(odd).encode()
    assert env.client.post(HOOK, content=body, headers=webhook_headers(body, "pull_request")).status_code == 400
    odd = json.loads(pr_body("opened", 11, head))
    odd["pull_request"]["number"] = -1
    body = json.dumps(odd).encode()
    assert env.client.post(HOOK, content=body, headers=webhook_headers(body, "pull_request")).status_code == 400
    assert env.store.get("/pulls/10") is None and env.store.get("/pulls/11") is None


def test_token_without_checks_posts_a_status_and_one_comment_updated_in_place(env_no_checks, captured_logs):
    env = env_no_checks
    env.apply_main()
    head = pr_head(env.repo, 4, "one bad mac", bad_macs(1))
    env.hook(pr_body("opened", 4, head), "pull_request")
    env.idle()
    assert env.pull(4)["reported_via"] == "status"
    statuses = [req.body for req in env.github.requests if req.path.endswith(f"/statuses/{head}")]
    assert [s["state"] for s in statuses] == ["pending", "failure"] and statuses[-1]["target_url"].endswith("/v1/pulls/4")
    [(cid, comment)] = env.github.comments.items()
    assert comment["issue"] == 4 and "clusters/lab.yaml:" in comment["body"] and comment["updates"] == 0
    # The fix pushed to the PR: the same comment now shows the plan.
    head2 = pr_head(env.repo, 4, "fixed", add_host("node5", 5))
    env.hook(pr_body("synchronize", 4, head2), "pull_request")
    env.idle()
    assert list(env.github.comments) == [cid]
    assert env.github.comments[cid]["updates"] == 1 and "+ host node5 will be installed" in env.github.comments[cid]["body"]
    assert [req.body["state"] for req in env.github.requests if req.path.endswith(f"/statuses/{head2}")] == ["pending", "success"]
    # 403 was learnt once: later PRs go straight to statuses.
    assert len([req for req in env.github.requests if "/check-runs" in req.path]) == 1
    assert GITHUB_TOKEN not in captured_logs.getvalue() and "GitHub answered 403" in captured_logs.getvalue()


def test_merge_of_the_reviewed_head_is_the_same_plan_and_a_moved_base_shows_the_difference(env):
    env.apply_main()
    head = pr_head(env.repo, 1, "add node5", add_host("node5", 5))
    env.hook(pr_body("opened", 1, head), "pull_request")
    env.idle()
    reviewed = env.pull(1)
    merged = merge(env.repo, 1)
    # The push of the merge commit first, then the closed event: the plan says it is the reviewed one.
    env.hook(push_body(env.repo.url, merged), "push")
    env.idle()
    assert env.hook(pr_body("closed", 1, head, merged=True, merge_sha=merged), "pull_request")["status"] == "merged"
    env.idle()
    plan = env.plan_of(merged)
    assert plan["state"] == "pending_approval"
    note = plan["reviewed"]
    assert note["same"] is True and note["pull_request"] == 1 and note["head_sha"] == head and note["reviewed_digest"] == reviewed["digest"]
    assert "SoT is the reviewed head's" in note["why"]

    # PR 2 reviewed; then another revision is applied before it merges: planned again, the difference shown.
    head2 = pr_head(env.repo, 2, "add node6", add_host("node6", 6))
    env.hook(pr_body("opened", 2, head2), "pull_request")
    env.idle()
    env.store.put("/sites-applied/current", {"sha": merged, "root": plan["root"], "plan": plan["id"]})
    merged2 = merge(env.repo, 2)
    # This time the closed event comes first.
    env.hook(pr_body("closed", 2, head2, merged=True, merge_sha=merged2), "pull_request")
    env.hook(push_body(env.repo.url, merged2, before=merged), "push")
    env.idle()
    plan2 = env.plan_of(merged2)
    note2 = plan2["reviewed"]
    assert note2["same"] is False and "applied revision moved" in note2["why"]
    assert "-  + host node5 will be installed [add]" in note2["diff"] and "+  + host node6 will be installed [add]" not in note2["diff"]
    resp = env.client.get(f"/v1/plans/{plan2['id']}", headers=auth("reader"))
    assert resp.json()["reviewed"]["same"] is False


def test_the_token_stays_out_of_logs_and_exceptions_when_github_fails(captured_logs):
    from vaquero.gate.github import Forbidden, GitHubClient

    github = GitHubStandIn(forbid_checks=True)
    api = github.start()
    try:
        client = GitHubClient(GITHUB_TOKEN, api)
        with pytest.raises(Forbidden) as refused:
            client.check_run(REPO_FULL_NAME, "a" * 40, status="in_progress")
        assert GITHUB_TOKEN not in str(refused.value) and GITHUB_TOKEN not in repr(refused.value) and GITHUB_TOKEN not in repr(client)
        assert github.requests == [] or all(req.authorization == f"Bearer {GITHUB_TOKEN}" for req in github.requests)
    finally:
        github.stop()
    # Nobody listens there any more: a connection error, logged by its kind only.
    assert client.check_run(REPO_FULL_NAME, "a" * 40, status="in_progress") is None
    assert client.comment(REPO_FULL_NAME, 1, "body") is None and client.post(REPO_FULL_NAME, "a" * 40, "pending", "x") is False
    logs = captured_logs.getvalue()
    assert "check run not posted: ConnectError" in logs and "GitHub answered 403" in logs and GITHUB_TOKEN not in logs


def test_a_pr_head_too_big_is_refused_before_it_is_extracted(tmp_path, sot_repo):
    from vaquero.gate.core import Gate
    from vaquero.gate.sandbox import Limits

    sot_repo.commit("lab")
    head = pr_head(sot_repo, 12, "a big file", lambda work: (work / "blob.bin").write_bytes(os.urandom(3 << 20)))
    store = SQLiteStore(tmp_path / "store.sqlite")
    try:
        gate = Gate(store, cache=tmp_path / "cache", limits=Limits(tree=2 << 20))
        root, answer = gate.check_commit(sot_repo.url, head, subdir="", label="pr 12")
        assert "more than the 2097152" in answer["errors"][0]["message"] and not (tmp_path / "cache" / "trees" / head).exists()
        # Within the bound, the same head is fetched and planned.
        root, answer = Gate(store, cache=tmp_path / "cache", limits=Limits(tree=8 << 20)).check_commit(sot_repo.url, head, subdir="", label="pr 12")
        assert answer["errors"] == [] and root is not None and (Path(root) / "blob.bin").stat().st_size == 3 << 20
    finally:
        store.close()


def test_a_head_replaced_while_it_is_planned_gets_its_check_run_cancelled(env, monkeypatch):
    env.apply_main()
    pulls = env.app.state.pulls
    first = pr_head(env.repo, 6, "add node5", add_host("node5", 5))
    second = pr_head(env.repo, 6, "add node6 instead", add_host("node6", 6))
    real = env.app.state.gate.check_commit

    def and_meanwhile_a_push(url: str, sha: str, **kw: Any) -> Any:
        answer = real(url, sha, **kw)
        if sha == first:  # as the webhook does for a `synchronize` that arrives while this head is planned
            body = pr_body("synchronize", 6, second)
            assert env.client.post(HOOK, content=body, headers=webhook_headers(body, "pull_request")).status_code == 202
        return answer

    monkeypatch.setattr(env.app.state.gate, "check_commit", and_meanwhile_a_push)
    env.hook(pr_body("opened", 6, first), "pull_request")
    env.idle()
    assert pulls.idle()
    [old] = env.runs_for(first)
    assert old["status"] == "completed" and old["conclusion"] == "cancelled" and "moved on" in old["output"]["title"]
    [new] = env.runs_for(second)
    assert new["conclusion"] == "success" and env.pull(6)["head_sha"] == second and "node6" in env.pull(6)["text"]


def test_pr_plans_left_queued_at_a_stop_are_resumed(tmp_path, sot_repo, monkeypatch):
    monkeypatch.setenv("VAQUERO_CACHE", str(tmp_path / "must-not-be-used"))
    sot_repo.commit("lab")
    head = pr_head(sot_repo, 8, "add node5", add_host("node5", 5))
    store = SQLiteStore(tmp_path / "store.sqlite")
    settings = make_settings(tmp_path, sot_repo.url)
    try:
        # Accepted (as the webhook does) by a controller that stopped before planning it.
        stopped = create_app(settings, store)
        stopped.state.pulls.submit(
            github=REPO_FULL_NAME, url=sot_repo.url, subdir="", number=8, head_sha=head, fork=False, action="opened", delivery="d-1"
        )
        left = store.get("/pulls/8")
        assert left is not None and left.value["state"] == "queued"
        app = create_app(settings, store)
        with TestClient(app) as client:
            assert app.state.pulls.wait_idle(120)
            pull = client.get("/v1/pulls/8", headers=auth("reader")).json()
        assert pull["state"] == "planned" and "+ host node5 will be installed" in pull["text"]
    finally:
        store.close()


def test_a_plan_too_long_for_the_summary_keeps_whole_lines_and_its_totals():
    from vaquero.gate.pulls import MAX_PLAN_TEXT, report_text

    hosts = "".join(f"  ~ host h{i} will be upgraded [upgrade]\n      profile linux: version: 1 -> 2\n" for i in range(3000))
    totals = "Plan: 0 to add, 0 to reinstall, 3000 to upgrade, 0 power change(s), 0 config-only, 0 to remove; 600 wave(s)."
    text = f"Vaquero plan: a -> b\n\nSite s, cluster c:\n{hosts}\n{totals}\n"
    value = {"head_sha": "a" * 40, "base_sha": "b" * 40, "state": "planned", "text": text, "plan": {"summary": {"upgrade": 3000}}}
    title, summary = report_text(value)
    assert len(text) > MAX_PLAN_TEXT and len(summary) <= 65535 and title == "valid: 3000 upgrade"
    shown = summary.split("```text\n", 1)[1].rsplit("\n```", 1)[0].split("\n")
    assert shown[-1] == totals and shown[-2].startswith("... (truncated")
    assert all(line in text.split("\n") for line in shown[:-2])  # no host line cut in half
