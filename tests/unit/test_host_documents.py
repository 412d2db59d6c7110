"""`kind: Host` documents: one host in a file of its own, merged into its cluster's hosts by the
loader. A host in a file must be exactly the host inline: the same plan, the same inventory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vaquero.plan import make_plan, render_text
from vaquero.sot import SoTInvalid, empty_sot, load

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "inventories" / "lab"

NODE9 = """  - name: node9
    macs: ["52:54:00:00:10:09", "52:54:00:00:20:09"]
    uuid: 5a9a0001-0000-4000-8000-000000001009
    serial: "SN 9: 'x'"
    roles: [worker]
    power: off
    ips: {prov: 10.90.0.19}
    vars: {rack: r9}
"""
NODE9_FILE = """# node9, reported by its inspection ramdisk
apiVersion: vaquero/v1
kind: Host
name: node9
cluster: lab
macs: ["52:54:00:00:10:09", "52:54:00:00:20:09"]
uuid: 5a9a0001-0000-4000-8000-000000001009
serial: "SN 9: 'x'"
roles: [worker]
power: off
ips: {prov: 10.90.0.19}
vars: {rack: r9}
"""


def inline_sot(tmp_path: Path) -> Path:
    root = tmp_path / "inline"
    shutil.copytree(LAB, root)
    path = root / "clusters" / "lab.yaml"
    path.write_text(path.read_text() + NODE9)
    return root


def file_sot(tmp_path: Path, text: str = NODE9_FILE, name: str = "node9.yaml") -> Path:
    root = tmp_path / "file"
    if not root.exists():
        shutil.copytree(LAB, root)
    (root / "hosts").mkdir(exist_ok=True)
    (root / "hosts" / name).write_text(text)
    return root


def errors_of(root: Path) -> list[str]:
    with pytest.raises(SoTInvalid) as caught:
        load(root)
    return [str(e) for e in caught.value.errors]


def test_a_host_file_plans_exactly_as_the_same_host_inline(tmp_path):
    inline, in_file = load(inline_sot(tmp_path)), load(file_sot(tmp_path))
    assert in_file.clusters["lab"].hosts == inline.clusters["lab"].hosts
    assert in_file.clusters["lab"].hosts[-1].serial == "SN 9: 'x'"
    old = load(LAB)
    for base in (empty_sot(), old):
        a, b = make_plan(base, inline), make_plan(base, in_file)
        assert a.to_dict() | {"new": None} == b.to_dict() | {"new": None}
        assert render_text(a).split("\n")[1:] == render_text(b).split("\n")[1:]
    assert "node9" in render_text(make_plan(old, in_file))


def test_host_file_errors_point_at_that_file_line_and_field(tmp_path):
    text = NODE9_FILE.replace("ips: {prov: 10.90.0.19}", "ips: {prov: 10.90.0.150}").replace("kind: Host", "kind: Host\nfirmware: floppy")
    errors = errors_of(file_sot(tmp_path, text))
    assert any(e.startswith("hosts/node9.yaml:4: firmware: ") for e in errors), errors
    # a semantic rule (the address inside the DHCP range), found on the merged cluster, told at the file
    valid_shape = NODE9_FILE.replace("ips: {prov: 10.90.0.19}", "ips: {prov: 10.90.0.150}")
    shutil.rmtree(tmp_path / "file")
    [error] = errors_of(file_sot(tmp_path, valid_shape))
    assert error.startswith("hosts/node9.yaml:11: ips.prov: 10.90.0.150 is inside the dynamic DHCP range"), error


def test_a_host_both_inline_and_in_a_file_or_in_an_unknown_cluster_is_refused(tmp_path):
    twice = NODE9_FILE.replace("name: node9", "name: node2")
    nowhere = NODE9_FILE.replace("name: node9", "name: node10").replace("cluster: lab", "cluster: nope").replace(":09", ":0a").replace(".19", ".20")
    root = file_sot(tmp_path, twice + "---\n" + nowhere)
    errors = errors_of(root)
    assert "hosts/node9.yaml:4: name: host 'node2' is also defined inline in cluster 'lab' (clusters/lab.yaml): define it in one place" in errors
    assert "hosts/node9.yaml:18: cluster: unknown cluster 'nope' (this SoT's: lab)" in errors


def test_a_duplicate_mac_between_a_host_file_and_an_inline_host_names_both(tmp_path):
    errors = errors_of(file_sot(tmp_path, NODE9_FILE.replace("52:54:00:00:10:09", "52:54:00:00:10:01")))
    assert any(e.startswith("hosts/node9.yaml:6: macs[0]: duplicate MAC 52:54:00:00:10:01 (also used by cluster lab, hosts[0])") for e in errors), errors


def test_the_inventory_plugin_lists_a_host_file_as_an_inline_host(tmp_path):
    lists = []
    for root in (inline_sot(tmp_path), file_sot(tmp_path)):
        res = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(root / "inventory.vaquero.yml"), "--list"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ),
        )
        assert res.returncode == 0, res.stderr
        lists.append(json.loads(res.stdout))
    inline, in_file = lists
    assert "node9" in in_file["_meta"]["hostvars"] and "node9" in in_file["cluster_lab"]["hosts"]
    assert json.dumps(in_file, sort_keys=True).replace(str(tmp_path / "file"), "ROOT") == json.dumps(inline, sort_keys=True).replace(
        str(tmp_path / "inline"), "ROOT"
    )
