"""The drift section of ``vaquero plan --live``: the observed drift as plan actions, with reasons.

Reasons carry what a BMC said; every line goes through the plan's ``escape``, so nothing a BMC
answers can add a line to what the approver reads.
"""

from __future__ import annotations

from typing import Any

from ..plan.diff import escape


def render_drift(report: dict[str, Any]) -> str:
    """The text of a ``GET /v1/drift`` answer."""
    actions = report.get("actions") or []
    unknown = [h for h in report.get("hosts") or [] if h.get("status") == "unknown"]
    lines = ["Drift: the hardware as last observed, compared with the applied revision", ""]
    if actions:
        lines.append("Actions (correcting drift is a plan like any other: it goes through the gate):")
        for a in actions:
            lines += [f"  ^ host {a['host']}: {a['action']} [drift: {a['kind']}]", f"      {a['reason']}"]
        lines.append("")
    if unknown:
        lines.append("Unknown (the BMC could not be read; not drift):")
        lines.extend(f"  ? host {h['host']}: unknown ({h.get('reason')})" for h in unknown)
        lines.append("")
    if not actions and not unknown:
        lines.append("No drift. Every observed host matches the applied revision." if report.get("count") else "No observation yet.")
        lines.append("")
    lines.append(f"Drift: {len(actions)} action(s), {len(unknown)} host(s) unknown, {report.get('count', 0)} host(s) observed.")
    return "".join(f"{escape(line, backslash=False)}\n" for line in lines)
