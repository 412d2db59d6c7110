"""The BMC interface: drivers implement the ``_raw_*`` methods, the public methods run them under the guard."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from vaquero.bmc.errors import BmcTimeout, BmcUnreachable, BmcUnsupported
from vaquero.bmc.guard import DEFAULT_GUARD, Guard, GuardPolicy
from vaquero.bmc.values import BootDevice, BootMode, BootSetting, Endpoint, Inventory, PowerAction, PowerState

log = logging.getLogger("vaquero.bmc")

T = TypeVar("T")


class Bmc:
    """One BMC. Subclasses implement the ``_raw_*`` methods; the public methods add the guard."""

    supports_http_boot = False

    def __init__(self, endpoint: Endpoint, guard: Guard | None = None, policy: GuardPolicy | None = None) -> None:
        self.endpoint = endpoint
        self.guard = guard or DEFAULT_GUARD
        self.policy = policy
        self.soft_off_timeout = 60.0
        self.poll_interval = 1.0
        # Set by a driver while it waits on the BMC: what it is waiting for ("cannot connect: ..."
        # during a login, "... request sent, no answer" after a request), so an attempt the guard
        # cuts at the deadline is reported as what it was.
        self.phase: str | None = None

    @property
    def host(self) -> str:
        return self.endpoint.host

    def _run(self, name: str, fn: Callable[[], T], *, idempotent: bool = True, policy: GuardPolicy | None = None) -> T:
        pol = policy or self.policy or self.guard.policy
        started = time.monotonic()
        try:
            return self._run_guarded(name, fn, idempotent=idempotent, policy=policy)
        except (BmcTimeout, BmcUnreachable) as exc:
            if type(exc) not in (BmcTimeout, BmcUnreachable):  # busy, circuit open, TLS: already say why
                raise
            # The last attempt's message names that attempt's own wait, which after retries is only
            # what was left of the deadline: name the operation's whole budget too.
            budget = f"gave up after {time.monotonic() - started:.1f}s of the operation's {pol.deadline:.1f}s budget"
            phase = self.phase
            if phase is None:
                raise type(exc)(self.host, f"{exc.message}; {budget}", maybe_applied=exc.maybe_applied) from None
            # the guard cut an attempt still waiting inside the driver: say what it was waiting for
            if phase.startswith("cannot connect"):
                raise BmcUnreachable(self.host, f"{name}: {phase}; {budget}") from None
            raise BmcTimeout(self.host, f"{name}: {phase}; {budget}", maybe_applied=True) from None

    def _run_guarded(self, name: str, fn: Callable[[], T], *, idempotent: bool = True, policy: GuardPolicy | None = None) -> T:
        # owner=self: the BMC and a global slot stay held from the first operation to close(), the life of the login session
        return self.guard.run(self.endpoint, name, lambda: self._wrap(fn), idempotent=idempotent, policy=policy or self.policy, owner=self)

    def _wrap(self, fn: Callable[[], T]) -> T:
        """Runs around every attempt, in the attempt's thread (drivers open/close sessions here)."""
        return fn()

    # public, guarded API
    def get_power_state(self) -> PowerState:
        return self._run("get_power_state", self._raw_get_power)

    def power_on(self) -> None:
        self._run("power_on", lambda: self._raw_power(PowerAction.ON))

    def power_off(self, soft: bool = True, timeout: float | None = None) -> bool:
        """Power off; soft first (ACPI), then hard after ``timeout`` seconds. True when it had to force.

        The soft path is one guarded operation (the BMC stays locked from the request to the
        forced off), with the deadlines stretched by the soft-off wait.
        """
        if not soft:
            self._run("power_off_hard", lambda: self._raw_power(PowerAction.FORCE_OFF))
            return True
        wait = self.soft_off_timeout if timeout is None else timeout
        base = self.policy or self.guard.policy
        policy = dataclasses.replace(base, attempt_timeout=base.attempt_timeout + wait, deadline=base.deadline + wait)
        return self._run("power_off_soft", lambda: self._soft_off(wait), policy=policy)

    def _soft_off(self, wait: float) -> bool:
        # One guarded operation that talks to the BMC many times: each exchange checks the fence.
        self.guard.check_fence(self.host, "power_off_soft")
        if self._raw_get_power() == PowerState.OFF:
            return False
        self.guard.check_fence(self.host, "power_off_soft")
        self._raw_power(PowerAction.OFF)
        end = time.monotonic() + wait
        while True:
            self.guard.check_fence(self.host, "power_off_soft")
            if self._raw_get_power() == PowerState.OFF:
                return False
            if time.monotonic() >= end:
                break
            time.sleep(min(self.poll_interval, max(0.0, end - time.monotonic())))
        log.warning("bmc soft power off did not finish within %.1fs, forcing off", wait, extra={"host": self.host})
        self.guard.check_fence(self.host, "power_off_soft")
        self._raw_power(PowerAction.FORCE_OFF)
        return True

    def power_cycle(self) -> None:
        self._run("power_cycle", lambda: self._raw_power(PowerAction.CYCLE), idempotent=False)

    def power_reset(self) -> None:
        self._run("power_reset", lambda: self._raw_power(PowerAction.RESET), idempotent=False)

    def set_boot_device(self, device: BootDevice | str, persistent: bool = False, mode: BootMode | str | None = None) -> None:
        dev = BootDevice(device)
        bmode = BootMode(mode) if mode else None
        if dev == BootDevice.HTTP and not self.supports_http_boot:
            raise BmcUnsupported(self.host, "UEFI HTTP boot is not supported by this BMC type")
        if dev == BootDevice.HTTP and bmode == BootMode.BIOS:
            raise BmcUnsupported(self.host, "HTTP boot needs UEFI")
        self._run("set_boot_device", lambda: self._raw_set_boot(dev, persistent, bmode))

    def get_boot_device(self) -> BootSetting:
        return self._run("get_boot_device", self._raw_get_boot)

    def inventory(self) -> Inventory:
        return self._run("inventory", self._raw_inventory)

    def identity(self) -> Inventory:
        """Only what says which machine this BMC drives: the system UUID and, where the BMC reports
        them, the host's NIC MACs (the other fields stay None). Reads nothing else, so a check run
        before any power or boot change shows at the BMC as identity reads only."""
        return self._run("identity", self._raw_identity)

    def close(self) -> None:
        """Release connections and sessions (best effort); drivers log out first, then call this."""
        self.guard.release(self)

    def __enter__(self) -> Bmc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # driver side
    def _raw_get_power(self) -> PowerState:
        raise NotImplementedError

    def _raw_power(self, action: PowerAction) -> None:
        raise NotImplementedError

    def _raw_set_boot(self, device: BootDevice, persistent: bool, mode: BootMode | None) -> None:
        raise NotImplementedError

    def _raw_get_boot(self) -> BootSetting:
        raise NotImplementedError

    def _raw_inventory(self) -> Inventory:
        raise NotImplementedError

    def _raw_identity(self) -> Inventory:
        return self._raw_inventory()
