"""Real peers for the BMC tests: an IPMI BMC fleet (vaquero.bmc.emulator, pyghmi), sushy-emulator
over TLS with basic auth, and fault servers (silent UDP, slow/500/flapping HTTP), all on loopback."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from ports import free_port
from requirements import need
from waiting import wait_until

from vaquero.bmc import Endpoint, Guard, GuardPolicy

HERE = Path(__file__).parent
LAB_SOT = HERE.parents[1] / "inventories" / "lab"
PASSWORD = "Pw-0f-the-BMC-9q7z"  # tests grep logs for this string
USERNAME = "admin"


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# --- IPMI ----------------------------------------------------------------------------------


@dataclass
class IpmiFleet:
    port: int
    count: int
    control_port: int
    proc: subprocess.Popen

    def endpoint(self, i: int = 0, **kw) -> Endpoint:
        args = {"kind": "ipmi", "address": "127.0.0.1", "username": USERNAME, "password": PASSWORD, "host": f"node{i}", "port": self.port + i}
        args.update(kw)
        return Endpoint(**args)

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.control_port}/", timeout=5) as r:
            return json.loads(r.read())

    def bmc_state(self, i: int = 0) -> dict:
        return self.state()[str(self.port + i)]


def lab_host(name: str):  # -> vaquero.sot.models.Host
    """A host of the lab SoT (inventories/lab): the peers that stand for it report its identity."""
    from vaquero.sot import load

    found = load(LAB_SOT, semantic=False).host(name)
    assert found is not None and found[1].uuid, f"{name} with a uuid in {LAB_SOT}"
    return found[1]


def start_ipmi_fleet(
    tmp: Path,
    count: int = 1,
    acpi_delay: float | None = 0.3,
    delay: float = 0.0,
    port: int | None = None,
    extra: tuple[str, ...] = (),
    uuids: tuple[str, ...] = (),
) -> IpmiFleet:
    """``count`` emulated BMCs; the i-th reports ``uuids[i]`` as its system UUID (a SoT host's), else one of its own."""
    pwfile = tmp / "ipmi-pw.txt"
    pwfile.write_text(PASSWORD)
    port = port or free_port(socket.SOCK_DGRAM, count)
    cport = free_port()
    cmd = [sys.executable, "-m", "vaquero.bmc.emulator", "--address", "127.0.0.1", "--port", str(port), "--count", str(count)]
    cmd += ["--username", USERNAME, "--password-file", str(pwfile), "--control-port", str(cport), "--delay", str(delay)]
    if acpi_delay is not None:
        cmd += ["--acpi-delay", str(acpi_delay)]
    cmd += list(extra)  # e.g. --stuck, --power-delay N
    for u in uuids:
        cmd += ["--uuid", u]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    fleet = IpmiFleet(port, count, cport, proc)
    try:
        wait_until(lambda: fleet.state() is not None, what="IPMI emulator")
    except Exception:
        stop(proc)
        raise
    return fleet


@pytest.fixture
def ipmi_bmc(tmp_path):
    fleet = start_ipmi_fleet(tmp_path, count=1)
    yield fleet
    stop(fleet.proc)


def ipmitool(ep: Endpoint, *args: str) -> str:
    """ipmitool against the same BMC (``-C 3``: cipher suite 3, else ~10 s a call). Password via env."""
    cmd = ["ipmitool", "-I", "lanplus", "-C", "3", "-H", ep.address, "-p", str(ep.port), "-U", ep.username, "-E", *args]
    env = {**os.environ, "IPMI_PASSWORD": ep.password.reveal()}
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30, env=env).stdout


# --- TLS -----------------------------------------------------------------------------------


def make_cert(tmp: Path, cn: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (also its own CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "bmc.crt", tmp / "bmc.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    return cert_path, key_path


# --- Redfish (sushy-emulator) ----------------------------------------------------------------

SESSIONS = "/redfish/v1/SessionService/Sessions"
# sushy-emulator's one System is the lab SoT's node1: its UUID and MAC come from the SoT, the one
# source of a host's identity, which the roles check the BMC against before driving it.
SUSHY_UUID = str(lab_host("node1").uuid)
SUSHY_MAC = lab_host("node1").macs[0]


@dataclass
class Sushy:
    port: int
    ca_file: Path
    proc: subprocess.Popen

    def endpoint(self, **kw) -> Endpoint:
        args = {"kind": "redfish", "address": "127.0.0.1", "username": USERNAME, "password": PASSWORD, "host": "rf-node", "port": self.port}
        args["ca_file"] = str(self.ca_file)
        args.update(kw)
        return Endpoint(**args)


def start_sushy(tmp: Path, power_delay: int = 0) -> Sushy:
    """sushy-emulator; a power request shows in its state ``power_delay`` s later (0: at once)."""
    import bcrypt

    cert, key = make_cert(tmp)
    htpasswd = tmp / "htpasswd"
    # a cheap bcrypt cost: 250 ms -> 20 ms a request (LAB.md)
    htpasswd.write_text(f"{USERNAME}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
    state = tmp / "sushy-state"
    state.mkdir()
    port = free_port()
    conf = tmp / "sushy.conf"
    systems = [{"uuid": SUSHY_UUID, "name": "fake", "power_state": "Off", "nics": [{"mac": SUSHY_MAC, "ip": "172.22.0.100"}]}]
    conf.write_text(
        f"SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\n"
        f"SUSHY_EMULATOR_SSL_CERT = '{cert}'\nSUSHY_EMULATOR_SSL_KEY = '{key}'\n"
        f"SUSHY_EMULATOR_AUTH_FILE = '{htpasswd}'\nSUSHY_EMULATOR_STATE_DIR = '{state}'\n"
        f"SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_FAKE_SYSTEMS = {systems!r}\n"
    )
    log = open(tmp / "sushy.log", "w")
    env = {**os.environ, "VQ_SUSHY_POWER_DELAY": str(power_delay)}
    proc = subprocess.Popen([sys.executable, str(HERE / "sushy_launcher.py"), "--config", str(conf)], stdout=log, stderr=subprocess.STDOUT, env=env)

    def up() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    try:
        wait_until(up, what="sushy-emulator")
    except Exception:
        stop(proc)
        raise
    return Sushy(port, cert, proc)


@pytest.fixture
def sushy(tmp_path):
    s = start_sushy(tmp_path)
    yield s
    stop(s.proc)


# --- fault servers ----------------------------------------------------------------------------


@pytest.fixture
def silent_udp():
    """A UDP socket that reads and never answers: an IPMI BMC whose packets are dropped."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    stop_evt = threading.Event()

    def drain():
        s.settimeout(0.2)
        while not stop_evt.is_set():
            try:
                s.recvfrom(4096)
            except OSError:
                pass

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    yield s.getsockname()[1]
    stop_evt.set()
    t.join(2)
    s.close()


class FaultHTTP:
    """A tiny real HTTP server on loopback: mode "500", "slow" (sleeps before answering), or "flap"
    (serves a minimal Redfish tree, but every 5th and 6th of each 8 requests get a 503: counted,
    not timed, so a loaded machine sees the same flapping as a quiet one)."""

    def __init__(self, mode: str, delay: float = 3.0) -> None:
        self.mode = mode
        self.delay = delay
        self.requests = 0
        self.refused = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def handle_one(self) -> None:
                outer.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if outer.mode == "slow":
                    time.sleep(outer.delay)
                down = outer.mode == "flap" and outer.requests % 8 in (5, 6)
                if outer.mode == "500" or down:
                    outer.refused += 1
                    self._send(500 if outer.mode == "500" else 503, {"error": {"code": "Base.1.0.GeneralError", "message": "internal error"}})
                    return
                self._send(200, _mini_redfish(self.path))

            do_GET = do_POST = do_PATCH = do_DELETE = handle_one

            def log_message(self, *a) -> None:
                return

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FaultHTTP:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _mini_redfish(path: str) -> dict:
    path = path.rstrip("/")
    if path == "/redfish/v1":
        return {"@odata.id": "/redfish/v1/", "Systems": {"@odata.id": "/redfish/v1/Systems"}, "Links": {"Sessions": {"@odata.id": SESSIONS}}}
    if path == "/redfish/v1/Systems":
        return {"Members": [{"@odata.id": "/redfish/v1/Systems/1"}]}
    return {"@odata.id": "/redfish/v1/Systems/1", "PowerState": "On", "Boot": {}, "Actions": {}}


@pytest.fixture
def fast_guard():
    """A private guard with short deadlines so fault tests end quickly (and breakers don't leak)."""
    # breaker_reset is long so an opened breaker is still open for the test's next call however
    # slowly a loaded machine gets there; each test has its own guard, nothing waits for it
    return Guard(concurrency=16, policy=GuardPolicy(attempt_timeout=4.0, deadline=10.0, retries=2, backoff_base=0.05, backoff_max=0.2, breaker_reset=60.0))


class RedfishLite:
    """A small real Redfish service on loopback for what sushy-emulator lacks: session auth
    (X-Auth-Token), 202 + task monitors for resets, ETags (If-Match) and a restricted
    ``ResetType@Redfish.AllowableValues`` (no GracefulShutdown, PowerCycle instead of restarts)."""

    def __init__(self, task_polls: int = 2) -> None:
        self.power = "Off"
        self.boot = {"BootSourceOverrideEnabled": "Disabled", "BootSourceOverrideTarget": "None", "BootSourceOverrideMode": "UEFI"}
        self.etag = 1
        self.tokens: set[str] = set()
        self.sessions_created = 0
        self.resets: list[str] = []
        self.basic_requests = 0
        self.task_polls = task_polls
        self.tasks: dict[str, int] = {}
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, code: int, body: dict | None = None, headers: dict | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict:
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n) or b"{}") if n else {}

            def _authed(self) -> bool:
                if self.headers.get("X-Auth-Token") in outer.tokens:
                    return True
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    import base64

                    outer.basic_requests += 1
                    return base64.b64decode(auth[6:]).decode() == f"{USERNAME}:{PASSWORD}"
                return False

            def do_GET(self) -> None:
                p = self.path.rstrip("/")
                if p == "/redfish/v1":
                    return self._send(200, {"Systems": {"@odata.id": "/redfish/v1/Systems"}, "Links": {"Sessions": {"@odata.id": SESSIONS}}})
                if not self._authed():
                    return self._send(401, {"error": {"message": "auth"}})
                if p == "/redfish/v1/Systems":
                    return self._send(200, {"Members": [{"@odata.id": "/redfish/v1/Systems/sys1"}]})
                if p == "/redfish/v1/Systems/sys1":
                    boot = dict(outer.boot)
                    boot["BootSourceOverrideTarget@Redfish.AllowableValues"] = ["None", "Pxe", "Hdd", "UefiHttp"]
                    boot["BootSourceOverrideMode@Redfish.AllowableValues"] = ["UEFI"]
                    return self._send(
                        200,
                        {
                            "@odata.id": "/redfish/v1/Systems/sys1",
                            "Id": "sys1",
                            "UUID": "11111111-2222-3333-4444-555555555555",
                            "Manufacturer": "Lite",
                            "Model": "L1",
                            "SerialNumber": "SN123",
                            "PowerState": outer.power,
                            "Boot": boot,
                            "Actions": {
                                "#ComputerSystem.Reset": {
                                    "target": "/redfish/v1/Systems/sys1/Actions/ComputerSystem.Reset",
                                    "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "PowerCycle"],
                                }
                            },
                        },
                        {"ETag": f'W/"{outer.etag}"'},
                    )
                if p.startswith("/redfish/v1/TaskService/TaskMonitors/"):
                    tid = p.rsplit("/", 1)[-1]
                    left = outer.tasks.get(tid, 0)
                    if left > 0:
                        outer.tasks[tid] = left - 1
                        return self._send(202, {"TaskState": "Running"}, {"Retry-After": "0"})
                    return self._send(200, {"TaskState": "Completed", "TaskStatus": "OK"})
                return self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                p = self.path.rstrip("/")
                body = self._body()
                if p == "/redfish/v1/SessionService/Sessions":
                    if body.get("UserName") == USERNAME and body.get("Password") == PASSWORD:
                        outer.sessions_created += 1
                        token = f"tok{outer.sessions_created}"
                        outer.tokens.add(token)
                        return self._send(201, {"Id": token}, {"X-Auth-Token": token, "Location": f"/redfish/v1/SessionService/Sessions/{token}"})
                    return self._send(401, {"error": {"message": "bad credentials"}})
                if not self._authed():
                    return self._send(401, {"error": {"message": "auth"}})
                if p == "/redfish/v1/Systems/sys1/Actions/ComputerSystem.Reset":
                    rt = body.get("ResetType")
                    if rt not in ("On", "ForceOff", "PowerCycle"):
                        return self._send(400, {"error": {"message": f"bad ResetType {rt}"}})
                    outer.resets.append(rt)
                    outer.power = "Off" if rt == "ForceOff" else "On"
                    tid = str(len(outer.resets))
                    outer.tasks[tid] = outer.task_polls
                    return self._send(202, {}, {"Location": f"/redfish/v1/TaskService/TaskMonitors/{tid}"})
                return self._send(404, {"error": {"message": "not found"}})

            def do_PATCH(self) -> None:
                if not self._authed():
                    return self._send(401, {"error": {"message": "auth"}})
                if self.headers.get("If-Match") != f'W/"{outer.etag}"':
                    return self._send(412, {"error": {"message": "etag mismatch"}})
                boot = self._body().get("Boot", {})
                outer.boot.update(boot)
                outer.etag += 1
                return self._send(204)

            def do_DELETE(self) -> None:
                tok = self.path.rstrip("/").rsplit("/", 1)[-1]
                outer.tokens.discard(tok)
                return self._send(204)

            def log_message(self, *a) -> None:
                return

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def endpoint(self, **kw) -> Endpoint:
        args = {"kind": "redfish", "address": "127.0.0.1", "username": USERNAME, "password": PASSWORD, "host": "lite", "port": self.port, "scheme": "http"}
        args.update(kw)
        return Endpoint(**args)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def redfish_lite():
    srv = RedfishLite()
    yield srv
    srv.close()


# --- ipmi_sim (OpenIPMI) -----------------------------------------------------------------------

IPMI_SIM_GUID = "a123456789abcdefa123456789abcdef"
_CHASSIS = """#!/bin/sh
# ipmi_sim chassis control: keep power and boot in files, log every call
dir=$(dirname "$0")
echo "$@" >> "$dir/calls.log"
shift
op=$1; shift
case "$op" in
  get) for p in "$@"; do
         case $p in
           power) echo "power:$(cat "$dir/power" 2>/dev/null || echo 0)";;
           boot) echo "boot:$(cat "$dir/boot" 2>/dev/null || echo default)";;
         esac
       done;;
  set) while [ $# -gt 1 ]; do echo "$2" > "$dir/$1"; shift 2; done;;
esac
exit 0
"""


@dataclass
class IpmiSim:
    port: int
    folder: Path
    proc: subprocess.Popen

    def endpoint(self, **kw) -> Endpoint:
        args = {"kind": "ipmi", "address": "127.0.0.1", "username": USERNAME, "password": PASSWORD, "host": "sim-node", "port": self.port}
        args.update(kw)
        return Endpoint(**args)

    def calls(self) -> list[str]:
        log = self.folder / "calls.log"
        return [line.split(" ", 1)[1] for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def ipmi_sim(tmp_path):
    """OpenIPMI's ipmi_sim, a second, independent IPMI implementation, on a loopback port."""
    need("ipmi_sim", "openipmi")
    folder = tmp_path / "ipmi_sim"
    (folder / "state").mkdir(parents=True)
    port, serial = free_port(socket.SOCK_DGRAM), free_port()
    script = folder / "chassis.sh"
    script.write_text(_CHASSIS)
    script.chmod(0o755)
    (folder / "lan.conf").write_text(
        f'name "vaquero-test"\nset_working_mc 0x20\n  startlan 1\n    addr 127.0.0.1 {port}\n    priv_limit admin\n'
        "    allowed_auths_admin md5\n"
        f"    guid {IPMI_SIM_GUID}\n  endlan\n"
        f"  serial 15 127.0.0.1 {serial} codec VM ipmb 0x20\n"
        f'  chassis_control "{script} 0x20"\n'
        f'  user 2 true "{USERNAME}" "{PASSWORD}" admin 10 md5\n'
    )
    (folder / "sim.emu").write_text("mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n")
    proc = subprocess.Popen(
        ["ipmi_sim", "-c", str(folder / "lan.conf"), "-f", str(folder / "sim.emu"), "-s", str(folder / "state"), "-n"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=folder,
    )
    sim = IpmiSim(port, folder, proc)
    try:
        wait_until(lambda: "Chassis Power" in ipmitool(sim.endpoint(), "chassis", "power", "status"), what="ipmi_sim")
    except Exception:
        stop(proc)
        raise
    (folder / "calls.log").unlink(missing_ok=True)
    yield sim
    stop(proc)
