"""`vaquero power|boot HOST ... --sot`: the BMC and its credential come from the SoT, the password
from the reference (an environment variable), against a real emulated IPMI BMC."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bmc_helpers import PASSWORD, USERNAME

REPO = Path(__file__).resolve().parents[2]


def vaquero(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "VAQUERO_LAB_BMC_PASSWORD"} | env
    return subprocess.run([sys.executable, "-m", "vaquero.cli", *args], capture_output=True, text=True, timeout=120, env=full)


def test_power_and_boot_resolved_from_the_sot(tmp_path, ipmi_bmc):
    sot = tmp_path / "lab"
    shutil.copytree(REPO / "inventories" / "lab", sot)
    path = sot / "clusters" / "lab.yaml"
    path.write_text(path.read_text().replace("port: 6232", f"port: {ipmi_bmc.port}").replace("username: admin", f"username: {USERNAME}"))
    site = sot / "sites" / "lab.yaml"
    site.write_text(site.read_text().replace("username: admin", f"username: {USERNAME}"))
    env = {"VAQUERO_LAB_BMC_PASSWORD": PASSWORD}

    res = vaquero("power", "node2", "on", "--sot", str(sot), env=env)
    assert res.returncode == 0, res.stderr
    assert ipmi_bmc.bmc_state()["power"] == "on"
    res = vaquero("boot", "node2", "pxe", "--sot", str(sot), env=env)
    assert res.returncode == 0, res.stderr
    assert ipmi_bmc.bmc_state()["boot"]["device"] == "pxe"
    assert PASSWORD not in res.stdout + res.stderr

    # A wrong secret is a typed auth error naming the host, never echoing the password.
    res = vaquero("power", "node2", "status", "--sot", str(sot), env={"VAQUERO_LAB_BMC_PASSWORD": "not-the-password"})
    assert res.returncode != 0 and "node2" in res.stderr and "auth" in res.stderr
    assert "not-the-password" not in res.stdout + res.stderr
    # A missing secret names the reference, not a value.
    res = vaquero("power", "node2", "status", "--sot", str(sot), env={})
    assert res.returncode != 0 and "VAQUERO_LAB_BMC_PASSWORD is not set" in res.stderr
    res = vaquero("power", "node9", "status", "--sot", str(sot), env=env)
    assert res.returncode != 0 and "no host 'node9'" in res.stderr
