"""Store keys and states of the gate's records: revisions, plans, pull request plans, webhook deliveries.

The Store is the contract with the runner: the gate writes `/revisions/<id>` and `/plans/<id>`,
the runner moves `approved` plans on and writes `/runs/<id>` and `/sites-applied/current`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from typing import Any

from ..state.rounds import CURRENT_KEY  # noqa: F401 - where the gate and its readers have always taken it

# Plan states. The gate sets the first five; the runner sets the rest.
INVALID = "invalid"
PENDING_APPROVAL = "pending_approval"
APPROVED = "approved"
REJECTED = "rejected"
SUPERSEDED = "superseded"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
PLAN_STATES = (INVALID, PENDING_APPROVAL, APPROVED, REJECTED, SUPERSEDED, RUNNING, SUCCEEDED, FAILED, CANCELLED)

# What a new plan record holds before anyone decides on it or runs it (the gate's plans and drift plans alike).
UNDECIDED: dict[str, Any] = {
    "approved_by": None,
    "approved_at": None,
    "rejected_by": None,
    "rejected_at": None,
    "superseded_by": None,
    "run": None,
    "cancel_requested": False,
}

# Revision states: queued (accepted, not yet fetched) -> fetching -> planned | invalid.
QUEUED = "queued"
FETCHING = "fetching"
PLANNED = "planned"
REVISION_STATES = (QUEUED, FETCHING, PLANNED, INVALID)



def revision_key(rid: str) -> str:
    return f"/revisions/{rid}"


def plan_key(pid: str) -> str:
    return f"/plans/{pid}"


def pending_key(pid: str) -> str:
    """A marker per plan waiting for approval, kept by the gate (the only writer of that state)."""
    return f"/plans-pending/{pid}"


def run_key(rid: str) -> str:
    return f"/runs/{rid}"


def pull_key(number: int) -> str:
    """The plan of pull request `number` (its head, validated and planned for review; never applied)."""
    return f"/pulls/{number}"


def merged_key(sha: str) -> str:
    """Merge commit `sha` -> the pull request it merged, so the push's plan can say what was reviewed."""
    return f"/pulls-merged/{sha}"


def delivery_key(guid: str) -> str:
    return f"/deliveries/{guid}"


def new_plan_id() -> str:
    """Time-ordered (a listing by key is by creation) and unique: 12 hex digits of ms, 6 random."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(3)}"


def plan_summary(value: dict[str, Any]) -> dict[str, Any]:
    """A plan record without its large parts (the plan body and the human dump)."""
    return {k: v for k, v in value.items() if k not in ("plan", "text")}


def plan_digest(value: dict[str, Any]) -> str:
    """What an approval binds to: the plan (JSON and the text the approver read), the revision it was
    made from (commit SHA or content hash, and its folder) and the revision it was made against."""
    bound = {k: value.get(k) for k in ("plan", "text", "sha", "content", "root", "base_sha", "revision")}
    canonical = json.dumps(bound, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def valid_id(value: str) -> bool:
    """Ids that are safe as one Store key segment."""
    return bool(value) and len(value) <= 128 and "/" not in value and value not in (".", "..") and value.isprintable() and os.sep not in value
