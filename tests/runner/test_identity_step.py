"""A plan whose SoT swaps two hosts' BMC addresses: the run worker launches the real install.yml, the
identity check refuses the BMC before any power or boot request, and the host's timeline says why
(host, BMC address, expected and observed UUID). The emulated IPMI BMCs (vaquero.bmc.emulator, a
real IPMI peer on loopback) count what they received: identity reads only."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from waiting import wait_until

from vaquero.plan import make_plan
from vaquero.runner import records as R
from vaquero.runner.worker import RunWorker
from vaquero.sot import load
from vaquero.state.machine import Event, current, timeline, transition
from vaquero.state.sqlite import SQLiteStore

PASSWORD = "identity-step-pw-5c1a"


def _free(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def bmcs(tmp_path: Path, lab_sot: Path):
    """node2's and node3's machines: two BMCs on consecutive ports reporting those hosts' SoT uuids."""
    uuids = {h.name: str(h.uuid) for _, _, h in load(lab_sot, semantic=False).hosts()}
    for port in range(_free(socket.SOCK_DGRAM), 65000):
        if all(_bindable(p) for p in (port, port + 1)):
            break
    control = _free(socket.SOCK_STREAM)
    (tmp_path / "bmc-pw").write_text(PASSWORD)
    cmd = [sys.executable, "-m", "vaquero.bmc.emulator", "--address", "127.0.0.1", "--port", str(port), "--count", "2"]
    cmd += ["--password-file", str(tmp_path / "bmc-pw"), "--control-port", str(control), "--uuid", uuids["node2"], "--uuid", uuids["node3"]]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def state() -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{control}/", timeout=5) as r:
            return json.loads(r.read())

    def up() -> bool:
        assert proc.poll() is None, "the emulator exited"
        try:
            return bool(state())
        except OSError:
            return False

    wait_until(up, 60, "the emulated BMCs")
    yield port, uuids, state
    proc.terminate()
    proc.wait(10)


def _bindable(port: int) -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False


def _sot(lab_sot: Path, dest: Path, node2: int, node3: int, change: str | None) -> Path:
    subprocess.run(["cp", "-r", f"{lab_sot}/.", str(dest)], check=True)
    path = dest / "clusters" / "lab.yaml"
    text = path.read_text().replace("port: 6232,", f"port: {node2},").replace("port: 6233,", f"port: {node3},")
    text = text.replace("on_failure: retry", "on_failure: halt")
    if change == "reinstall":
        text = text.replace("ips: {prov: 10.90.0.12}", "ips: {prov: 10.90.0.12}\n    reinstall: 1")
    elif change == "power":
        text = text.replace("ips: {prov: 10.90.0.12}", 'ips: {prov: 10.90.0.12}\n    power: "off"')
    path.write_text(text)
    return dest


@pytest.mark.parametrize("change", ["reinstall", "power"])  # install.yml, power.yml
def test_swapped_bmc_fails_the_host_in_the_timeline_with_no_power_or_boot(tmp_path, lab_sot, bmcs, monkeypatch, change) -> None:
    port, uuids, bmc_state = bmcs
    monkeypatch.setenv("VAQUERO_LAB_BMC_PASSWORD", PASSWORD)
    monkeypatch.delenv("VAQUERO_CONTENT_DIR", raising=False)  # the checkout's real playbooks
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = load(_sot(lab_sot, tmp_path / "old", port, port + 1, change=None), sha="a" * 40)
    # The new revision reinstalls node2 (or powers it off), and (by mistake) swaps node2's and node3's BMC addresses.
    new_dir = _sot(lab_sot, tmp_path / "new", port + 1, port, change=change)
    plan = make_plan(old, load(new_dir, sha="b" * 40))
    assert ("node2", change) in [(h.host, h.action) for h in plan.hosts], plan.to_dict()
    store = SQLiteStore(tmp_path / "state.db")
    for host in ("node1", "node2", "node3", "node4"):
        transition(store, Event(host, "ready", None, "test", "installed earlier", sha="a" * 40))
    store.put(R.plan_key("p1"), {"id": "p1", "sha": "b" * 40, "root": str(new_dir), "label": "swap", "state": "approved", "plan": plan.to_dict()})

    assert RunWorker(store, tmp_path / "data").tick()
    run = store.get(R.run_key("p1")).value
    assert run["state"] == "failed" and "node2" in run.get("error", ""), run
    last = current(store, "node2")
    assert last is not None and last["state"] == "failed", last
    reason = last["reason"]
    assert "Compare the BMC's system UUID and MACs with the SoT" in reason, reason
    assert f"host node2: the ipmi BMC at 127.0.0.1:{port + 1} is not this host's BMC" in reason, reason
    assert f"the BMC reports system UUID {uuids['node3']}, the SoT expects {uuids['node2']}" in reason, reason
    seq = [e["state"] for e in timeline(store, "node2")]
    assert not {"draining", "powering_off", "netbooting"} & set(seq), seq  # the run never got near a hook or the power
    # Counted by the BMCs: no power or boot request on either; the one node2's entry names got Get System GUID only.
    state = bmc_state()
    assert [s["counts"] for s in state.values()] == [{}, {}], state
    assert state[str(port + 1)]["received"] == {"0x06/0x37": 1} and state[str(port)]["received"] == {}, state
    for host in ("node1", "node3", "node4"):  # nothing else was touched
        assert current(store, host)["state"] == "ready"
