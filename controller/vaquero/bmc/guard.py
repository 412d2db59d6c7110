"""The guard every BMC call goes through.

It gives each call a hard deadline, bounded retries with exponential backoff and full jitter, a
lock per BMC (two operations never race on one BMC), a circuit breaker per BMC (a dead BMC is not
hammered) and a global concurrency limit (the management network is protected).

One guard for the fleet: the lock, the limit and the breaker hold across processes (Ansible forks,
the controller, ``vaquero power``) through a shared folder of ``flock`` files, see
:mod:`vaquero.bmc.fleetguard`. ``DEFAULT_GUARD`` uses it (``$VAQUERO_BMC_GUARD_DIR`` or the default
folder) and falls back to the in-process primitives, with one warning, when the folder cannot be
trusted. A ``Guard`` built by hand is in-process only unless it is given ``guard_dir``.

Sessions: a driver (``owner``) takes its BMC's lock and one global slot at its first operation and
keeps them until :meth:`Guard.release` (its ``close()``), so a BMC login session, which lives from the
first operation to the logout, always counts against the limit and never shares its BMC with
another caller. Calls without an owner hold them for one operation.

Fencing (HA): before every attempt, and between the steps of a soft power-off, the guard asks
whether this process may still act for the leader. In the controller, `Guard.fence` is a callable
(the leader elector's check); in a playbook launched by the leader, $VAQUERO_FENCE_FILE names a file
holding the leader's token and the monotonic deadline of its lease, which the controller keeps
current and removes on loss: past that deadline (or without the file) every BMC call is refused,
even if the controller that launched the playbook is frozen or cut off from the store.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from vaquero.bmc.errors import BmcBusy, BmcCircuitOpen, BmcError, BmcFenced, BmcProtocolError, BmcServerError, BmcTimeout, BmcUnreachable
from vaquero.bmc.fleetguard import GUARD_DIR_ENV, MAX_SESSIONS_ENV, BreakerState, FleetDir, GuardDirError, Held, configured_guard_dir, configured_max_sessions
from vaquero.bmc.values import Endpoint

log = logging.getLogger("vaquero.bmc")

T = TypeVar("T")


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
    """Per-BMC state in this process: the lock and the circuit breaker (a copy of the shared one)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures = 0
        self.open_until = 0.0
        self.mutex = threading.Lock()


class _Hold:
    """This process's hold on one BMC (its thread lock) or on one slot of the global limit (the
    semaphore), then the shared file lock or slot file when there is one. Released once."""

    def __init__(self, local: threading.Lock | threading.BoundedSemaphore, held: Held | None) -> None:
        self._local = local
        self._held = held
        self._done = False

    def release(self) -> None:
        if self._done:
            return
        self._done = True
        if self._held is not None:
            self._held.release()
        self._local.release()


class _Lease:
    """What a driver holds from its first operation to its close(): its BMC and one global slot."""

    def __init__(self, bmc: _Hold, slot: _Hold) -> None:
        self.bmc = bmc
        self.slot = slot
        # an attempt cut at its deadline still runs and took the BMC hold over: it releases it
        self.bmc_handed_off = False

    def release(self) -> None:
        self.slot.release()
        if not self.bmc_handed_off:
            self.bmc.release()


_AUTO = "auto"


class Guard:
    """Runs BMC calls under one policy: locks, breakers and a concurrency limit, shared by every
    process that opens the same guard folder."""

    def __init__(self, concurrency: int | None = None, policy: GuardPolicy | None = None, guard_dir: Path | str | None = None) -> None:
        """``guard_dir``: the shared folder (``"auto"``: ``$VAQUERO_BMC_GUARD_DIR`` or the default,
        resolved at the first call); None: this process only. ``concurrency``: the global limit of
        sessions, by default ``$VAQUERO_BMC_MAX_SESSIONS`` or 16."""
        self.policy = policy or GuardPolicy()
        concurrency = configured_max_sessions() if concurrency is None else concurrency
        self._concurrency = concurrency
        self._sem = threading.BoundedSemaphore(concurrency)
        self._slots: dict[str, _BmcSlot] = {}
        self._slots_mutex = threading.Lock()
        self._rng = random.Random()
        self._leases: weakref.WeakKeyDictionary[object, _Lease] = weakref.WeakKeyDictionary()
        self._leases_mutex = threading.Lock()
        self._dir_spec = guard_dir
        self._fleet: FleetDir | None = None
        self._fleet_resolved = guard_dir is None
        self._fleet_mutex = threading.Lock()
        # HA: raises (any exception) when this process may no longer act for the leader.
        self.fence: Callable[[], object] | None = None

    # the shared folder ---------------------------------------------------------------------
    def fleet(self) -> FleetDir | None:
        """The shared folder, opened at the first call; None when this guard is in-process only."""
        if self._fleet_resolved:
            return self._fleet
        with self._fleet_mutex:
            if not self._fleet_resolved:
                try:
                    path = configured_guard_dir() if self._dir_spec == _AUTO else Path(str(self._dir_spec))
                    self._fleet = FleetDir(path)
                except (GuardDirError, OSError) as exc:
                    # the BMCs stay protected within this process; other processes are not counted
                    log.warning("bmc guard: shared folder unusable, limits hold in this process only: %s", exc)
                self._fleet_resolved = True
        return self._fleet

    def child_env(self) -> dict[str, str]:
        """The variables that make a child process (ansible-playbook and its modules) share this guard:
        its folder and its limit (processes sharing a folder must count the same slots)."""
        fleet = self.fleet()
        return {GUARD_DIR_ENV: str(fleet.path), MAX_SESSIONS_ENV: str(self._concurrency)} if fleet is not None else {}

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
            self._load_breaker(slot, key)
            if slot.open_until and time.monotonic() < slot.open_until:
                return "open"
            return "half_open" if slot.open_until else "closed"

    # holds ---------------------------------------------------------------------------------
    def _hold_bmc(self, slot: _BmcSlot, key: str, host: str, name: str, deadline: float, pol: GuardPolicy) -> _Hold:
        # wait in slices: if the call ahead of us opens the breaker, fail fast
        while not slot.lock.acquire(timeout=min(0.1, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                raise BmcBusy(host, f"{name}: another operation held the BMC for the whole deadline ({pol.deadline:.1f}s)")
            self._check_breaker(slot, key, host)
        fleet = self.fleet()
        if fleet is None:
            return _Hold(slot.lock, None)
        try:
            held = fleet.lock_bmc(key, deadline, lambda: self._check_breaker(slot, key, host))
        except BaseException:
            slot.lock.release()
            raise
        if held is None:
            slot.lock.release()
            raise BmcBusy(host, f"{name}: another process held the BMC for the whole deadline ({pol.deadline:.1f}s)")
        return _Hold(slot.lock, held)

    def _hold_slot(self, host: str, name: str, deadline: float) -> _Hold:
        sem = self._sem
        if not sem.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise BmcBusy(host, f"{name}: the global BMC concurrency limit stayed full for the whole deadline")
        fleet = self.fleet()
        if fleet is None:
            return _Hold(sem, None)
        try:
            held = fleet.take_slot(self._concurrency, deadline)
        except BaseException:
            sem.release()
            raise
        if held is None:
            sem.release()
            raise BmcBusy(host, f"{name}: the fleet-wide BMC concurrency limit ({self._concurrency}) stayed full for the whole deadline")
        return _Hold(sem, held)

    def release(self, owner: object) -> None:
        """Give back what ``owner`` (a driver) holds since its first operation: its BMC and its slot."""
        with self._leases_mutex:
            lease = self._leases.pop(owner, None)
        if lease is not None:
            lease.release()

    def holds(self, owner: object) -> bool:
        with self._leases_mutex:
            return owner in self._leases

    # the call ------------------------------------------------------------------------------
    def run(
        self,
        endpoint: Endpoint,
        name: str,
        fn: Callable[[], T],
        *,
        idempotent: bool = True,
        policy: GuardPolicy | None = None,
        owner: object | None = None,
    ) -> T:
        """Run ``fn`` for ``endpoint`` under the lock, the breaker, the limit, retries and deadlines.

        With an ``owner``, the BMC lock and a global slot are taken at its first call and kept
        until :meth:`release`; a later call by the same owner runs under them."""
        pol = policy or self.policy
        host = endpoint.host
        key = endpoint.key
        extra = {"host": host, "bmc_op": name}
        start = time.monotonic()
        deadline = start + pol.deadline
        slot = self._slot(key)

        self.check_fence(host, name)
        self._check_breaker(slot, key, host)
        lease: _Lease | None = None
        if owner is not None:
            with self._leases_mutex:
                lease = self._leases.get(owner)
        if lease is not None:
            bmc_hold = lease.bmc
        else:
            bmc_hold = self._hold_bmc(slot, key, host, name, deadline, pol)
            if owner is not None:
                try:
                    lease = _Lease(bmc_hold, self._hold_slot(host, name, deadline))
                except BaseException:
                    bmc_hold.release()
                    raise
                with self._leases_mutex:
                    self._leases[owner] = lease
                # a driver dropped without close() gives its holds back when it is collected
                weakref.finalize(owner, lease.release)
        handed_off = False
        try:
            attempt = 0
            while True:
                attempt += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BmcTimeout(host, f"{name}: deadline of {pol.deadline:.1f}s exceeded")
                gslot = None if lease is not None else self._hold_slot(host, name, deadline)
                try:
                    self.check_fence(host, name)  # again: waiting for the lock or a retry may have outlived the lease
                    budget = min(pol.attempt_timeout, deadline - time.monotonic())
                    result, err, handed_off = _run_with_deadline(fn, budget, bmc_hold.release, host, name)
                finally:
                    if gslot is not None:
                        gslot.release()
                if err is None:
                    self._record(slot, key, ok=True)
                    if attempt > 1:
                        log.info("bmc %s succeeded on attempt %d", name, attempt, extra=extra)
                    return result  # type: ignore[return-value]
                if isinstance(err, BmcUnreachable | BmcTimeout | BmcServerError):
                    self._record(slot, key, ok=False, host=host)
                if handed_off:
                    # the abandoned attempt still runs and now owns the BMC; never start another
                    # one, and open the breaker: calls queued for this BMC fail fast instead of waiting
                    self._trip(slot, key, host)
                    raise err
                retry_ok = err.retryable and (idempotent or not err.maybe_applied) and attempt <= pol.retries
                if not retry_ok:
                    log.warning("bmc %s failed (%s): %s", name, err.kind, err.message, extra=extra)
                    raise err
                if self.breaker_state(key) == "open":
                    raise BmcCircuitOpen(host, f"{name}: circuit opened after repeated failures ({err.message})")
                delay = self._rng.uniform(0, min(pol.backoff_max, pol.backoff_base * (2 ** (attempt - 1))))
                if time.monotonic() + delay >= deadline:
                    raise err
                log.info("bmc %s attempt %d failed (%s), retrying in %.2fs", name, attempt, err.kind, delay, extra=extra)
                time.sleep(delay)
        finally:
            if lease is not None:
                if handed_off:
                    lease.bmc_handed_off = True
            elif not handed_off:
                bmc_hold.release()

    # the breaker ---------------------------------------------------------------------------
    def _load_breaker(self, slot: _BmcSlot, key: str) -> None:
        """Take the shared breaker state (the truth when there is a folder); slot.mutex is held."""
        fleet = self.fleet()
        if fleet is None:
            return
        try:
            st = fleet.read_breaker(key, self.policy.breaker_threshold, self.policy.breaker_reset)
        except OSError as exc:
            log.warning("bmc guard: cannot read the shared breaker, keeping this process's view: %s", exc)
            return
        slot.failures, slot.open_until = st.failures, st.open_until

    def _store_breaker(self, slot: _BmcSlot, key: str) -> None:
        """Publish the breaker; the caller holds the BMC (lock file included) and slot.mutex."""
        fleet = self.fleet()
        if fleet is None:
            return
        try:
            fleet.write_breaker(key, BreakerState(slot.failures, slot.open_until))
        except OSError as exc:
            log.warning("bmc guard: cannot write the shared breaker: %s", exc)

    def _check_breaker(self, slot: _BmcSlot, key: str, host: str) -> None:
        with slot.mutex:
            self._load_breaker(slot, key)
            if slot.open_until:
                now = time.monotonic()
                if now < slot.open_until:
                    raise BmcCircuitOpen(host, f"circuit open for another {slot.open_until - now:.1f}s after repeated failures")
                # half open: let this call through as the trial; one more failure re-opens at once
                slot.failures = max(slot.failures, self.policy.breaker_threshold - 1)

    def _trip(self, slot: _BmcSlot, key: str, host: str) -> None:
        with slot.mutex:
            slot.failures = max(slot.failures, self.policy.breaker_threshold)
            slot.open_until = time.monotonic() + self.policy.breaker_reset
            self._store_breaker(slot, key)
        log.warning("bmc circuit opened: a call hung past its deadline", extra={"host": host})

    def _record(self, slot: _BmcSlot, key: str, *, ok: bool, host: str = "") -> None:
        with slot.mutex:
            before = (slot.failures, slot.open_until)
            self._load_breaker(slot, key)
            if slot.open_until and time.monotonic() >= slot.open_until:
                # this call was the half-open trial: its outcome decides
                slot.failures = max(slot.failures, before[0], self.policy.breaker_threshold - 1)
            if ok:
                if slot.failures or slot.open_until:
                    slot.failures = 0
                    slot.open_until = 0.0
                    self._store_breaker(slot, key)
                return
            slot.failures += 1
            if slot.failures >= self.policy.breaker_threshold:
                slot.open_until = time.monotonic() + self.policy.breaker_reset
                log.warning("bmc circuit opened after %d failures", slot.failures, extra={"host": host})
            self._store_breaker(slot, key)


def _run_with_deadline(fn: Callable[[], T], budget: float, release: Callable[[], None], host: str, name: str) -> tuple[T | None, BmcError | None, bool]:
    """Run ``fn`` in a worker thread with a hard deadline.

    Returns (result, error, handed_off). On a timeout the worker keeps running (Python cannot
    kill a thread) and takes over the hold on the BMC: it calls ``release`` when it ends, so no
    other operation, in this process or another, can race with it on the same BMC.
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
                    release()

    t = threading.Thread(target=worker, name=f"bmc-{name}-{host}", daemon=True)
    t.start()
    done.wait(max(0.0, budget))
    with mutex:
        if not done.is_set():
            state["abandoned"] = True
            return None, BmcTimeout(host, f"{name}: no answer within {budget:.1f}s", maybe_applied=True), True
    return box.get("result"), box.get("error"), False


# Every driver opened without a guard of its own: shared across processes through the guard folder.
DEFAULT_GUARD = Guard(guard_dir=_AUTO)
