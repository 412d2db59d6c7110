"""The guard every BMC call goes through.

It gives each call a hard deadline, bounded retries with exponential backoff and full jitter, a
lock per BMC (two operations never race on one BMC), a circuit breaker per BMC (a dead BMC is not
hammered) and a process-wide concurrency limit (the management network is protected).

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from vaquero.bmc.errors import BmcBusy, BmcCircuitOpen, BmcError, BmcFenced, BmcProtocolError, BmcServerError, BmcTimeout, BmcUnreachable
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
