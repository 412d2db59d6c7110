"""The vaquero.metal.sot inventory plugin, through the real ansible-inventory command."""

from __future__ import annotations

import json
import os
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
