"""Inspection reports in the controller's store, one record per boot MAC.

``/inspections/<mac>`` holds the latest report of that machine, who forwarded it and when, and what
became of it (``status``): ``new`` until a SoT change is proposed for it, then ``proposed`` with
where (a pull request or a patch file). A repeated report of the same machine replaces the report
but keeps what was proposed, so a machine that netboots again is not proposed twice, and keeps the
proposer's bookkeeping (a refusal's reason, a failed attempt's backoff), so reporting again does not
make the controller retry GitHub sooner.
"""

from __future__ import annotations

import time
from typing import Any

from vaquero.state.store import Record, Store

from .report import InspectionReport

INSPECTIONS = "/inspections/"
# A bound on the records an unauthenticated network can make the controller keep.
MAX_INSPECTIONS = 4096


class TooManyInspections(Exception):
    """The store already holds MAX_INSPECTIONS reports: a new machine's report is refused."""


def inspection_key(mac: str) -> str:
    return INSPECTIONS + mac.lower().replace(":", "-")


def list_inspections(store: Store) -> list[Record]:
    return store.list(INSPECTIONS)


def record_inspection(store: Store, report: InspectionReport, *, site: str, agent: str, now: float | None = None) -> dict[str, Any]:
    """Keep ``report`` (from ``agent`` of ``site``) as its boot MAC's record; returns the record."""
    key = inspection_key(report.boot_mac)
    when = time.time() if now is None else now
    for _ in range(16):  # compare-and-swap: two agents reporting the same machine race here
        prev = store.get(key)
        if prev is None and len(store.list(INSPECTIONS)) >= MAX_INSPECTIONS:
            raise TooManyInspections(f"{MAX_INSPECTIONS} machines are already waiting to be enrolled")
        old = prev.value if prev else {}
        value = {
            **old,  # what the proposer keeps on the record (a refusal, a retry's backoff) stays
            "mac": report.boot_mac,
            "site": site,
            "agent": agent,
            "report": report.model_dump(mode="json"),
            "first_seen": old.get("first_seen", when),
            "last_seen": when,
            "reports": int(old.get("reports", 0)) + 1,
            "status": old.get("status", "new"),
            "proposal": old.get("proposal"),
        }
        if store.cas(key, value, expect=prev.revision if prev else 0) is not None:
            return value
    raise RuntimeError(f"{key}: the record kept changing under 16 attempts")


def pull_closed(store: Store, number: int, *, merged: bool, now: float | None = None) -> str | None:
    """The enrollment pull request ``number`` was closed: its machine's record becomes ``merged`` (the
    host is in the SoT from that revision on) or ``rejected`` (a reviewer said no: never proposed
    again, its address offered to others). Matched by the number the proposer recorded, so a fork's
    pull request with a look-alike branch name changes nothing. Returns the MAC, or None."""
    for rec in store.list(INSPECTIONS):
        proposal = rec.value.get("proposal")
        if rec.value.get("status") != "proposed" or not isinstance(proposal, dict) or proposal.get("kind") != "pull" or proposal.get("number") != number:
            continue
        status = "merged" if merged else "rejected"
        if store.cas(rec.key, rec.value | {"status": status, "closed_at": time.time() if now is None else now}, expect=rec.revision) is None:
            continue  # written meanwhile (the machine reported again): the next close event or a person decides
        return str(rec.value.get("mac"))
    return None


def forget_inspection(store: Store, mac: str) -> bool:
    """Drop the record of ``mac`` (whatever its status): a machine that reports again starts as new."""
    return store.delete(inspection_key(mac))
