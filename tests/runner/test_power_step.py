"""A plan's `power` step runs playbooks/power.yml for real: drain hooks, then the emulated IPMI BMC
(vaquero.bmc.emulator, a real IPMI peer on loopback) is powered off; the timeline records it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from vaquero.bmc import DEFAULT_GUARD, Endpoint, open_bmc
from vaquero.plan import make_plan
from vaquero.runner import records as R
from vaquero.runner.worker import RunWorker
from vaquero.sot import load
from vaquero.state.machine import Event, timeline, transition
from vaquero.state.sqlite import SQLiteStore

PASSWORD = "power-step-pw-19e4"


def _free_udp_block(count: int) -> int:
    for base in range(20000, 60000, 97):
        socks = []
        try:
            for i in range(count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.0.0.1", base + i))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free UDP ports")


@pytest.fixture
def bmcs(tmp_path: Path, lab_sot: Path):
    port = _free_udp_block(4)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        control = s.getsockname()[1]
    pw = tmp_path / "bmc-pw"
    pw.write_text(PASSWORD)
    cmd = [sys.executable, "-m", "vaquero.bmc.emulator", "--address", "127.0.0.1", "--port", str(port), "--count", "4"]
    cmd += ["--username", "admin", "--password-file", str(pw), "--control-port", str(control), "--acpi-delay", "0.2"]
    # The lab hosts' machines: power.yml checks each BMC's system UUID against the SoT first.
    cmd += [a for _, _, h in load(lab_sot, semantic=False).hosts() for a in ("--uuid", str(h.uuid))]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def state() -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{control}/", timeout=5) as r:
            return json.loads(r.read())

    deadline = time.monotonic() + 60  # bounds a hang only
    while True:
        try:
            state()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "emulator did not start"
            time.sleep(0.1)
    yield port, state
    proc.terminate()
    proc.wait(10)


def test_power_off_step_drains_then_cuts_power(tmp_path, lab_sot, bmcs, monkeypatch) -> None:
    port, bmc_state = bmcs
    monkeypatch.setenv("VAQUERO_LAB_BMC_PASSWORD", PASSWORD)
    monkeypatch.delenv("VAQUERO_CONTENT_DIR", raising=False)  # the checkout's real playbooks
    cluster = lab_sot / "clusters" / "lab.yaml"
    text = cluster.read_text()
    for i in range(4):
        text = text.replace(f"port: {6231 + i}", f"port: {port + i}")
    cluster.write_text(text)
    old = load(lab_sot, sha="a" * 40)
    new_dir = tmp_path / "sot-new"
    new_dir.mkdir()
    subprocess.run(["cp", "-r", f"{lab_sot}/.", str(new_dir)], check=True)
    path = new_dir / "clusters" / "lab.yaml"
    path.write_text(path.read_text().replace("ips: {prov: 10.90.0.13}", "ips: {prov: 10.90.0.13}\n    power: \"off\""))
    new = load(new_dir, sha="b" * 40)
    plan = make_plan(old, new)
    assert [(h.host, h.action) for h in plan.hosts] == [("node3", "power")]

    store = SQLiteStore(tmp_path / "state.db")
    for host in ("node1", "node2", "node3", "node4"):
        transition(store, Event(host, "ready", None, "test", "installed earlier", sha="a" * 40))
    node3 = Endpoint(kind="ipmi", address="127.0.0.1", port=port + 2, username="admin", password=PASSWORD, host="node3")
    open_bmc(node3).power_on()
    assert bmc_state()[str(port + 2)]["power"] == "on"
    store.put(R.plan_key("p1"), {"id": "p1", "sha": "b" * 40, "root": str(new_dir), "label": "power", "state": "approved", "plan": plan.to_dict()})

    assert RunWorker(store, tmp_path / "data").tick()
    run = store.get(R.run_key("p1")).value
    assert run["state"] == "succeeded", run
    assert bmc_state()[str(port + 2)]["power"] == "off"
    events = timeline(store, "node3")
    seq = [e["state"] for e in events]
    seq = [s for i, s in enumerate(seq) if i == 0 or s != seq[i - 1]]  # a hook's output is an event in the same state
    assert seq == ["ready", "pending", "draining", "powering_off", "ready"], seq
    drain = [e for e in events if e["detail"].get("hook")]
    assert drain and drain[0]["detail"]["hook"]["name"] == "announce-drain"
    assert events[-1]["reason"] == "powered off as the SoT says"
    assert store.get("/hosts/node1").value["sha"] == "a" * 40  # other hosts untouched
    # the playbook's modules shared this process's BMC guard folder (ansible-runner records the job's environment)
    commands = list((tmp_path / "data").glob("runs/p1/**/artifacts/*/command"))
    assert commands and all(json.loads(c.read_text())["env"].get("VAQUERO_BMC_GUARD_DIR") == str(DEFAULT_GUARD.fleet().path) for c in commands)
