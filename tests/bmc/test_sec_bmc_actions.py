"""One idempotent power/boot mechanism (vaquero.bmc.actions) behind both faces, against the real
IPMI emulator: check mode never writes, repeats send nothing, and `vaquero power|boot` and the
power/boot_device modules decide "changed" alike."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
from bmc_helpers import start_ipmi_fleet, stop
from test_bmc_modules import play

from vaquero.bmc import BootDevice, BootMode, PowerState, open_bmc
from vaquero.bmc.actions import ensure_boot, ensure_power
from vaquero.bmc.cli import boot_command, power_command

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "ansible_collections" / "vaquero" / "metal" / "plugins"


@pytest.fixture
def fleet2(tmp_path):
    fleet = start_ipmi_fleet(tmp_path, count=2)
    yield fleet
    stop(fleet.proc)


def test_check_mode_reads_and_never_writes(ipmi_bmc):
    with open_bmc(ipmi_bmc.endpoint()) as bmc:
        r = ensure_power(bmc, "on", check=True)
        assert (r.before, r.after, r.target, r.changed) == (PowerState.OFF, PowerState.OFF, PowerState.ON, True)
        r = ensure_power(bmc, "cycled", check=True)
        assert r.changed and r.after == PowerState.OFF
        b = ensure_boot(bmc, "pxe", persistent=True, mode="uefi", check=True)
        assert b.changed and b.after == b.before and b.target.as_dict() == {"device": "pxe", "persistent": True, "mode": "uefi"}
    assert ipmi_bmc.bmc_state()["counts"] == {}


def test_power_is_idempotent_and_status_only_reads(ipmi_bmc):
    with open_bmc(ipmi_bmc.endpoint()) as bmc:
        assert ensure_power(bmc, "status").as_dict() == {"before": "off", "power_state": "off", "changed": False, "forced": False}
        r = ensure_power(bmc, "on")
        assert r.changed and r.after == PowerState.ON
        assert not ensure_power(bmc, "on").changed
        r = ensure_power(bmc, "reset")
        assert r.changed and r.after == PowerState.ON
        r = ensure_power(bmc, "off", force=True)
        assert r.changed and r.forced and r.after == PowerState.OFF
        assert not ensure_power(bmc, "off").changed
        # Cycling a host that is off powers it on: neither a cycle nor a reset means anything to it.
        r = ensure_power(bmc, "cycle")
        assert r.changed and r.after == PowerState.ON
        with pytest.raises(ValueError, match="unknown power action"):
            ensure_power(bmc, "hibernate")
    assert ipmi_bmc.bmc_state()["counts"] == {"power_on": 2, "power_reset": 1, "power_off": 1}


def test_boot_is_idempotent_and_none_ignores_persistence(ipmi_bmc):
    with open_bmc(ipmi_bmc.endpoint()) as bmc:
        r = ensure_boot(bmc, BootDevice.PXE, persistent=True, mode=BootMode.UEFI)
        assert r.changed and r.after.as_dict() == {"device": "pxe", "persistent": True, "mode": "uefi"}
        assert not ensure_boot(bmc, "pxe", persistent=True, mode="uefi").changed
        # An unset mode keeps whatever the BMC holds, so it matches.
        assert not ensure_boot(bmc, "pxe", persistent=True).changed
        assert ensure_boot(bmc, "pxe", persistent=False).changed
        assert ensure_boot(bmc, "none").changed
        assert not ensure_boot(bmc, "none", persistent=True, mode="bios").changed
        assert not ensure_boot(bmc, "status").changed
        with pytest.raises(ValueError):
            ensure_boot(bmc, "floppy")
    assert ipmi_bmc.bmc_state()["counts"] == {"set_boot": 3}


def test_module_and_cli_decide_alike(tmp_path, fleet2):
    """The same sequence through the modules (BMC 0) and the CLI (BMC 1): same verdicts, same commands sent."""
    steps = [("on", None), ("on", None), ("pxe", True), ("pxe", True), ("disk", False), ("reset", None), ("off", None), ("off", None), ("none", None)]
    tasks = []
    for i, (what, persistent) in enumerate(steps):
        if what in ("pxe", "disk", "none"):
            args = {"device": what} | ({"persistent": persistent, "uefi": True} if persistent is not None else {})
            tasks.append({"name": f"s{i}", "vaquero.metal.boot_device": args})
        else:
            tasks.append({"name": f"s{i}", "vaquero.metal.power": {"state": what, "force": True}})
    ep0 = fleet2.endpoint(0)
    bmc = {"bmc_type": "ipmi", "bmc_address": ep0.address, "bmc_port": ep0.port, "bmc_username": ep0.username, "host_name": "node0", "timeout": 20}
    results, _ = play(tmp_path, tasks, bmc)
    for r in results:
        assert not r.get("failed"), r.get("msg")
    module_changed = [r["changed"] for r in results]

    ep1 = fleet2.endpoint(1)
    cli_changed = []
    for what, persistent in steps:
        buf, err = io.StringIO(), io.StringIO()
        if what in ("pxe", "disk", "none"):
            rc = boot_command(ep1, what, persistent=bool(persistent), uefi=True if persistent is not None else None, as_json=True, out=buf, err=err)
        else:
            rc = power_command(ep1, what, force=True, as_json=True, out=buf, err=err)
        assert rc == 0, err.getvalue()
        cli_changed.append('"changed": true' in buf.getvalue())
    assert module_changed == cli_changed == [True, False, True, False, True, True, True, False, True]
    assert fleet2.bmc_state(0)["counts"] == fleet2.bmc_state(1)["counts"]


def _vaquero_imports(path: Path) -> list[str]:
    """Every vaquero module a file imports, at any depth (function-level imports included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "vaquero"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "vaquero":
            found.append(node.module)
    return found


def test_the_collection_enters_vaquero_through_module_utils_core_only():
    files = sorted(PLUGINS.rglob("*.py"))
    assert len(files) > 10
    core = PLUGINS / "module_utils" / "core.py"
    outside = {str(f.relative_to(PLUGINS)): _vaquero_imports(f) for f in files if f != core and _vaquero_imports(f)}
    assert outside == {}
    # The collection drives the core; the machinery that launches Ansible is no part of it.
    assert [m for m in _vaquero_imports(core) if m.startswith(("vaquero.runner", "vaquero.api", "vaquero.standalone"))] == []


def test_the_shared_actions_import_no_runner_or_api():
    imported = _vaquero_imports(ROOT / "controller" / "vaquero" / "bmc" / "actions.py")
    assert imported and all(m.startswith("vaquero.bmc") for m in imported)
