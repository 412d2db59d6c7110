"""The federated agent as a process (`vaquero agent --controller` wiring): the controller process
stops (the partition), the agent is killed with SIGKILL mid-partition and started again: it
serves from its cache at once, its queued event survives, and reaches the controller once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fed_helpers import AGENT_TOKENS, READ_TOKEN, SECRETS, Controller, boot_request, free_port, wait_for

from vaquero.state.machine import current, timeline

pytestmark = pytest.mark.slow
ETCD1_MAC = "0c-c4-7a-10-00-01"


@pytest.fixture
def ctl(tmp_path, applied_sot, pki, tokens_files):
    c = Controller(tmp_path, applied_sot, pki, tokens_files)
    c.start()
    yield c
    c.close()


def queued(state_dir: Path) -> list[str]:
    db = sqlite3.connect(f"file:{state_dir / 'federation' / 'events.sqlite'}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute("SELECT id FROM queue ORDER BY seq")]
    finally:
        db.close()


class AgentProcess:
    def __init__(self, ctl: Controller, state_dir: Path, port: int, log: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.state_dir = state_dir
        token_file = state_dir.parent / "controller-token"
        token_file.write_text(AGENT_TOKENS["east-agent-1"] + "\n")
        token_file.chmod(0o600)
        cmd = [sys.executable, "-m", "vaquero.cli", "agent", "--controller", ctl.url, "--ca-file", str(ctl.pki.ca)]
        cmd += ["--controller-token-file", str(token_file), "--agent", "east-agent-1", "--site", "dc-east", "--state-dir", str(state_dir)]
        cmd += ["--listen", "127.0.0.1", "--http-port", str(port), "--tftp-port", "0", "--no-dhcp", "--no-fetch-assets"]
        cmd += ["--asset-root", str(state_dir / "assets"), "--sync-interval", "0.3", "--sync-backoff-max", "1", "--log-level", "debug"]
        env = {k: v for k, v in os.environ.items() if k not in ("VAQUERO_AGENT_TOKEN", "VAQUERO_CONTROLLER_TOKEN")}
        out = log.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=env)
        wait_for(self.up, 20, "the agent process")

    def up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError("the agent process exited")
        try:
            return httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=5)

    def post(self, path: str, body: object = None) -> httpx.Response:
        path, headers = boot_request(self.state_dir, path)
        return httpx.post(self.base + path, json=body or {}, headers=headers, timeout=5)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_agent_killed_during_partition_keeps_serving_and_queue(ctl, tmp_path):
    state_dir = tmp_path / "agent"
    log = tmp_path / "agent.log"
    port = free_port()
    agent = AgentProcess(ctl, state_dir, port, log)
    try:
        with ctl.client(READ_TOKEN) as c:
            wait_for(lambda: c.get("/v1/agents").json()["count"] == 1, 15, "the agent's heartbeat")
            seen = c.get("/v1/agents").json()["agents"][0]
            assert seen["name"] == "east-agent-1" and seen["sha"] == ctl.applied.store().get("/sites-applied/current").value["sha"]

        ctl.stop()  # the partition: the controller is gone
        assert agent.post("/v1/boot/install/etcd1").status_code == 200
        assert "installing etcd1" in agent.get(f"/v1/boot/ipxe/{ETCD1_MAC}").text
        assert agent.post("/v1/boot/callback/etcd1", {"ok": True}).status_code == 200
        ids = queued(state_dir)
        assert len(ids) == 1

        agent.kill()  # no clean shutdown
        agent = AgentProcess(ctl, state_dir, port, log)  # the controller is still down: starts from the cache
        assert "is installed" in agent.get(f"/v1/boot/ipxe/{ETCD1_MAC}").text
        assert agent.get("/boot.ipxe").status_code == 200
        assert queued(state_dir) == ids

        ctl.start()
        wait_for(lambda: queued(state_dir) == [], 20, "the queue to drain")
        store = ctl.applied.store()
        events = [e for e in timeline(store, "etcd1") if e["id"] in ids]
        assert len(events) == 1 and events[0]["state"] == "installing" and events[0]["actor"] == "agent:east-agent-1"
        assert events[0]["reason"] == "installer called back" and current(store, "etcd1")["state"] == "installing"
        store.close()
    finally:
        agent.stop()
    logs = log.read_text() + ctl.log.read_text()
    assert "controller unreachable" in logs and "serving the cached bundle" in logs
    for secret in SECRETS:
        assert secret not in logs
