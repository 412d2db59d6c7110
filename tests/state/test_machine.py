"""The host state machine on every Store: the table decides, events are idempotent, timelines stay
consistent under concurrency, and state outlives the store handle and the controller process."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import textwrap
import threading
from collections import deque
from typing import Any

import pytest

from vaquero.state import Store, open_store
from vaquero.state.machine import INITIAL, TRANSITIONS, Event, State, TransitionRefused, current, event_key, host_key, timeline, transition


def _paths() -> dict[State, list[State]]:
    """The shortest list of transitions from a new host to every state, found in the table itself."""
    paths: dict[State, list[State]] = {s: [s] for s in INITIAL}
    queue = deque(INITIAL)
    while queue:
        here = queue.popleft()
        for nxt in sorted(TRANSITIONS[here]):
            if nxt not in paths:
                paths[nxt] = [*paths[here], nxt]
                queue.append(nxt)
    return paths


PATHS = _paths()


def _ev(host: str, state: State | str, **kw: Any) -> Event:
    return Event(host=host, state=str(state), previous=None, actor="test", reason=kw.pop("reason", "test"), **kw)


def test_every_state_is_reachable_from_a_new_host() -> None:
    assert set(PATHS) == set(State)


def test_table_decides_every_transition(store: Store) -> None:
    """For every (from, to) pair: accepted iff the table allows it (or it is the same state), else refused and nothing changes."""
    checked = 0
    for source in State:
        host = f"h-{source}"
        for step in PATHS[source]:
            transition(store, _ev(host, step))
        for target in State:
            allowed = target in TRANSITIONS[source] or target == source
            if not allowed:
                before = store.get(host_key(host))
                with pytest.raises(TransitionRefused) as exc:
                    transition(store, _ev(host, target))
                assert (exc.value.current, exc.value.target) == (source, target)
                assert store.get(host_key(host)) == before  # refused: not even the revision moved
                checked += 1
        for target in State:
            if target in TRANSITIONS[source] or target == source:
                probe = f"h-{source}-to-{target}"
                for step in PATHS[source]:
                    transition(store, _ev(probe, step))
                after = transition(store, _ev(probe, target))
                assert after["state"] == target and after["previous"] == source
                assert timeline(store, probe)[-1]["state"] == target
                checked += 1
    assert checked == len(State) ** 2


def test_new_host_may_only_start_in_an_initial_state(store: Store) -> None:
    for target in State:
        if target in INITIAL:
            assert transition(store, _ev(f"new-{target}", target))["state"] == target
        else:
            with pytest.raises(TransitionRefused):
                transition(store, _ev(f"new-{target}", target))
            assert current(store, f"new-{target}") is None


def test_replaying_an_event_is_a_no_op(store: Store) -> None:
    transition(store, _ev("r1", State.ENROLLED))
    ev = _ev("r1", State.PENDING, sha="abc123", plan="p1")
    first = transition(store, ev)
    rec = store.get(host_key("r1"))
    replay = Event(**{**ev.to_dict(), "previous": None, "revision": None})  # as an agent would resend it
    assert transition(store, replay) == first
    assert transition(store, replay) == first
    assert store.get(host_key("r1")) == rec
    assert [e["state"] for e in timeline(store, "r1")] == ["enrolled", "pending"]
    # replaying an old event after the host moved on does not move it back either
    transition(store, _ev("r1", State.POWERING_OFF))
    old = Event(**{**ev.to_dict(), "previous": None, "revision": None})
    assert transition(store, old)["state"] == "powering_off"
    assert len(timeline(store, "r1")) == 3


def test_replay_after_a_crash_between_host_write_and_event_record(store: Store) -> None:
    """The process dies after the host record moved but before the event was recorded: the replay completes it once."""

    class Crash(Exception):
        pass

    class CrashingStore:
        def __init__(self, inner: Store) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def put(self, key: str, value: dict[str, Any], **kw: Any) -> int:
            if key.startswith("/events/"):
                raise Crash(key)
            return self.inner.put(key, value, **kw)

    transition(store, _ev("c1", State.ENROLLED))
    ev = _ev("c1", State.PENDING)
    with pytest.raises(Crash):
        transition(CrashingStore(store), ev)  # type: ignore[arg-type]
    assert current(store, "c1")["state"] == "pending"  # type: ignore[index]
    assert [e["state"] for e in timeline(store, "c1")] == ["enrolled"]
    replay = Event(**{**ev.to_dict(), "previous": None, "revision": None})
    assert transition(store, replay)["state"] == "pending"
    assert transition(store, replay)["state"] == "pending"
    events = timeline(store, "c1")
    assert [(e["previous"], e["state"]) for e in events] == [(None, "enrolled"), ("enrolled", "pending")]
    assert events[-1]["id"] == ev.id


def _check_timeline(store: Store, host: str) -> list[dict[str, Any]]:
    events = timeline(store, host)
    assert events, "empty timeline"
    assert events[0]["previous"] is None
    for before, after in itertools.pairwise(events):
        assert after["previous"] == before["state"], f"broken chain: {before} -> {after}"
        assert State(after["state"]) in TRANSITIONS[State(before["state"])] | {State(before["state"])}
        assert after["revision"] > before["revision"]
    rec = store.get(host_key(host))
    assert rec is not None
    assert rec.value["state"] == events[-1]["state"] and rec.value["last_event"] == events[-1]["id"]
    assert rec.revision == events[-1]["revision"]
    assert len({e["id"] for e in events}) == len(events)
    return events


def test_concurrent_transitions_from_8_threads_leave_a_consistent_timeline(store: Store) -> None:
    host = "busy"
    transition(store, _ev(host, State.READY))
    applied: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        barrier.wait()
        for _ in range(12):
            now = State(current(store, host)["state"])  # type: ignore[index]
            ev = _ev(host, rnd.choice(sorted(TRANSITIONS[now])), reason=f"thread {seed}")
            try:
                transition(store, ev)
            except TransitionRefused:
                continue  # another thread moved the host first: a refusal is a correct answer
            with lock:
                applied.append(ev.id)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = _check_timeline(store, host)
    assert len(events) == 1 + len(applied) and {e["id"] for e in events[1:]} == set(applied)


def test_same_event_from_8_threads_is_recorded_once(store: Store) -> None:
    transition(store, _ev("dup", State.ENROLLED))
    ev = _ev("dup", State.PENDING)
    barrier = threading.Barrier(8)
    results: list[dict[str, Any]] = []

    def worker() -> None:
        mine = Event(**{**ev.to_dict(), "previous": None, "revision": None})
        barrier.wait()
        results.append(transition(store, mine))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r["state"] for r in results} == {"pending"}
    assert [e["state"] for e in _check_timeline(store, "dup")] == ["enrolled", "pending"]


def test_timeline_is_keyed_by_the_revision_that_applied_the_event(store: Store) -> None:
    late = _ev("k", State.ENROLLED, reason="created first, applied second")
    early = _ev("k", State.PENDING)
    early_time, late.time = early.time, early.time + 60  # wall clocks disagree: order must not depend on them
    transition(store, late)
    transition(store, early)
    assert [e["state"] for e in timeline(store, "k")] == ["enrolled", "pending"]
    assert early_time < late.time
    assert event_key("k", late) < event_key("k", early)


def test_state_survives_reopening_the_store(store_url: str) -> None:
    s = open_store(store_url)
    for step in PATHS[State.INSTALLING]:
        transition(s, _ev("p1", step, sha="deadbeef"))
    s.close()
    s = open_store(store_url)
    try:
        assert current(s, "p1")["state"] == "installing"  # type: ignore[index]
        transition(s, _ev("p1", State.REBOOTING))
        assert [e["state"] for e in _check_timeline(s, "p1")] == [str(x) for x in [*PATHS[State.INSTALLING], State.REBOOTING]]
    finally:
        s.close()


_CONTROLLER = textwrap.dedent(
    """
    import sys
    from vaquero.state import open_store
    from vaquero.state.machine import Event, transition
    store = open_store(sys.argv[1])
    for state in sys.argv[2:]:
        transition(store, Event(host="proc", state=state, previous=None, actor="controller-process", reason="test"))
    store.close()
    """
)


def test_state_survives_restarting_the_controller_process(store_url: str) -> None:
    def controller(*states: str) -> None:
        subprocess.run([sys.executable, "-c", _CONTROLLER, store_url, *states], check=True, timeout=60)

    controller("enrolled", "pending", "powering_off")
    controller("netbooting", "installing")  # a new process picks up where the last one stopped
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run([sys.executable, "-c", _CONTROLLER, store_url, "enrolled"], check=True, timeout=60, capture_output=True)
    s = open_store(store_url)
    try:
        assert [e["state"] for e in _check_timeline(s, "proc")] == ["enrolled", "pending", "powering_off", "netbooting", "installing"]
    finally:
        s.close()
