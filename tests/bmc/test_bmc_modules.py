"""The vaquero.metal BMC modules, run by real ansible-playbook against the emulators."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bmc_helpers import PASSWORD, SUSHY_MAC, SUSHY_UUID, USERNAME

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def play(tmp: Path, tasks: list[dict], bmc: dict, check: bool = False) -> tuple[list[dict], str]:
    """Run ``tasks`` on localhost; return each task's result (json callback) and the raw output."""
    secrets = tmp / "secrets.yml"
    secrets.write_text(yaml.safe_dump({"bmc_password": bmc.pop("bmc_password", PASSWORD)}))
    bmc = {**bmc, "bmc_password": "{{ bmc_password }}"}
    for i, t in enumerate(tasks):
        for k, v in list(t.items()):
            if k.startswith("vaquero.metal."):
                t[k] = {**bmc, **v}
        t.setdefault("ignore_errors", True)
        t["register"] = f"r{i}"
    dump = tmp / "results.json"
    names = ", ".join(f"r{i}" for i in range(len(tasks)))
    content = "{{ [" + names + "] | to_json }}"
    collect = {"name": "collect", "check_mode": False, "ansible.builtin.copy": {"content": content, "dest": str(dump), "mode": "0600"}}
    pb = tmp / "play.yml"
    pb.write_text(yaml.safe_dump([{"name": "bmc", "hosts": "localhost", "gather_facts": False, "tasks": [*tasks, collect]}], sort_keys=False))
    env = {**os.environ, "ANSIBLE_LOCALHOST_WARNING": "false", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    cmd = [str(BIN / "ansible-playbook"), "-v", "-i", "localhost,", "-c", "local", "-e", f"@{secrets}"]
    cmd += ["-e", f"ansible_python_interpreter={sys.executable}", str(pb)]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert dump.exists(), out
    results = json.loads(dump.read_text())
    return results, out


def ok(r: dict) -> dict:
    assert not r.get("failed"), r.get("msg")
    return r


@pytest.fixture
def ipmi_args(ipmi_bmc):
    ep = ipmi_bmc.endpoint()
    return {"bmc_type": "ipmi", "bmc_address": ep.address, "bmc_port": ep.port, "bmc_username": USERNAME, "host_name": "node0", "timeout": 20}


def test_ansible_doc_renders_the_modules():
    for name in ("power", "boot_device", "bmc_info"):
        proc = subprocess.run([str(BIN / "ansible-doc"), f"vaquero.metal.{name}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "bmc_password" in proc.stdout and "EXAMPLES" in proc.stdout


def test_ipmi_power_and_boot_modules_idempotent_with_check_mode(tmp_path, ipmi_bmc, ipmi_args):
    tasks = [
        {"name": "on", "vaquero.metal.power": {"state": "on"}},
        {"name": "on again", "vaquero.metal.power": {"state": "on"}},
        {"name": "off, check mode", "vaquero.metal.power": {"state": "off", "force": True}, "check_mode": True},
        {"name": "boot pxe uefi", "vaquero.metal.boot_device": {"device": "pxe", "uefi": True, "persistent": True}},
        {"name": "boot pxe uefi again", "vaquero.metal.boot_device": {"device": "pxe", "uefi": True, "persistent": True}},
        {"name": "boot disk, check mode", "vaquero.metal.boot_device": {"device": "disk", "persistent": True}, "check_mode": True},
        {"name": "cycle", "vaquero.metal.power": {"state": "cycled"}},
        {"name": "off soft then hard", "vaquero.metal.power": {"state": "off", "soft_timeout": 5}},
        {"name": "off again", "vaquero.metal.power": {"state": "off"}},
        {"name": "http boot", "vaquero.metal.boot_device": {"device": "http"}},
    ]
    r, out = play(tmp_path, tasks, dict(ipmi_args))
    assert ok(r[0])["changed"] and r[0]["power_state"] == "on" and r[0]["previous_power_state"] == "off"
    assert not ok(r[1])["changed"]
    assert ok(r[2])["changed"] and r[2]["power_state"] == "on"  # check mode: reported, not done
    assert ok(r[3])["changed"] and r[3]["boot"] == {"device": "pxe", "persistent": True, "mode": "uefi"}
    assert not ok(r[4])["changed"]
    assert ok(r[5])["changed"] and r[5]["boot"]["device"] == "pxe"
    assert ok(r[6])["changed"]
    assert ok(r[7])["changed"] and r[7]["power_state"] == "off" and r[7]["forced"] is False  # the emulated OS honours ACPI
    assert not ok(r[8])["changed"]
    assert r[9]["failed"] and r[9]["error_kind"] == "unsupported"
    state = ipmi_bmc.bmc_state()
    assert state["boot"] == {"device": "pxe", "persistent": True, "uefi": True}
    assert state["counts"] == {"power_on": 1, "set_boot": 1, "power_cycle": 1, "power_shutdown": 1}  # nothing from check mode
    assert PASSWORD not in out


def test_ipmi_bmc_info_checks_the_sot(tmp_path, ipmi_bmc, ipmi_args):
    uuid = ipmi_bmc.bmc_state()["uuid"]
    tasks = [
        {"name": "info", "vaquero.metal.bmc_info": {"expected_uuid": uuid.upper()}},
        {"name": "wrong machine", "vaquero.metal.bmc_info": {"expected_uuid": "00000000-0000-0000-0000-000000000001"}},
        {"name": "wrong password", "vaquero.metal.power": {"state": "on", "bmc_password": "not-the-password"}},
    ]
    r, out = play(tmp_path, tasks, dict(ipmi_args))
    assert ok(r[0])["bmc"]["uuid"] == uuid and r[0]["mismatches"] == [] and not r[0]["changed"]
    assert r[1]["failed"] and "UUID" in r[1]["msg"]
    assert r[2]["failed"] and r[2]["error_kind"] == "auth" and "node0" in r[2]["msg"]
    assert PASSWORD not in out


def test_redfish_modules_against_sushy(tmp_path, sushy):
    args = {"bmc_type": "redfish", "bmc_address": "127.0.0.1", "bmc_port": sushy.port, "bmc_username": USERNAME, "ca_path": str(sushy.ca_file), "timeout": 20}
    tasks = [
        {"name": "on", "vaquero.metal.power": {"state": "on"}},
        {"name": "on again", "vaquero.metal.power": {"state": "on"}},
        {"name": "boot", "vaquero.metal.boot_device": {"device": "pxe", "persistent": True, "uefi": True}},
        {"name": "boot again", "vaquero.metal.boot_device": {"device": "pxe", "persistent": True, "uefi": True}},
        {"name": "info", "vaquero.metal.bmc_info": {"expected_uuid": SUSHY_UUID, "expected_macs": [SUSHY_MAC]}},
        {"name": "wrong MAC", "vaquero.metal.bmc_info": {"expected_macs": ["52:54:00:aa:bb:cc"], "fail_on_mismatch": False}},
        {"name": "no CA: TLS verified", "vaquero.metal.power": {"state": "on", "ca_path": None}},
        {"name": "off, forced", "vaquero.metal.power": {"state": "off", "force": True}},
    ]
    r, out = play(tmp_path, tasks, dict(args))
    assert ok(r[0])["changed"] and not ok(r[1])["changed"]
    assert ok(r[2])["changed"] and not ok(r[3])["changed"]
    assert ok(r[4])["bmc"]["macs"] == [SUSHY_MAC] and r[4]["bmc"]["manufacturer"] == "Sushy Emulator"
    assert ok(r[5])["mismatches"] and not r[5]["changed"]
    assert r[6]["failed"] and r[6]["error_kind"] == "tls"
    assert ok(r[7])["changed"] and r[7]["forced"] is True and r[7]["power_state"] == "off"
    assert PASSWORD not in out
