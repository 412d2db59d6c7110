"""The API in process (ASGI): auth and roles, probes, metrics, manual revisions, the auto-apply
policy, hosts and their timelines, the event stream, and commit statuses to a GitHub stand-in."""

from __future__ import annotations

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from api_helpers import GITHUB_TOKEN, ROOT, SECRETS, add_host, auth, make_settings, push_body, webhook_headers
from fastapi.testclient import TestClient
from waiting import wait_until

from vaquero.api.app import create_app
from vaquero.api.settings import SettingsError, Tokens
from vaquero.state.machine import Event, transition
from vaquero.state.sqlite import SQLiteStore


@pytest.fixture
def api(tmp_path, monkeypatch):
    monkeypatch.setenv("VAQUERO_CACHE", str(tmp_path / "must-not-be-used"))
    store = SQLiteStore(tmp_path / "store.sqlite")
    app = create_app(make_settings(tmp_path, allowed_sources=[str(tmp_path), f"file://{tmp_path}/"]), store)
    with TestClient(app) as client:
        client.store = store  # type: ignore[attr-defined]
        client.gate = app.state.gate  # type: ignore[attr-defined]
        yield client
    store.close()


def submit(api, source: str, who: str = "alice") -> dict:
    resp = api.post("/v1/revisions", json={"source": source}, headers=auth(who))
    assert resp.status_code in (200, 202), resp.text
    assert api.gate.wait_idle(30)
    rid = resp.json()["revision"]["id"]
    return dict(api.get(f"/v1/revisions/{rid}", headers=auth("reader")).json())


def lab_copy(tmp_path, name="lab"):
    dst = tmp_path / name
    shutil.copytree(ROOT / "inventories" / "lab", dst)
    return dst


def test_auth_401_and_403_are_distinct_probes_are_open(api):
    assert api.get("/healthz/live").status_code == 200
    ready = api.get("/healthz/ready")
    assert ready.status_code == 200 and ready.json()["store"] is True
    assert api.get("/openapi.json").status_code == 200
    missing = api.get("/v1/plans")
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    wrong = api.get("/v1/plans", headers={"Authorization": "Bearer tok-alice-approve-0123456789abcdeX"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid bearer token"
    assert api.get("/v1/plans", headers={"Authorization": "Basic YTpi"}).status_code == 401
    assert api.get("/v1/plans", headers=auth("reader")).status_code == 200
    forbidden = api.post("/v1/revisions", json={"source": "/nowhere"}, headers=auth("reader"))
    assert forbidden.status_code == 403 and "read" in forbidden.json()["detail"]
    assert api.get("/metrics").status_code == 401
    # Nothing an API answer says contains a secret.
    for resp in (missing, wrong, forbidden):
        for secret in SECRETS:
            assert secret not in resp.text


def test_tokens_file_format_errors_never_quote_the_token(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("ops:superuser:averyverysecretvalue123\n")
    with pytest.raises(SettingsError) as exc:
        Tokens.load(path, env="")
    assert "averyverysecretvalue123" not in str(exc.value) and "role" in str(exc.value)
    path.write_text("ops:admin:short\n")
    with pytest.raises(SettingsError, match="16 characters"):
        Tokens.load(path, env="")
    tokens = Tokens.load(None, env="a:read:0123456789abcdef0,b:admin:fedcba98765432100")
    assert tokens.names == ["a", "b"] and tokens.match("fedcba98765432100").role == "admin"
    assert tokens.match("fedcba9876543210") is None and "fedcba" not in repr(tokens)


def test_manual_revision_from_a_folder_then_auto_apply_policy(api, tmp_path):
    lab = lab_copy(tmp_path)
    rev = submit(api, str(lab))
    assert rev["state"] == "planned" and rev["id"].startswith("local-")
    plan = api.get(f"/v1/plans/{rev['plan']}", headers=auth("reader")).json()
    assert plan["state"] == "pending_approval" and plan["actor"] == "alice"
    assert {h["host"] for h in plan["plan"]["hosts"]} == {"node1", "node2", "node3", "node4"}
    # The revision is a snapshot: editing the folder afterwards does not change what was planned.
    (lab / "clusters" / "lab.yaml").write_text("garbage: [")
    assert "node1" in (api.gate.cache / "trees").joinpath(rev["root"].rsplit("/", 1)[-1], "clusters", "lab.yaml").read_text()
    # The same content again is the same revision.
    again = api.post("/v1/revisions", json={"source": str(lab_copy(tmp_path, "lab-same"))}, headers=auth("alice"))
    assert again.status_code == 200 and again.json()["created"] is False
    # Applied (runner stand-in), then a change to a cluster whose policy says auto_apply.
    api.store.put("/sites-applied/current", {"sha": None, "root": plan["root"], "plan": plan["id"]})
    auto = lab_copy(tmp_path, "lab-auto")
    text = (auto / "clusters" / "lab.yaml").read_text().replace("  retries: 1\n", "  retries: 1\n  auto_apply: true\n")
    (auto / "clusters" / "lab.yaml").write_text(text)
    add_host("node5", 5)(auto)
    plan2 = api.get(f"/v1/plans/{submit(api, str(auto))['plan']}", headers=auth("reader")).json()
    assert plan2["state"] == "approved" and plan2["auto_apply"] is True and plan2["approved_by"] == "policy:auto_apply"
    # The same change without auto_apply waits for a person; reject records who.
    manual = lab_copy(tmp_path, "lab-manual")
    add_host("node5", 5)(manual)
    plan3 = api.get(f"/v1/plans/{submit(api, str(manual))['plan']}", headers=auth("reader")).json()
    assert plan3["state"] == "pending_approval" and plan3["auto_apply"] is False
    resp = api.post(f"/v1/plans/{plan3['id']}/reject", headers=auth("root"))
    assert resp.status_code == 200 and resp.json()["rejected_by"] == "root" and resp.json()["state"] == "rejected"
    assert api.post(f"/v1/plans/{plan3['id']}/approve", headers=auth("alice"), json={"digest": plan3["digest"]}).status_code == 409
    assert api.post("/v1/plans/nope/approve", headers=auth("alice"), json={"digest": "0" * 64}).status_code == 404


def test_manual_revision_git_url_and_sha(api, sot_repo):
    sha = sot_repo.commit("lab")
    rev = submit(api, f"{sot_repo.url}@main")  # a branch name is resolved once, to a SHA
    assert rev["id"] == sha and rev["state"] == "planned"
    resp = api.post("/v1/revisions", json={"source": f"{sot_repo.url}@{'ab' * 20}"}, headers=auth("alice"))
    assert resp.status_code == 422 and "does not exist" in resp.json()["detail"]
    bad_sources = (
        f"{sot_repo.url}@-x",
        f"file://{sot_repo.bare}/../../x@main",
        "--upload-pack=touch@main",
        "https://user:pw@example.invalid/x.git@main",
        "relative/path",
        "/",
        "/etc@main",
    )
    for bad in bad_sources:
        resp = api.post("/v1/revisions", json={"source": bad}, headers=auth("alice"))
        assert resp.status_code == 422, (bad, resp.text)
        assert "pw@" not in resp.text
    assert api.post("/v1/revisions", content=b"{not json", headers=auth("alice") | {"Content-Type": "application/json"}).status_code == 422


def test_hosts_state_why_stuck_timeline_and_filters(api, tmp_path):
    rev = submit(api, str(lab_copy(tmp_path)))
    plan = api.get(f"/v1/plans/{rev['plan']}", headers=auth("reader")).json()
    api.store.put("/sites-applied/current", {"sha": None, "root": plan["root"], "plan": plan["id"]})
    for host in ("node1", "node2"):
        transition(api.store, Event(host, "pending", None, "runner", "plan approved", plan=plan["id"], run="run1"))
    transition(api.store, Event("node1", "powering_off", None, "runner", "power off via IPMI", plan=plan["id"], run="run1", step="power_off"))
    transition(api.store, Event("node2", "failed", None, "runner", "BMC 127.0.0.1:6232 timed out", plan=plan["id"], run="run1", step="power_off", attempt=2))

    # The list follows the Store through a watch (a few tens of ms behind it): wait for the last change.
    wait_until(
        lambda: api.get("/v1/hosts", params={"state": "failed"}, headers=auth("reader")).json()["count"] == 1, 60, "the host list to catch up with the Store"
    )
    listing = api.get("/v1/hosts", headers=auth("reader")).json()
    assert listing["count"] == 4 and [h["name"] for h in listing["hosts"]] == ["node1", "node2", "node3", "node4"]
    assert {h["cluster"] for h in listing["hosts"]} == {"lab"}
    failed = api.get("/v1/hosts", params={"state": "failed"}, headers=auth("reader")).json()
    assert [h["name"] for h in failed["hosts"]] == ["node2"]
    assert api.get("/v1/hosts", params={"cluster": "other"}, headers=auth("reader")).json()["count"] == 0
    assert api.get("/v1/hosts", params={"cluster": "lab", "state": "powering_off"}, headers=auth("reader")).json()["count"] == 1

    node2 = api.get("/v1/hosts/node2", headers=auth("reader")).json()
    assert node2["state"] == "failed" and node2["failure"] == {"step": "power_off", "reason": "BMC 127.0.0.1:6232 timed out", "attempt": 2}
    assert "failed at step power_off (attempt 2)" in node2["why"] and node2["since"] > 0 and node2["run"] == "run1"
    node1 = api.get("/v1/hosts/node1", headers=auth("reader")).json()
    assert node1["state"] == "powering_off" and "last event: power off via IPMI" in node1["why"] and node1["last_event"]["step"] == "power_off"
    node3 = api.get("/v1/hosts/node3", headers=auth("reader")).json()
    assert node3["state"] is None and "no event yet" in node3["why"]
    timeline = api.get("/v1/hosts/node1/timeline", headers=auth("reader")).json()
    assert [e["state"] for e in timeline["events"]] == ["pending", "powering_off"]
    assert api.get("/v1/hosts/ghost", headers=auth("reader")).status_code == 404
    assert api.get("/v1/hosts/ghost/timeline", headers=auth("reader")).status_code == 404

    metrics = api.get("/metrics", headers=auth("reader")).text
    assert 'vaquero_hosts{state="failed"} 1.0' in metrics and 'vaquero_plans{state="pending_approval"} 1.0' in metrics
    assert "vaquero_run_duration_seconds_count" in metrics and "vaquero_plan_ready_seconds_count 1.0" in metrics


def test_runs_are_listed_as_the_runner_writes_them(api):
    api.store.put("/runs/r1", {"id": "r1", "plan": "p1", "state": "succeeded", "started": 100.0, "finished": 160.0})
    assert api.get("/v1/runs", headers=auth("reader")).json()["runs"][0]["id"] == "r1"
    assert api.get("/v1/runs/r1", headers=auth("reader")).json()["state"] == "succeeded"
    assert api.get("/v1/runs/r2", headers=auth("reader")).status_code == 404
    assert "vaquero_run_duration_seconds_sum 60.0" in api.get("/metrics", headers=auth("reader")).text


def test_event_stream(api, tmp_path):
    lab = lab_copy(tmp_path)
    results: list[str] = []

    plan_id: list[str] = []

    def seen_all() -> bool:
        data = [json.loads(line[6:]) for line in results if line.startswith("data: ")]
        plan_done = any(d["key"] == f"/plans/{plan_id[0]}" and (d["value"] or {}).get("state") == "pending_approval" for d in data if plan_id)
        return plan_done and any(d["key"].startswith("/events/node1/") for d in data)

    def consume() -> None:
        # idle_timeout bounds a hang only; the consumer stops once it has what it waits for
        with api.stream("GET", "/v1/events", params={"since": 0, "idle_timeout": 60, "kinds": "plans,events"}, headers=auth("reader")) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            for line in resp.iter_lines():
                results.append(line)
                if line.startswith("data: ") and seen_all():
                    break

    thread = threading.Thread(target=consume)
    thread.start()
    rev = submit(api, str(lab))
    plan_id.append(rev["plan"])
    transition(api.store, Event("node1", "pending", None, "runner", "plan approved", plan=rev["plan"]))
    thread.join(120)
    assert not thread.is_alive()
    data = [json.loads(line[6:]) for line in results if line.startswith("data: ")]
    plan_events = [d for d in data if d["key"] == f"/plans/{rev['plan']}"]
    assert plan_events and plan_events[-1]["value"]["state"] == "pending_approval" and "text" not in plan_events[-1]["value"]
    assert any(d["key"].startswith("/events/node1/") for d in data)
    assert not any(d["key"].startswith("/revisions/") for d in data)
    assert any(line.startswith("id: ") for line in results)
    assert api.get("/v1/events").status_code == 401


class _GitHubStandIn(BaseHTTPRequestHandler):
    """GitHub is unreachable here: this local server stands in for its commit statuses API."""

    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Authorization"], json.loads(body)))
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"state": "ok"}')

    def log_message(self, *args):
        pass


def test_commit_status_posted_to_github_stand_in(tmp_path, sot_repo, monkeypatch, captured_logs):
    monkeypatch.setattr(_GitHubStandIn, "received", [])
    gh = ThreadingHTTPServer(("127.0.0.1", 0), _GitHubStandIn)
    threading.Thread(target=gh.serve_forever, daemon=True).start()
    settings = make_settings(
        tmp_path, sot_repo.url, github_token=GITHUB_TOKEN, github_api=f"http://127.0.0.1:{gh.server_port}", public_url="https://vaquero.example.invalid"
    )
    store = SQLiteStore(tmp_path / "store.sqlite")
    try:
        with TestClient(create_app(settings, store)) as client:
            good = sot_repo.commit("lab")
            body = push_body(sot_repo.url, good)
            assert client.post("/v1/webhooks/github", content=body, headers=webhook_headers(body)).status_code == 202
            bad = sot_repo.commit(
                "bad", lambda w: (w / "clusters" / "lab.yaml").write_text((w / "clusters" / "lab.yaml").read_text().replace("site: lab", "site: nowhere"))
            )
            body = push_body(sot_repo.url, bad, before=good)
            assert client.post("/v1/webhooks/github", content=body, headers=webhook_headers(body)).status_code == 202
            assert client.app.state.gate.wait_idle(30)
            plan_id = client.get(f"/v1/revisions/{good}", headers=auth("reader")).json()["plan"]
    finally:
        gh.shutdown()
        store.close()
    by_sha = {}
    for path, authorization, payload in _GitHubStandIn.received:
        assert authorization == f"Bearer {GITHUB_TOKEN}"
        by_sha.setdefault(path, []).append(payload)
    good_statuses = by_sha[f"/repos/vaquero-test/sot/statuses/{good}"]
    assert [s["state"] for s in good_statuses] == ["pending", "success"]
    assert good_statuses[-1]["context"] == "vaquero/plan" and good_statuses[-1]["target_url"] == f"https://vaquero.example.invalid/v1/plans/{plan_id}"
    assert "pending approval" in good_statuses[-1]["description"]
    bad_statuses = by_sha[f"/repos/vaquero-test/sot/statuses/{bad}"]
    assert [s["state"] for s in bad_statuses] == ["pending", "failure"] and "clusters/lab.yaml" in bad_statuses[-1]["description"]
    assert GITHUB_TOKEN not in captured_logs.getvalue() and "commit status success posted" in captured_logs.getvalue()


def test_internal_error_in_the_gate_marks_the_revision_not_stuck(api, tmp_path, monkeypatch):
    import vaquero.gate.core as core

    def boom(request, limits=None):
        raise RuntimeError("planner bug")

    monkeypatch.setattr(core, "run_bounded", boom)
    rev = submit(api, str(lab_copy(tmp_path)))
    assert rev["state"] == "invalid" and "could not be checked (RuntimeError)" in rev["errors"][0]["message"]
    assert "planner bug" not in rev["errors"][0]["message"]
    # The revision's plan exists and says the same: no plan id that answers 404.
    plan = api.get(f"/v1/plans/{rev['plan']}", headers=auth("reader"))
    assert plan.status_code == 200 and plan.json()["state"] == "invalid" and plan.json()["errors"] == rev["errors"]
    assert 'vaquero_errors_total{kind="gate"} 1.0' in api.get("/metrics", headers=auth("reader")).text


def test_store_gone_ready_probe_fails_and_api_answers_503(api):
    api.store.close()
    assert api.get("/healthz/live").status_code == 200
    ready = api.get("/healthz/ready")
    assert ready.status_code == 503 and ready.json()["store"] is False
    resp = api.get("/v1/plans", headers=auth("reader"))
    assert resp.status_code == 503 and resp.json()["detail"] == "the store is unavailable; try again"


def test_secrets_stay_out_of_reprs(tmp_path):
    from vaquero.gate.github import StatusReporter

    settings = make_settings(tmp_path, github_token=GITHUB_TOKEN)
    reporter = StatusReporter(GITHUB_TOKEN)
    for text in (repr(settings), str(settings), repr(settings.tokens), repr(reporter)):
        for secret in SECRETS:
            assert secret not in text
    assert settings.scrub(f"fatal: could not read from https://x:{GITHUB_TOKEN}@host") == "fatal: could not read from https://x:***@host"


def test_restart_between_plan_and_revision_update_makes_no_second_plan(api, tmp_path):
    rev = submit(api, str(lab_copy(tmp_path)))
    digest = api.get(f"/v1/plans/{rev['plan']}", headers=auth("reader")).json()["digest"]
    approved = api.post(f"/v1/plans/{rev['plan']}/approve", headers=auth("alice"), json={"digest": digest}).json()
    assert approved["state"] == "approved"
    # As if the process died after writing the plan but before marking the revision planned.
    api.store.put(f"/revisions/{rev['id']}", rev | {"state": "fetching"})
    api.gate.process(rev["id"])
    assert api.get(f"/v1/revisions/{rev['id']}", headers=auth("reader")).json()["state"] == "planned"
    plans = api.get("/v1/plans", headers=auth("reader")).json()["plans"]
    assert [p["id"] for p in plans] == [rev["plan"]] and plans[0]["state"] == "approved"


def test_host_list_follower_sees_puts_and_deletes(tmp_path):
    from vaquero.api.hosts import HostViews
    from vaquero.gate.core import Gate

    store = SQLiteStore(tmp_path / "s.sqlite")
    store.put("/hosts/a", {"name": "a", "state": "ready"})
    views = HostViews(store, Gate(store, cache=tmp_path / "cache"))
    direct = json.loads(views.list_json(None, None))
    views.start()
    try:
        assert views.follower.ready.wait(60)
        assert json.loads(views.list_json(None, None)) == direct

        def settle(expected: list[str]) -> dict:
            deadline = time.monotonic() + 60  # bounds a hang only
            while True:
                body = json.loads(views.list_json(None, None))
                if [h["name"] for h in body["hosts"]] == expected or time.monotonic() > deadline:
                    return body

        store.put("/hosts/b", {"name": "b", "state": "failed", "reason": "x"})
        body = settle(["a", "b"])
        assert body["hosts"][1]["state"] == "failed" and body["count"] == 2
        assert json.loads(views.list_json(None, "failed"))["count"] == 1
        store.delete("/hosts/a")
        assert [h["name"] for h in settle(["b"])["hosts"]] == ["b"]
    finally:
        views.stop()
        store.close()
