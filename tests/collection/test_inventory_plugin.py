"""The vaquero.metal.sot inventory plugin, through the real ansible-inventory command."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def inventory(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ansible-inventory"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def plain(value):
    """ansible-core 2.19 marks strings from inventory plugins as untrusted in --list output: unwrap them."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def test_federation_groups_and_hostvars():
    res = inventory("-i", "inventories/federation/inventory.vaquero.yml", "--list")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data["cluster_k8s_workers"]["hosts"]) == {f"worker{i}" for i in range(1, 7)}
    assert "stor1" in data["site_dc_west"]["hosts"]
    assert data["role_control_plane"]["hosts"] == ["cp1", "cp2", "cp3"]
    assert set(data["firmware_uefi"]["hosts"]) == {"stor1", "stor2", "stor3", "stor4"}  # keyed_groups from the file
    hv = plain(data["_meta"]["hostvars"]["stor1"])
    assert hv["ansible_host"] == "10.20.0.41"
    assert hv["vaquero_bmc"]["password_env"] == "VAQUERO_BMC_WEST"
    assert hv["vaquero_hooks"]["pre_shutdown"] == ["flush-cache"]


def test_secrets_never_enter_the_inventory():
    secret = "s3cr3t-never-in-inventory"
    res = inventory("-i", "inventories/federation/inventory.vaquero.yml", "--list", env={"VAQUERO_BMC_WEST": secret, "VAQUERO_IPMI_EAST": secret})
    assert res.returncode == 0
    assert secret not in res.stdout + res.stderr


def test_invalid_sot_fails_with_file_and_line(tmp_path):
    root = tmp_path / "lab"
    shutil.copytree(REPO / "inventories" / "lab", root)
    path = root / "clusters" / "lab.yaml"
    path.write_text(path.read_text().replace("profile: lab-linux", "profile: nope"))
    res = inventory("-i", str(root / "inventory.vaquero.yml"), "--list")
    assert "clusters/lab.yaml:5: profile: unknown profile 'nope'" in res.stderr
    data = json.loads(res.stdout) if res.returncode == 0 else {"_meta": {"hostvars": {}}}
    assert "node1" not in data["_meta"]["hostvars"]


def test_profile_install_timeout_reaches_the_install_roles(tmp_path):
    """A profile's install_timeout becomes the inventory's vaquero_install_timeout, and the install
    and upgrade roles' timeouts default to it (else 900), through a real ansible-playbook run that
    loads both roles' own defaults files."""
    roles = REPO / "ansible_collections/vaquero/metal/roles"
    play = tmp_path / "timeouts.yml"
    play.write_text(
        f"""
- hosts: all
  gather_facts: false
  connection: local
  tasks:
    - ansible.builtin.include_vars: {roles / "netboot_install/defaults/main.yml"}
    - ansible.builtin.include_vars: {roles / "rolling_upgrade/defaults/main.yml"}
    - ansible.builtin.debug:
        msg: "TIMEOUTS {{{{ inventory_hostname }}}} {{{{ netboot_install_timeout | int }}}} {{{{ rolling_upgrade_install_timeout | int }}}}"
"""
    )
    seen = {}
    for inv in ("inventories/installers/inventory.vaquero.yml", "inventories/lab/inventory.vaquero.yml"):
        res = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", inv, str(play)], cwd=REPO, capture_output=True, text=True, timeout=300, env=dict(os.environ)
        )
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        for host, netboot, upgrade in re.findall(r"TIMEOUTS (\S+) (\d+) (\d+)", res.stdout):
            seen[host] = (int(netboot), int(upgrade))
    assert seen["deb1"] == (3600, 3600)
    assert seen["fc1"] == (1800, 1800)
    assert seen["node1"] == (900, 900)  # the lab's profiles say nothing: the roles' default
