"""The runner's operator router mounted on the controller API: pause, resume, abort, steps."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from vaquero.api import runs as runner_api
from vaquero.api.app import create_app
from vaquero.api.settings import Settings, Token, Tokens
from vaquero.runner import records as R
from vaquero.state.sqlite import SQLiteStore

APPROVER = "approver-token-0123456789"
READER = "reader-token-0123456789ab"


@pytest.fixture
def client(tmp_path: Path):
    store = SQLiteStore(tmp_path / "state.db")
    tokens = Tokens([Token("ops", "approve", hashlib.sha256(APPROVER.encode()).digest()), Token("ro", "read", hashlib.sha256(READER.encode()).digest())])
    app = create_app(Settings(data_dir=tmp_path, tokens=tokens), store, start_gate=False)
    app.include_router(runner_api.router)
    store.put(R.plan_key("p1"), {"id": "p1", "state": "running", "cancel_requested": False})
    store.put(R.run_key("p1"), {"id": "p1", "state": "running", "paused": False})
    store.put(R.step_key("p1", "node1"), {"host": "node1", "wave": 1, "state": "running", "attempt": 1})
    yield TestClient(app), store
    store.close()


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_pause_resume_abort_and_steps(client) -> None:
    c, store = client
    r = c.post("/v1/runs/p1/pause", headers=h(APPROVER))
    assert r.status_code == 200 and r.json()["paused"] is True and r.json()["paused_by"] == "ops"
    assert c.post("/v1/runs/p1/resume", headers=h(APPROVER)).json()["paused"] is False
    steps = c.get("/v1/runs/p1/steps", headers=h(READER)).json()["steps"]
    assert [s["host"] for s in steps] == ["node1"]
    assert c.post("/v1/runs/p1/abort", headers=h(APPROVER)).json()["abort_requested"] is True
    assert store.get(R.plan_key("p1")).value["cancel_requested"] is True


def test_roles_missing_runs_and_finished_runs(client) -> None:
    c, store = client
    assert c.post("/v1/runs/p1/pause").status_code == 401
    assert c.post("/v1/runs/p1/pause", headers=h(READER)).status_code == 403
    assert c.post("/v1/runs/nope/pause", headers=h(APPROVER)).status_code == 404
    assert c.get("/v1/runs/nope/steps", headers=h(READER)).status_code == 404
    store.put(R.run_key("p1"), {"id": "p1", "state": "succeeded"})
    assert c.post("/v1/runs/p1/abort", headers=h(APPROVER)).status_code == 409


def test_cli_talks_to_a_live_server(tmp_path: Path, capsys) -> None:
    import socket
    import threading

    import uvicorn
    from waiting import wait_until

    from vaquero.cli import main

    store = SQLiteStore(tmp_path / "state.db")
    tokens = Tokens([Token("ops", "approve", hashlib.sha256(APPROVER.encode()).digest())])
    app = create_app(Settings(data_dir=tmp_path, tokens=tokens), store, start_gate=False)
    app.include_router(runner_api.router)
    store.put(R.plan_key("p1"), {"id": "p1", "state": "running", "cancel_requested": False})
    store.put(R.run_key("p1"), {"id": "p1", "state": "running", "paused": False, "sha": "f" * 40, "wave": 1})
    store.put(R.step_key("p1", "node1"), {"host": "node1", "wave": 1, "action": "add", "state": "running", "attempt": 1})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    wait_until(lambda: server.started or not t.is_alive(), 60, "uvicorn to start")
    assert server.started
    token = tmp_path / "token"
    token.write_text(APPROVER + "\n")
    args = ["--server", f"http://127.0.0.1:{port}", "--token-file", str(token)]
    try:
        assert main(["run", "pause", "p1", *args]) == 0
        assert store.get(R.run_key("p1")).value["paused"] is True
        assert main(["run", "steps", "p1", *args]) == 0
        assert main(["run", "list", *args]) == 0
        assert main(["run", "abort", "p1", *args]) == 0
        out = capsys.readouterr().out
        assert "pause requested" in out and "node1" in out and "p1  running" in out and "abort requested" in out
        assert store.get(R.plan_key("p1")).value["cancel_requested"] is True
    finally:
        server.should_exit = True
        t.join(10)
        store.close()
