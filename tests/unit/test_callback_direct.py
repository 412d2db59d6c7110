"""The agent is asked directly, never through the proxy the environment names: its admin calls
carry the agent's bearer token. A real HTTP server stands for the agent, another for the proxy
(http_proxy points at it); the token must reach the agent and nothing the proxy."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from vaquero.callback import boot_status, set_boot_mode

TOKEN = "agent-token-for-the-direct-test"


def _server(seen: list[dict[str, Any]], answer: dict[str, Any]) -> ThreadingHTTPServer:
    class H(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            seen.append({"method": self.command, "path": self.path, "auth": self.headers.get("Authorization")})
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _reply

        def log_message(self, *a: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture
def agent_and_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]:
    at_agent: list[dict[str, Any]] = []
    at_proxy: list[dict[str, Any]] = []
    agent = _server(at_agent, {"host": "node1", "state": "install", "mode": "install"})
    proxy = _server(at_proxy, {"host": "node1", "state": "none", "mode": "proxy"})
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.server_port}")
    try:
        yield f"http://127.0.0.1:{agent.server_port}", at_agent, at_proxy
    finally:
        agent.shutdown()
        proxy.shutdown()


def test_admin_call_with_a_token_goes_to_the_agent_not_the_proxy(agent_and_proxy) -> None:
    base, at_agent, at_proxy = agent_and_proxy
    answer = set_boot_mode(base, "node1", "install", TOKEN)
    assert answer["state"] == "install", answer  # the agent's answer, not the proxy's
    assert at_agent == [{"method": "POST", "path": "/v1/boot/install/node1", "auth": f"Bearer {TOKEN}"}]
    assert at_proxy == []


def test_status_read_goes_to_the_agent_not_the_proxy(agent_and_proxy) -> None:
    base, at_agent, at_proxy = agent_and_proxy
    assert boot_status(base, "node1")["state"] == "install"
    assert [r["path"] for r in at_agent] == ["/v1/boot/status/node1"] and at_proxy == []
