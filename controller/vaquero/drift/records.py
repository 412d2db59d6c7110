"""The drift records in the Store: ``/drift/<host>``, one per host of the applied revision, each
rewritten by the leader's observer after every round, and what readers make of them."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..state.store import Store
from .compare import KINDS

PREFIX = "/drift/"
# What the gauge and the summary count: hosts per kind of drift, and hosts whose BMC said nothing.
GAUGE_KINDS = (*KINDS, "unknown")


def drift_key(host: str) -> str:
    return f"{PREFIX}{host}"


def read_all(store: Store) -> list[dict[str, Any]]:
    """Every host's record, by host name."""
    return [rec.value for rec in store.list(PREFIX)]


def counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """Hosts per drift kind (a host with power and boot drift counts under both) and ``unknown`` (its
    BMC or its agent could not be read, whatever else was found)."""
    tally: Counter[str] = Counter()
    for rec in records:
        if rec.get("status") == "unknown" or (rec.get("status") == "drift" and rec.get("reason")):
            tally["unknown"] += 1
        for kind in {f.get("kind") for f in rec.get("findings") or []}:
            tally[str(kind)] += 1
    return {kind: tally.get(kind, 0) for kind in GAUGE_KINDS}


def actions(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The drift as plan actions: one per finding, with its host and reason, by host then kind."""
    out: list[dict[str, Any]] = []
    for rec in records:
        for f in rec.get("findings") or []:
            out.append({"host": rec.get("host"), **f})
    return out
