"""GitHub webhook -> revision fetched by SHA -> validated plan -> approval, against a real uvicorn
server on loopback and a real bare git repository. The runner is another component: these tests
stop at `approved` and stand in for the runner only by writing `/sites-applied/current`."""

from __future__ import annotations

import itertools
import json
import time
import uuid

from api_helpers import FIXTURES, REPO_FULL_NAME, SECRETS, add_host, auth, make_settings, push_body, start_live, webhook_headers

from vaquero.state.sqlite import SQLiteStore


def post_hook(live, body: bytes, event: str = "push", delivery: str | None = None, **kw):
    headers = webhook_headers(body, event, delivery, **kw)
    return live.client.post("/v1/webhooks/github", content=body, headers=headers), headers["X-GitHub-Delivery"]


def plans(live, state: str | None = None) -> list[dict]:
    params = {"state": state} if state else {}
    resp = live.client.get("/v1/plans", params=params, headers=auth("reader"))
    assert resp.status_code == 200
    return list(resp.json()["plans"])


def apply_as_runner(live, plan: dict) -> None:
    """Stand-in for the runner: record that this plan's revision is what the hardware now runs."""
    live.store.put("/sites-applied/current", {"sha": plan["sha"], "root": plan["root"], "plan": plan["id"]})


def test_ping_answers_pong(live):
    body = (FIXTURES / "ping" / "payload.json").read_bytes()
    resp, _ = post_hook(live, body, "ping")
    assert resp.status_code == 200
    assert resp.json()["status"] == "pong" and resp.json()["zen"]


def test_push_adds_host_plan_waits_then_approved(live, sot_repo, captured_logs):
    # First revision: applied (by the stand-in runner) so the next plan is made against it.
    first = sot_repo.commit("lab")
    resp, delivery = post_hook(live, push_body(sot_repo.url, first))
    assert resp.status_code == 202, resp.text
    # answered before planning ("queued"), however long the plan takes: latency is a benchmark figure
    assert resp.json() == {"delivery": delivery, "event": "push", "status": "queued", "sha": first, "revision": first}
    rev = live.wait_revision(first)
    assert rev["state"] == "planned"
    plan1 = live.client.get(f"/v1/plans/{rev['plan']}", headers=auth("reader")).json()
    assert plan1["state"] == "pending_approval" and plan1["sha"] == first
    apply_as_runner(live, plan1)

    # A commit that adds a host.
    second = sot_repo.commit("add node5", add_host("node5", 5))
    resp, delivery = post_hook(live, push_body(sot_repo.url, second, before=first))
    assert resp.status_code == 202
    rev = live.wait_revision(second)
    plan = live.client.get(f"/v1/plans/{rev['plan']}", headers=auth("reader")).json()
    assert plan["state"] == "pending_approval"
    assert plan["sha"] == second and plan["base_sha"] == first and plan["source"] == sot_repo.url
    assert [(h["host"], h["action"]) for h in plan["plan"]["hosts"]] == [("node5", "add")]
    assert "+ host node5 will be installed [add]" in plan["text"]
    assert plan["root"].endswith(second) and plan["auto_apply"] is False and plan["errors"] == []
    # The older plan waiting for approval was superseded by this one.
    older = live.client.get(f"/v1/plans/{plan1['id']}", headers=auth("reader")).json()
    assert older["state"] == "superseded" and older["superseded_by"] == plan["id"]
    text = live.client.get(f"/v1/plans/{plan['id']}/text", headers=auth("reader"))
    assert text.status_code == 200 and text.text == plan["text"]

    # The branch moves on in the repository; the plan still reads exactly the pushed SHA.
    sot_repo.commit("later, not pushed through the hook", add_host("node6", 6))
    assert "node6" not in (live.settings.cache / "trees" / second / "clusters" / "lab.yaml").read_text()

    # A replay of the same delivery does nothing twice.
    again = live.client.post(
        "/v1/webhooks/github",
        content=push_body(sot_repo.url, second, before=first),
        headers=webhook_headers(push_body(sot_repo.url, second, before=first), delivery=delivery),
    )
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert len(plans(live)) == 2

    # A read token may not approve (403), no token is 401; an approve token approves.
    assert live.client.post(f"/v1/plans/{plan['id']}/approve", headers=auth("reader")).status_code == 403
    assert live.client.post(f"/v1/plans/{plan['id']}/approve").status_code == 401
    # The approval names the plan's digest: missing is 422, another plan's digest is 409.
    assert live.client.post(f"/v1/plans/{plan['id']}/approve", headers=auth("alice"), json={"comment": "ok"}).status_code == 422
    assert len(plan["digest"]) == 64 and plan["digest"] != older["digest"]
    resp = live.client.post(f"/v1/plans/{plan['id']}/approve", headers=auth("alice"), json={"digest": older["digest"]})
    assert resp.status_code == 409 and live.store.get(f"/plans/{plan['id']}").value["state"] == "pending_approval"
    resp = live.client.post(f"/v1/plans/{plan['id']}/approve", headers=auth("alice"), json={"comment": "ok", "digest": plan["digest"]})
    assert resp.status_code == 200, resp.text
    record = live.store.get(f"/plans/{plan['id']}").value
    assert record["state"] == "approved" and record["approved_by"] == "alice" and record["approval_comment"] == "ok"
    assert abs(record["approved_at"] - time.time()) < 30 and record["cancel_requested"] is False
    assert live.store.list("/plans-pending/") == []  # nothing left waiting
    # Approving twice is a conflict, not a second approval.
    assert live.client.post(f"/v1/plans/{plan['id']}/approve", headers=auth("alice"), json={"digest": plan["digest"]}).status_code == 409
    # Approving the superseded plan is refused, and says by what.
    resp = live.client.post(f"/v1/plans/{plan1['id']}/approve", headers=auth("alice"), json={"digest": older["digest"]})
    assert resp.status_code == 409 and plan["id"] in resp.json()["detail"]

    # Cancel sets the flag the runner honours.
    resp = live.client.post(f"/v1/plans/{plan['id']}/cancel", headers=auth("alice"))
    assert resp.status_code == 200 and live.store.get(f"/plans/{plan['id']}").value["cancel_requested"] is True

    # Logs: JSON lines carrying the SHA and plan id; no secret anywhere.
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    ready = [x for x in lines if x["msg"].startswith(f"plan {plan['id']} ready")]
    assert ready and ready[0]["sha"] == second and ready[0]["plan"] == plan["id"]
    approved = [x for x in lines if "approved by alice" in x["msg"]]
    assert approved and approved[0]["plan"] == plan["id"] and approved[0]["sha"] == second
    for secret in SECRETS:
        assert secret not in captured_logs.getvalue()


def test_bad_commit_is_rejected_with_errors_and_nothing_approved(live, sot_repo):
    good = sot_repo.commit("lab")
    post_hook(live, push_body(sot_repo.url, good))
    pending = live.wait_revision(good)["plan"]

    def break_it(work):
        path = work / "clusters" / "lab.yaml"
        path.write_text(path.read_text().replace('macs: ["52:54:00:00:10:03"]', 'macs: ["not-a-mac"]'))

    bad = sot_repo.commit("typo", break_it)
    resp, _ = post_hook(live, push_body(sot_repo.url, bad, before=good))
    assert resp.status_code == 202
    rev = live.wait_revision(bad)
    assert rev["state"] == "invalid"
    plan = live.client.get(f"/v1/plans/{rev['plan']}", headers=auth("reader")).json()
    assert plan["state"] == "invalid" and plan["plan"] is None
    err = plan["errors"][0]
    line = next(i for i, text in enumerate((sot_repo.work / "clusters" / "lab.yaml").read_text().splitlines(), 1) if "not-a-mac" in text)
    assert err["file"] == "clusters/lab.yaml" and err["field"] == "hosts[2].macs" and err["line"] == line, err
    assert "not-a-mac" in err["message"] or "MAC" in err["message"]
    text = live.client.get(f"/v1/plans/{plan['id']}/text", headers=auth("reader")).text
    assert f"clusters/lab.yaml:{line}: hosts[2].macs: " in text
    # An invalid revision supersedes nothing; it cannot be approved; nothing is approved.
    assert live.client.get(f"/v1/plans/{pending}", headers=auth("reader")).json()["state"] == "pending_approval"
    assert plan["digest"] is None
    assert live.client.post(f"/v1/plans/{plan['id']}/approve", headers=auth("alice"), json={"digest": "0" * 64}).status_code == 409
    assert plans(live, "approved") == []


def test_bad_deliveries_clear_errors_nothing_done(live, sot_repo):
    sha = sot_repo.commit("lab")
    body = push_body(sot_repo.url, sha)
    hook = "/v1/webhooks/github"
    # Wrong signature, missing signature, signature over other bytes (re-serialised JSON).
    bad = webhook_headers(body, secret="not-the-secret")
    assert live.client.post(hook, content=body, headers=bad).status_code == 401
    missing = {k: v for k, v in webhook_headers(body).items() if k != "X-Hub-Signature-256"}
    assert live.client.post(hook, content=body, headers=missing).status_code == 401
    reserialised = json.dumps(json.loads(body)).encode()
    assert live.client.post(hook, content=reserialised, headers=webhook_headers(body)).status_code == 401
    # Malformed JSON, correctly signed.
    junk = b'{"ref": "refs/heads/main", "after": '
    resp = live.client.post(hook, content=junk, headers=webhook_headers(junk))
    assert resp.status_code == 400 and "JSON" in resp.json()["detail"]
    # No delivery id.
    no_id = {k: v for k, v in webhook_headers(body).items() if k != "X-GitHub-Delivery"}
    assert live.client.post(hook, content=body, headers=no_id).status_code == 400
    # Another repository, another branch, a tag, a branch deletion, a create event: ignored.
    other_repo = push_body("file:///elsewhere/other.git", sha, full_name="someone/else")
    resp = live.client.post(hook, content=other_repo, headers=webhook_headers(other_repo))
    assert resp.status_code == 200 and resp.json()["status"] == "ignored" and "another repository" in resp.json()["reason"]
    other_branch = push_body(sot_repo.url, sha, ref="refs/heads/feature")
    resp = live.client.post(hook, content=other_branch, headers=webhook_headers(other_branch))
    assert resp.json()["status"] == "ignored" and "feature" in resp.json()["reason"]
    deletion_fixture = (FIXTURES / "push" / "payload.json").read_bytes()  # a real deletion body (a tag)
    resp = live.client.post(hook, content=deletion_fixture, headers=webhook_headers(deletion_fixture))
    assert resp.json()["status"] == "ignored"
    deletion = push_body(sot_repo.url, "0" * 40, before=sha, deleted=True)
    resp = live.client.post(hook, content=deletion, headers=webhook_headers(deletion))
    assert resp.json() == {"delivery": resp.json()["delivery"], "event": "push", "status": "ignored", "reason": "branch deletion"}
    create = (FIXTURES / "create" / "payload.json").read_bytes()
    resp = live.client.post(hook, content=create, headers=webhook_headers(create, "create"))
    assert resp.json()["status"] == "ignored"
    # Nothing was queued by any of that.
    assert live.client.get("/v1/revisions", headers=auth("reader")).json()["count"] == 0
    # A SHA that does not exist in the repository: the revision is invalid, with the reason.
    ghost = "1234567890abcdef1234567890abcdef12345678"
    body = push_body(sot_repo.url, ghost)
    resp = live.client.post(hook, content=body, headers=webhook_headers(body))
    assert resp.status_code == 202
    rev = live.wait_revision(ghost)
    assert rev["state"] == "invalid" and "does not exist" in rev["errors"][0]["message"]
    assert plans(live, "approved") == [] and plans(live, "pending_approval") == []
    # A push whose `after` is not a SHA.
    odd = json.loads(push_body(sot_repo.url, sha))
    odd["after"] = "main"
    odd_body = json.dumps(odd).encode()
    assert live.client.post(hook, content=odd_body, headers=webhook_headers(odd_body)).status_code == 400


def test_form_encoded_delivery_is_accepted(live, sot_repo):
    from urllib.parse import urlencode

    sha = sot_repo.commit("lab")
    body = urlencode({"payload": push_body(sot_repo.url, sha).decode()}).encode()
    headers = webhook_headers(body) | {"Content-Type": "application/x-www-form-urlencoded"}
    resp = live.client.post("/v1/webhooks/github", content=body, headers=headers)
    assert resp.status_code == 202 and resp.json()["sha"] == sha


def test_replay_after_restart_does_nothing_and_queued_work_resumes(tmp_path, sot_repo):
    settings = make_settings(tmp_path, sot_repo.url)
    db = tmp_path / "data" / "store.sqlite"
    sha = sot_repo.commit("lab")
    body = push_body(sot_repo.url, sha)
    delivery = str(uuid.uuid4())

    store = SQLiteStore(db)
    srv = start_live(settings, store)
    try:
        assert srv.client.post("/v1/webhooks/github", content=body, headers=webhook_headers(body, delivery=delivery)).status_code == 202
        srv.wait_revision(sha)
        # A revision accepted but not yet worked on when the process stopped (written as the webhook writes it).
        second = sot_repo.commit("add node5", add_host("node5", 5))
        srv.app.state.gate.stop()
        srv.app.state.gate.submit_git(sot_repo.url, second, actor="github:" + REPO_FULL_NAME)
    finally:
        srv.stop()
        store.close()

    store = SQLiteStore(db)
    srv = start_live(settings, store)
    try:
        resp = srv.client.post("/v1/webhooks/github", content=body, headers=webhook_headers(body, delivery=delivery))
        assert resp.status_code == 200 and resp.json()["status"] == "duplicate"
        assert srv.wait_revision(second)["state"] == "planned"  # resumed after the restart
        all_plans = srv.client.get("/v1/plans", headers=auth("reader")).json()["plans"]
        assert sorted(p["sha"] for p in all_plans) == sorted([sha, second])
        # The same commit pushed again under a new delivery id is recognised, not planned twice.
        resp = srv.client.post("/v1/webhooks/github", content=body, headers=webhook_headers(body))
        assert resp.status_code == 200 and resp.json()["status"] == "known"
    finally:
        srv.stop()
        store.close()


def test_event_stream_over_the_live_server(live, sot_repo):
    import threading

    lines: list[str] = []
    connected = threading.Event()

    def finished() -> bool:
        pairs = [(a[7:], json.loads(b[6:])) for a, b in itertools.pairwise(lines) if a.startswith("event: ") and b.startswith("data: ")]
        seen = {(kind, (data.get("value") or {}).get("state")) for kind, data in pairs}
        return {("plan", "pending_approval"), ("revision", "planned")} <= seen

    def consume() -> None:
        # idle_timeout only bounds a hang; the consumer stops once it has seen the plan and the revision end
        params = {"idle_timeout": 60, "kinds": "plans,revisions"}
        with live.client.stream("GET", "/v1/events", params=params, headers=auth("reader")) as resp:
            assert resp.status_code == 200
            for line in resp.iter_lines():
                lines.append(line)
                if line == ": connected":
                    connected.set()
                if line.startswith("data: ") and finished():
                    break

    thread = threading.Thread(target=consume)
    thread.start()
    # the stream starts at the Store's current revision: push only once it is subscribed
    assert connected.wait(60), "the event stream never said it was connected"
    sha = sot_repo.commit("lab")
    post_hook(live, push_body(sot_repo.url, sha))
    rev = live.wait_revision(sha)
    thread.join(120)
    assert not thread.is_alive()
    events = [(a[7:], json.loads(b[6:])) for a, b in itertools.pairwise(lines) if a.startswith("event: ") and b.startswith("data: ")]
    kinds = [k for k, _ in events]
    assert "revision" in kinds and "plan" in kinds
    plan_states = [d["value"]["state"] for k, d in events if k == "plan"]
    assert plan_states[-1] == "pending_approval" and all(d["value"].get("text") is None for k, d in events if k == "plan")
    revision_states = [d["value"]["state"] for k, d in events if k == "revision"]
    assert revision_states[0] == "queued" and revision_states[-1] == "planned" and rev["plan"] in json.dumps(events)
