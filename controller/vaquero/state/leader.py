"""Leader election for HA controllers: one lease-backed key, taken with compare-and-set.

Works on any Store (etcd for real HA; SQLite for several processes on one machine).

- Campaign: grant a lease, then `cas(/leader/<name>, expect=0, lease=...)`. Whoever creates the key
  leads. The others watch the key and try again when it is deleted (its lease expired or was revoked).
- Keep-alive: the leader refreshes its lease every ttl/3 from a background thread.
- Stepping down before anyone else can step up: the lease cannot expire on the store before
  `t_sent + ttl`, where t_sent is when the last successful grant/refresh request left this process.
  The elector counts itself leader only until `t_sent + ttl - margin` (local monotonic clock); a
  watchdog thread fires `on_loss` at that moment even if the keep-alive thread is stuck in a call
  to an unreachable store. So by the time another controller can create the key, this one has
  stopped acting (given clocks whose rates differ by less than margin/ttl).
- Fencing token: the revision at which this leader created the key. It only grows from one
  leadership to the next; anything a leader drives (agents, BMC queues) can remember the highest
  token seen and refuse orders carrying a lower one, which covers a leader paused past its lease.
  Run-state writes go through vaquero.state.store.FencedStore: one store transaction that also
  compares the leader key's revision with the token, so a deposed leader's write is refused.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from .store import Lease, LeaseExpired, Store, StoreUnavailable

log = logging.getLogger(__name__)


class NotLeader(Exception):
    """Raised by LeaderElector.check() when this process does not (or no longer) hold the leadership."""


def leader_key(name: str) -> str:
    return f"/leader/{name}"


class LeaderElector:
    def __init__(
        self,
        store: Store,
        *,
        name: str = "controller",
        identity: str | None = None,
        ttl: float = 5.0,
        margin: float | None = None,
        on_gain: Callable[[int], None] | None = None,
        on_loss: Callable[[str], None] | None = None,
        retry: float = 0.25,
    ) -> None:
        self.store = store
        self.name = name
        self.key = leader_key(name)
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ttl = ttl
        self.margin = margin if margin is not None else max(0.1, ttl * 0.1)
        self.on_gain = on_gain
        self.on_loss = on_loss
        self.retry = retry
        self._cond = threading.Condition()
        self._callbacks = threading.RLock()
        self._leading = False
        self._token: int | None = None
        self._lease: Lease | None = None
        self._valid_until = 0.0  # monotonic
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.gained_at: float | None = None  # monotonic time of the last gain, for measurements

    # -- public --
    @property
    def is_leader(self) -> bool:
        with self._cond:
            return self._leading and time.monotonic() < self._valid_until

    @property
    def token(self) -> int | None:
        """The fencing token (the leader key's revision) while leading, else None."""
        with self._cond:
            return self._token if self._leading and time.monotonic() < self._valid_until else None

    def check(self) -> int:
        """The fencing token, or NotLeader: call right before acting as leader, and send the token along."""
        token = self.token
        if token is None:
            raise NotLeader(f"{self.identity} is not the {self.name} leader")
        return token

    def fence(self) -> tuple[str, int]:
        """(leader key, fencing token) for a fenced write (Store.fenced_write), or NotLeader."""
        return self.key, self.check()

    @property
    def deadline(self) -> float | None:
        """The local monotonic time until which this process counts itself leader, or None.

        CLOCK_MONOTONIC is one clock for every process of a machine, so child processes (a playbook
        driving BMCs) can be handed this deadline and stop by themselves when it passes.
        """
        with self._cond:
            return self._valid_until if self._leading and time.monotonic() < self._valid_until else None

    def leader(self) -> dict[str, Any] | None:
        """Who leads now, as recorded in the store (None if nobody)."""
        rec = self.store.get(self.key)
        return dict(rec.value, token=rec.revision) if rec else None

    def start(self) -> LeaderElector:
        if self._threads:
            return self
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._run, name=f"leader-{self.name}", daemon=True),
            threading.Thread(target=self._watchdog, name=f"leader-{self.name}-watchdog", daemon=True),
            threading.Thread(target=self._verify, name=f"leader-{self.name}-verify", daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def wait_for_leadership(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self._leading and time.monotonic() < self._valid_until):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def stop(self, *, resign: bool = True) -> None:
        """Stop campaigning; with resign, revoke the lease so another controller can lead at once."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._lose("stopped")
        for t in self._threads:
            t.join(timeout=self.ttl + 5)  # a thread still in a store call after that cannot gain any more (_gain checks)
        self._threads = []
        lease = self._lease
        if resign and lease is not None:
            try:
                self.store.revoke(lease)
            except (StoreUnavailable, LeaseExpired) as exc:
                log.warning("leader %s: could not revoke lease on stop: %s", self.name, exc)
        self._lease = None

    # -- internals --
    def _gain(self, token: int, valid_until: float) -> None:
        # Callbacks run under _callbacks, so on_loss never overtakes the on_gain it answers.
        with self._callbacks:
            with self._cond:
                if self._stopping.is_set() or valid_until <= time.monotonic():
                    return  # stopping, or the store was so slow that the lease may be gone already
                self._leading, self._token, self._valid_until = True, token, valid_until
                self.gained_at = time.monotonic()
                self._cond.notify_all()
            log.info("leader %s: %s leads (fencing token %d)", self.name, self.identity, token)
            if self.on_gain:
                try:
                    self.on_gain(token)
                except Exception:
                    log.exception("leader %s: on_gain callback failed", self.name)

    def _lose(self, reason: str) -> None:
        with self._cond:  # is_leader turns false at once, whatever the callbacks are doing
            if not self._leading:
                return
            self._leading, self._token, self._valid_until = False, None, 0.0
            self._cond.notify_all()
        with self._callbacks:
            log.warning("leader %s: %s stops leading: %s", self.name, self.identity, reason)
            if self.on_loss:
                try:
                    self.on_loss(reason)
                except Exception:
                    log.exception("leader %s: on_loss callback failed", self.name)

    def _watchdog(self) -> None:
        """Fires the loss at the local deadline even while the keep-alive thread is blocked on the store."""
        while not self._stopping.is_set():
            with self._cond:
                if self._leading:
                    left = self._valid_until - time.monotonic()
                    if left > 0:
                        self._cond.wait(min(left, 0.5))
                        continue
                else:
                    self._cond.wait(0.5)
                    continue
            self._lose(f"lease not refreshed within {self.ttl - self.margin:.2f}s")

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self.is_leader:
                    self._keep_alive()
                else:
                    self._campaign()
            except StoreUnavailable as exc:
                log.info("leader %s: store unavailable: %s", self.name, exc)
                self._stopping.wait(self.retry)
            except Exception:
                log.exception("leader %s: unexpected error; retrying", self.name)
                self._stopping.wait(self.retry)

    def _campaign(self) -> None:
        sent = time.monotonic()
        if self._lease is None:
            self._lease = self.store.grant(self.ttl)
        elif not self.store.refresh(self._lease):  # keeps our lease alive while we wait (cheap)
            self._lease = None
            return
        lease = self._lease
        rec = self.store.get(self.key)
        if rec is None:
            value = {"holder": self.identity, "lease": lease.id, "since": time.time()}
            try:
                revision = self.store.cas(self.key, value, expect=0, lease=lease)
            except LeaseExpired:
                self._lease = None
                return
            if revision is not None:
                self._gain(revision, sent + lease.ttl - self.margin)
            return
        if rec.value.get("holder") == self.identity and rec.value.get("lease") == lease.id:
            # Still ours (a refresh failed for a while, then the store came back before the lease expired).
            self._gain(rec.revision, sent + lease.ttl - self.margin)
            return
        # Someone else leads: wait for the key to go away (or for our own lease to need a refresh).
        for event in self.store.watch(self.key, since=rec.revision, timeout=min(0.5, lease.ttl / 3)):
            if event.key == self.key and event.type == "delete":
                return
            if self._stopping.is_set():
                return

    def _keep_alive(self) -> None:
        lease = self._lease
        assert lease is not None
        period = lease.ttl / 3
        with self._cond:
            next_at = self._valid_until + self.margin - lease.ttl + period
            wait = next_at - time.monotonic()
            if wait > 0 and not self._stopping.is_set():
                self._cond.wait(wait)
        if self._stopping.is_set() or not self.is_leader:
            return
        sent = time.monotonic()
        try:
            alive = self.store.refresh(lease)
        except StoreUnavailable as exc:
            log.warning("leader %s: could not refresh the lease: %s", self.name, exc)
            self._stopping.wait(self.retry)
            return
        if not alive:
            self._lease = None
            self._lose("lease expired")
            return
        with self._cond:
            if self._leading:
                self._valid_until = sent + lease.ttl - self.margin
                self._cond.notify_all()

    def _verify(self) -> None:
        """Is the key still ours (an operator may have deleted it)? Checked from its own thread: a read
        can hang while etcd elects a leader, and must not delay the next refresh."""
        while not self._stopping.wait(self.ttl / 3):
            token = self.token
            if token is None:
                continue
            try:
                rec = self.store.get(self.key)
            except StoreUnavailable:
                continue  # the lease alone keeps the key; the watchdog handles an unreachable store
            if self.token == token and (rec is None or rec.revision != token or rec.value.get("holder") != self.identity):
                self._lose("leader key deleted or taken")
