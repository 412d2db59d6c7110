"""Real parts for the API tests: a bare git repository served over a file:// URL, the real GitHub
webhook bodies (tests/api/fixtures/github-webhooks, copied byte-for-byte from octokit/webhooks as in
/work/shared/fixtures) rewritten to point at it and signed over the exact bytes sent, and a real
uvicorn server on loopback."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import shutil
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from vaquero.api.app import create_app
from vaquero.api.settings import Settings, Tokens
from vaquero.logs import JsonFormatter
from vaquero.state.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "github-webhooks"

WEBHOOK_SECRET = "whsec-" + "s3cr3t-hook-value-7f3a9c"
TOKENS = {
    "alice": ("approve", "tok-alice-approve-0123456789abcdef"),
    "reader": ("read", "tok-reader-read-0123456789abcdef"),
    "root": ("admin", "tok-root-admin-0123456789abcdef"),
}
GITHUB_TOKEN = "ghp_" + "FAKEgithubTOKENvalue0123456789"
SECRETS = [WEBHOOK_SECRET, GITHUB_TOKEN, *(t for _, t in TOKENS.values())]
REPO_FULL_NAME = "vaquero-test/sot"


def git(cwd: Path, *args: str) -> str:
    env_args = ["-c", "user.email=test@example.invalid", "-c", "user.name=test", "-c", "init.defaultBranch=main"]
    return subprocess.run(["git", *env_args, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name][1]}"}


@dataclass
class SotRepo:
    bare: Path
    work: Path

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def commit(self, message: str, edit: Any = None) -> str:
        if edit is not None:
            edit(self.work)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "--allow-empty", "-m", message)
        git(self.work, "push", "-q", "origin", "HEAD:main")
        return git(self.work, "rev-parse", "HEAD")


@pytest.fixture
def sot_repo(tmp_path) -> SotRepo:
    bare = tmp_path / "remote" / "sot.git"
    bare.parent.mkdir()
    git(tmp_path, "init", "-q", "--bare", str(bare))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(bare), str(work))
    for item in ("sites", "profiles", "clusters", "hooks", "templates"):
        shutil.copytree(ROOT / "inventories" / "lab" / item, work / item)
    return SotRepo(bare, work)


def add_host(name: str, n: int):
    def edit(work: Path) -> None:
        path = work / "clusters" / "lab.yaml"
        path.write_text(
            path.read_text()
            + f"""  - name: {name}
    macs: ["52:54:00:00:10:{n:02x}"]
    roles: [worker]
    bmc: {{type: ipmi, address: 127.0.0.1, port: {6230 + n}, credential: lab-bmc}}
    ips: {{prov: 10.90.0.{10 + n}}}
"""
        )

    return edit


def push_body(
    repo_url: str, sha: str, *, before: str = "0" * 40, ref: str = "refs/heads/main", full_name: str = REPO_FULL_NAME, deleted: bool = False
) -> bytes:
    """The real push body (new branch example), rewritten to point at our repository and commit."""
    payload = json.loads((FIXTURES / "push" / "with-new-branch.payload.json").read_bytes())
    payload["ref"] = ref
    payload["before"] = before
    payload["after"] = sha
    payload["deleted"] = deleted
    payload["created"] = before == "0" * 40
    repo = payload["repository"]
    repo["full_name"] = full_name
    repo["name"] = full_name.split("/")[1]
    repo["clone_url"] = repo_url
    repo["git_url"] = repo_url
    repo["ssh_url"] = repo_url
    repo["html_url"] = repo_url
    if payload.get("head_commit"):
        payload["head_commit"]["id"] = sha
    return json.dumps(payload, indent=2).encode()


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_headers(body: bytes, event: str = "push", delivery: str | None = None, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body, secret),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    url: str
    app: Any
    store: SQLiteStore
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30, verify=False)

    def wait_revision(self, rid: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            resp = self.client.get(f"/v1/revisions/{rid}", headers=auth("reader"))
            if resp.status_code == 200 and resp.json()["state"] in ("planned", "invalid"):
                return dict(resp.json())
            time.sleep(0.05)
        raise AssertionError(f"revision {rid} not planned in {timeout}s")

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(15)


def start_live(settings: Settings, store: SQLiteStore, *, ssl: tuple[str, str] | None = None) -> Live:
    app = create_app(settings, store)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=5,
        ssl_certfile=ssl[0] if ssl else None,
        ssl_keyfile=ssl[1] if ssl else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    scheme = "https" if ssl else "http"
    return Live(f"{scheme}://127.0.0.1:{port}", app, store, settings, server, thread)


def make_settings(tmp_path: Path, repo_url: str | None = None, **kw: Any) -> Settings:
    text = "".join(f"{name}:{role}:{token}\n" for name, (role, token) in TOKENS.items())
    return Settings(
        data_dir=tmp_path / "data",
        tokens=Tokens.parse("# test tokens\n" + text, "tokens"),
        webhook_secret=WEBHOOK_SECRET,
        repo_url=repo_url,
        repo_name=REPO_FULL_NAME,
        branch="main",
        **kw,
    )


@pytest.fixture
def captured_logs():
    """Every log line of the test, formatted as the server formats them (JSON)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.fixture
def live(tmp_path, sot_repo, monkeypatch):
    monkeypatch.setenv("VAQUERO_CACHE", str(tmp_path / "must-not-be-used"))
    settings = make_settings(tmp_path, sot_repo.url)
    store = SQLiteStore(tmp_path / "data" / "store.sqlite")
    srv = start_live(settings, store)
    yield srv
    srv.stop()
    store.close()
