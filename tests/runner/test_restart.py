"""A controller killed (SIGKILL) mid-run, with a real ansible-runner playbook under way: the next
controller resumes the run and does not start an install that got past netbooting again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from waiting import wait_until

from vaquero.plan import make_plan
from vaquero.runner import records as R
from vaquero.runner.worker import RunWorker
from vaquero.sot import empty_sot, load
from vaquero.state.machine import current, timeline
from vaquero.state.sqlite import SQLiteStore

WORKER = """
import sys, logging
logging.basicConfig(level=logging.INFO)
from vaquero.state.sqlite import SQLiteStore
from vaquero.runner.worker import RunWorker
RunWorker(SQLiteStore(sys.argv[1]), sys.argv[2], heartbeat=0.5).tick()
"""


def test_killed_controller_resumes_without_reinstalling(lab_sot: Path, content: Path, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = SQLiteStore(db)
    text = (lab_sot / "clusters" / "lab.yaml").read_text().replace("retries: 1", "retries: 1\n  max_failures: 2")
    (lab_sot / "clusters" / "lab.yaml").write_text(text)
    plan = make_plan(empty_sot(), load(lab_sot, sha="c" * 40))
    store.put(R.plan_key("p1"), {"id": "p1", "sha": "c" * 40, "root": str(lab_sot), "state": "approved", "plan": plan.to_dict(), "cancel_requested": False})
    (content / "sleep").write_text("30")
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(db), str(tmp_path / "data")], start_new_session=True, stderr=subprocess.DEVNULL)
    # node1 and node2 form the first wave: kill once both got past netbooting, not when the first did.
    wait_until(lambda: all((current(store, h) or {}).get("state") == "netbooting" for h in ("node1", "node2")), 120, "node1 and node2 to netboot")
    os.killpg(proc.pid, signal.SIGKILL)  # the controller and its playbook die together
    proc.wait(10)
    (content / "sleep").write_text("0")
    assert store.get(R.step_key("p1", "node1")).value["state"] == "running"
    worker = RunWorker(store, tmp_path / "data2", heartbeat=0.5)
    wait_until(lambda: worker._abandoned("p1"), 60, "the dead worker's heartbeat to go stale")
    assert worker.tick()
    run = store.get(R.run_key("p1")).value
    assert run["resumed"] == 1
    for host in ("node1", "node2"):
        step = store.get(R.step_key("p1", host)).value
        assert step["state"] == "failed" and step["attempt"] == 1 and "not started again" in step["error"], step
        states = [e["state"] for e in timeline(store, host)]
        assert states.count("netbooting") == 1 and states[-1] == "failed"
    # The rollout went on (max_failures 2 tolerates them) and the run says what happened.
    assert current(store, "node3")["state"] == "ready" and current(store, "node4")["state"] == "ready"
    assert run["state"] == "failed" and "node1" in run["error"] and "node2" in run["error"]
