"""`vaquero server --enroll-interval` as a real process: once it leads, a machine reported into its
store (by another process, as an agent's forward would be) is proposed at once (the interval is an
hour: the store watch wakes the proposer), here as a patch file (no --repo); the GitHub token given
in the environment is in none of its log lines, records or answers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import httpx
from api_helpers import GITHUB_TOKEN, ROOT, TOKENS, auth, free_port
from waiting import wait_until

from vaquero.inspect import InspectionReport, record_inspection
from vaquero.state.sqlite import SQLiteStore


def test_the_server_leader_proposes_a_reported_machine(tmp_path):
    root = tmp_path / "sot"
    shutil.copytree(ROOT / "inventories" / "lab", root)
    site = root / "sites" / "lab.yaml"
    site.write_text(site.read_text() + "discovery: {enabled: true, cluster: lab}\n")
    db = tmp_path / "store.sqlite"
    store = SQLiteStore(db)
    store.put("/sites-applied/current", {"root": str(root), "sha": None, "label": "lab"})
    (tmp_path / "tokens").write_text("".join(f"{n}:{role}:{tok}\n" for n, (role, tok) in TOKENS.items()))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAQUERO_")} | {"VAQUERO_GITHUB_TOKEN": GITHUB_TOKEN}
    cmd = [sys.executable, "-m", "vaquero.cli", "--log-level", "debug", "server", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")]
    cmd += ["--store", f"sqlite://{db}", "--tokens-file", str(tmp_path / "tokens"), "--drift-interval", "0", "--enroll-interval", "3600"]
    log = tmp_path / "server.log"
    proc = None
    try:
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)

        def listed() -> dict:
            resp = httpx.get(f"http://127.0.0.1:{port}/v1/inspections", headers=auth("reader"), timeout=5)
            return resp.json() if resp.status_code == 200 else {}

        wait_until(lambda: listed().get("count") == 0, 60, "the server's API")
        wait_until(lambda: "starting the run worker" in log.read_text(), 60, "the server to lead")
        report = {"boot_mac": "52:54:00:aa:00:09", "nics": [{"name": "ens3", "mac": "52:54:00:aa:00:09"}], "cpus": 1, "memory_mib": 512}
        record_inspection(store, InspectionReport.model_validate(report), site="lab", agent="lab-agent")
        [item] = wait_until(lambda: [i for i in listed().get("inspections", []) if i["status"] != "new"], 90, "the proposal")
        assert item["status"] == "proposed" and item["proposal"]["kind"] == "patch" and item["proposal"]["host"] == "new-525400aa0009"
        patch = tmp_path / "data" / "enrollments" / "52-54-00-aa-00-09.patch"
        assert item["proposal"]["path"] == str(patch) and "+kind: Host" in patch.read_text()
        answer = httpx.get(f"http://127.0.0.1:{port}/v1/inspections", headers=auth("reader"), timeout=5).text
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(15)
        store.close()
    text = log.read_text()
    assert f"patch {patch}" in text
    assert GITHUB_TOKEN not in text and GITHUB_TOKEN not in answer and GITHUB_TOKEN not in db.read_bytes().decode(errors="replace")
