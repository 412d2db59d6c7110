"""End to end: `vaquero standalone` takes the lab SoT from a local git repository, the plan is
approved, and a QEMU host (TCG) whose BMC is an emulated IPMI BMC driving its QEMU process
netboots through the agent's DHCP/TFTP/HTTP, calls back, and ends `ready` with its timeline.

Everything runs inside a network namespace this test creates (loopback BMCs, the agent on the
namespace's bridge). Prerequisites missing = a loud failure, not a skip: CI runs as root after
scripts/setup.sh.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from waiting import wait_until

from vaquero.lab.demo import MACS, StandaloneLab, edit_cluster

__all__ = ["MACS", "PASSWORD", "StandaloneLab", "assert_no_secret", "collapse", "edit_cluster", "lab", "require_prerequisites"]

PASSWORD = "Lab-BMC-pw-93c1e7"


def require_prerequisites() -> None:
    tools = ("qemu-system-x86_64", "dnsmasq", "ip", "git", "curl")
    missing = [b for b in tools if shutil.which(b) is None]
    if not (Path(sys.executable).parent / "ansible-playbook").exists():
        missing.append("ansible-playbook (in the venv)")
    assert os.geteuid() == 0, "the e2e tests need root (network namespaces, taps): run them as root after scripts/setup.sh"
    assert not missing, f"missing for the e2e tests: {', '.join(missing)} (run scripts/setup.sh)"


@pytest.fixture
def lab(tmp_path: Path):
    require_prerequisites()
    labs: list[StandaloneLab] = []

    def make(hosts: list[str]) -> StandaloneLab:
        lab = StandaloneLab(tmp_path, hosts, PASSWORD)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.close()


def assert_no_secret(path: Path) -> None:
    grep = subprocess.run(["grep", "-r", "-l", "-a", PASSWORD, str(path)], capture_output=True, text=True)
    assert grep.returncode == 1, f"the BMC password is in {grep.stdout.strip()}"


def collapse(states: list[str]) -> list[str]:
    return [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]


@pytest.mark.e2e
def test_install_one_host_end_to_end(lab) -> None:
    t0 = time.monotonic()
    lab = lab(["node1"])
    sha = lab.make_repo(policy={"max_concurrent": 1, "min_available": 0, "on_failure": "halt"})
    lab.start()
    lab.standalone_start(f"{lab.repo}@main", extra=["--drift-interval", "2"])
    plan = lab.wait_plan(sha, ("succeeded", "failed", "cancelled"), timeout=300)
    took = time.monotonic() - t0
    run = lab.store.get(f"/runs/{plan['id']}")
    assert plan["state"] == "succeeded", f"{run}\n{lab.log()}"
    assert plan["approved_by"] == "standalone --approve"
    host = lab.store.get("/hosts/node1")
    assert host is not None and host["state"] == "ready" and host["sha"] == sha and host["plan"] == plan["id"]
    events = lab.timeline("node1")
    seq = collapse([e["state"] for e in events])
    assert seq == ["pending", "powering_off", "netbooting", "installing", "rebooting", "validating", "ready"], seq
    # The installer's callback report and the validate hook's output are in the timeline.
    installing = next(e for e in events if e["state"] == "installing")
    assert installing["detail"]["state"] == "installed" and installing["detail"]["report"]["mac"] == MACS["node1"]
    assert installing["detail"]["report"]["ip"] == "10.90.0.11"
    hook = next(e for e in events if e["detail"].get("hook"))
    assert hook["detail"]["hook"]["name"] == "agent-saw-callback" and hook["detail"]["hook"]["ok"]
    assert lab.store.get("/sites-applied/current")["sha"] == sha
    # The BMC really drove the VM: pxe once, power on (it was off), off after the callback (the
    # installer had already powered off: no change), boot disk, power on into the installed system.
    bmc = lab.bmcs()["node1"]
    assert bmc["boot"] == {"device": "disk", "persistent": True, "uefi": False}
    assert bmc["power"] == "on" and bmc["boots"] == 2
    ops = [h["op"] for h in bmc["history"]]
    assert ops[0] in ("on", "cycle") and ops[-1] == "on" and len(ops) in (2, 3), ops
    console = (lab.workdir / "vms" / "node1.console.1.log").read_text(errors="replace")
    assert "vaquero-lab: callback done" in console

    # The drift observer (--drift-interval) reads the ready host's BMC and its agent: what the SoT wants.
    def observed() -> dict | None:
        rec = lab.store.get("/drift/node1")
        return rec if rec is not None and rec.get("status") != "skipped" else None

    drift = wait_until(observed, 120, "node1 observed by the drift observer")
    assert (drift["status"], drift["via"], drift["power"], drift["findings"]) == ("ok", "ipmi", "on", []), drift
    # After the callback the agent serves localboot: the second boot did not reinstall.
    agent = json.loads((lab.data / "agent" / "boot-states.json").read_text())["hosts"]["node1"]
    assert agent["state"] == "installed" and agent["attempt"] == 1
    # The BMC password is nowhere in the runner's artifacts (nor the store, nor the data folder).
    assert list((lab.data / "runs").glob("*/install/artifacts/*/job_events/*.json"))
    assert_no_secret(lab.data)
    print(f"\ninstall e2e: {took:.1f}s from an empty lab to node1 ready")
