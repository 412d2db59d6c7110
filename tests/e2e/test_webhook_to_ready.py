"""End to end through GitHub's door: a push that adds a host -> signed webhook (a real octokit push
body rewritten to point at the lab's git repository) -> plan pending approval -> approve through the
API -> the QEMU host netboots -> `ready`, with its timeline; then a push of a broken SoT -> the
plan is invalid with file/line/field, and nothing is touched.

`vaquero standalone` serves the controller API (webhook included, secret from
$VAQUERO_WEBHOOK_SECRET) and the agent in a network namespace; the BMC is an emulated IPMI BMC
driving the VM's QEMU process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_install_standalone import PASSWORD, StandaloneLab, assert_no_secret, collapse, edit_cluster, require_prerequisites

from vaquero.api.settings import repo_name_of
from vaquero.lab.demo import git

REPO = Path(__file__).resolve().parents[2]
PUSH = REPO / "tests" / "api" / "fixtures" / "github-webhooks" / "push" / "with-new-branch.payload.json"
SECRET = "e2e-webhook-secret-4b7d19"


def push_body(repo: Path, before: str, after: str) -> bytes:
    payload = json.loads(PUSH.read_bytes())
    payload.update(ref="refs/heads/main", before=before, after=after, created=False, deleted=False)
    payload["repository"].update(full_name=repo_name_of(str(repo)), clone_url=str(repo), git_url=str(repo), ssh_url=str(repo))
    if payload.get("head_commit"):
        payload["head_commit"]["id"] = after
    return json.dumps(payload).encode()


def deliver(lab: StandaloneLab, body: bytes) -> dict:
    """POST the signed body to the standalone's webhook, from inside the namespace."""
    path = lab.workdir / f"push-{uuid.uuid4().hex}.json"
    path.write_bytes(body)
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
        "Content-Type": "application/json",
    }
    code = (
        "import sys,json,httpx;b=open(sys.argv[1],'rb').read();"
        "r=httpx.post('http://127.0.0.1:8000/v1/webhooks/github',content=b,headers=json.loads(sys.argv[2]),timeout=30);"
        "print(json.dumps({'status':r.status_code,'body':r.json()}))"
    )
    res = lab.net.run([sys.executable, "-c", code, str(path), json.dumps(headers)], timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.e2e
def test_push_webhook_approve_netboot_ready_then_bad_push_rejected(tmp_path, monkeypatch) -> None:
    require_prerequisites()
    monkeypatch.setenv("VAQUERO_WEBHOOK_SECRET", SECRET)
    lab = StandaloneLab(tmp_path, ["node1"], PASSWORD)
    try:
        with_node1 = lab.make_repo(policy={"max_concurrent": 1, "min_available": 0, "on_failure": "halt"})
        edit_cluster(lab.repo, hosts=[])
        empty = lab.commit("lab without hosts")
        lab.start()
        lab.standalone_start(f"{lab.repo}@main")  # --approve: the empty lab becomes the current revision
        assert lab.wait_plan(empty, ("succeeded", "failed"), timeout=120)["state"] == "succeeded", lab.log()

        git(lab.repo, "checkout", "-q", with_node1, "--", "clusters/lab.yaml")
        added = lab.commit("add node1")
        answer = deliver(lab, push_body(lab.repo, empty, added))
        assert answer["status"] == 202, answer
        plan = lab.wait_plan(added, ("pending_approval", "invalid", "approved", "succeeded"), timeout=120)
        assert plan["state"] == "pending_approval", plan
        assert [(h["host"], h["action"]) for h in plan["plan"]["hosts"]] == [("node1", "add")]
        assert "+ host node1 will be installed" in plan["text"]
        assert lab.store.get("/hosts/node1") is None  # gated: nothing touched before approval

        approved = lab.api("POST", f"/v1/plans/{plan['id']}/approve", {"digest": plan["digest"]})
        assert approved["status"] == 200, approved
        plan = lab.wait_plan(added, ("succeeded", "failed", "cancelled"), timeout=300)
        assert plan["state"] == "succeeded", f"{lab.store.get('/runs/' + plan['id'])}\n{lab.log()}"
        host = lab.store.get("/hosts/node1")
        assert host["state"] == "ready" and host["sha"] == added
        seq = collapse([e["state"] for e in lab.timeline("node1")])
        assert seq == ["pending", "powering_off", "netbooting", "installing", "rebooting", "validating", "ready"], seq
        answer = lab.api("GET", "/v1/hosts/node1/timeline")
        assert answer["status"] == 200 and len(answer["body"]["events"]) >= 7, answer

        # A broken push: rejected with its errors, no run, node1 untouched.
        path = lab.repo / "clusters" / "lab.yaml"
        path.write_text(path.read_text().replace("profile: lab-linux", "profile: no-such-profile"))
        bad = lab.commit("broken profile reference")
        events_before = len(lab.timeline("node1"))
        answer = deliver(lab, push_body(lab.repo, added, bad))
        assert answer["status"] == 202, answer
        rejected = lab.wait_plan(bad, ("invalid", "pending_approval"), timeout=120)
        assert rejected["state"] == "invalid"
        assert any(e["file"] == "clusters/lab.yaml" and e["field"] == "profile" and e["line"] for e in rejected["errors"]), rejected["errors"]
        # A window for a wrongful run to show: nothing observable marks "the worker looked and did
        # nothing", so a slow machine can only make this miss a bug, never fail a correct build.
        time.sleep(2)
        assert lab.store.get(f"/runs/{rejected['id']}") is None
        assert lab.store.get("/hosts/node1")["state"] == "ready" and len(lab.timeline("node1")) == events_before
        assert lab.store.get("/sites-applied/current")["sha"] == added
        assert_no_secret(lab.data)
        assert SECRET not in lab.log(10**7)
    finally:
        lab.close()
