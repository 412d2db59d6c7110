"""The BMC interface, its value types, typed errors and the guard every BMC call goes through.

The guard gives each call a hard deadline, bounded retries with exponential backoff and full
jitter, a lock per BMC (two operations never race on one BMC), a circuit breaker per BMC (a dead
BMC is not hammered) and a process-wide concurrency limit (the management network is protected).

Fencing (HA): before every attempt, and between the steps of a soft power-off, the guard asks
whether this process may still act for the leader. In the controller, `Guard.fence` is a callable
(the leader elector's check); in a playbook launched by the leader, $VAQUERO_FENCE_FILE names a file
holding the leader's token and the monotonic deadline of its lease, which the controller keeps
current and removes on loss: past that deadline (or without the file) every BMC call is refused,
even if the controller that launched the playbook is frozen or cut off from the store.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

log = logging.getLogger("vaquero.bmc")

T = TypeVar("T")


class Secret:
    """A secret string whose repr and str are ``***``; call :meth:`reveal` at the point of use."""

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        self._value = value.reveal() if isinstance(value, Secret) else str(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # never pickled with the clear text by accident
        raise TypeError("Secret cannot be pickled")


class PowerState(enum.StrEnum):
    ON = "on"
    OFF = "off"


class PowerAction(enum.StrEnum):
    ON = "on"
    OFF = "off"  # soft, then hard after a timeout
    FORCE_OFF = "force_off"
    CYCLE = "cycle"
    RESET = "reset"


class BootDevice(enum.StrEnum):
    PXE = "pxe"
    DISK = "disk"
    CDROM = "cdrom"
    HTTP = "http"  # UEFI HTTP boot, where the BMC supports it
    BIOS_SETUP = "bios"
    NONE = "none"  # no override


class BootMode(enum.StrEnum):
    BIOS = "bios"
    UEFI = "uefi"


@dataclass(frozen=True)
class BootSetting:
    device: BootDevice
    persistent: bool
    mode: BootMode | None = None  # None: the BMC does not say

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device.value, "persistent": self.persistent, "mode": self.mode.value if self.mode else None}


@dataclass(frozen=True)
class Inventory:
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    uuid: str | None = None
    macs: tuple[str, ...] = ()
    power_state: PowerState | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "manufacturer": self.manufacturer,
            "model": self.model,
            "serial": self.serial,
            "uuid": self.uuid,
            "macs": list(self.macs),
            "power_state": self.power_state.value if self.power_state else None,
            **self.extra,
        }

    def mismatches(self, uuid: str | None = None, macs: list[str] | tuple[str, ...] | None = None) -> list[str]:
        """What differs from what the SoT expects (empty: the hardware is the machine we think it is)."""
        problems: list[str] = []
        # IPMI BMCs disagree on the byte order of the system GUID: accept any of the usual readings
        readings = {str(u).strip().lower() for u in (self.uuid, *self.extra.get("uuid_alternates", ())) if u}
        if uuid and self.uuid and uuid.strip().lower() not in readings:
            problems.append(f"system UUID is {self.uuid}, the SoT expects {uuid}")
        if uuid and not self.uuid:
            problems.append("the BMC reports no system UUID to check against the SoT")
        if macs and self.macs:
            have = {m.lower().replace("-", ":") for m in self.macs}
            missing = [m for m in macs if m.lower().replace("-", ":") not in have]
            if missing:
                problems.append(f"MAC(s) {', '.join(missing)} not reported by the BMC (it reports {', '.join(sorted(have))})")
        return problems


@dataclass(frozen=True)
class Endpoint:
    """A resolved BMC: where it is and how to log in. The password is a :class:`Secret`."""

    kind: Literal["ipmi", "redfish"]
    address: str
    username: str
    password: Secret
    host: str = ""  # the host name (SoT) this BMC belongs to, used in logs and errors
    port: int | None = None
    verify: bool = True  # Redfish: verify TLS
    ca_file: str | None = None
    scheme: Literal["https", "http"] = "https"
    system_id: str | None = None  # Redfish: which System when the service has several

    def __post_init__(self) -> None:
        if not isinstance(self.password, Secret):
            object.__setattr__(self, "password", Secret(self.password))
        if not self.host:
            object.__setattr__(self, "host", self.address)

    @property
    def key(self) -> str:
        return f"{self.kind}://{self.address}:{self.port or ''}"


# --- errors ------------------------------------------------------------------------------------


class BmcError(Exception):
    """A BMC operation failed. Carries the host name, never the password."""

    kind = "error"
    retryable = False

    def __init__(self, host: str, message: str, *, maybe_applied: bool = False) -> None:
        super().__init__(f"{host}: {message}")
        self.host = host
        self.message = message
        # True when the request may have reached the BMC (a non-idempotent call must not be repeated)
        self.maybe_applied = maybe_applied


class BmcAuthError(BmcError):
    kind = "auth"


class BmcUnreachable(BmcError):
    kind = "unreachable"
    retryable = True


class BmcCircuitOpen(BmcUnreachable):
    kind = "circuit_open"
    retryable = False


class BmcTimeout(BmcError):
    kind = "timeout"
    retryable = True


class BmcBusy(BmcTimeout):
    """Another operation held this BMC (or the global limit was full) for the whole deadline."""

    kind = "busy"
    retryable = False


class BmcUnsupported(BmcError):
    kind = "unsupported"


class BmcServerError(BmcError):
    """The BMC answered, with an error of its own (HTTP 5xx, IPMI completion code)."""

    kind = "server_error"
    retryable = True


class BmcProtocolError(BmcError):
    """The BMC answered something we cannot use (bad request, odd payload); not worth retrying."""

    kind = "protocol"


class BmcFenced(BmcError):
    """Refused before reaching the BMC: the controller that asked is (or may be) no longer the leader."""

    kind = "fenced"


FENCE_ENV = "VAQUERO_FENCE_FILE"


def check_fence_file(host: str, name: str) -> None:
    """BmcFenced unless $VAQUERO_FENCE_FILE (when set) holds a deadline still ahead on CLOCK_MONOTONIC."""
    path = os.environ.get(FENCE_ENV)
    if not path:
        return
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        until, token = float(data["until"]), int(data["token"])
    except (OSError, ValueError, KeyError, TypeError):
        raise BmcFenced(host, f"{name}: refused: no valid leader fence ({FENCE_ENV}): the controller is not (or no longer) the leader") from None
    if time.monotonic() >= until:
        raise BmcFenced(host, f"{name}: refused: the lease of the leader that sent it (fencing token {token}) has run out")


# --- the guard ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuardPolicy:
    attempt_timeout: float = 10.0  # hard deadline of one attempt
    deadline: float = 30.0  # hard deadline of one operation, all attempts, waits and backoff included
    retries: int = 2  # attempts = retries + 1
    backoff_base: float = 0.2
    backoff_max: float = 3.0
    breaker_threshold: int = 3  # consecutive failures that open the circuit
    breaker_reset: float = 30.0  # seconds the circuit stays open before one trial call


class _BmcSlot:
    """Per-BMC state: the lock and the circuit breaker."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures = 0
        self.open_until = 0.0
        self.mutex = threading.Lock()


class Guard:
    """Runs BMC calls under one process-wide policy: locks, breakers and a concurrency limit."""

    def __init__(self, concurrency: int = 16, policy: GuardPolicy | None = None) -> None:
        self.policy = policy or GuardPolicy()
        self._concurrency = concurrency
        self._sem = threading.BoundedSemaphore(concurrency)
        self._slots: dict[str, _BmcSlot] = {}
        self._slots_mutex = threading.Lock()
        self._rng = random.Random()
        # HA: raises (any exception) when this process may no longer act for the leader.
        self.fence: Callable[[], object] | None = None

    def check_fence(self, host: str, name: str) -> None:
        """BmcFenced when the leader fence (in-process callable, or the fence file) refuses."""
        check_fence_file(host, name)
        if self.fence is not None:
            try:
                self.fence()
            except Exception as exc:
                raise BmcFenced(host, f"{name}: refused: {exc}") from None

    @property
    def concurrency(self) -> int:
        return self._concurrency

    def set_concurrency(self, limit: int) -> None:
        """Change the global limit (takes effect for calls that start afterwards)."""
        if limit < 1:
            raise ValueError("concurrency limit must be >= 1")
        self._concurrency = limit
        self._sem = threading.BoundedSemaphore(limit)

    def _slot(self, key: str) -> _BmcSlot:
        with self._slots_mutex:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _BmcSlot()
            return slot

    def breaker_state(self, key: str) -> str:
        slot = self._slot(key)
        with slot.mutex:
            if slot.open_until and time.monotonic() < slot.open_until:
                return "open"
            return "half_open" if slot.open_until else "closed"

    def run(
        self,
        endpoint: Endpoint,
        name: str,
        fn: Callable[[], T],
        *,
        idempotent: bool = True,
        policy: GuardPolicy | None = None,
    ) -> T:
        """Run ``fn`` for ``endpoint`` under the lock, the breaker, the limit, retries and deadlines."""
        pol = policy or self.policy
        host = endpoint.host
        extra = {"host": host, "bmc_op": name}
        start = time.monotonic()
        deadline = start + pol.deadline
        slot = self._slot(endpoint.key)

        self.check_fence(host, name)
        self._check_breaker(slot, host)
        # wait for the BMC in slices: if the call ahead of us opens the breaker, fail fast
        while not slot.lock.acquire(timeout=min(0.1, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                raise BmcBusy(host, f"{name}: another operation held the BMC for the whole deadline ({pol.deadline:.1f}s)")
            self._check_breaker(slot, host)
        handed_off = False
        try:
            attempt = 0
            while True:
                attempt += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BmcTimeout(host, f"{name}: deadline of {pol.deadline:.1f}s exceeded")
                sem = self._sem
                if not sem.acquire(timeout=remaining):
                    raise BmcBusy(host, f"{name}: the global BMC concurrency limit stayed full for the whole deadline")
                try:
                    self.check_fence(host, name)  # again: waiting for the lock or a retry may have outlived the lease
                    budget = min(pol.attempt_timeout, deadline - time.monotonic())
                    result, err, handed_off = _run_with_deadline(fn, budget, slot.lock, host, name)
                finally:
                    sem.release()
                if err is None:
                    self._record(slot, ok=True)
                    if attempt > 1:
                        log.info("bmc %s succeeded on attempt %d", name, attempt, extra=extra)
                    return result  # type: ignore[return-value]
                if isinstance(err, BmcUnreachable | BmcTimeout | BmcServerError):
                    self._record(slot, ok=False, host=host)
                if handed_off:
                    # the abandoned attempt still runs and now owns the lock; never start another
                    # one, and open the breaker: calls queued for this BMC fail fast instead of waiting
                    self._trip(slot, host)
                    raise err
                retry_ok = err.retryable and (idempotent or not err.maybe_applied) and attempt <= pol.retries
                if not retry_ok:
                    log.warning("bmc %s failed (%s): %s", name, err.kind, err.message, extra=extra)
                    raise err
                if self.breaker_state(endpoint.key) == "open":
                    raise BmcCircuitOpen(host, f"{name}: circuit opened after repeated failures ({err.message})")
                delay = self._rng.uniform(0, min(pol.backoff_max, pol.backoff_base * (2 ** (attempt - 1))))
                if time.monotonic() + delay >= deadline:
                    raise err
                log.info("bmc %s attempt %d failed (%s), retrying in %.2fs", name, attempt, err.kind, delay, extra=extra)
                time.sleep(delay)
        finally:
            if not handed_off:
                slot.lock.release()

    def _check_breaker(self, slot: _BmcSlot, host: str) -> None:
        with slot.mutex:
            if slot.open_until:
                now = time.monotonic()
                if now < slot.open_until:
                    raise BmcCircuitOpen(host, f"circuit open for another {slot.open_until - now:.1f}s after repeated failures")
                # half open: let this call through as the trial; one more failure re-opens at once
                slot.failures = max(slot.failures, self.policy.breaker_threshold - 1)

    def _trip(self, slot: _BmcSlot, host: str) -> None:
        with slot.mutex:
            slot.failures = max(slot.failures, self.policy.breaker_threshold)
            slot.open_until = time.monotonic() + self.policy.breaker_reset
        log.warning("bmc circuit opened: a call hung past its deadline", extra={"host": host})

    def _record(self, slot: _BmcSlot, *, ok: bool, host: str = "") -> None:
        with slot.mutex:
            if ok:
                slot.failures = 0
                slot.open_until = 0.0
                return
            slot.failures += 1
            if slot.failures >= self.policy.breaker_threshold:
                slot.open_until = time.monotonic() + self.policy.breaker_reset
                log.warning("bmc circuit opened after %d failures", slot.failures, extra={"host": host})


def _run_with_deadline(fn: Callable[[], T], budget: float, lock: threading.Lock, host: str, name: str) -> tuple[T | None, BmcError | None, bool]:
    """Run ``fn`` in a worker thread with a hard deadline.

    Returns (result, error, handed_off). On a timeout the worker keeps running (Python cannot
    kill a thread) and takes over the BMC lock: it releases it when it ends, so no other
    operation can race with it on the same BMC.
    """
    box: dict[str, Any] = {}
    state = {"abandoned": False}
    mutex = threading.Lock()
    done = threading.Event()

    def worker() -> None:
        try:
            box["result"] = fn()
        except BmcError as exc:
            box["error"] = exc
        except Exception as exc:  # a driver bug or an unexpected library error: typed, host attached
            box["error"] = BmcProtocolError(host, f"{name}: {type(exc).__name__}: {exc}", maybe_applied=True)
        finally:
            with mutex:
                done.set()
                if state["abandoned"]:
                    lock.release()

    t = threading.Thread(target=worker, name=f"bmc-{name}-{host}", daemon=True)
    t.start()
    done.wait(max(0.0, budget))
    with mutex:
        if not done.is_set():
            state["abandoned"] = True
            return None, BmcTimeout(host, f"{name}: no answer within {budget:.1f}s", maybe_applied=True), True
    return box.get("result"), box.get("error"), False


DEFAULT_GUARD = Guard()


# --- the interface -----------------------------------------------------------------------------


class Bmc:
    """One BMC. Subclasses implement the ``_raw_*`` methods; the public methods add the guard."""

    supports_http_boot = False

    def __init__(self, endpoint: Endpoint, guard: Guard | None = None, policy: GuardPolicy | None = None) -> None:
        self.endpoint = endpoint
        self.guard = guard or DEFAULT_GUARD
        self.policy = policy
        self.soft_off_timeout = 60.0
        self.poll_interval = 1.0

    @property
    def host(self) -> str:
        return self.endpoint.host

    def _run(self, name: str, fn: Callable[[], T], *, idempotent: bool = True, policy: GuardPolicy | None = None) -> T:
        return self.guard.run(self.endpoint, name, lambda: self._wrap(fn), idempotent=idempotent, policy=policy or self.policy)

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

    def close(self) -> None:
        """Release connections and sessions (best effort)."""

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
