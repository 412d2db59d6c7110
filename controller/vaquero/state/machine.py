"""The host lifecycle: states, the transitions allowed between them, and the timeline of events.

enrolled -> pending -> (draining) -> powering_off -> netbooting -> installing -> rebooting
-> validating -> ready, with `failed` reachable from every active state; an in-place upgrade goes
draining -> installing (packages over SSH) -> rebooting (through the OS) -> validating -> ready. A host taken out of the
SoT is decommissioned: pending -> draining -> wiping (its disks zeroed by the deploy ramdisk) ->
powering_off -> removed. Each transition is an
event (time, SoT SHA, plan id, actor, reason) appended to the host's timeline. Events carry
their own id: applying one twice (an agent replaying after a partition) changes nothing.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from .store import Store


class State(StrEnum):
    ENROLLED = "enrolled"
    PENDING = "pending"
    DRAINING = "draining"
    WIPING = "wiping"
    POWERING_OFF = "powering_off"
    NETBOOTING = "netbooting"
    INSTALLING = "installing"
    REBOOTING = "rebooting"
    VALIDATING = "validating"
    READY = "ready"
    FAILED = "failed"
    REMOVED = "removed"


S = State
_ACTIVE = (S.PENDING, S.DRAINING, S.WIPING, S.POWERING_OFF, S.NETBOOTING, S.INSTALLING, S.REBOOTING, S.VALIDATING)

# from-state -> states it may move to. Anything else is refused.
TRANSITIONS: dict[State, frozenset[State]] = {
    S.ENROLLED: frozenset({S.PENDING, S.READY, S.REMOVED}),
    S.PENDING: frozenset({S.DRAINING, S.POWERING_OFF, S.NETBOOTING, S.READY, S.ENROLLED, S.FAILED, S.REMOVED}),
    # An in-place upgrade (strategy reboot over SSH) installs on the running OS after the drain.
    S.DRAINING: frozenset({S.POWERING_OFF, S.WIPING, S.INSTALLING, S.FAILED}),
    # Decommission: the wipe boot, then power off; `removed` only after the power reads back off.
    S.WIPING: frozenset({S.POWERING_OFF, S.FAILED}),
    S.POWERING_OFF: frozenset({S.NETBOOTING, S.REBOOTING, S.READY, S.FAILED, S.REMOVED}),
    S.NETBOOTING: frozenset({S.INSTALLING, S.FAILED}),
    S.INSTALLING: frozenset({S.REBOOTING, S.FAILED}),
    S.REBOOTING: frozenset({S.VALIDATING, S.FAILED}),
    S.VALIDATING: frozenset({S.READY, S.FAILED}),
    S.READY: frozenset({S.PENDING, S.REMOVED}),
    S.FAILED: frozenset({S.PENDING, S.ENROLLED, S.READY, S.REMOVED}),
    S.REMOVED: frozenset({S.ENROLLED}),
}
# States a host the store has never seen may start in.
INITIAL: frozenset[State] = frozenset({S.ENROLLED, S.PENDING, S.READY})


class TransitionRefused(Exception):
    def __init__(self, host: str, current: State, target: State) -> None:
        self.host, self.current, self.target = host, current, target
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing"
        super().__init__(f"host {host}: {current} -> {target} is not allowed (from {current}: {allowed})")


@dataclass
class Event:
    host: str
    state: str
    previous: str | None
    actor: str
    reason: str
    sha: str | None = None
    plan: str | None = None
    run: str | None = None
    step: str | None = None
    attempt: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    time: float = field(default_factory=time.time)
    revision: int | None = None  # the store revision at which the host record took this event (set by transition)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def host_key(host: str) -> str:
    return f"/hosts/{host}"


def event_key(host: str, event: Event) -> str:
    # Keyed by the revision of the host-record write that applied the event: a prefix listing is
    # the timeline in the order the transitions really happened (event.time is when the event was
    # created, possibly by another thread or an agent replaying it later, so it can be out of order).
    if event.revision is None:
        return f"/events/{host}/t{event.time:017.6f}-{event.id}"
    return f"/events/{host}/{event.revision:020d}"


def event_seen_key(event_id: str) -> str:
    return f"/event-ids/{event_id}"


def current(store: Store, host: str) -> dict[str, Any] | None:
    rec = store.get(host_key(host))
    return rec.value if rec else None


def transition(store: Store, event: Event, *, retries: int = 20) -> dict[str, Any]:
    """Move a host to `event.state` if the table allows it; record the event. Idempotent by event id.

    Returns the host record after the call. Raises TransitionRefused for a move the table forbids.

    The host record is written first (compare-and-set on its revision), then the event under the
    revision of that write, then the event id as seen. A caller that stops in between leaves the
    host record naming the event (`last_event`); replaying the event then only records what is
    missing instead of applying it twice. (If another event moved the host before the replay, the
    replay is judged as a new transition against the table.)
    """
    target = State(event.state)
    for _ in range(retries):
        if store.get(event_seen_key(event.id)) is not None:
            rec = store.get(host_key(event.host))
            return rec.value if rec else {}
        rec = store.get(host_key(event.host))
        if rec is not None and rec.value.get("last_event") == event.id:
            # Applied already (by us before a crash, or by a concurrent replay): finish recording it.
            event.previous = rec.value.get("previous")
            event.revision = rec.revision
            _record(store, event)
            return rec.value
        now_state = State(rec.value["state"]) if rec else None
        if now_state is not None and target not in TRANSITIONS[now_state] and target != now_state:
            raise TransitionRefused(event.host, now_state, target)
        if now_state is None and target not in INITIAL:
            raise TransitionRefused(event.host, S.REMOVED, target)
        event.previous = now_state.value if now_state else None
        value = {
            "name": event.host,
            "state": target.value,
            "previous": event.previous,
            "since": event.time,
            "reason": event.reason,
            "actor": event.actor,
            "sha": event.sha if event.sha is not None else (rec.value.get("sha") if rec else None),
            "plan": event.plan,
            "run": event.run,
            "step": event.step,
            "attempt": event.attempt,
            "last_event": event.id,
        }
        # Same state again (a retry step, a hook's output) keeps `since`: it is when the state began.
        if rec and now_state == target:
            value["since"] = rec.value.get("since", event.time)
        revision = store.cas(host_key(event.host), value, expect=rec.revision if rec else 0)
        if revision is None:
            continue  # someone else moved the host first: read again and re-check the table
        event.revision = revision
        _record(store, event)
        return value
    raise RuntimeError(f"host {event.host}: too much contention to record a transition")


def _record(store: Store, event: Event) -> None:
    store.put(event_key(event.host, event), event.to_dict())
    store.put(event_seen_key(event.id), {"host": event.host})


def timeline(store: Store, host: str) -> list[dict[str, Any]]:
    return [r.value for r in store.list(f"/events/{host}/")]
