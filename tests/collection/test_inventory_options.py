"""The vaquero.metal.sot inventory plugin's cache, profile groups, cluster/site filters, and the
shipped ansible.cfg failing a run on a broken SoT; through the real ansible-inventory and
ansible-playbook commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(tool: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`tool` from the venv, from the repository root so that its ansible.cfg applies."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    base.update(ANSIBLE_NOCOLOR="1", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([str(BIN / tool), *args], cwd=REPO, capture_output=True, text=True, timeout=180, env={**base, **(env or {})})


def groups(res: subprocess.CompletedProcess[str]) -> dict[str, set[str]]:
    assert res.returncode == 0, res.stderr[-3000:]
    data: dict[str, Any] = json.loads(res.stdout)
    return {name: set(entry.get("hosts", [])) for name, entry in data.items() if name != "_meta"}


def copy(tmp_path: Path, name: str, **config: Any) -> Path:
    """A copy of inventories/<name> whose inventory file holds `config` (plugin and path set)."""
    root = tmp_path / name
    shutil.copytree(REPO / "inventories" / name, root)
    inv = root / "inventory.vaquero.yml"
    inv.write_text(yaml.safe_dump({"plugin": "vaquero.metal.sot", "path": ".", **config}))
    return inv


def test_profile_groups_follow_the_profile_each_host_installs(tmp_path: Path) -> None:
    inv = copy(tmp_path, "federation")
    cluster = inv.parent / "clusters" / "etcd.yaml"
    text = cluster.read_text()
    assert "\n- name: etcd1\n" in text
    cluster.write_text(text.replace("\n- name: etcd1\n", "\n- name: etcd1\n  profile: debian-12\n", 1))  # the host's own profile
    found = groups(run("ansible-inventory", "-i", str(inv), "--list"))
    assert found["profile_debian_12"] == {"edge1", "edge2", "stor1", "stor2", "stor3", "stor4", "etcd1"}
    assert "etcd1" not in found["profile_flatcar_stable"] and {"cp1", "etcd2", "worker6"} <= found["profile_flatcar_stable"]


def test_cache_is_read_until_refreshed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    inv = copy(tmp_path, "lab", cache=True, cache_plugin="ansible.builtin.jsonfile", cache_connection=str(cache), cache_timeout=3600)
    secret = "cache-never-holds-this-8c1f"
    res = run("ansible-inventory", "-i", str(inv), "--list", env={"VAQUERO_LAB_BMC_PASSWORD": secret})
    assert groups(res)["cluster_lab"] == {"node1", "node2", "node3", "node4"}
    files = [p for p in cache.iterdir() if p.is_file()]
    assert files, "nothing written to the cache folder"
    assert all("VAQUERO_LAB_BMC_PASSWORD" in p.read_text() and secret not in p.read_text() for p in files)  # references only
    cluster = inv.parent / "clusters" / "lab.yaml"
    text = cluster.read_text()
    cluster.write_text(text[: text.index("  - name: node4\n")])  # node4 leaves the SoT
    # Cached: the second parse does not read the SoT.
    assert groups(run("ansible-inventory", "-i", str(inv), "--list"))["cluster_lab"] == {"node1", "node2", "node3", "node4"}
    # The control: the same SoT without the cache shows the change at once.
    uncached = inv.parent / "uncached.vaquero.yml"
    uncached.write_text(yaml.safe_dump({"plugin": "vaquero.metal.sot", "path": "."}))
    assert groups(run("ansible-inventory", "-i", str(uncached), "--list"))["cluster_lab"] == {"node1", "node2", "node3"}
    # A refresh reads the SoT again, and the cache keeps the new answer.
    assert groups(run("ansible-inventory", "-i", str(inv), "--list", "--flush-cache"))["cluster_lab"] == {"node1", "node2", "node3"}
    cluster.write_text(text)
    assert groups(run("ansible-inventory", "-i", str(inv), "--list"))["cluster_lab"] == {"node1", "node2", "node3"}


def test_cluster_and_site_filters(tmp_path: Path) -> None:
    inv = copy(tmp_path, "federation", clusters=["edge", "etcd"], sites=["dc-west"])
    found = groups(run("ansible-inventory", "-i", str(inv), "--list"))
    assert found["site_dc_west"] == {"edge1", "edge2"} and "cluster_etcd" not in found  # etcd is in dc-east


def test_unknown_cluster_or_site_warns_or_fails_under_strict(tmp_path: Path) -> None:
    inv = copy(tmp_path, "federation", clusters=["nosuch"], sites=["dc-nowhere"])
    res = run("ansible-inventory", "-i", str(inv), "--list")
    assert res.returncode == 0, res.stderr
    assert "clusters nosuch not in the SoT" in res.stderr and "sites dc-nowhere not in the SoT" in res.stderr, res.stderr
    assert "edge1" not in res.stdout
    strict = copy(tmp_path / "strict", "federation", clusters=["edge", "nosuch"], strict=True)
    res = run("ansible-inventory", "-i", str(strict), "--list")
    assert res.returncode != 0, res.stdout[-2000:]
    assert "clusters nosuch not in the SoT (it has: edge, etcd, k8s-control, k8s-workers, storage)" in res.stderr, res.stderr


def broken_lab(tmp_path: Path) -> Path:
    root = tmp_path / "lab"
    shutil.copytree(REPO / "inventories" / "lab", root)
    path = root / "clusters" / "lab.yaml"
    path.write_text(path.read_text().replace("profile: lab-linux", "profile: nope"))
    return root / "inventory.vaquero.yml"


def test_broken_sot_fails_ansible_inventory_and_ansible_playbook(tmp_path: Path) -> None:
    inv = broken_lab(tmp_path)
    res = run("ansible-inventory", "-i", str(inv), "--list")
    assert res.returncode != 0, res.stdout[-2000:]
    assert "clusters/lab.yaml:5: profile: unknown profile 'nope'" in res.stderr, res.stderr
    res = run("ansible-playbook", "-i", str(inv), "playbooks/install.yml", "--limit", "node1")
    assert res.returncode != 0, res.stdout[-2000:]
    assert "clusters/lab.yaml:5: profile: unknown profile 'nope'" in res.stdout + res.stderr
    assert "TASK [" not in res.stdout  # nothing ran
    # The control: Ansible's own default (what ansible.cfg's unparsed_is_failed overrides) only warns.
    res = run("ansible-inventory", "-i", str(inv), "--list", env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "false"})
    assert res.returncode == 0 and "node1" not in res.stdout, res.stderr
