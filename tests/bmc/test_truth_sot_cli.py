"""`vaquero power|boot HOST --sot DIR` with a broken SoT or no SoT at all prints what `vaquero
validate` prints (file:line: field: message) and exits 1, never a traceback (issue 12, point 5).

Run as the real `vaquero` command on real broken copies of the lab SoT; no BMC is contacted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def vaquero(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VAQUERO_LAB_BMC_PASSWORD": "not-used"}
    env.pop("VAQUERO_SOT", None)
    return subprocess.run([sys.executable, "-m", "vaquero.cli", *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def broken_sot(tmp_path: Path) -> Path:
    sot = tmp_path / "lab"
    shutil.copytree(REPO / "inventories" / "lab", sot)
    cluster = sot / "clusters" / "lab.yaml"
    text = cluster.read_text()
    # two faults in two places: a BMC port out of range and a BMC type that does not exist
    text = text.replace("port: 6232, credential: lab-bmc", "port: 99999, credential: lab-bmc", 1)
    text = text.replace("{type: ipmi, address: 127.0.0.1, port: 6233", "{type: serial, address: 127.0.0.1, port: 6233", 1)
    cluster.write_text(text)
    return sot


@pytest.mark.parametrize("command", [("power", "node2", "on"), ("boot", "node2", "pxe"), ("power", "node1", "status")])
def test_an_invalid_sot_prints_like_validate(broken_sot, command):
    expected = vaquero("validate", str(broken_sot))
    assert expected.returncode == 1 and expected.stderr.count("error: ") >= 2, expected.stderr
    assert "clusters/lab.yaml:" in expected.stderr
    got = vaquero(*command, "--sot", str(broken_sot))
    assert got.returncode == 1 and got.stdout == ""
    assert got.stderr == expected.stderr  # the same lines, in the same order
    assert "Traceback" not in got.stderr


def test_a_missing_folder_prints_like_validate(tmp_path):
    gone = str(tmp_path / "no-such-sot")
    expected = vaquero("validate", gone)
    got = vaquero("power", "node1", "on", "--sot", gone)
    assert expected.returncode == got.returncode == 1
    assert got.stderr == expected.stderr and "no such folder" in got.stderr and "Traceback" not in got.stderr
    got = vaquero("boot", "node1", "disk", "--sot", gone, "--json")
    assert got.returncode == 1 and "Traceback" not in got.stderr
    data = json.loads(got.stdout)
    assert data["valid"] is False and "no such folder" in data["errors"][0]["message"]


def test_json_errors_carry_file_line_and_field(broken_sot):
    got = vaquero("power", "node2", "on", "--sot", str(broken_sot), "--json")
    assert got.returncode == 1
    data = json.loads(got.stdout)
    assert data["valid"] is False and data["source"] == str(broken_sot)
    assert all(e["file"] and e["line"] and e["message"] for e in data["errors"]) and len(data["errors"]) >= 2
