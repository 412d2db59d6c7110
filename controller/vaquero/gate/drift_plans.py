"""Correcting drift through the gate: the power drift the leader observed becomes a plan like any
other, against the applied revision, waiting for approval (``pending_approval``) unless every
cluster it touches says ``policy.auto_apply`` (the SoT's own rule for plans needing no approval).

Only power drift is corrected by a plan: its ``power`` steps run ``playbooks/power.yml`` (identity
check, drain hooks before a power-off, the power state the SoT gives), in the waves the clusters'
policy allows. A boot override or an agent armed by hand is shown, not corrected here. One drift
plan is open at a time (``/drift-plans/open``): while it waits, is approved or runs, no other is
made; once it is decided or done, the next round proposes what still drifts.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..plan import Plan, render_text
from ..plan.diff import ACTIONS, HostChange
from ..policy.waves import schedule
from ..sot.loader import SoT
from ..state.store import Store
from . import records as r

log = logging.getLogger("vaquero.gate")

OPEN_KEY = "/drift-plans/open"
CORRECTABLE = ("power_on", "power_off")
_OPEN_STATES = (r.PENDING_APPROVAL, r.APPROVED, r.RUNNING)
# A drift plan ended without correcting: the same drift is not proposed again until it changes.
_REFUSED = (r.REJECTED, r.CANCELLED, r.FAILED)


def open_plan(store: Store) -> str | None:
    """The drift plan still waiting, approved or running, if any."""
    marker = store.get(OPEN_KEY)
    if marker is None:
        return None
    rec = store.get(r.plan_key(str(marker.value.get("plan", ""))))
    return rec.value["id"] if rec is not None and rec.value.get("state") in _OPEN_STATES else None


def propose(store: Store, sot: SoT, actions: list[dict[str, Any]], *, actor: str = "vaquero:drift") -> dict[str, Any] | None:
    """The plan record correcting the power drift in ``actions`` (GET /v1/drift's), written to the
    Store, or None: nothing to correct, a drift plan is already open, or the last one for this same
    drift was rejected, cancelled or failed (it is not proposed again every round, and a failing
    auto-approved correction does not loop; it is proposed again once the drift has cleared and
    comes back, or changes)."""
    applied = store.get(r.CURRENT_KEY)
    marker = store.get(OPEN_KEY)
    last = store.get(r.plan_key(str(marker.value.get("plan", "")))) if marker is not None else None
    if applied is None or (last is not None and last.value.get("state") in _OPEN_STATES):
        return None
    reasons: dict[str, list[str]] = {}
    for a in actions:
        if a.get("action") in CORRECTABLE:
            reasons.setdefault(str(a["host"]), []).append(str(a["reason"]))
    hosts: list[HostChange] = []
    for name in sorted(reasons):
        found = sot.host(name)
        if found is not None:  # a host that left the applied revision is not the observer's any more
            cluster, _ = found
            hosts.append(HostChange(name, cluster.name, cluster.site, "power", [*reasons[name], "drift: observed on the hardware, not a SoT change"]))
    if not hosts:
        if marker is not None:
            store.delete(OPEN_KEY)  # the drift cleared: if it comes back, it is proposed again
        return None
    signature = sorted(f"{h.host}:{a['action']}" for h in hosts for a in actions if a.get("host") == h.host and a.get("action") in CORRECTABLE)
    if marker is not None and last is not None and last.value.get("state") in _REFUSED and marker.value.get("drift") == signature:
        return None
    disruptive: dict[str, dict[str, str]] = {}
    for h in hosts:
        disruptive.setdefault(h.cluster, {})[h.host] = "power"
    in_service = {h.name for _, _, h in sot.hosts() if h.power == "on"}
    label = f"drift correction of {sot.label}"
    summary = {a: 0 for a in ACTIONS} | {"power": len(hosts)}
    plan = Plan(sot.label, label, sot.sha, sot.sha, hosts, [], schedule(sot, disruptive, in_service), summary)
    auto = all(sot.clusters[h.cluster].policy.auto_apply for h in hosts)
    pid = r.new_plan_id()
    value: dict[str, Any] = {
        "id": pid,
        "kind": "drift",
        "revision": "drift",  # no SoT revision: the applied one, corrected
        "sha": applied.value.get("sha"),
        "source": "drift",
        "label": label,
        "root": applied.value.get("root"),
        "content": None,
        "created": time.time(),
        "actor": actor,
        "base_sha": applied.value.get("sha"),
        "state": r.PENDING_APPROVAL,
        "auto_apply": auto,
        "plan": plan.to_dict(),
        "text": render_text(plan),
        "errors": [],
        **r.UNDECIDED,
    }
    value["digest"] = r.plan_digest(value)
    if auto:
        value |= {"state": r.APPROVED, "approved_by": "policy:auto_apply", "approved_at": time.time()}
    else:
        # waiting like any plan: a revision planned later supersedes it
        store.put(r.pending_key(pid), {"plan": pid, "created": value["created"]})
    store.put(r.plan_key(pid), value)
    store.put(OPEN_KEY, {"plan": pid, "drift": signature})
    log.info("drift plan %s (%s): %s", pid, value["state"], ", ".join(h.host for h in hosts), extra={"plan": pid, "sha": value["sha"]})
    return value
