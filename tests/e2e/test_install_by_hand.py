"""By hand: `ansible-playbook -i <lab SoT>/inventory.vaquero.yml playbooks/install.yml --limit node1`
against the lab (agent + emulated BMCs driving QEMU hosts), without the controller.

The lab SoT is the repository's `inventories/lab` with real asset hashes (the checked-in profile
carries placeholders); the secrets come from the environment, as a person running it would
export them: VAQUERO_LAB_BMC_PASSWORD (the SoT's reference) and VAQUERO_AGENT_TOKEN.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from test_install_standalone import MACS, PASSWORD, StandaloneLab, edit_cluster, require_prerequisites

from vaquero.lab.harness import lab_assets
from vaquero.lab.sot import prepare_sot
from vaquero.sot import load

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_ansible_playbook_install_by_hand(tmp_path: Path) -> None:
    require_prerequisites()
    t0 = time.monotonic()
    lab = StandaloneLab(tmp_path, ["node1"], PASSWORD)
    try:
        kernel, initrd = lab_assets()
        sot = prepare_sot(REPO / "inventories" / "lab", tmp_path / "lab", "lab-linux", kernel, initrd)
        edit_cluster(sot, ["node1"], policy={"min_available": 0})
        assert (sot / "inventory.vaquero.yml").is_file()
        lab.start()
        token = "agent-admin-token-for-the-lab"
        agent = lab.net.popen(
            [sys.executable, "-m", "vaquero.agent", "--sot", str(sot), "--listen", "10.90.0.1", "--http-port", "8080", "--tftp-port", "69",
             "--asset-root", str(tmp_path / "assets"), "--state-dir", str(tmp_path / "agent")],
            log_file=tmp_path / "agent.log",
            env={**os.environ, "VAQUERO_AGENT_TOKEN": token},
        )  # fmt: skip
        lab.net.wait_port("10.90.0.1", 8080, timeout=30)
        assert agent.poll() is None
        env = {**os.environ, "VAQUERO_LAB_BMC_PASSWORD": PASSWORD, "VAQUERO_AGENT_TOKEN": token, "ANSIBLE_NOCOLOR": "1"}
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        playbook = shutil.which("ansible-playbook", path=env["PATH"])
        assert playbook, "ansible-playbook is not installed in the venv"
        cmd = [playbook, "-i", str(sot / "inventory.vaquero.yml"), "playbooks/install.yml", "--limit", "node1"]
        proc = lab.net.popen(cmd, log_file=tmp_path / "ansible.log", env=env, cwd=REPO)
        rc = proc.wait(300)
        out = (tmp_path / "ansible.log").read_text(errors="replace")
        assert rc == 0, out[-5000:]
        assert "node1                      : ok=" in out and "failed=0" in out
        steps = ("Compare the BMC's system UUID and MACs with the SoT", "Report netbooting", "Wait for the installer's callback")
        for step in (*steps, "Run the hook of this phase named agent-saw-callback", "Report ready"):
            assert step in out, step
        status = json.loads((tmp_path / "agent" / "boot-states.json").read_text())["hosts"]["node1"]
        assert status["state"] == "installed" and status["report"]["mac"] == MACS["node1"]
        bmc = lab.bmcs()["node1"]
        node1 = load(sot, semantic=False).host("node1")
        assert node1 is not None and bmc["uuid"] == node1[1].uuid  # the lab BMC is the machine the SoT describes
        assert bmc["boot"]["device"] == "disk" and bmc["boot"]["persistent"] and bmc["power"] == "on"
        assert PASSWORD not in out
        print(f"\nby-hand install: {time.monotonic() - t0:.1f}s")
    finally:
        lab.close()
