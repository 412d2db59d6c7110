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
