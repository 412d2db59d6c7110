"""The idempotent power and boot-device actions, shared by ``vaquero power|boot`` and the
``vaquero.metal.power|boot_device`` modules so both faces decide "changed" the same way.

Each function reads the BMC, acts only when the host is not already where it is asked to be, and
returns what it saw before and after. In check mode it reads but never writes. It does not close
the BMC: the caller owns the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vaquero.bmc.base import Bmc
from vaquero.bmc.values import BootDevice, BootMode, BootSetting, PowerState

# "cycled" is the module's spelling (a state), "cycle" the CLI's (a verb): the same action.
POWER_WANTS = ("on", "off", "cycle", "cycled", "reset", "status")


@dataclass(frozen=True)
class PowerResult:
    before: PowerState
    after: PowerState
    changed: bool
    forced: bool
    # The state the host is expected to end in; differs from ``after`` in check mode.
    target: PowerState

    def as_dict(self) -> dict[str, Any]:
        return {"before": self.before.value, "power_state": self.after.value, "changed": self.changed, "forced": self.forced}


@dataclass(frozen=True)
class BootResult:
    before: BootSetting
    after: BootSetting
    changed: bool
    # The setting the BMC is expected to hold; differs from ``after`` in check mode.
    target: BootSetting

    def as_dict(self) -> dict[str, Any]:
        return {"before": self.before.as_dict(), "boot": self.after.as_dict(), "changed": self.changed}


def ensure_power(bmc: Bmc, want: str, *, force: bool = False, soft_timeout: float = 60.0, check: bool = False) -> PowerResult:
    """Bring the host to ``want``: ``on``/``off`` (idempotent), ``cycle``/``reset`` (always act),
    ``status`` (read only).

    ``off`` is soft (ACPI) then hard after ``soft_timeout`` seconds, or hard at once with ``force``.
    ``cycle`` and ``reset`` power on a host that is off, since neither means anything to it.
    """
    if want not in POWER_WANTS:
        raise ValueError(f"unknown power action {want!r} (one of {', '.join(POWER_WANTS)})")
    before = bmc.get_power_state()
    if want == "status":
        return PowerResult(before, before, False, False, before)
    forced = False
    if want in ("on", "off"):
        target = PowerState(want)
        changed = before != target
        if changed and not check:
            if target == PowerState.ON:
                bmc.power_on()
            else:
                forced = bmc.power_off(soft=not force, timeout=soft_timeout)
    else:
        target = PowerState.ON
        changed = True
        if not check:
            if before == PowerState.OFF:
                bmc.power_on()
            elif want in ("cycle", "cycled"):
                bmc.power_cycle()
            else:
                bmc.power_reset()
    after = bmc.get_power_state() if changed and not check else before
    return PowerResult(before, after, changed, forced, target)


def boot_matches(current: BootSetting, device: BootDevice, persistent: bool, mode: BootMode | None) -> bool:
    """Whether ``current`` already is the asked override. Clearing it (``none``) ignores persistence
    and mode; an unset ``mode`` leaves whatever mode the BMC holds."""
    if device == BootDevice.NONE:
        return current.device == BootDevice.NONE
    return current.device == device and current.persistent == persistent and (mode is None or current.mode == mode)


def ensure_boot(bmc: Bmc, device: BootDevice | str, *, persistent: bool = False, mode: BootMode | str | None = None, check: bool = False) -> BootResult:
    """Set the boot override to ``device`` unless the BMC already holds it; ``status`` only reads.

    After a change the override is read back, so the result shows what the BMC really kept (some
    BMCs report a one-time override as persistent).
    """
    before = bmc.get_boot_device()
    if device == "status":
        return BootResult(before, before, False, before)
    want = BootDevice(device)
    want_mode = None if mode is None else BootMode(mode)
    target = BootSetting(want, persistent, want_mode or before.mode)
    if boot_matches(before, want, persistent, want_mode):
        return BootResult(before, before, False, target)
    if check:
        return BootResult(before, before, True, target)
    bmc.set_boot_device(want, persistent=persistent, mode=want_mode)
    return BootResult(before, bmc.get_boot_device(), True, target)
