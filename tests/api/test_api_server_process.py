"""`vaquero server` as a real process over HTTPS (a self-signed certificate made with openssl, as
docs/api.md shows), driven by a signed webhook and by `vaquero apply`; its log lines are JSON and
carry no secret."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time

import httpx
import pytest
from api_helpers import GITHUB_TOKEN, SECRETS, TOKENS, WEBHOOK_SECRET, add_host, free_port, push_body, webhook_headers
from requirements import need


@pytest.fixture(autouse=True)
def _openssl() -> None:
    need("openssl")


def make_cert(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_server_over_https_webhook_and_apply(tmp_path, sot_repo):
    cert, key = make_cert(tmp_path)
    (tmp_path / "tokens").write_text("".join(f"{n}:{role}:{tok}\n" for n, (role, tok) in TOKENS.items()))
    (tmp_path / "hook-secret").write_text(WEBHOOK_SECRET + "\n")
    (tmp_path / "gh-token").write_text(GITHUB_TOKEN)
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAQUERO_")} | {"VAQUERO_CACHE": str(tmp_path / "not-used")}
    cmd = [sys.executable, "-m", "vaquero.cli", "server", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")]
    cmd += [
        "--tokens-file",
        str(tmp_path / "tokens"),
        "--webhook-secret-file",
        str(tmp_path / "hook-secret"),
        "--github-token-file",
        str(tmp_path / "gh-token"),
    ]
    cmd += ["--github-api", "http://127.0.0.1:9", "--repo", sot_repo.url, "--repo-name", "vaquero-test/sot", "--cert", str(cert), "--key", str(key)]
    cmd += ["--log-level", "debug"]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    base = f"https://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, verify=ssl.create_default_context(cafile=str(cert)), timeout=30) as client:
            deadline = time.monotonic() + 90  # bounds a hang only
            while True:
                try:
                    if client.get("/healthz/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            with pytest.raises(httpx.TransportError):  # HTTPS only
                httpx.get(f"http://127.0.0.1:{port}/healthz/live", timeout=5)

            sha = sot_repo.commit("lab")
            body = push_body(sot_repo.url, sha)
            resp = client.post("/v1/webhooks/github", content=body, headers=webhook_headers(body))
            assert resp.status_code == 202, resp.text

            second = sot_repo.commit("node5", add_host("node5", 5))
            apply_env = env | {"VAQUERO_TOKEN": TOKENS["alice"][1]}
            out = subprocess.run(
                [sys.executable, "-m", "vaquero.cli", "apply", f"{sot_repo.url}@{second}", "--server", base, "--cacert", str(cert)],
                capture_output=True,
                text=True,
                env=apply_env,
                timeout=120,
            )
            assert out.returncode == 0, out.stderr
            assert "+ host node5 will be installed [add]" in out.stdout and "pending_approval" in out.stderr
            # A read token may not trigger: the client says so and exits non-zero.
            denied = subprocess.run(
                [sys.executable, "-m", "vaquero.cli", "apply", f"{sot_repo.url}@{second}", "--server", base, "--cacert", str(cert)],
                capture_output=True,
                text=True,
                env=env | {"VAQUERO_TOKEN": TOKENS["reader"][1]},
                timeout=60,
            )
            assert denied.returncode == 2 and "403" in denied.stderr
            # `vaquero run approve --digest` binds to the plan the approver read: a wrong digest is a 409.
            reader = {"Authorization": f"Bearer {TOKENS['reader'][1]}"}
            pending = [p for p in client.get("/v1/plans", headers=reader).json()["plans"] if p["sha"] == second]
            assert [p["state"] for p in pending] == ["pending_approval"], pending
            plan = client.get(f"/v1/plans/{pending[0]['id']}", headers=reader).json()
            run_cli = [sys.executable, "-m", "vaquero.cli", "run", "approve", plan["id"], "--server", base, "--cacert", str(cert)]
            wrong = subprocess.run([*run_cli, "--digest", "0" * 64], capture_output=True, text=True, env=apply_env, timeout=60)
            assert wrong.returncode != 0 and "409" in wrong.stderr, wrong.stderr
            assert client.get(f"/v1/plans/{plan['id']}", headers=reader).json()["state"] == "pending_approval"
            right = subprocess.run([*run_cli, "--digest", plan["digest"]], capture_output=True, text=True, env=apply_env, timeout=60)
            assert right.returncode == 0, right.stderr
            assert client.get(f"/v1/plans/{plan['id']}", headers=reader).json()["state"] in ("approved", "running", "succeeded", "failed")
            plans = client.get("/v1/plans", headers={"Authorization": f"Bearer {TOKENS['reader'][1]}"}).json()["plans"]
            assert {p["sha"] for p in plans} == {sha, second}
            metrics = client.get("/metrics", headers={"Authorization": f"Bearer {TOKENS['reader'][1]}"}).text
            assert 'vaquero_webhook_deliveries_total{event="push",result="queued"} 1.0' in metrics
            # The commit status could not be posted (nothing listens there): counted as an error.
            assert 'vaquero_errors_total{kind="github_status"}' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    text = log_path.read_text()
    for secret in SECRETS:
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert lines and len(lines) == len([line for line in text.splitlines() if line.strip()]), text
    assert any(x.get("sha") == second and x.get("plan") and "ready" in x["msg"] for x in lines)
    assert any(x["level"] == "debug" for x in lines) or any("GET /healthz/ready" in x["msg"] for x in lines)
