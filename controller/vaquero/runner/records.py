"""Store keys and records of runs and their host steps (the runner's side of the Store contract).

- ``/plans/<id>``: written by the gate; the runner moves an ``approved`` plan to ``running`` and
  then ``succeeded`` | ``failed`` | ``cancelled``; ``cancel_requested`` asks it to stop.
- ``/runs/<id>`` (id = the plan's id): {id, plan, sha, state, started, finished, wave, waves
  [{number, state}], error, paused, decisions, worker, heartbeat}.
- ``/run-steps/<run>/<host>``: one host's step: {host, cluster, action, wave, state, attempt,
  failures, started, finished, error, playbook}. Written *before* the runner acts on the host, so
  a restarted controller knows what was under way.
- ``/sites-applied/current``: {sha, root, plan} of the last run that succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from vaquero.state.store import Store

CURRENT_KEY = "/sites-applied/current"

# Run states
RUNNING = "running"
PAUSED = "paused"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
FINAL = (SUCCEEDED, FAILED, CANCELLED)

# Step states
STEP_PENDING = "pending"
STEP_RUNNING = "running"
STEP_SUCCEEDED = "succeeded"
STEP_FAILED = "failed"
STEP_SKIPPED = "skipped"


def plan_key(pid: str) -> str:
    return f"/plans/{pid}"


def run_key(rid: str) -> str:
    return f"/runs/{rid}"


def step_key(rid: str, host: str) -> str:
    return f"/run-steps/{rid}/{host}"


def update(store: Store, key: str, change: Callable[[dict[str, Any]], dict[str, Any] | None], *, retries: int = 50) -> dict[str, Any] | None:
    """Read-modify-write with compare-and-set; `change` returns the new value or None to leave it."""
    for _ in range(retries):
        rec = store.get(key)
        old = dict(rec.value) if rec else {}
        new = change(dict(old))
        if new is None:
            return old or None
        if store.cas(key, new, expect=rec.revision if rec else 0) is not None:
            return new
        time.sleep(0.01)
    raise RuntimeError(f"{key}: too much contention")


def steps(store: Store, rid: str) -> dict[str, dict[str, Any]]:
    return {r.value["host"]: r.value for r in store.list(f"/run-steps/{rid}/")}
