"""What a host should look like on its BMC, and how an observation differs from it (no I/O here).

Only a ``ready`` host is judged: in every other state either a run is driving the hardware (its
power and boot override change on purpose), or the host is not installed yet or failed, which the
host's own state already says. A ready host should have the power state its SoT entry asks for
(``power``, default on) and, when on, boot from its disk: no boot override, or ``disk``; and its
site agent should serve it ``localboot`` at a netboot (agent state ``none`` or ``installed``), not
an install or a wipe. A BMC or an agent that could not be read is ``unknown (reason)``, never drift.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ..bmc.values import BootDevice, BootSetting, PowerState
from .agent import NOT_LOCALBOOT

Status = Literal["ok", "drift", "unknown", "skipped"]
KINDS = ("power", "boot", "agent")
# Boot overrides that keep a ready host on its installed OS at the next boot.
_DISK_BOOTS = (BootDevice.NONE, BootDevice.DISK)


@dataclass(frozen=True)
class Finding:
    kind: Literal["power", "boot", "agent"]
    observed: str
    wanted: str
    action: str  # what correcting it means: power_on | power_off | boot_disk | agent_localboot
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "observed": self.observed, "wanted": self.wanted, "action": self.action, "reason": self.reason}


@dataclass(frozen=True)
class Observation:
    """One read of a host's BMC and of its site agent: what each said, or why it said nothing."""

    via: str  # ipmi | redfish
    at: float = field(default_factory=time.time)
    power: PowerState | None = None
    boot: BootSetting | None = None
    error: str | None = None  # the BMC's
    agent_state: str | None = None  # None: not read (no agent at the site, or agent_error)
    os_report_at: float | None = None  # when the installed OS last phoned home, as the agent saw it
    agent_error: str | None = None


def clock(at: float) -> str:
    """``12:03:04`` in UTC: how a reason names the moment of the observation."""
    return time.strftime("%H:%M:%S", time.gmtime(at))


def should_observe(state: str | None) -> str | None:
    """None when a host in lifecycle ``state`` is judged, else why it is skipped."""
    if state == "ready":
        return None
    if state is None:
        return "no lifecycle state yet (never applied)"
    return f"lifecycle state {state}: only a ready host is compared with the SoT"


def findings(host: str, sot_power: str, obs: Observation) -> list[Finding]:
    """How a ready host's observation differs from its SoT entry (empty: it matches)."""
    out: list[Finding] = []
    seen = f"(observed {clock(obs.at)} via {obs.via})"
    if obs.power is not None and obs.power.heading_to.value != sot_power:
        out.append(
            Finding(
                "power",
                obs.power.value,
                sot_power,
                f"power_{sot_power}",
                f"{host}: power is {obs.power.value} {seen}, the SoT wants it {sot_power}",
            )
        )
    if sot_power == "on" and obs.boot is not None and obs.boot.device not in _DISK_BOOTS:
        out.append(
            Finding(
                "boot",
                obs.boot.describe(),
                "disk",
                "boot_disk",
                f"{host}: boot override is {obs.boot.describe()} {seen}, a ready host boots from its disk",
            )
        )
    if obs.agent_state in NOT_LOCALBOOT:
        out.append(
            Finding(
                "agent",
                obs.agent_state,
                "localboot",
                "agent_localboot",
                f"{host}: {NOT_LOCALBOOT[obs.agent_state]} (observed {clock(obs.at)} via the site agent), a ready host is served localboot",
            )
        )
    return out


def judge(host: str, state: str | None, sot_power: str, obs: Observation | None, skipped: str | None = None) -> dict[str, Any]:
    """The ``/drift/<host>`` record for one host after one round."""
    why_skip = skipped or should_observe(state)
    record: dict[str, Any] = {
        "host": host,
        "state": state,
        "wants_power": sot_power,
        "status": "skipped",
        "reason": why_skip,
        "observed_at": None,
        "via": None,
        "power": None,
        "boot": None,
        "agent_state": None,
        "os_report_at": None,
        "findings": [],
    }
    if why_skip is not None or obs is None:
        return record
    record.update(
        observed_at=obs.at,
        via=obs.via,
        power=obs.power.value if obs.power else None,
        boot=obs.boot.as_dict() if obs.boot else None,
        agent_state=obs.agent_state,
        os_report_at=obs.os_report_at,
    )
    found = findings(host, sot_power, obs)
    unread = "; ".join(f"{who}: {why}" for who, why in (("BMC", obs.error), ("agent", obs.agent_error)) if why)
    # what could be read still counts: a dead agent does not hide a host powered off
    status = "drift" if found else "unknown" if unread else "ok"
    record.update(status=status, reason=unread or None, findings=[f.to_dict() for f in found])
    return record
