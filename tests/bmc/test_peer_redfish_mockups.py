"""The Redfish driver against DMTF's Redfish-Mockup-Server serving DMTF's public, vendor-shaped
mockups (tests/peers): System selection by Id, by @odata.id and by the SoT's UUID, a System with no
Boot object, and a static service whose power state never changes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bmc_helpers import PASSWORD, USERNAME, make_cert
from peers.redfish_peers import MockupServer, start_mockup_server, stop_process

from vaquero.bmc import BmcProtocolError, BmcUnsupported, BootDevice, Endpoint, Guard, GuardPolicy, PowerState, open_bmc

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = ["ComposedPartition1", "ComposedPartition2", "ComposedPartition3"]
PARTITION2_UUID = "92384634-2938-2342-8820-489239905423"  # as published in public-bladed-partitions


@pytest.fixture
def mockup(tmp_path: Path) -> Iterator[Callable[[str], MockupServer]]:
    cert, key = make_cert(tmp_path)
    started: list[MockupServer] = []

    def start(name: str) -> MockupServer:
        server = start_mockup_server(tmp_path, name, cert, key)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_process(server.proc)


@pytest.fixture
def guard() -> Guard:
    # no retries: each test counts the requests the peer got
    return Guard(policy=GuardPolicy(attempt_timeout=20.0, deadline=40.0, retries=0))


def endpoint(server: MockupServer, **kw: object) -> Endpoint:
    args: dict[str, object] = {"kind": "redfish", "address": "127.0.0.1", "username": USERNAME, "password": PASSWORD, "host": "peer-node"}
    args |= {"port": server.port, "ca_file": str(server.ca_file)}
    args |= kw
    return Endpoint(**args)  # type: ignore[arg-type]


def systems_read(server: MockupServer) -> list[str]:
    """The Systems (not their sub-resources) the driver GOT, in order."""
    return [p.rstrip("/") for _m, p, _s in server.requests("GET", "/redfish/v1/Systems/") if p.rstrip("/").count("/") == 4]


def chosen_system(server: MockupServer) -> str:
    """The System the driver read last: the one it acts on."""
    return systems_read(server)[-1]


def test_the_only_system_is_used_without_a_system_key(mockup, guard):
    server = mockup("public-rackmount1")
    with open_bmc(endpoint(server), guard) as bmc:
        assert bmc.get_power_state() == PowerState.ON
        inv = bmc.inventory()
    assert inv.uuid == "38947555-7742-3448-3784-823347823834" and inv.extra["redfish_system"] == "/redfish/v1/Systems/437XR1138R2"


@pytest.mark.parametrize("system", ["ComposedPartition3", "/redfish/v1/Systems/ComposedPartition3", "/redfish/v1/Systems/ComposedPartition3/"])
def test_system_by_id_or_odata_id_among_several(mockup, guard, system):
    server = mockup("public-bladed-partitions")
    with open_bmc(endpoint(server, system_id=system), guard) as bmc:
        assert bmc.inventory().extra["redfish_system"] == "/redfish/v1/Systems/ComposedPartition3"
        assert bmc.get_boot_device().device == BootDevice.PXE
    # no other System was even read: the key alone picked it
    assert set(systems_read(server)) == {"/redfish/v1/Systems/ComposedPartition3"}


def test_system_by_the_sots_uuid_among_several(mockup, guard):
    server = mockup("public-bladed-partitions")
    with open_bmc(endpoint(server, system_uuid=PARTITION2_UUID.upper()), guard) as bmc:
        assert bmc.inventory().extra["redfish_system"] == "/redfish/v1/Systems/ComposedPartition2"
    assert chosen_system(server) == "/redfish/v1/Systems/ComposedPartition2"


def test_several_systems_and_no_key_names_the_sot_key_and_the_ids(mockup, guard):
    server = mockup("public-bladed-partitions")
    with pytest.raises(BmcProtocolError) as ei, open_bmc(endpoint(server), guard) as bmc:
        bmc.get_power_state()
    text = str(ei.value)
    assert "`system`" in text and "system_id" not in text
    assert all(i in text for i in PARTITIONS)


def test_unknown_uuid_and_unknown_system_name_the_sot_key(mockup, guard):
    server = mockup("public-bladed-partitions")
    with pytest.raises(BmcProtocolError) as ei, open_bmc(endpoint(server, system_uuid="00000000-0000-0000-0000-000000000001"), guard) as bmc:
        bmc.get_power_state()
    assert "none of the 3 Systems" in str(ei.value) and "`system`" in str(ei.value)
    with pytest.raises(BmcProtocolError) as ei, open_bmc(endpoint(server, system_id="/redfish/v1/Systems/Blade9"), guard) as bmc:
        bmc.get_power_state()
    assert "`system`" in str(ei.value) and all(i in str(ei.value) for i in PARTITIONS)
    assert server.requests("POST", "/redfish/v1/Systems") == [] and server.requests("PATCH") == []


def test_a_system_without_a_boot_object_is_unsupported_and_never_patched(mockup, guard):
    server = mockup("public-smartnic")
    with open_bmc(endpoint(server, system_id="Card1-SoC"), guard) as bmc:
        assert bmc.get_power_state() == PowerState.ON  # the System itself is there
        with pytest.raises(BmcUnsupported, match="no Boot object"):
            bmc.get_boot_device()
        for device in (BootDevice.PXE, BootDevice.DISK, BootDevice.NONE):
            with pytest.raises(BmcUnsupported, match="no Boot object"):
                bmc.set_boot_device(device, persistent=True)
    assert server.requests("GET", "/redfish/v1/Systems/Card1-SoC")  # it was asked, over and over
    assert server.requests("PATCH") == []


def test_the_boot_cli_on_a_system_without_boot_fails_without_a_patch(mockup, tmp_path):
    server = mockup("public-smartnic")
    res = vaquero_cli(server, tmp_path, "boot", "smartnic", "pxe", "--system-id", "/redfish/v1/Systems/Card1-SoC")
    assert res.returncode != 0 and "no Boot object" in res.stderr and "Traceback" not in res.stderr
    assert server.requests("PATCH") == []
    assert PASSWORD not in res.stdout + res.stderr


def vaquero_cli(server: MockupServer, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    pwfile = tmp / "bmc-password"
    pwfile.write_text(PASSWORD)
    bmc = ["--bmc-type", "redfish", "--bmc-address", "127.0.0.1", "--bmc-port", str(server.port), "--ca-file", str(server.ca_file)]
    bmc += ["--bmc-username", USERNAME, "--bmc-password-file", str(pwfile), "--timeout", "30"]
    return subprocess.run([sys.executable, "-m", "vaquero.cli", *args, *bmc], capture_output=True, text=True, timeout=180)


def _readback_landed() -> bool:
    """Whether ensure_power reads the state back after acting (issue 12, point 1, a change of its own)."""
    from vaquero.bmc import actions

    return hasattr(actions, "wait_for_power")


READBACK = _readback_landed()


@pytest.mark.xfail(not READBACK, reason="power readback (issue 12 point 1) is not in bmc.actions yet: the CLI still trusts the 204", strict=True)
def test_power_on_a_static_service_that_never_changes_exits_non_zero(mockup, tmp_path):
    server = mockup("public-rackmount1")
    system = "/redfish/v1/Systems/437XR1138R2"
    server.patch(system, {"PowerState": "Off"})  # the mockup keeps this; a reset never changes it
    wait = ["--wait-timeout", "3", "--json"] if READBACK else []
    res = vaquero_cli(server, tmp_path, "power", "rack1", "on", *wait)
    assert server.requests("POST", f"{system}/Actions/ComputerSystem.Reset")  # the request did go out
    assert server.get(system)["PowerState"] == "Off"
    assert res.returncode != 0, res.stdout
    assert "Traceback" not in res.stderr
    error = json.loads(res.stderr.strip().splitlines()[-1])
    assert error["host"] == "rack1" and error["requested"] == "on" and error["power_state"] == "off", error


def test_power_and_system_resolved_from_the_sot_by_uuid(mockup, tmp_path):
    """`vaquero power HOST status --sot DIR`: a Redfish BMC with several Systems and no `system` key
    picks the one whose UUID is the host's in the SoT."""
    server = mockup("public-bladed-partitions")
    server.patch("/redfish/v1/Systems/ComposedPartition2", {"PowerState": "Off"})  # the others stay On
    sot = tmp_path / "lab"
    shutil.copytree(REPO / "inventories" / "lab", sot)
    cluster = sot / "clusters" / "lab.yaml"
    text = cluster.read_text()
    old_bmc = "bmc: {type: ipmi, address: 127.0.0.1, port: 6232, credential: lab-bmc}"
    assert old_bmc in text
    text = text.replace(old_bmc, f"bmc: {{type: redfish, address: 127.0.0.1, port: {server.port}, credential: lab-bmc, ca_file: {server.ca_file}}}")
    cluster.write_text(text.replace("uuid: 5a9a0001-0000-4000-8000-000000001002", f"uuid: {PARTITION2_UUID}"))
    site = sot / "sites" / "lab.yaml"
    site.write_text(site.read_text().replace("username: admin", f"username: {USERNAME}"))
    env = {k: v for k, v in os.environ.items() if k != "VAQUERO_LAB_BMC_PASSWORD"} | {"VAQUERO_LAB_BMC_PASSWORD": PASSWORD}
    cmd = [sys.executable, "-m", "vaquero.cli", "power", "node2", "status", "--sot", str(sot)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "node2: power off"
    assert chosen_system(server) == "/redfish/v1/Systems/ComposedPartition2"


@pytest.mark.parametrize("value", ["1", "System.Embedded.1", "437XR1138R2", "/redfish/v1/Systems/1", "/redfish/v1/Systems/Card1-SoC/"])
def test_the_sot_system_key_takes_an_id_or_its_odata_id(value):
    from vaquero.sot.models import Bmc

    assert Bmc(type="redfish", address="10.0.0.5", credential="c", system=value).system == value


REFUSED_SYSTEMS = ["/etc/passwd", "/redfish/v1/Systems/../Managers/1", "a b", "1\n2", "", "/redfish/v1/Systems/", "/redfish/v1/Systems/..", "..", "x" * 129]


@pytest.mark.parametrize("value", REFUSED_SYSTEMS)
def test_the_sot_system_key_refuses_anything_else(value):
    from pydantic import ValidationError

    from vaquero.sot.models import Bmc

    with pytest.raises(ValidationError):
        Bmc(type="redfish", address="10.0.0.5", credential="c", system=value)


def test_the_modules_pick_the_system_by_uuid_or_odata_id(mockup, tmp_path):
    """vaquero.metal.bmc_info through real ansible-playbook: the SoT's UUID (system_uuid, which the
    bmc_connection role passes) and the @odata.id form of system_id both pick a System."""
    import yaml

    server = mockup("public-bladed-partitions")
    bmc = {"bmc_type": "redfish", "bmc_address": "127.0.0.1", "bmc_port": server.port, "bmc_username": USERNAME}
    bmc |= {"bmc_password": "{{ bmc_password }}", "ca_path": str(server.ca_file), "host_name": "blade", "timeout": 30}
    cases = [{"system_uuid": PARTITION2_UUID}, {"system_id": "/redfish/v1/Systems/ComposedPartition3"}, {}, {"system_uuid": "not-a-uuid"}]
    tasks = [{"vaquero.metal.bmc_info": {**bmc, **c}, "register": f"r{i}", "ignore_errors": True} for i, c in enumerate(cases)]
    dump = tmp_path / "results.json"
    content = "{{ [" + ", ".join(f"r{i}" for i in range(len(cases))) + "] | to_json }}"
    tasks.append({"name": "collect", "ansible.builtin.copy": {"content": content, "dest": str(dump), "mode": "0600"}})
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{"name": "bmc", "hosts": "localhost", "gather_facts": False, "tasks": tasks}], sort_keys=False))
    (tmp_path / "secrets.yml").write_text(yaml.safe_dump({"bmc_password": PASSWORD}))
    bindir = Path(sys.executable).parent
    env = {**os.environ, "ANSIBLE_LOCALHOST_WARNING": "false", "PATH": f"{bindir}:{os.environ.get('PATH', '')}"}
    cmd = [str(bindir / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", f"@{tmp_path / 'secrets.yml'}"]
    cmd += ["-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert dump.exists(), proc.stdout + proc.stderr
    by_uuid, by_path, neither, bad = json.loads(dump.read_text())
    assert not by_uuid.get("failed") and by_uuid["bmc"]["uuid"] == PARTITION2_UUID, by_uuid.get("msg")
    assert not by_path.get("failed") and by_path["bmc"]["uuid"] == "92384634-2938-2342-8820-489239905445", by_path.get("msg")
    assert neither["failed"] and "`system`" in neither["msg"] and all(i in neither["msg"] for i in PARTITIONS)
    assert bad["failed"] and "system_uuid must be a UUID" in bad["msg"]
    assert PASSWORD not in proc.stdout + proc.stderr
