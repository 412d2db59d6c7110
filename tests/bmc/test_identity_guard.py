"""Identity before destruction: install.yml and upgrade.yml check, before any power or boot request,
that the BMC they are about to drive is the host's (its system UUID, and the host's MACs where the
BMC reports them, against the SoT). Real ansible-playbook runs on a copy of the lab SoT against
real peers: the emulated IPMI BMCs (pyghmi's server), OpenIPMI's ipmi_sim and sushy-emulator.

A swapped BMC address fails the host with a message naming the host, the BMC address and both
UUIDs, and the BMC received identity reads only: counted by the peers themselves (the emulator's
per-command counters, ipmi_sim's chassis-control log, sushy-emulator's request log). The site agent
is a recorder that answers 503: a host that passes the check stops at its first agent call, so the
recorder also shows that a refused host never got as far as being armed for install.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from bmc_helpers import IPMI_SIM_GUID, LAB_SOT, PASSWORD, SUSHY_MAC, SUSHY_UUID, lab_host, start_ipmi_fleet, stop

from vaquero.bmc import open_bmc

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IDENTITY_TASK = "vaquero.metal.bmc_connection : Compare the BMC's system UUID and MACs with the SoT"
NODE2, NODE3 = lab_host("node2"), lab_host("node3")


class _Recorder(BaseHTTPRequestHandler):
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
    """A site agent that records every request and refuses it (503)."""
    seen: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Recorder,), {"seen": seen}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def make_sot(tmp: Path, agent_url: str, bmcs: dict[str, dict], hosts: dict[str, dict] | None = None) -> Path:
    """A copy of the lab SoT: its agent ``agent_url``, host -> ``bmcs[host]``, other host fields from ``hosts``."""
    root = tmp / f"sot-{len(list(tmp.glob('sot-*')))}"
    shutil.copytree(LAB_SOT, root)
    site = root / "sites" / "lab.yaml"
    site.write_text(site.read_text().replace("url: http://10.90.0.1:8080", f"url: {agent_url}"))
    path = root / "clusters" / "lab.yaml"
    cluster = yaml.safe_load(path.read_text())
    for h in cluster["hosts"]:
        if h["name"] in bmcs:
            h["bmc"] = {"credential": "lab-bmc", **bmcs[h["name"]]}
        for key, value in (hosts or {}).get(h["name"], {}).items():
            if value is None:
                h.pop(key, None)
            else:
                h[key] = value
    path.write_text(yaml.safe_dump(cluster, sort_keys=False))
    return root


def playbook(sot: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAQUERO_") or k == "VAQUERO_BMC_GUARD_DIR"}
    env.update(ANSIBLE_NOCOLOR="1", VAQUERO_LAB_BMC_PASSWORD=PASSWORD, VAQUERO_AGENT_TOKEN="identity-guard-token")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    cmd = [str(BIN / "ansible-playbook"), "-i", str(sot / "inventory.vaquero.yml"), f"playbooks/{name}", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def failure(out: str, host: str) -> tuple[str, str]:
    """(task name, module message) of ``host``'s failure in ansible-playbook's default output."""
    task = None
    for line in out.splitlines():
        m = re.match(r"^TASK \[(.*)\] \*+$", line)
        if m:
            task = m.group(1)
        if line.startswith(f"fatal: [{host}]: FAILED! => "):
            assert task is not None
            return task, json.loads(line.split(" => ", 1)[1])["msg"]
    raise AssertionError(f"no failure for {host} in:\n{out[-4000:]}")


def recap(out: str) -> dict[str, dict[str, int]]:
    rows = {}
    for line in out.split("PLAY RECAP", 1)[-1].splitlines():
        m = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if m:
            rows[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return rows


def passed_the_check(res: subprocess.CompletedProcess[str], host: str, agent: tuple[str, list[str]]) -> None:
    """The control: ``host`` passed the identity check and went on to arm itself at the (refusing) agent."""
    task, _ = failure(res.stdout, host)
    assert task == "vaquero.metal.netboot_install : Serve the installer to the host", res.stdout[-4000:]
    assert any(f"/{host}" in r for r in agent[1]), agent[1]


def refused(res: subprocess.CompletedProcess[str], host: str, address: str, expected: str, observed: str) -> str:
    assert res.returncode == 2, res.stdout[-4000:]
    task, msg = failure(res.stdout, host)
    assert task == IDENTITY_TASK, res.stdout[-4000:]
    assert f"host {host}: " in msg and f"BMC at {address} is not this host's BMC" in msg, msg
    assert f"the BMC reports system UUID {observed}, the SoT expects {expected}" in msg, msg
    assert recap(res.stdout)[host]["changed"] == 0
    assert PASSWORD not in res.stdout + res.stderr
    return msg


# --- IPMI: the emulated BMCs (pyghmi's server), one per host, each reporting its host's SoT uuid ---


@pytest.fixture
def fleet(tmp_path):
    """Two BMCs: node2's and node3's machines (their system UUIDs are the SoT's)."""
    f = start_ipmi_fleet(tmp_path, count=2, uuids=(NODE2.uuid, NODE3.uuid))
    yield f
    stop(f.proc)


def _ipmi(port: int) -> dict:
    return {"type": "ipmi", "address": "127.0.0.1", "port": port}


RUNS = [("install.yml", ()), ("upgrade.yml", ()), ("install.yml", ("--check",))]


@pytest.mark.parametrize("name,args", RUNS, ids=["install", "upgrade", "install-check-mode"])
def test_swapped_ipmi_bmc_is_refused_with_zero_power_or_boot_requests(tmp_path, fleet, agent, name, args) -> None:
    # The SoT swaps the two BMC addresses: node2 points at node3's machine and the other way round.
    sot = make_sot(tmp_path, agent[0], {"node2": _ipmi(fleet.port + 1), "node3": _ipmi(fleet.port)})
    res = playbook(sot, name, "--limit", "node2", *args)
    refused(res, "node2", f"127.0.0.1:{fleet.port + 1}", expected=NODE2.uuid, observed=NODE3.uuid)
    assert "Report draining" not in res.stdout and "Run the pre_shutdown hooks" not in res.stdout
    state = fleet.state()
    # Counted by the BMCs: not one power or boot request, and the BMC driven got Get System GUID only.
    assert all(s["counts"] == {} for s in state.values()), state
    assert state[str(fleet.port + 1)]["received"] == {"0x06/0x37": 1}, state
    assert state[str(fleet.port)]["received"] == {}, state
    assert agent[1] == []  # node2 was not armed for install either


def test_correct_ipmi_bmcs_pass_the_check(tmp_path, fleet, agent) -> None:
    sot = make_sot(tmp_path, agent[0], {"node2": _ipmi(fleet.port), "node3": _ipmi(fleet.port + 1)})
    res = playbook(sot, "install.yml", "--limit", "node2,node3")
    for host in ("node2", "node3"):
        passed_the_check(res, host, agent)
    state = fleet.state()
    assert [s["received"] for s in state.values()] == [{"0x06/0x37": 1}, {"0x06/0x37": 1}], state


def test_host_without_uuid_fails_closed_unless_it_opts_out(tmp_path, fleet, agent) -> None:
    sot = make_sot(tmp_path, agent[0], {"node2": _ipmi(fleet.port)}, hosts={"node2": {"uuid": None}})
    res = playbook(sot, "install.yml", "--limit", "node2")
    assert res.returncode == 2, res.stdout[-4000:]
    task, msg = failure(res.stdout, "node2")
    assert task == "vaquero.metal.bmc_connection : Require the host's system UUID in the SoT", res.stdout[-4000:]
    # names the host, the BMC, and what the BMC reports (for whoever records the uuid)
    assert "host node2: the SoT gives no uuid" in msg and f"BMC at 127.0.0.1:{fleet.port}" in msg and NODE2.uuid in msg, msg
    assert fleet.bmc_state(0)["counts"] == {} and agent[1] == []
    # The explicit opt-out: the host goes on unchecked (to the agent, which refuses it).
    res = playbook(sot, "install.yml", "--limit", "node2", "-e", "bmc_connection_identity=skip")
    passed_the_check(res, "node2", agent)
    assert "is driven without checking that it is this host's" in res.stdout
    # The same opt-out written in the SoT (bmc.identity: skip), which is how the controller's runs get it.
    sot = make_sot(tmp_path, agent[0], {"node2": {**_ipmi(fleet.port), "identity": "skip"}}, hosts={"node2": {"uuid": None}})
    res = playbook(sot, "install.yml", "--limit", "node2")
    passed_the_check(res, "node2", agent)
    assert "is driven without checking that it is this host's" in res.stdout
    # An operator's -e check overrides the SoT for one run: fail closed again.
    res = playbook(sot, "install.yml", "--limit", "node2", "-e", "bmc_connection_identity=check")
    assert res.returncode == 2 and failure(res.stdout, "node2")[0] == "vaquero.metal.bmc_connection : Require the host's system UUID in the SoT"


# --- IPMI: OpenIPMI's ipmi_sim, an implementation we did not write, and the GUID's byte order ---


def test_ipmi_sim_guid_in_smbios_byte_order_passes_and_another_host_is_refused(tmp_path, ipmi_sim, agent) -> None:
    from pyghmi.ipmi.private.util import decode_wireformat_uuid

    # ipmi_sim sends its configured 16 GUID bytes as they are; pyghmi's own decoder reads them in
    # SMBIOS order (what dmidecode prints on the host): that is the uuid the SoT records.
    smbios = decode_wireformat_uuid(bytearray(bytes.fromhex(IPMI_SIM_GUID))).lower()
    assert smbios == str(uuid.UUID(bytes_le=bytes.fromhex(IPMI_SIM_GUID))) != str(uuid.UUID(IPMI_SIM_GUID))
    bmc = _ipmi(ipmi_sim.port)
    right = make_sot(tmp_path, agent[0], {"node2": bmc}, hosts={"node2": {"uuid": smbios.upper()}})
    passed_the_check(playbook(right, "install.yml", "--limit", "node2"), "node2", agent)
    assert ipmi_sim.calls() == []  # the check read the GUID only: not even a chassis status
    agent[1].clear()
    wrong = make_sot(tmp_path, agent[0], {"node2": bmc})  # node2's own uuid, ipmi_sim's machine
    res = playbook(wrong, "upgrade.yml", "--limit", "node2")
    refused(res, "node2", f"127.0.0.1:{ipmi_sim.port}", expected=NODE2.uuid, observed=smbios)
    assert ipmi_sim.calls() == [] and agent[1] == []  # no chassis control call at all: no power, no boot


# --- Redfish: sushy-emulator, whose one System is the lab SoT's node1 (UUID and MAC) ---


def _sushy_requests(tmp_path: Path) -> list[str]:
    """Method and path of every request in sushy-emulator's own request log."""
    return re.findall(r'"(GET|POST|PATCH|PUT|DELETE) (\S+) HTTP/1\.[01]"', (tmp_path / "sushy.log").read_text())


def test_swapped_redfish_bmc_is_refused_with_zero_power_or_boot_requests(tmp_path, sushy, agent) -> None:
    rf = {"type": "redfish", "address": "127.0.0.1", "port": sushy.port, "ca_file": str(sushy.ca_file)}
    with open_bmc(sushy.endpoint()) as bmc:
        before = (bmc.get_power_state(), bmc.get_boot_device())
    sent = len(_sushy_requests(tmp_path))
    # node2's entry points at node1's BMC
    res = playbook(make_sot(tmp_path, agent[0], {"node2": rf}), "install.yml", "--limit", "node2")
    refused(res, "node2", f"127.0.0.1:{sushy.port}", expected=NODE2.uuid, observed=SUSHY_UUID)
    # node1's uuid, but a MAC this machine does not have (Redfish reports the host's NICs)
    res = playbook(make_sot(tmp_path, agent[0], {"node1": rf}, hosts={"node1": {"macs": ["52:54:00:00:10:99"]}}), "upgrade.yml", "--limit", "node1")
    assert res.returncode == 2, res.stdout[-4000:]
    task, msg = failure(res.stdout, "node1")
    assert task == IDENTITY_TASK and f"MAC(s) 52:54:00:00:10:99 not reported by the BMC (it reports {SUSHY_MAC})" in msg, msg
    assert "host node1: " in msg and f"BMC at 127.0.0.1:{sushy.port}" in msg, msg
    requests = _sushy_requests(tmp_path)[sent:]
    assert requests and all(method == "GET" for method, _ in requests), requests  # reads only: no reset, no boot PATCH
    assert not any("Actions" in path for _, path in requests), requests
    with open_bmc(sushy.endpoint()) as bmc:
        assert (bmc.get_power_state(), bmc.get_boot_device()) == before
    assert agent[1] == []


def test_correct_redfish_bmc_passes_the_check(tmp_path, sushy, agent) -> None:
    rf = {"type": "redfish", "address": "127.0.0.1", "port": sushy.port, "ca_file": str(sushy.ca_file)}
    passed_the_check(playbook(make_sot(tmp_path, agent[0], {"node1": rf}), "install.yml", "--limit", "node1"), "node1", agent)
