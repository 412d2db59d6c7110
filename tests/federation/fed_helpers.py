"""Real parts for the federation tests: a CA and a controller certificate made with `cryptography`,
token files, a controller in its own process (optionally in a network namespace behind a veth
that a test can cut), and the example two-site SoT applied in an SQLite store."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vaquero.agent.federated import FederatedAgent, bundle_check
from vaquero.agent.service import AgentConfig
from vaquero.federation.client import ClientConfig, FederationClient
from vaquero.state.machine import Event, transition
from vaquero.state.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SHA = "5e7c0ffee" + "0" * 31

AGENT_TOKENS = {
    "east-agent-1": "agt-east1-" + secrets.token_hex(12),
    "east-agent-2": "agt-east2-" + secrets.token_hex(12),
    "west-agent-1": "agt-west1-" + secrets.token_hex(12),
}
READ_TOKEN = "tok-reader-" + secrets.token_hex(12)
SECRETS = [*AGENT_TOKENS.values(), READ_TOKEN]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path  # a CA that did not sign the controller's certificate


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_pki(directory: Path, ips: list[str]) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _ca("vaquero test CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), *(x509.IPAddress(ipaddress.ip_address(i)) for i in ips)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("vaquero controller"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out = Pki(ca=directory / "ca.pem", cert=directory / "controller.pem", key=directory / "controller.key", other_ca=directory / "other-ca.pem")
    out.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    out.key.chmod(0o600)
    out.other_ca.write_bytes(_ca("someone else")[1].public_bytes(serialization.Encoding.PEM))
    return out


NETNS_IPS = ("10.231.77.1", "10.231.77.2")  # host side, controller side


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), ["127.0.0.1", NETNS_IPS[1]])


@dataclass
class TokenFiles:
    api: Path
    agents: Path


@pytest.fixture
def tokens_files(tmp_path: Path) -> TokenFiles:
    api = tmp_path / "api-tokens"
    api.write_text(f"reader:read:{READ_TOKEN}\n")
    agents = tmp_path / "agent-tokens"
    agents.write_text("# one line per agent: name:agent:token\n" + "".join(f"{n}:agent:{t}\n" for n, t in AGENT_TOKENS.items()) + f"reader:read:{READ_TOKEN}\n")
    for p in (api, agents):
        p.chmod(0o600)
    return TokenFiles(api, agents)


@dataclass
class Applied:
    root: Path
    store_path: Path

    def store(self) -> SQLiteStore:
        return SQLiteStore(self.store_path)


def move(store: SQLiteStore, host: str, *states: str, plan: str | None = None, attempt: int | None = None) -> None:
    for st in states:
        transition(store, Event(host=host, state=st, previous=None, actor="test", reason="test set-up", sha=SHA, plan=plan, attempt=attempt))


@pytest.fixture
def applied_sot(tmp_path: Path) -> Applied:
    """The example federation SoT, applied at SHA: /sites-applied/current written as the runner would."""
    root = tmp_path / "sot"
    shutil.copytree(ROOT / "inventories" / "federation", root)
    path = tmp_path / "controller" / "store.sqlite"
    store = SQLiteStore(path)
    store.put("/sites-applied/current", {"sha": SHA, "root": str(root), "plan": "p-test-1"})
    move(store, "etcd1", "ready", "pending", "netbooting", "installing")  # intent install
    move(store, "etcd2", "ready")  # intent localboot
    store.close()
    return Applied(root, path)


class Controller:
    """`ctl_main.py` in its own process, on loopback or inside a network namespace behind a veth."""

    def __init__(self, tmp: Path, applied: Applied, pki: Pki, tokens: TokenFiles, *, netns: bool = False) -> None:
        self.tmp, self.applied, self.pki, self.tokens = tmp, applied, pki, tokens
        self.netns = f"vqfed-{os.getpid()}-{secrets.token_hex(2)}" if netns else None
        self.veth = f"vqf{secrets.token_hex(3)}"
        self.host = NETNS_IPS[1] if netns else "127.0.0.1"
        self.port = 18443 if netns else free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "controller.log"
        if self.netns:
            try:
                self._net()
            except BaseException:
                self.close()
                raise

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def _net(self) -> None:
        assert self.netns
        ip = ["ip"]
        subprocess.run([*ip, "netns", "add", self.netns], check=True)
        subprocess.run([*ip, "link", "add", self.veth, "type", "veth", "peer", "name", "ctl0", "netns", self.netns], check=True)
        subprocess.run([*ip, "addr", "add", f"{NETNS_IPS[0]}/30", "dev", self.veth], check=True)
        subprocess.run([*ip, "link", "set", self.veth, "up"], check=True)
        subprocess.run([*ip, "-n", self.netns, "addr", "add", f"{NETNS_IPS[1]}/30", "dev", "ctl0"], check=True)
        subprocess.run([*ip, "-n", self.netns, "link", "set", "ctl0", "up"], check=True)
        subprocess.run([*ip, "-n", self.netns, "link", "set", "lo", "up"], check=True)
        # Whatever happens to the veth, traffic for the test subnet never takes the default route out.
        subprocess.run([*ip, "route", "add", "unreachable", "10.231.77.0/30", "metric", "4000"], check=True)

    def cut(self) -> None:
        """The partition: the controller's end of the veth goes down (no carrier); packets to it are dropped
        here, and the safety-net route below keeps them from ever leaving this machine."""
        assert self.netns
        subprocess.run(["ip", "-n", self.netns, "link", "set", "ctl0", "down"], check=True)

    def heal(self) -> None:
        assert self.netns
        subprocess.run(["ip", "-n", self.netns, "link", "set", "ctl0", "up"], check=True)

    def start(self) -> None:
        cmd = [
            sys.executable,
            str(HERE / "ctl_main.py"),
            str(self.applied.store_path),
            str(self.tokens.api),
            str(self.tokens.agents),
            str(self.pki.cert),
            str(self.pki.key),
            self.host,
            str(self.port),
        ]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        out = self.log.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 90  # bounds a hang only
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(f"{self.url}/healthz/live", verify=self.ssl(), timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"controller did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self.netns:
            subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
            subprocess.run(["ip", "route", "del", "unreachable", "10.231.77.0/30", "metric", "4000"], capture_output=True)
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)

    def ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki.ca))

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, verify=self.ssl(), headers=headers, timeout=10)


def wait_for(cond: Any, timeout: float = 60.0, what: str = "condition") -> None:
    # A deadline only bounds a hang: callers' shorter figures are raised to a minute so a loaded
    # machine cannot fail a test that a quiet one passes.
    deadline = time.monotonic() + max(timeout, 60.0)
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def need_root_netns() -> None:
    from requirements import need, need_root

    need_root("the partition test makes network namespaces")
    need("ip", "iproute2")


def boot_request(state_dir: Path, path: str) -> tuple[str, dict[str, str]]:
    """`path` and headers as a legitimate caller sends them: the agent's admin token (made in its
    state folder), and for a callback the host's one-time install token (kept in its boot states)."""
    headers = {"Authorization": f"Bearer {(state_dir / 'admin-token').read_text().strip()}"}
    if path.startswith("/v1/boot/callback/"):
        host = path.rsplit("/", 1)[-1]
        states = json.loads((state_dir / "boot-states.json").read_text())["hosts"]
        path += f"?token={states[host]['token']}"
    return path, headers


class RunningAgent:
    """What `vaquero agent --controller` runs, in this process: sync client + boot server."""

    def __init__(self, ctl: Controller, state_dir: Path, port: int) -> None:
        cfg = ClientConfig(
            controller=ctl.url,
            agent="east-agent-1",
            token=AGENT_TOKENS["east-agent-1"],
            state_dir=state_dir,
            ca_file=str(ctl.pki.ca),
            interval=0.3,
            backoff_base=0.1,
            backoff_max=0.8,
            timeout=2.0,
        )
        self.client = FederationClient(cfg, check=bundle_check("dc-east", "east-agent-1"))
        self.client.wait_for_bundle(timeout=90)  # bounds a hang only
        assert self.client.sot_path is not None
        acfg = AgentConfig(
            sot=str(self.client.sot_path),
            site="dc-east",
            agent="east-agent-1",
            listen="127.0.0.1",
            http_port=port,
            tftp_port=0,
            state_dir=state_dir,
            asset_root=state_dir / "assets",
            dhcp=False,
            fetch_assets=False,
        )
        self.state_dir = state_dir
        self.fa = FederatedAgent(self.client, acfg)
        app = self.fa.prepare()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", access_log=False, log_config=None))
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{port}"
        wait_for(lambda: self._up(), 10, "the boot server")
        self.client.start()

    def _up(self) -> bool:
        try:
            return httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=5)

    def post(self, path: str, body: Any = None) -> httpx.Response:
        path, headers = boot_request(self.state_dir, path)
        return httpx.post(self.base + path, json=body or {}, headers=headers, timeout=5)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(10)
