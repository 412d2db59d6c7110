"""`vaquero plan`: what a SoT change will do to which machines, in which order."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ..policy.waves import Schedule, schedule
from ..sot.loader import SoT
from .diff import ACTIONS, HostChange, ScopeChange, escape, host_changes, scope_changes


@dataclass
class Plan:
    old_label: str
    new_label: str
    old_sha: str | None
    new_sha: str | None
    hosts: list[HostChange]
    scopes: list[ScopeChange]
    schedule: Schedule
    summary: dict[str, int] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return bool(self.hosts or self.scopes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": {"label": self.old_label, "sha": self.old_sha},
            "new": {"label": self.new_label, "sha": self.new_sha},
            "has_changes": self.has_changes,
            "summary": self.summary,
            "hosts": [asdict(h) for h in self.hosts],
            "scopes": [asdict(s) for s in self.scopes],
            "waves": [
                {"number": w.number, "steps": [asdict(s) for s in w.steps]} | ({"not_before": w.not_before.isoformat()} if w.not_before else {})
                for w in self.schedule.waves
            ],
            "decisions": self.schedule.decisions,
        }


def make_plan(old: SoT, new: SoT, now: datetime | None = None) -> Plan:
    """`now` (timezone-aware): explain in absolute times which waves wait for a reboot window."""
    hosts = host_changes(old, new)
    in_service = {h.name for _, _, h in old.hosts() if h.power == "on"}
    disruptive: dict[str, dict[str, str]] = {}
    for change in hosts:
        if change.disruptive:
            disruptive.setdefault(change.cluster, {})[change.host] = change.action
    sched = schedule(new, disruptive, in_service, now)
    order = {a: i for i, a in enumerate(ACTIONS)}
    hosts.sort(key=lambda h: (h.site, h.cluster, order[h.action], h.host))
    summary = {a: 0 for a in ACTIONS} | dict(Counter(h.action for h in hosts))
    return Plan(old.label, new.label, old.sha, new.sha, hosts, scope_changes(old, new), sched, summary)


_SIGIL = {"add": "+", "remove": "-", "reinstall": "!", "upgrade": "~", "power": "^", "config": "~"}
_VERB = {
    "add": "will be installed",
    "remove": "will be removed",
    "reinstall": "will be reinstalled",
    "upgrade": "will be upgraded",
    "power": "will change power state",
    "config": "config only (no reboot)",
}


def render_text(plan: Plan) -> str:
    """The human dump, terraform-plan style.

    Every line is passed through `escape` once more on the way out: whatever a value holds,
    it cannot add a line to what the approver reads.
    """
    lines = [f"Vaquero plan: {plan.old_label} -> {plan.new_label}", ""]
    if not plan.has_changes:
        lines.append("No changes. The hardware already matches this revision of the SoT.")
        return _join(lines)
    if plan.scopes:
        lines.append("Sites, clusters, profiles and hooks:")
        for s in plan.scopes:
            sigil = {"add": "+", "remove": "-", "change": "~"}[s.action]
            lines.append(f"  {sigil} {s.kind} {s.name}: {s.action}")
            lines.extend(f"      {r}" for r in s.reasons)
        lines.append("")
    current: tuple[str, str] | None = None
    for h in plan.hosts:
        if (h.site, h.cluster) != current:
            current = (h.site, h.cluster)
            lines.append(f"Site {h.site}, cluster {h.cluster}:")
        lines.append(f"  {_SIGIL[h.action]} host {h.host} {_VERB[h.action]} [{h.action}]")
        lines.extend(f"      {r}" for r in h.reasons)
    lines.append("")
    if plan.schedule.waves:
        lines.append("Order (waves run one after another; steps inside a wave run at once):")
        for wave in plan.schedule.waves:
            by_cluster: dict[str, list[str]] = {}
            for step in wave.steps:
                by_cluster.setdefault(step.cluster, []).append(f"{step.host} ({step.action})")
            parts = "; ".join(f"{c}: {', '.join(hs)}" for c, hs in by_cluster.items())
            lines.append(f"  wave {wave.number}: {parts}")
        lines.append("")
    if plan.schedule.decisions:
        lines.append("Policy:")
        lines.extend(f"  - {d}" for d in plan.schedule.decisions)
        lines.append("")
    n = plan.summary
    lines.append(
        f"Plan: {n['add']} to add, {n['reinstall']} to reinstall, {n['upgrade']} to upgrade, {n['power']} power change(s), "
        f"{n['config']} config-only, {n['remove']} to remove; {len(plan.schedule.waves)} wave(s)."
    )
    return _join(lines)


def _join(lines: list[str]) -> str:
    return "".join(f"{escape(line, backslash=False)}\n" for line in lines)
