"""Pull-request helpers shared by the PR tests (test_api_pulls.py, test_pr_flow.py): GitHub's real
`pull_request` / `check_suite` / `check_run` bodies rewritten to a local bare repository whose PR
heads sit under refs/pull/<n>/head as on GitHub, and the controller app with a GitHub API stand-in
(`env`, `env_no_checks`, re-exported by conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import FIXTURES, GITHUB_TOKEN, REPO_FULL_NAME, SotRepo, auth, git, make_settings, push_body, webhook_headers
from fastapi import FastAPI
from fastapi.testclient import TestClient
from github_standin import GitHubStandIn

from vaquero.api.app import create_app
from vaquero.state.sqlite import SQLiteStore

REPO_ID = 4242
HOOK = "/v1/webhooks/github"


def pr_body(action: str, number: int, head: str, *, base_ref: str = "main", fork: bool = False, merged: bool = False, merge_sha: str | None = None) -> bytes:
    name = "closed" if action == "closed" else ("synchronize" if action == "synchronize" else "opened")
    payload = json.loads((FIXTURES / "pull_request" / f"{name}.payload.json").read_bytes())
    payload["action"] = action
    payload["number"] = number
    repo = payload["repository"]
    repo |= {"id": REPO_ID, "full_name": REPO_FULL_NAME, "name": REPO_FULL_NAME.split("/")[1]}
    pr = payload["pull_request"]
    pr |= {"number": number, "merged": merged, "merge_commit_sha": merge_sha, "state": "closed" if action == "closed" else "open"}
    pr["base"] |= {"ref": base_ref, "sha": "f" * 40}
    pr["base"]["repo"] |= {"id": REPO_ID, "full_name": REPO_FULL_NAME}
    pr["head"] |= {"ref": f"pr{number}", "sha": head}
    pr["head"]["repo"] |= {"id": 777 if fork else REPO_ID, "full_name": "stranger/sot" if fork else REPO_FULL_NAME}
    return json.dumps(payload, indent=2).encode()


def suite_body(action: str, number: int, head: str) -> bytes:
    payload = json.loads((FIXTURES / "check_suite" / f"{action}.payload.json").read_bytes())
    payload["action"] = action
    payload["repository"] |= {"id": REPO_ID, "full_name": REPO_FULL_NAME, "name": REPO_FULL_NAME.split("/")[1]}
    payload["check_suite"] |= {"head_sha": head, "head_branch": f"pr{number}"}
    end = {"id": REPO_ID, "url": f"https://api.github.com/repos/{REPO_FULL_NAME}", "name": "sot"}
    payload["check_suite"]["pull_requests"] = [
        {"number": number, "head": {"ref": f"pr{number}", "sha": head, "repo": end}, "base": {"ref": "main", "sha": "f" * 40, "repo": end}}
    ]
    return json.dumps(payload).encode()


def run_body(number: int, head: str) -> bytes:
    """GitHub's check_run "rerequested" example, on our repository and PR."""
    payload = json.loads((FIXTURES / "check_run" / "rerequested.payload.json").read_bytes())
    payload["repository"] |= {"id": REPO_ID, "full_name": REPO_FULL_NAME, "name": REPO_FULL_NAME.split("/")[1]}
    end = {"id": REPO_ID, "url": f"https://api.github.com/repos/{REPO_FULL_NAME}", "name": "sot"}
    payload["check_run"] |= {"head_sha": head}
    payload["check_run"]["pull_requests"] = [
        {"number": number, "head": {"ref": f"pr{number}", "sha": head, "repo": end}, "base": {"ref": "main", "sha": "f" * 40, "repo": end}}
    ]
    return json.dumps(payload).encode()


def pr_head(repo: SotRepo, number: int, message: str, edit: Any) -> str:
    """A commit on a branch off main, pushed where GitHub keeps a PR's head (main does not move)."""
    git(repo.work, "checkout", "-q", "-B", f"pr{number}", "main")
    edit(repo.work)
    git(repo.work, "add", "-A")
    git(repo.work, "commit", "-q", "-m", message)
    git(repo.work, "push", "-q", "-f", "origin", f"HEAD:refs/pull/{number}/head")
    sha = git(repo.work, "rev-parse", "HEAD")
    git(repo.work, "checkout", "-q", "main")
    return sha


def merge(repo: SotRepo, number: int) -> str:
    git(repo.work, "merge", "-q", "--no-ff", "-m", f"Merge pull request #{number}", f"pr{number}")
    git(repo.work, "push", "-q", "origin", "HEAD:main")
    return git(repo.work, "rev-parse", "HEAD")


def bad_macs(count: int):
    def edit(work: Path) -> None:
        path = work / "clusters" / "lab.yaml"
        text = path.read_text()
        for n in range(count):
            text += f"""  - name: bad{n}
    macs: ["not-a-mac-{n}"]
    roles: [worker]
    bmc: {{type: ipmi, address: 127.0.0.1, port: {7000 + n}, credential: lab-bmc}}
    ips: {{prov: 10.90.1.{10 + n}}}
"""
        path.write_text(text)

    return edit


class Env:
    def __init__(self, app: FastAPI, client: TestClient, store: SQLiteStore, github: GitHubStandIn, repo: SotRepo) -> None:
        self.app, self.client, self.store, self.github, self.repo = app, client, store, github, repo

    def hook(self, body: bytes, event: str) -> dict[str, Any]:
        resp = self.client.post(HOOK, content=body, headers=webhook_headers(body, event))
        assert resp.status_code in (200, 202), resp.text
        return dict(resp.json()) | {"code": resp.status_code}

    def idle(self) -> None:
        assert self.app.state.pulls.wait_idle(120) and self.app.state.gate.wait_idle(120)

    def apply_main(self) -> str:
        """Push main's head through the webhook and record it as what the hardware runs (the runner's part)."""
        sha = git(self.repo.work, "rev-parse", "HEAD")
        self.hook(push_body(self.repo.url, sha), "push")
        self.idle()
        plan = self.plan_of(sha)
        self.store.put("/sites-applied/current", {"sha": sha, "root": plan["root"], "plan": plan["id"]})
        return sha

    def plan_of(self, sha: str) -> dict[str, Any]:
        rev = self.store.get(f"/revisions/{sha}")
        plan = self.store.get(f"/plans/{rev.value['plan']}") if rev else None
        assert plan is not None, f"no plan of {sha}"
        return dict(plan.value)

    def pull(self, number: int) -> dict[str, Any]:
        resp = self.client.get(f"/v1/pulls/{number}", headers=auth("reader"))
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def runs_for(self, sha: str) -> list[dict[str, Any]]:
        return [run for run in self.github.runs.values() if run.get("head_sha") == sha]


def _env(tmp_path: Path, repo: SotRepo, monkeypatch: pytest.MonkeyPatch, forbid_checks: bool) -> Iterator[Env]:
    monkeypatch.setenv("VAQUERO_CACHE", str(tmp_path / "must-not-be-used"))
    github = GitHubStandIn(forbid_checks=forbid_checks)
    api = github.start()
    settings = make_settings(tmp_path, repo.url, github_token=GITHUB_TOKEN, github_api=api, public_url="https://vaquero.example.invalid")
    store = SQLiteStore(tmp_path / "store.sqlite")
    repo.commit("lab")
    try:
        app = create_app(settings, store)
        with TestClient(app) as client:
            yield Env(app, client, store, github, repo)
    finally:
        github.stop()
        store.close()
    assert github.problems == []
    assert all(req.authorization == f"Bearer {GITHUB_TOKEN}" for req in github.requests)


@pytest.fixture
def env(tmp_path, sot_repo, monkeypatch) -> Iterator[Env]:
    yield from _env(tmp_path, sot_repo, monkeypatch, forbid_checks=False)


@pytest.fixture
def env_no_checks(tmp_path, sot_repo, monkeypatch) -> Iterator[Env]:
    yield from _env(tmp_path, sot_repo, monkeypatch, forbid_checks=True)
