"""The idempotent power and boot-device actions, shared by ``vaquero power|boot`` and the
``vaquero.metal.power|boot_device`` modules so both faces decide "changed" the same way.

Each function reads the BMC, acts only when the host is not already where it is asked to be, and
returns what it saw before and after. An action reports success only once the BMC reads back
what was asked: the power state is polled until it is the target (a transitional
``powering_on``/``powering_off`` counts as still in progress) or ``wait_timeout`` has passed
(:class:`BmcStateNotReached`); a boot override is read back until it matches the request or
``wait_timeout`` has passed (:class:`BmcSettingNotApplied`). In check mode it reads but never
writes. It does not close the BMC: the caller owns the session.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from vaquero.bmc.base import Bmc
from vaquero.bmc.errors import BmcSettingNotApplied, BmcStateNotReached
from vaquero.bmc.values import BootDevice, BootMode, BootSetting, PowerState

log = logging.getLogger("vaquero.bmc")

# "cycled" is the module's spelling (a state), "cycle" the CLI's (a verb): the same action.
POWER_WANTS = ("on", "off", "cycle", "cycled", "reset", "status")
# Seconds to wait for the host to reach the asked power state once the BMC took the request: real
# servers take tens of seconds to power on (fans, POST of the BMC's own checks).
POWER_WAIT = 120.0
# Seconds to wait for a boot override to read back as set: BMCs store it at once or within seconds.
BOOT_WAIT = 10.0


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


def ensure_power(
    bmc: Bmc,
    want: str,
    *,
    force: bool = False,
    soft_timeout: float = 60.0,
    check: bool = False,
    wait_timeout: float = POWER_WAIT,
    poll_interval: float | None = None,
) -> PowerResult:
    """Bring the host to ``want``: ``on``/``off`` (idempotent), ``cycle``/``reset`` (always act),
    ``status`` (read only).

    ``off`` is soft (ACPI) then hard after ``soft_timeout`` seconds, or hard at once with ``force``.
    ``cycle`` and ``reset`` power on a host that is off, since neither means anything to it; after
    them the host must read ``on``. A host already on its way to ``want`` (``powering_on`` when
    ``on`` is asked) gets no second request, only the wait. Every action is followed by polling
    (every ``poll_interval`` s, default the BMC's) until the host reads the target state;
    :class:`BmcStateNotReached` when it does not within ``wait_timeout`` seconds.
    """
    if want not in POWER_WANTS:
        raise ValueError(f"unknown power action {want!r} (one of {', '.join(POWER_WANTS)})")
    if wait_timeout < 0:
        raise ValueError("wait_timeout must be >= 0")
    before = bmc.get_power_state()
    if want == "status":
        return PowerResult(before, before, False, False, before)
    forced = False
    if want in ("on", "off"):
        target = PowerState(want)
        changed = before.heading_to != target
        if check or before == target:
            return PowerResult(before, before, changed, False, target)
        if changed:
            if target == PowerState.ON:
                bmc.power_on()
            else:
                forced = bmc.power_off(soft=not force, timeout=soft_timeout)
    else:
        target = PowerState.ON
        changed = True
        if check:
            return PowerResult(before, before, True, False, target)
        if before.heading_to == PowerState.OFF:
            bmc.power_on()
        elif want in ("cycle", "cycled"):
            bmc.power_cycle()
        else:
            bmc.power_reset()
    after = wait_for_power(bmc, want, target, wait_timeout, poll_interval)
    return PowerResult(before, after, changed, forced, target)


def wait_for_power(bmc: Bmc, requested: str, target: PowerState, timeout: float, poll_interval: float | None = None) -> PowerState:
    """Poll the power state until it is ``target``; :class:`BmcStateNotReached` after ``timeout`` s."""
    interval = bmc.poll_interval if poll_interval is None else poll_interval
    start = time.monotonic()
    while True:
        observed = bmc.get_power_state()
        if observed == target:
            return observed
        waited = time.monotonic() - start
        if waited >= timeout:
            log.warning("bmc power %s: still %s after %.1fs, wanted %s", requested, observed.value, waited, target.value, extra={"host": bmc.host})
            raise BmcStateNotReached(bmc.host, requested, target, observed, waited)
        time.sleep(max(0.0, min(interval, timeout - waited)))


def boot_matches(current: BootSetting, device: BootDevice, persistent: bool, mode: BootMode | None) -> bool:
    """Whether ``current`` already is the asked override. Clearing it (``none``) ignores persistence
    and mode; an unset ``mode`` leaves whatever mode the BMC holds."""
    if device == BootDevice.NONE:
        return current.device == BootDevice.NONE
    return current.device == device and current.persistent == persistent and (mode is None or current.mode == mode)


def ensure_boot(
    bmc: Bmc,
    device: BootDevice | str,
    *,
    persistent: bool = False,
    mode: BootMode | str | None = None,
    check: bool = False,
    wait_timeout: float = BOOT_WAIT,
    poll_interval: float | None = None,
) -> BootResult:
    """Set the boot override to ``device`` unless the BMC already holds it; ``status`` only reads.

    After a change the override is read back until it is the one asked for (device, persistence,
    and the mode when one is asked); :class:`BmcSettingNotApplied` when it is still another after
    ``wait_timeout`` seconds. No difference is forgiven: a BMC that keeps a one-time override as
    persistent would netboot the host on every boot, one that stores ``http`` as ``pxe`` would PXE
    boot it.
    """
    if wait_timeout < 0:
        raise ValueError("wait_timeout must be >= 0")
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
    interval = bmc.poll_interval if poll_interval is None else poll_interval
    start = time.monotonic()
    while True:
        after = bmc.get_boot_device()
        if boot_matches(after, want, persistent, want_mode):
            return BootResult(before, after, True, target)
        waited = time.monotonic() - start
        if waited >= wait_timeout:
            log.warning("bmc boot override not applied: asked %s, reads %s", target.describe(), after.describe(), extra={"host": bmc.host})
            raise BmcSettingNotApplied(bmc.host, BootSetting(want, persistent, want_mode), after, waited)
        time.sleep(max(0.0, min(interval, wait_timeout - waited)))
