"""Property-based run of the /v1/agents operations from the app's OpenAPI schema (router mounted
into create_app, in process): never a 500, responses match the schema, no token -> 401."""

from __future__ import annotations

import shutil

import pytest
import schemathesis
from fed_helpers import AGENT_TOKENS, READ_TOKEN, ROOT, SHA, move
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from vaquero.api.app import create_app
from vaquero.api.auth import require
from vaquero.api.settings import Settings, Tokens
from vaquero.federation.server import router
from vaquero.federation.tokens import AgentTokens
from vaquero.state.sqlite import SQLiteStore


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fedschema")
    root = tmp / "sot"
    shutil.copytree(ROOT / "inventories" / "federation", root)
    store = SQLiteStore(tmp / "store.sqlite")
    store.put("/sites-applied/current", {"sha": SHA, "root": str(root), "plan": "p1"})
    move(store, "etcd1", "ready", "pending", "netbooting")
    settings_ = Settings(data_dir=tmp, tokens=Tokens.parse(f"reader:read:{READ_TOKEN}", "test"))
    tokens = AgentTokens.parse("".join(f"{n}:agent:{t}\n" for n, t in AGENT_TOKENS.items()), "test")
    yield create_app(settings_, store, start_gate=False, routers=[router(store, settings_, operator_auth=require, agent_tokens=tokens)])
    store.close()


def test_agents_operations_never_fail(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(path_regex="^/v1/agents")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 5
    calls = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            nonlocal calls
            if "agent" in (case.path_parameters or {}) and calls % 2 == 0:
                case.path_parameters["agent"] = "east-agent-1"  # half the cases past the 403
            token = READ_TOKEN if case.operation.path == "/v1/agents" else AGENT_TOKENS["east-agent-1"]
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
            anonymous = case.call()
            case.validate_response(anonymous, checks=[not_a_server_error])
            assert anonymous.status_code in (401, 422), (case.method, case.operation.path, anonymous.status_code)
            calls += 2

        check()
    assert calls > 100


def test_hostile_bodies_are_client_errors(app):
    """Deeply nested, NaN, non-UTF-8 and oversized bodies on the agents' routes: a 4xx (413 when too large), never a 500."""
    from fastapi.testclient import TestClient

    from vaquero.federation.server import MAX_BODY

    bodies = {
        "nested-arrays": (b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None),
        "nested-detail": (
            b'{"events": [{"id": "ev-00000001", "host": "etcd1", "state": "installing", "detail": ' + b"[" * 50_000 + b"]" * 50_000 + b"}]}",
            None,
        ),
        "nan": (b'{"version": NaN, "queued": NaN, "started": NaN, "events": NaN}', None),
        "not-utf8": (b"\xff\xfe{}", None),
        "oversized": (b'{"armed": [' + b'"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",' * (MAX_BODY // 60) + b'"a"]}', 413),
    }
    client = TestClient(app, raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {AGENT_TOKENS['east-agent-1']}", "Content-Type": "application/json"}
    for path in ("/v1/agents/east-agent-1/events", "/v1/agents/east-agent-1/heartbeat", "/v1/agents/east-agent-1/inspections"):
        for name, (body, expected) in bodies.items():
            resp = client.post(path, content=body, headers=headers)
            assert 400 <= resp.status_code < 500, (path, name, resp.status_code, resp.text[:300])
            if expected is not None:
                assert resp.status_code == expected, (path, name, resp.status_code)
