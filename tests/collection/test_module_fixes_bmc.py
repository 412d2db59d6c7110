"""Module fixes of issue 13 (point 8) for the BMC modules: options of the other protocol and
out-of-bounds values are refused by the one shared check (module_utils/bmc.py) before any BMC is
contacted; every RETURN value carries a sample. Real ansible-playbook against the pyghmi emulated
BMC (vaquero.bmc.emulator) and sushy-emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bmc"))  # the BMC peers' launchers

from bmc_helpers import PASSWORD, SUSHY_UUID, USERNAME, start_ipmi_fleet, start_sushy, stop

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULES = REPO / "ansible_collections" / "vaquero" / "metal" / "plugins" / "modules"


def play(tmp: Path, tasks: list[dict], bmc: dict) -> tuple[dict[str, dict], str]:
    """Run ``tasks`` (name -> module args) on localhost with the BMC options; results by task name."""
    secrets = tmp / "secrets.yml"
    secrets.write_text(yaml.safe_dump({"bmc_password": PASSWORD}))
    steps = []
    for t in tasks:
        ((module, args),) = ((k, v) for k, v in t.items() if k.startswith("vaquero.metal."))
        steps.append({"name": t["name"], module: {**bmc, "bmc_password": "{{ bmc_password }}", **args}, "ignore_errors": True, "register": f"r_{t['name']}"})
    dump = tmp / "results.json"
    content = "{{ {" + ", ".join(f"'{t['name']}': r_{t['name']}" for t in tasks) + "} | to_json }}"
    steps.append({"name": "collect", "ansible.builtin.copy": {"content": content, "dest": str(dump), "mode": "0600"}})
    pb = tmp / "play.yml"
    pb.write_text(yaml.safe_dump([{"name": "bmc", "hosts": "localhost", "gather_facts": False, "tasks": steps}], sort_keys=False))
    env = {"ANSIBLE_COLLECTIONS_PATH": str(REPO), "ANSIBLE_LOCALHOST_WARNING": "false", "PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp)}
    cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", f"@{secrets}", "-e", f"ansible_python_interpreter={sys.executable}", str(pb)]
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert dump.exists(), out[-4000:]
    return json.loads(dump.read_text()), out


@pytest.fixture
def fleet(tmp_path):
    f = start_ipmi_fleet(tmp_path, count=1)
    yield f
    stop(f.proc)


def test_redfish_options_with_ipmi_and_bad_bounds_are_refused_before_the_bmc(tmp_path, fleet):
    ipmi = {"bmc_type": "ipmi", "bmc_address": "127.0.0.1", "bmc_port": fleet.port, "bmc_username": USERNAME, "host_name": "node0", "timeout": 30}
    refused = {
        "ca": ("vaquero.metal.power", {"state": "on", "ca_path": "/etc/ssl/certs/ca-certificates.crt"}, "ca_path is a redfish option"),
        "system": ("vaquero.metal.boot_device", {"device": "pxe", "system_id": "1"}, "system_id is a redfish option"),
        "scheme": ("vaquero.metal.bmc_info", {"bmc_scheme": "https"}, "bmc_scheme is a redfish option"),
        "insecure": ("vaquero.metal.power", {"state": "on", "validate_certs": False}, "validate_certs is a redfish option"),
        "zero_timeout": ("vaquero.metal.power", {"state": "on", "timeout": 0}, "timeout must be between 1 and 3600"),
        "negative_timeout": ("vaquero.metal.bmc_info", {"timeout": -1}, "timeout must be between 1 and 3600"),
        "port": ("vaquero.metal.power", {"state": "on", "bmc_port": 70000}, "bmc_port must be between 1 and 65535"),
        "address": ("vaquero.metal.power", {"state": "on", "bmc_address": "127.0.0.1/x?y"}, "bmc_address must be"),
    }
    tasks = [{"name": name, module: args} for name, (module, args, _) in refused.items()]
    tasks.append({"name": "two", "vaquero.metal.power": {"state": "on", "ca_path": "/x", "system_id": "1"}})
    tasks.append({"name": "default_verify", "vaquero.metal.power": {"state": "on", "validate_certs": True}})  # the default promises nothing
    r, out = play(tmp_path, tasks, ipmi)
    for name, (_, _, msg) in refused.items():
        assert r[name]["failed"] and msg in r[name]["msg"], (name, r[name].get("msg"))
    assert "ca_path" in r["two"]["msg"] and "system_id" in r["two"]["msg"]  # every fault named at once
    assert not r["default_verify"].get("failed") and r["default_verify"]["changed"] and r["default_verify"]["power_state"] == "on"
    # nothing refused reached the BMC: the one power_on is the accepted task's
    assert fleet.bmc_state()["counts"] == {"power_on": 1}
    assert PASSWORD not in out


def test_redfish_options_work_with_redfish(tmp_path):
    sushy = start_sushy(tmp_path)
    try:
        rf = {"bmc_type": "redfish", "bmc_address": "127.0.0.1", "bmc_port": sushy.port, "bmc_username": USERNAME, "timeout": 30}
        tasks = [
            {"name": "info", "vaquero.metal.bmc_info": {"bmc_scheme": "https", "ca_path": str(sushy.ca_file), "expected_uuid": SUSHY_UUID}},
            {"name": "zero_timeout", "vaquero.metal.bmc_info": {"ca_path": str(sushy.ca_file), "timeout": 0}},
        ]
        r, out = play(tmp_path, tasks, rf)
    finally:
        stop(sushy.proc)
    assert not r["info"].get("failed"), r["info"].get("msg")
    assert r["info"]["bmc"]["uuid"] == SUSHY_UUID and not r["info"]["changed"]
    assert r["zero_timeout"]["failed"] and "timeout must be between 1 and 3600" in r["zero_timeout"]["msg"]
    assert PASSWORD not in out


def _returns_without_sample(returns: dict, prefix: str = "") -> list[str]:
    missing = []
    for key, spec in (returns or {}).items():
        if "sample" not in spec and "contains" not in spec:
            missing.append(prefix + key)
        missing += _returns_without_sample(spec.get("contains") or {}, f"{prefix}{key}.")
    return missing


def test_every_return_value_has_a_sample_and_check_mode_is_documented():
    names = sorted(p.stem for p in MODULES.glob("*.py") if p.stem != "__init__")
    proc = subprocess.run([str(BIN / "ansible-doc"), "--json", *[f"vaquero.metal.{n}" for n in names]], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert len(docs) == len(names)
    missing = {}
    for name, entry in docs.items():
        gaps = _returns_without_sample(entry.get("return") or {})
        if gaps:
            missing[name] = gaps
        attrs = entry["doc"].get("attributes") or {}
        assert attrs.get("check_mode", {}).get("support") in ("full", "partial"), f"{name}: check mode not supported"
        assert "diff_mode" in attrs, f"{name}: diff_mode not documented"
    assert missing == {}
