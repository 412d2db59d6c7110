"""The playbooks and roles with real ansible-playbook: a run needs an explicit target, and bad host
input fails at argument validation, before the site agent (which arms a host for install) hears
anything about that host.

The agent is a recording HTTP server: it only observes. Every request it gets fails (HTTP 503), so
a host that passes validation stops at its first agent call; that host is the control showing the
recorder does see what reaches it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bmc"))  # the BMC peers' launchers

from bmc_helpers import PASSWORD, lab_host, start_ipmi_fleet, stop

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COLLECTION = REPO / "ansible_collections" / "vaquero" / "metal"


class Recorder(BaseHTTPRequestHandler):
    seen: list[str]

    def _answer(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def agent() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sot(tmp_path: Path, agent: tuple[str, list[str]]) -> Path:
    """The lab SoT, its agent the recorder; node1 has no BMC, node3's BMC password variable is unset."""
    root = tmp_path / "sot"
    shutil.copytree(REPO / "inventories" / "lab", root)
    site = root / "sites" / "lab.yaml"
    text = site.read_text().replace("url: http://10.90.0.1:8080", f"url: {agent[0]}")
    text = text.replace("credentials:\n", "credentials:\n  unset-bmc:\n    username: admin\n    password:\n      env: VAQUERO_TEST_UNSET_BMC_PW\n", 1)
    site.write_text(text)
    cluster = root / "clusters" / "lab.yaml"
    text = cluster.read_text().replace("    bmc: {type: ipmi, address: 127.0.0.1, port: 6231, credential: lab-bmc}\n", "")
    text = text.replace("port: 6233, credential: lab-bmc", "port: 6233, credential: unset-bmc")
    cluster.write_text(text)
    return root


def playbook(sot: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VAQUERO_TEST_UNSET_BMC_PW"}
    env.update(ANSIBLE_NOCOLOR="1", VAQUERO_LAB_BMC_PASSWORD=PASSWORD, VAQUERO_AGENT_TOKEN="roles-guard-token")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(sot / "inventory.vaquero.yml"), f"playbooks/{name}", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines: host -> {ok: n, changed: n, failed: n, ...}."""
    out = {}
    for line in stdout.split("PLAY RECAP", 1)[-1].splitlines():
        m = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if m:
            out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


def failed_task(stdout: str, host: str) -> str:
    """The name of the task that failed for `host`."""
    task = None
    for line in stdout.splitlines():
        m = re.match(r"^TASK \[(.*)\] \*+$", line)
        if m:
            task = m.group(1)
        if line.startswith(f"fatal: [{host}]"):
            assert task is not None
            return task
    raise AssertionError(f"no failure for {host} in:\n{stdout[-3000:]}")


@pytest.mark.parametrize("name", ["install.yml", "upgrade.yml", "power.yml"])
def test_playbook_without_a_target_refuses_before_any_host(sot: Path, agent: tuple[str, list[str]], name: str) -> None:
    res = playbook(sot, name)
    assert res.returncode != 0, res.stdout[-3000:]
    assert "No target given" in res.stdout and "--limit" in res.stdout and "vaquero_targets" in res.stdout, res.stdout[-3000:]
    assert set(recap(res.stdout)) == {"localhost"}, res.stdout[-3000:]  # no play reached a SoT host
    assert agent[1] == []


def test_vaquero_targets_names_the_hosts(sot: Path) -> None:
    res = playbook(sot, "install.yml", "-e", "vaquero_targets=node1")
    assert set(recap(res.stdout)) == {"localhost", "node1"}, res.stdout[-3000:]


def test_bad_bmc_input_fails_at_validation_before_the_agent_hears_of_the_host(sot: Path, agent: tuple[str, list[str]], tmp_path: Path) -> None:
    # node2's BMC: an emulated one reporting node2's SoT uuid, so node2 passes the roles' identity check
    fleet = start_ipmi_fleet(tmp_path, uuids=(lab_host("node2").uuid,))
    cluster = sot / "clusters" / "lab.yaml"
    cluster.write_text(cluster.read_text().replace("port: 6232,", f"port: {fleet.port},"))
    try:
        res = playbook(sot, "install.yml", "--limit", "node1,node2,node3")
    finally:
        stop(fleet.proc)
    assert res.returncode == 2, res.stdout[-3000:]
    rc = recap(res.stdout)
    assert "localhost" not in rc  # --limit: the guard play has no host
    # node1 (no BMC): the argument spec of vaquero.metal.bmc_connection, the first task it meets.
    assert failed_task(res.stdout, "node1").startswith("vaquero.metal.bmc_connection : Validating arguments against arg spec"), res.stdout[-3000:]
    assert "vaquero_bmc" in res.stdout and rc["node1"]["ok"] == 0 and rc["node1"]["changed"] == 0
    # node3 (password variable unset): the password check, before any role task.
    assert failed_task(res.stdout, "node3") == "vaquero.metal.bmc_connection : Check that the BMC password reference can be read"
    assert "VAQUERO_TEST_UNSET_BMC_PW" in res.stdout
    # node2 (valid) is the control: it went on to ask the agent, and failed there.
    assert failed_task(res.stdout, "node2") == "vaquero.metal.netboot_install : Serve the installer to the host"
    assert agent[1] and all("/node2" in r for r in agent[1]), agent[1]
    assert PASSWORD not in res.stdout + res.stderr


def test_role_argument_spec_refuses_malformed_bmc(tmp_path: Path) -> None:
    """Unknown keys and bad choices in vaquero_bmc are refused by the spec, without touching anything."""
    play = tmp_path / "play.yml"
    play.write_text(
        "- name: Spec check\n  hosts: all\n  gather_facts: false\n  connection: local\n  roles:\n    - role: vaquero.metal.bmc_connection\n",
    )
    good = {"type": "ipmi", "address": "127.0.0.1", "username": "admin", "password_env": "SPEC_PW"}
    cases = {
        "unknown key": ({**good, "bogus": 1}, "bogus"),
        "bad type": ({**good, "type": "telnet"}, "telnet"),
        "no password reference": ({k: v for k, v in good.items() if k != "password_env"}, "password_env"),
    }
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "SPEC_PW": "spec-pw", "ANSIBLE_COLLECTIONS_PATH": str(REPO)}
    for what, (bmc, word) in cases.items():
        extra = tmp_path / "extra.yml"
        extra.write_text(yaml.safe_dump({"vaquero_bmc": bmc}))
        res = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", "localhost,", str(play), "-e", f"@{extra}"], env=env, capture_output=True, text=True, timeout=120
        )
        assert res.returncode == 2, (what, res.stdout[-2000:])
        assert "Validating arguments against arg spec" in failed_task(res.stdout, "localhost") and word in res.stdout, (what, res.stdout[-2000:])
    extra = tmp_path / "extra.yml"
    extra.write_text(yaml.safe_dump({"vaquero_bmc": good}))
    res = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(play), "-e", f"@{extra}"], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout[-2000:]


def _bmc_modules() -> set[str]:
    """Modules whose documentation takes the BMC connection options (the vaquero.metal.bmc doc fragment)."""
    found = set()
    for path in (COLLECTION / "plugins" / "modules").glob("*.py"):
        if re.search(r"^extends_documentation_fragment:\n(?:  - .*\n)*  - vaquero\.metal\.bmc\n", path.read_text(), re.M):
            found.add(path.stem)
    return found


def test_one_action_group_and_one_connection_block() -> None:
    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    assert set(runtime["action_groups"]["bmc"]) == _bmc_modules() >= {"power", "boot_device", "bmc_info"}
    content = [*(COLLECTION / "roles").rglob("*.yml"), *(REPO / "playbooks").glob("*.yml")]
    places = [p for p in content if re.search(r"\bbmc_password:", p.read_text())]
    assert places == [COLLECTION / "roles" / "bmc_connection" / "defaults" / "main.yml"], places
    # Every BMC task gets its options from module_defaults: none names a connection option itself.
    for path in content:
        for task in re.findall(r"vaquero\.metal\.(?:power|boot_device|bmc_info):\n((?:\s{4,}.*\n)*)", path.read_text()):
            assert not re.search(r"\bbmc_(type|address|username|port)\b", task), (path, task)


@pytest.mark.parametrize("name", ["upgrade.yml", "power.yml"])
def test_host_without_bmc_fails_before_it_is_drained(sot: Path, agent: tuple[str, list[str]], name: str) -> None:
    res = playbook(sot, name, "--limit", "node1")
    assert res.returncode == 2, res.stdout[-3000:]
    assert failed_task(res.stdout, "node1").startswith("vaquero.metal.bmc_connection : Validating arguments against arg spec"), res.stdout[-3000:]
    assert recap(res.stdout)["node1"]["ok"] == 0  # not one task ran: no draining report, no hook
    assert "draining" not in res.stdout and agent[1] == []
