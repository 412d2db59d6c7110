"""Property-based run of the published OpenAPI schema (/openapi.json) against the app in process:
a bounded number of examples per operation, with an admin token and without one; never a 500."""

from __future__ import annotations

import shutil

import pytest
import schemathesis
from api_helpers import ROOT, TOKENS, make_settings
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from vaquero.api.app import create_app
from vaquero.inspect import InspectionReport, ReportNic, inspection_key, record_inspection
from vaquero.state.machine import Event, transition
from vaquero.state.sqlite import SQLiteStore


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schema")
    store = SQLiteStore(tmp / "store.sqlite")
    lab = tmp / "lab"
    shutil.copytree(ROOT / "inventories" / "lab", lab)
    app = create_app(make_settings(tmp, allowed_sources=[str(lab)], cache_dir=tmp / "cache"), store)
    app.state.gate.start()
    # Something to find: a plan, a host with a timeline, a run.
    app.state.gate.submit_path(str(lab), actor="test")
    assert app.state.gate.wait_idle(30)
    transition(store, Event("node1", "pending", None, "test", "seeded"))
    store.put("/runs/r1", {"id": "r1", "state": "running", "started": 1.0})
    # Two reported machines, one proposed as a pull request and one refused, for GET /v1/inspections.
    for n, outcome in (
        (
            9,
            {
                "status": "proposed",
                "proposal": {
                    "kind": "pull",
                    "number": 31,
                    "url": "https://github.example.invalid/o/r/pull/31",
                    "branch": "vaquero/enroll-525400aa0009",
                    "path": "hosts/new-525400aa0009.yaml",
                    "host": "new-525400aa0009",
                    "address": "10.90.0.2",
                    "network": "prov",
                    "mac": "52:54:00:aa:00:09",
                },
            },
        ),
        (10, {"status": "refused", "reason": "hosts/new-525400aa000a.yaml:7: uuid: duplicate UUID"}),
    ):
        mac = f"52:54:00:aa:00:{n:02x}"
        value = record_inspection(store, InspectionReport(boot_mac=mac, nics=[ReportNic(name="ens3", mac=mac)], cpus=1, memory_mib=512), site="lab", agent="a")
        store.put(inspection_key(mac), value | outcome)
    yield app
    app.state.gate.stop()
    store.close()


def test_no_server_errors(app):
    # Driven through hypothesis directly (the pytest plugin's from_fixture does not run under this pytest).
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/v1/events")  # the endless stream has its own test
    headers = {"Authorization": f"Bearer {TOKENS['root'][1]}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    calls = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            nonlocal calls
            response = case.call(headers=headers)
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
            anonymous = case.call()
            case.validate_response(anonymous, checks=[not_a_server_error])
            if case.operation.path not in ("/healthz/live", "/healthz/ready", "/v1/webhooks/github"):
                assert anonymous.status_code == 401, (case.method, case.operation.path, anonymous.status_code)
            calls += 2

        check()
    assert calls > 200


HOSTILE_BODIES = {
    "nested-arrays": b"[" * 100_000 + b"]" * 100_000,
    "nested-objects": b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
    "nan": b'{"source": NaN, "subdir": NaN, "comment": NaN, "digest": NaN}',
    "not-utf8": b"\xff\xfe{}",
    "oversized": b'{"source": "' + b"a" * (26 << 20) + b'", "comment": "x"}',
}


def _concrete(path: str) -> str:
    """A path template with plausible parameter values (a name that exists where it matters)."""
    import re

    return re.sub(r"\{[^}]+\}", "node1", path)


def test_hostile_bodies_are_client_errors(app):
    """Every operation that takes a body answers deeply nested, NaN, non-UTF-8 and oversized bodies with a 4xx, never a 500."""
    from fastapi.testclient import TestClient

    spec = app.openapi()
    targets = [(m.upper(), p) for p, ops in spec["paths"].items() for m, op in ops.items() if "requestBody" in op or m in ("post", "put", "patch")]
    assert len(targets) >= 5
    headers = {"Authorization": f"Bearer {TOKENS['root'][1]}", "Content-Type": "application/json"}
    client = TestClient(app, raise_server_exceptions=False)
    seen = []
    for method, path in targets:
        for name, body in HOSTILE_BODIES.items():
            resp = client.request(method, _concrete(path), content=body, headers=headers)
            seen.append((method, path, name, resp.status_code))
            assert 400 <= resp.status_code < 500, (method, path, name, resp.status_code, resp.text[:300])
            assert len(resp.content) < 64 << 10, (method, path, name, "the answer echoes the body")
    assert len(seen) == len(targets) * len(HOSTILE_BODIES)
