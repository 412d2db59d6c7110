"""Agent preparation: assets fetched and verified, bad assets keep hosts from being installed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import yaml

from vaquero.agent.service import Agent, AgentConfig
from vaquero.lab.sot import prepare_sot

REPO = Path(__file__).resolve().parents[2]


def _sot(tmp: Path) -> tuple[Path, Path]:
    kernel, initrd = tmp / "vmlinuz", tmp / "initrd.img"
    kernel.write_bytes(os.urandom(4096))
    initrd.write_bytes(os.urandom(4096))
    return prepare_sot(REPO / "inventories" / "lab", tmp / "sot", "lab-linux", kernel, initrd), kernel


def _cfg(tmp: Path, sot: Path, **kw) -> AgentConfig:
    return AgentConfig(sot=str(sot), asset_root=tmp / "assets", state_dir=tmp / "state", tftp_root=str(tmp), **kw)


def test_assets_fetched_and_host_armed(tmp_path):
    sot, kernel = _sot(tmp_path)
    agent = Agent(_cfg(tmp_path, sot, install=["node1"]))
    app = agent.prepare()
    assert (tmp_path / "assets" / "lab-linux" / "vmlinuz").read_bytes() == kernel.read_bytes()
    assert agent.unready == {} and agent.states.get("node1").state == "install"
    assert "kernel --name vmlinuz" in app.prepared["/v1/boot/ipxe/52-54-00-00-10-01"][2].decode()


@pytest.mark.parametrize("damage", ["sha", "missing"])
def test_bad_asset_refused_and_hosts_not_installable(tmp_path, caplog, damage):
    sot, _kernel = _sot(tmp_path)
    prof = sot / "profiles" / "lab-linux.yaml"
    doc = yaml.safe_load(prof.read_text())
    if damage == "sha":
        doc["kernel"]["sha256"] = "1" * 64
    else:
        doc["kernel"]["path"] = str(tmp_path / "nowhere" / "vmlinuz")
    prof.write_text(yaml.safe_dump(doc))
    with caplog.at_level(logging.ERROR):
        agent = Agent(_cfg(tmp_path, sot))
        agent.prepare()
    assert set(agent.unready) == {"node1", "node2", "node3", "node4"}
    assert not (tmp_path / "assets" / "lab-linux" / "vmlinuz").exists()  # nothing half-written
    assert {getattr(r, "host", None) for r in caplog.records} >= {"node1", "node4"}
    assert all(agent.states.get(h).state == "none" for h in agent.unready)
    with pytest.raises(SystemExit, match="assets not ready"):
        Agent(_cfg(tmp_path, sot, install=["node1"])).prepare()
    assert agent.states.get("node1").state == "none"
