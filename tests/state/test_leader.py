"""Leader election on every Store: one leader at a time, fencing tokens, fast hand-over on resign,
failover when the leader's process is killed, and a leader that cannot refresh its lease stops
before anyone else can start."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until

from vaquero.state import Store, StoreUnavailable, open_store
from vaquero.state.leader import LeaderElector, NotLeader, leader_key

# etcd's minimum with default timings (1.5 x election timeout, rounded up); VAQUERO_TEST_LEASE_TTL=5
# measures the failover of the production default instead.
TTL = float(os.environ.get("VAQUERO_TEST_LEASE_TTL", "2"))
HERE = Path(__file__).parent
# How long a test waits for an election before calling it broken: generous, a loaded machine with
# a 3-member etcd can take seconds per write; it bounds a hang and is never a claim about speed.
PATIENCE = 60.0


def _elector(store: Store, name: str, log: list[tuple[float, str, str]] | None = None, **kw: Any) -> LeaderElector:
    def gain(token: int) -> None:
        if log is not None:
            log.append((time.monotonic(), name, f"gain {token}"))

    def loss(reason: str) -> None:
        if log is not None:
            log.append((time.monotonic(), name, f"loss {reason}"))

    return LeaderElector(store, identity=name, ttl=kw.pop("ttl", TTL), on_gain=gain, on_loss=loss, **kw)


def test_single_elector_leads_with_the_key_revision_as_token(store: Store) -> None:
    log: list[tuple[float, str, str]] = []
    a = _elector(store, "a", log).start()
    try:
        assert a.wait_for_leadership(PATIENCE)
        rec = store.get(leader_key("controller"))
        assert rec is not None and rec.value["holder"] == "a"
        assert a.token == rec.revision == a.check()
        assert a.leader() == {**rec.value, "token": rec.revision}
        time.sleep(TTL * 1.2)  # outlives its TTL: the keep-alive works (time must pass here; nothing to wait for)
        assert a.is_leader and a.token == rec.revision
    finally:
        a.stop()
    assert not a.is_leader and a.token is None
    with pytest.raises(NotLeader):
        a.check()
    assert store.get(leader_key("controller")) is None  # resigned: the key went with the lease
    assert [entry[2].split()[0] for entry in log] == ["gain", "loss"]


def test_two_electors_one_leader_and_quick_handover_on_resign(store: Store, figures: dict[str, str]) -> None:
    a = _elector(store, "a").start()
    assert a.wait_for_leadership(PATIENCE)
    b_store = _Partitioned(store, hang=0)
    b = _elector(b_store, "b").start()  # type: ignore[arg-type]
    try:
        # b has found a's key and waits on it: the campaign ran and lost
        wait_until(lambda: "watch" in b_store.calls, PATIENCE, "b to find a leading and watch its key")
        assert a.is_leader and not b.is_leader
        first = a.token
        assert first is not None
        started = time.monotonic()
        a.stop()  # graceful: revokes the lease
        # quick because nobody waits for the TTL: when stop() returns, a's key is gone already
        rec = store.get(leader_key("controller"))
        assert rec is None or rec.value["holder"] == "b", rec
        assert b.wait_for_leadership(PATIENCE)
        took = time.monotonic() - started
        store_kind = type(store).__name__
        figures[f"leader hand-over on resign ({store_kind})"] = f"{took:.2f} s"  # a figure, not a claim
        assert b.token is not None and b.token > first  # fencing tokens only grow
    finally:
        a.stop()
        b.stop()


class _Partitioned:
    """A Store that can be cut off: calls then hang for `hang` seconds and fail, like an unreachable
    cluster. It also records which methods were called, so a test can wait for a campaign to reach
    a step instead of sleeping."""

    def __init__(self, inner: Store, hang: float) -> None:
        self.inner, self.hang, self.cut = inner, hang, False
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kw: Any) -> Any:
            self.calls.append(name)
            if self.cut:
                time.sleep(self.hang)
                raise StoreUnavailable("partitioned (test)")
            return attr(*args, **kw)

        return call


def test_leader_that_cannot_refresh_stops_before_another_starts(store: Store, figures: dict[str, str]) -> None:
    log: list[tuple[float, str, str]] = []
    cut_store = _Partitioned(store, hang=2.5)  # the keep-alive thread will be stuck in calls longer than the TTL
    a = _elector(cut_store, "a", log).start()  # type: ignore[arg-type]
    assert a.wait_for_leadership(PATIENCE)
    b_store = _Partitioned(store, hang=0)
    b = _elector(b_store, "b", log).start()  # type: ignore[arg-type]
    both: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            if a.is_leader and b.is_leader:
                both.append(time.monotonic())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        wait_until(lambda: "watch" in b_store.calls, PATIENCE, "b to find a leading and watch its key")
        cut_at = time.monotonic()
        cut_store.cut = True
        assert b.wait_for_leadership(PATIENCE)
        # is_leader turns true just before the gain callback runs: wait for both callbacks' log lines.
        wait_until(
            lambda: any(w == "b" and x.startswith("gain") for _, w, x in log) and any(w == "a" and x.startswith("loss") for _, w, x in log),
            PATIENCE,
            "a's loss and b's gain callbacks",
        )
        stop.set()
        sampler.join()
        a_loss = next(t for t, who, what in log if who == "a" and what.startswith("loss"))
        b_gain = next(t for t, who, what in log if who == "b" and what.startswith("gain"))
        assert a_loss < b_gain, log
        assert not both, f"two leaders at once at {both[:3]}"
        figures[f"fencing gap: old leader stopped before new one started ({type(store).__name__})"] = (
            f"{(b_gain - a_loss) * 1000:.0f} ms (old leader stopped {a_loss - cut_at:.2f} s after the cut, new one led {b_gain - cut_at:.2f} s after)"
        )
    finally:
        stop.set()
        cut_store.cut = False
        b.stop()
        a.stop(resign=False)


@pytest.mark.slow
def test_failover_when_the_leader_process_is_killed(store_url: str, figures: dict[str, str]) -> None:
    """Two controller processes; kill -9 the leader; the other leads once the lease runs out."""
    times = []
    for round_ in range(2):
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "elector_proc.py"), store_url, str(TTL), f"proc-{round_}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        store = open_store(store_url)
        spy = _Partitioned(store, hang=0)
        waiter = _elector(spy, f"waiter-{round_}")  # type: ignore[arg-type]
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("LEADER"), line
            old_token = int(line.split()[1])
            waiter.start()
            wait_until(lambda spy=spy: "watch" in spy.calls, PATIENCE, "the waiter to find the leader and watch its key")
            time.sleep(round_ * 0.3)  # not a wait for anything: kills at another point of the keep-alive cycle
            assert not waiter.is_leader
            killed = time.monotonic()
            proc.kill()
            proc.wait(timeout=10)
            assert waiter.wait_for_leadership(PATIENCE)
            assert waiter.gained_at is not None
            times.append(waiter.gained_at - killed)
            assert waiter.token is not None and waiter.token > old_token
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            waiter.stop()
            store.close()
    kind = store_url.split(":", 1)[0]
    figures[f"failover after kill -9 of the leader process ({kind}, lease TTL {TTL:g} s)"] = ", ".join(f"{t:.2f} s" for t in times)
    assert len(times) == 2  # how long it took is a figure above, not an assertion


def test_leader_steps_down_when_its_key_is_deleted_by_hand(store: Store) -> None:
    log: list[tuple[float, str, str]] = []
    a = _elector(store, "a", log).start()
    try:
        assert a.wait_for_leadership(PATIENCE)
        first = a.token
        assert first is not None
        assert store.delete(leader_key("controller"))  # an operator forcing a new election
        wait_until(lambda: any(what.startswith("loss") for _, _, what in log), PATIENCE, "a to notice its key is gone")
        assert "deleted" in next(what for _, _, what in log if what.startswith("loss"))
        assert a.wait_for_leadership(PATIENCE)  # nobody else campaigns: it leads again, under a new token
        assert a.token is not None and a.token > first
    finally:
        a.stop()
