"""`vaquero server --drift-interval` as a real process: it wins the election, its observer reads the
emulated IPMI BMCs and GET /v1/drift shows a host powered off out of band; the BMC password is in
none of its log lines."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import httpx
import pytest
from api_helpers import TOKENS, auth, free_port
from bmc_helpers import LAB_SOT, PASSWORD, ipmitool, start_ipmi_fleet, stop
from waiting import wait_until

from vaquero.state.machine import Event, transition
from vaquero.state.rounds import CURRENT_KEY
from vaquero.state.sqlite import SQLiteStore

pytestmark = pytest.mark.slow


def test_server_process_observes_drift_on_the_leader(tmp_path):
    fleet = start_ipmi_fleet(tmp_path, count=2)
    proc = None
    try:
        root = tmp_path / "sot"
        shutil.copytree(LAB_SOT, root)
        cluster = root / "clusters" / "lab.yaml"
        cluster.write_text(cluster.read_text().replace("port: 6231,", f"port: {fleet.port},").replace("port: 6232,", f"port: {fleet.port + 1},"))
        db = tmp_path / "store.sqlite"
        store = SQLiteStore(db)
        store.put(CURRENT_KEY, {"root": str(root), "sha": None, "label": "lab"})
        for name in ("node1", "node2"):
            transition(store, Event(name, "ready", None, actor="test", reason="installed"))
        store.close()
        for i in (0, 1):
            ipmitool(fleet.endpoint(i), "chassis", "power", "on")

        (tmp_path / "tokens").write_text("".join(f"{n}:{role}:{tok}\n" for n, (role, tok) in TOKENS.items()))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VAQUERO_")}
        env |= {"VAQUERO_LAB_BMC_PASSWORD": PASSWORD, "VAQUERO_BMC_GUARD_DIR": os.environ["VAQUERO_BMC_GUARD_DIR"]}
        cmd = [sys.executable, "-m", "vaquero.cli", "--log-level", "debug", "server", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")]
        cmd += ["--store", f"sqlite://{db}", "--tokens-file", str(tmp_path / "tokens"), "--drift-interval", "0.3"]
        log = tmp_path / "server.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)

        def drift() -> dict:
            resp = httpx.get(f"http://127.0.0.1:{port}/v1/drift", headers=auth("reader"), timeout=5)
            return {h["host"]: h for h in resp.json()["hosts"]} if resp.status_code == 200 else {}

        # the lab site's agent is not served here: the hosts' agent part is unknown, their BMCs are read
        wait_until(lambda: drift().get("node2", {}).get("power") == "on", 90, "node2 observed on by the server's leader")
        ipmitool(fleet.endpoint(1), "chassis", "power", "off")
        node2 = wait_until(lambda: drift().get("node2", {}).get("status") == "drift" and drift()["node2"], 60, "node2 drift through the API")
        assert node2["findings"][0]["reason"].startswith("node2: power is off (observed ")
        node1 = drift()["node1"]
        assert (node1["status"], node1["findings"], node1["power"]) == ("unknown", [], "on") and node1["reason"].startswith("agent: ")
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(15)
        stop(fleet.proc)
    text = log.read_text()
    assert "drift: node2: power is off" in text  # the observer's own log line, at info
    assert PASSWORD not in text
