"""Issue 10 item 16: the agent serves its API over TLS, and never sends its controller token in clear.

A private CA is made in the test (cryptography); a real agent process serves HTTPS with a leaf
it signed. `vaquero agent --controller http://...` is refused before anything is sent (a listener
on that port sees no connection), unless the explicit lab flag `--insecure-http`, which warns.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sec_agent_helpers import REPO, AgentProc, script_token, wait_for

from vaquero.federation.client import ClientConfig, FederationClient


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(directory: Path, label: str) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{label} test CA"))
        .issuer_name(_name(f"{label} test CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{label}-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def make_leaf(directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("agent"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "agent.pem", directory / "agent.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    d = tmp_path / "pki"
    d.mkdir()
    ca_path, ca_key, ca = make_ca(d, "site")
    other_ca, _, _ = make_ca(d, "other")
    cert, key = make_leaf(d, ca_key, ca)
    return ca_path, other_ca, cert, key


@pytest.fixture
def tls_agent(tmp_path: Path, pki: tuple[Path, Path, Path, Path]) -> Iterator[AgentProc]:
    ca, _, cert, key = pki
    a = AgentProc(tmp_path / "agent", extra=["--tls-cert", str(cert), "--tls-key", str(key)], scheme="https", verify=ssl.create_default_context(cafile=str(ca)))
    try:
        yield a
    finally:
        a.stop()


def test_agent_api_over_tls(tls_agent: AgentProc, pki: tuple[Path, Path, Path, Path]) -> None:
    _, other_ca, _, _ = pki
    # the pre-rendered fast path and the dispatcher both answer over TLS
    assert "sanboot" in tls_agent.script("node1")
    with tls_agent.client() as c:
        assert c.post("/v1/boot/install/node1").status_code == 401
        r = c.post("/v1/boot/install/node1", headers=tls_agent.admin())
        assert r.status_code == 200 and r.json()["state"] == "install"
        script = tls_agent.script("node1")
        token = script_token(script)
        assert f"vaquero.config={tls_agent.base}/v1/boot/config/node1?token={token}" in script  # installers are sent to https
        assert c.get(f"/v1/boot/config/node1?token={token}").status_code == 200
        assert c.post(f"/v1/boot/callback/node1?token={token}", json={}).status_code == 200
    # a client that trusts another CA refuses the agent's certificate: the chain really is checked
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=ssl.create_default_context(cafile=str(other_ca)), timeout=10) as c:
        c.get(f"{tls_agent.base}/healthz")
    # plain HTTP to the TLS port gets no answer from the application
    answer = b""
    with socket.create_connection(("127.0.0.1", tls_agent.port), timeout=20) as s:
        s.sendall(b"POST /v1/boot/install/node2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert not answer.startswith(b"HTTP/1.1 200")
    assert tls_agent.status("node2")["state"] == "none"


def _agent_cmd(tmp: Path, url: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "vaquero.cli", "agent", "--controller", url, "--agent", "east-agent-1", "--site", "dc-east",
        "--state-dir", str(tmp / "state"), "--listen", "127.0.0.1", "--http-port", "0", "--tftp-port", "0", "--no-dhcp", "--no-fetch-assets",
        *extra,
    ]  # fmt: skip


def test_controller_over_http_refused(tmp_path: Path) -> None:
    token = "ctl-" + secrets.token_urlsafe(24)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("VAQUERO_")}, "VAQUERO_CONTROLLER_TOKEN": token}
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        res = subprocess.run(_agent_cmd(tmp_path, url), env=env, capture_output=True, timeout=120, cwd=REPO)
        out = (res.stdout + res.stderr).decode(errors="replace")
        assert res.returncode != 0
        assert "https://" in out and "--insecure-http" in out and "in clear" in out
        assert token not in out
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody ever connected: the token was never sent

    # the library refuses too, whoever builds the client
    with pytest.raises(ValueError, match="https"):
        FederationClient(ClientConfig(controller=url, agent="a", token=token, state_dir=tmp_path / "lib"))


def test_insecure_http_is_explicit_and_warns(tmp_path: Path) -> None:
    token = "ctl-" + secrets.token_urlsafe(24)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("VAQUERO_")}, "VAQUERO_CONTROLLER_TOKEN": token}
    log = tmp_path / "agent.log"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(60)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with log.open("ab") as out:
            proc = subprocess.Popen(_agent_cmd(tmp_path, url, "--insecure-http"), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            conn, _ = listener.accept()  # the lab flag lets it through ...
            conn.close()
            wait_for(lambda: "insecure-http" in log.read_text(errors="replace"), 60, "the warning")
            text = log.read_text(errors="replace")
            warned = [line for line in text.splitlines() if "--insecure-http" in line and "in clear" in line]
            assert warned and "warning" in warned[0].lower(), text[-2000:]
            assert token not in text  # ... with a warning, and still never logs the token
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(20)
