"""The collection modules dhcp_config, ipxe_config and assets, run by ansible-playbook."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def play(tmp: Path, tasks: list[dict], *args: str) -> dict:
    """Run tasks on localhost; return {task name: result} from the json callback."""
    if shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) is None:
        pytest.fail("ansible-playbook is not installed in the venv (run scripts/setup.sh)")
    pb = tmp / "play.yml"
    outdir = tmp / "results"
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir()
    steps = []
    for t in tasks:
        steps.append({**t, "register": "result"})
        # Each result saved as JSON (ansible-core has no json stdout callback), even in check mode.
        steps.append(
            {
                "name": f"save {t['name']}",
                "check_mode": False,
                "ansible.builtin.copy": {"content": "{{ result | to_json }}", "dest": f"{outdir}/{t['name']}.json"},
            }
        )
    pb.write_text(yaml.safe_dump([{"name": "t", "hosts": "localhost", "gather_facts": False, "tasks": steps}]))
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(REPO),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
           "-e", f"ansible_python_interpreter={sys.executable}", str(pb), *args]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
    results = {p.stem: json.loads(p.read_text()) for p in outdir.glob("*.json")}
    assert set(results) == {t["name"] for t in tasks}, res.stdout[-3000:] + res.stderr[-3000:]
    return results


def test_dhcp_config_idempotent_check_diff(tmp_path):
    sot = str(REPO / "inventories" / "lab")
    task = {"name": "dhcp", "vaquero.metal.dhcp_config": {"sot": sot, "dest": str(tmp_path / "dnsmasq.conf"), "hosts_file": str(tmp_path / "hosts")}}
    r = play(tmp_path, [task], "--check", "--diff")["dhcp"]
    assert r["changed"] and not (tmp_path / "dnsmasq.conf").exists() and "dhcp-range" in r["diff"][0]["after"]
    r = play(tmp_path, [task])["dhcp"]
    assert r["changed"] and r["hosts"] == 4 and r["flavor"] == "dnsmasq"
    assert "dhcp-hostsfile=" in (tmp_path / "dnsmasq.conf").read_text()
    assert (tmp_path / "hosts").read_text().startswith("52:54:00:00:10:01,set:known,10.90.0.11,node1")
    assert r["sha256"] == hashlib.sha256((tmp_path / "dnsmasq.conf").read_bytes()).hexdigest()
    assert not play(tmp_path, [task])["dhcp"]["changed"]
    assert not play(tmp_path, [task], "--check")["dhcp"]["changed"]


def test_dhcp_config_kea_and_refusals(tmp_path):
    sot = str(REPO / "inventories" / "lab")
    kea = {"name": "kea", "vaquero.metal.dhcp_config": {"sot": sot, "flavor": "kea", "interface": "lo", "dest": str(tmp_path / "kea.json")}}
    r = play(tmp_path, [kea])["kea"]
    assert r["changed"] and json.loads((tmp_path / "kea.json").read_text())["Dhcp4"]["interfaces-config"]["interfaces"] == ["lo"]
    bad = {"name": "bad", "ignore_errors": True, "vaquero.metal.dhcp_config": {"sot": sot, "site": "nope", "dest": str(tmp_path / "x")}}
    r = play(tmp_path, [bad])["bad"]
    assert r["failed"] and "unknown site" in r["msg"] and not (tmp_path / "x").exists()


def test_ipxe_config(tmp_path):
    sot = str(REPO / "inventories" / "lab")
    dest = tmp_path / "ipxe"
    install = {"name": "install", "vaquero.metal.ipxe_config": {"sot": sot, "dest": str(dest), "hosts": ["node1"], "state": "install"}}
    local = {"name": "local", "vaquero.metal.ipxe_config": {"sot": sot, "dest": str(dest), "state": "localboot"}}
    r = play(tmp_path, [install])["install"]
    assert r["changed"] and r["scripts"] == {"52-54-00-00-10-01": {"host": "node1", "state": "install", "changed": True}}
    assert "kernel --name vmlinuz" in (dest / "52-54-00-00-10-01").read_text()
    assert "chain" in (dest / "boot.ipxe").read_text() and "kernel" not in (dest / "default").read_text()
    assert not play(tmp_path, [install])["install"]["changed"]
    r = play(tmp_path, [local], "--diff")["local"]
    assert r["changed"] and len(r["scripts"]) == 4 and "kernel --name" in r["diff"]["before"]
    assert "kernel" not in (dest / "52-54-00-00-10-01").read_text()
    bad = {"name": "bad", "ignore_errors": True, "vaquero.metal.ipxe_config": {"sot": sot, "dest": str(dest), "hosts": ["ghost"], "state": "install"}}
    assert "unknown host" in play(tmp_path, [bad])["bad"]["msg"]


def test_assets(tmp_path):
    from vaquero.lab.sot import prepare_sot

    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(os.urandom(100000))
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(os.urandom(50000))
    sot = prepare_sot(REPO / "inventories" / "lab", tmp_path / "sot", "lab-linux", kernel, initrd)
    root = tmp_path / "assets"
    task = {"name": "assets", "vaquero.metal.assets": {"sot": str(sot), "asset_root": str(root)}}
    r = play(tmp_path, [task], "--check")["assets"]
    assert r["changed"] and not root.exists()
    r = play(tmp_path, [task])["assets"]
    assert r["changed"] and (root / "lab-linux" / "vmlinuz").read_bytes() == kernel.read_bytes()
    assert not play(tmp_path, [task])["assets"]["changed"]
    # The source changes under the SoT's feet: the sha256 no longer matches, nothing is replaced.
    kernel.write_bytes(b"tampered")
    (root / "lab-linux" / "vmlinuz").unlink()
    bad = {**task, "ignore_errors": True, "name": "bad"}
    r = play(tmp_path, [bad])["bad"]
    assert r["failed"] and "lab-linux" in r["msg"] and "expected" in r["msg"]
    assert sorted(p.name for p in (root / "lab-linux").iterdir()) == ["initrd.img"]
