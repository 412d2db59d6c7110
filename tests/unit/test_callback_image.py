"""wait_for_callback for image profiles, against a real HTTP server answering the agent's status
document: the image digest check after the install callback, and the wait for the installed OS's
phone home (only one at or after `since` counts)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from vaquero.callback import CallbackError, image_report_error, phoned_home, wait_for_callback

SHA = "ab" * 32
OTHER = "cd" * 32


@pytest.fixture
def status() -> Iterator[tuple[str, dict[str, Any]]]:
    doc: dict[str, Any] = {}

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}/v1/boot/status/node1", doc
    srv.shutdown()


def installed(report: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"host": "node1", "state": "installed", "since": 1000.0, "report": report, "deploy": [], "phoned_home_at": None, **extra}


def test_an_image_callback_must_report_success_and_the_sot_digest(status) -> None:
    url, doc = status
    doc.update(installed({"result": "success", "sha256": SHA, "disk": "vda"}))
    assert wait_for_callback(url, since=999, timeout=5, interval=0.05, image_sha256=SHA)["report"]["disk"] == "vda"
    doc.update(installed({"result": "success", "sha256": OTHER}))
    with pytest.raises(CallbackError, match=f"wrote an image with sha256 {OTHER}, the SoT's image has {SHA}"):
        wait_for_callback(url, since=999, timeout=5, interval=0.05, image_sha256=SHA)
    # An installer profile (no image digest to compare) takes any callback, as before.
    assert wait_for_callback(url, since=999, timeout=5, interval=0.05)["state"] == "installed"
    for report, why in (
        ({"sha256": SHA}, "says result 'None', not 'success'"),
        ({"result": "success"}, "reports no sha256"),
        ({"result": "success", "sha256": "AB" * 32}, "no sha256"),
    ):
        found = image_report_error(installed(report), SHA)
        assert found is not None and why in found, found


def test_a_reported_failure_ends_the_wait_at_once_with_its_reason(status) -> None:
    url, doc = status
    doc.update({"host": "node1", "state": "failed", "since": 1000.0, "report": {"result": "failure", "reason": "image sha256 mismatch"}})
    with pytest.raises(CallbackError, match="the installer of node1 reported a failure: image sha256 mismatch"):
        wait_for_callback(url, since=999, timeout=30, interval=0.05, image_sha256=SHA)


def test_phone_home_counts_only_at_or_after_since(status) -> None:
    url, doc = status
    doc.update(installed({"result": "success", "sha256": SHA}, phoned_home_at=500.0))
    assert not phoned_home(doc, 999) and phoned_home(doc, 500)
    with pytest.raises(CallbackError, match=r"no phone home from the installed OS within 0\.3s"):
        wait_for_callback(url, since=999, timeout=0.3, interval=0.05, wait_for="phone_home")

    def later() -> None:
        doc["phoned_home_at"] = 1200.0
        doc["report"] = {**doc["report"], "phone_home": {"event": "booted", "hostname": "node1"}}

    timer = threading.Timer(0.3, later)
    timer.start()
    got = wait_for_callback(url, since=999, timeout=30, interval=0.05, wait_for="phone_home")
    assert got["report"]["phone_home"]["hostname"] == "node1"
    with pytest.raises(CallbackError, match="wait_for must be one of install, phone_home"):
        wait_for_callback(url, wait_for="booted")
