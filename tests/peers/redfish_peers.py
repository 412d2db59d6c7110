"""Independent Redfish services as test peers, each started as its own process on 127.0.0.1.

- ``MockupServer``: DMTF's Redfish-Mockup-Server serving one of DMTF's public mockups (static,
  vendor-shaped trees: a reset is answered 204 and the power state never changes), over TLS.
- ``InterfaceEmulator``: DMTF's Redfish-Interface-Emulator in dynamic mode (Flask), over TLS,
  with one System whose power state goes through PoweringOn/PoweringOff for a set delay.

The access log of each (one line per request) is how tests count the requests a peer got.

See README.md in this folder for where each file comes from and what, if anything, was changed.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from waiting import wait_until

PEERS = Path(__file__).parent
MOCKUPS = PEERS / "mockups"
# werkzeug colours some lines with ANSI escapes
_ACCESS = re.compile(r'"(?:\x1b\[[0-9;]*m)?([A-Z]+) (\S+) HTTP/[0-9.]+(?:\x1b\[[0-9;]*m)?" (\d{3})')


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass
class Peer:
    port: int
    ca_file: Path
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def requests(self, method: str | None = None, path_prefix: str = "") -> list[tuple[str, str, int]]:
        """(method, path, status) of every request the server has logged, oldest first."""
        out = []
        for m in _ACCESS.finditer(self.log.read_text(errors="replace")):
            verb, path, status = m.group(1), m.group(2), int(m.group(3))
            if (method is None or verb == method) and path.startswith(path_prefix):
                out.append((verb, path, status))
        return out

    def get(self, path: str) -> dict[str, object]:
        import requests

        r = requests.get(self.url + path, verify=str(self.ca_file), timeout=10)
        r.raise_for_status()
        data: dict[str, object] = r.json()
        return data

    def patch(self, path: str, body: dict[str, object]) -> None:
        """Change the served tree the way the server allows (merged in memory): a test's set-up."""
        import requests

        r = requests.patch(self.url + path, json=body, verify=str(self.ca_file), timeout=10)
        assert r.status_code in (200, 204), r.status_code


@dataclass
class MockupServer(Peer):
    mockup: str = ""


@dataclass
class InterfaceEmulator(Peer):
    power_delay: float = 0.0


def _wait_up(peer: Peer, what: str) -> None:
    def up() -> bool:
        if peer.proc.poll() is not None:
            raise AssertionError(f"{what} exited with {peer.proc.returncode}: {peer.log.read_text(errors='replace')[-2000:]}")
        return bool(peer.get("/redfish/v1/Systems").get("Members"))

    try:
        wait_until(up, timeout=90, what=what)
    except BaseException:
        stop_process(peer.proc)
        raise


def start_mockup_server(tmp: Path, mockup: str, cert: Path, key: Path) -> MockupServer:
    """Serve ``mockups/<mockup>`` (short form: the mockup's top folder is /redfish/v1) over TLS."""
    folder = MOCKUPS / mockup
    if not (folder / "index.json").is_file():
        raise FileNotFoundError(folder / "index.json")
    port = free_tcp_port()
    log = tmp / f"mockup-{mockup}-{port}.log"
    cmd = [sys.executable, str(PEERS / "mockup_launcher.py"), "-H", "127.0.0.1", "-p", str(port), "-D", str(folder), "-S"]
    cmd += ["-s", "--cert", str(cert), "--key", str(key)]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp)
    server = MockupServer(port, cert, log, proc, mockup=mockup)
    _wait_up(server, f"the Redfish mockup server ({mockup})")
    return server


def start_interface_emulator(tmp: Path, cert: Path, key: Path, power_delay: float = 2.0) -> InterfaceEmulator:
    """The emulator with one chassis and one System (``System-1``, from ``emulator-populate.json``),
    HTTPS with ``cert``/``key``; a reset reaches its power state after ``power_delay`` seconds."""
    import importlib.util
    import json
    import os
    import shutil

    from requirements import missing

    for module, package in (("flask", "Flask"), ("flask_restful", "Flask-RESTful"), ("strgen", "StringGenerator")):
        if importlib.util.find_spec(module) is None:
            missing(f"the Python package {package} (the Redfish Interface Emulator needs it; pip install -e '.[test]')")
    work = tmp / f"emulator-{free_tcp_port()}"
    work.mkdir()
    shutil.copy(cert, work / "server.crt")
    shutil.copy(key, work / "server.key")
    shutil.copy(PEERS / "emulator-populate.json", work / "emulator-populate.json")
    config = {"MODE": "Local", "HTTPS": "Enable", "TRAYS": [], "POPULATE": "emulator-populate.json", "SPEC": "Redfish", "MOCKUPFOLDERS": ["Redfish"]}
    (work / "emulator-config.json").write_text(json.dumps(config))
    port = free_tcp_port()
    log = work / "emulator.log"
    env = {**os.environ, "EMULATOR_POWER_DELAY": str(power_delay), "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as fh:
        cmd = [sys.executable, str(PEERS / "emulator_launcher.py"), "-port", str(port)]
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=work, env=env)
    emulator = InterfaceEmulator(port, cert, log, proc, power_delay=power_delay)
    _wait_up(emulator, "the Redfish Interface Emulator")
    return emulator
