"""The guard's rules, with plain Python callables standing in for a BMC."""

from __future__ import annotations

import sys
import threading
import time
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from waiting import wait_until

from vaquero.bmc import BmcAuthError, BmcBusy, BmcCircuitOpen, BmcServerError, BmcTimeout, BmcUnreachable, Endpoint, Guard, GuardPolicy, Secret


def ep(i: int = 0) -> Endpoint:
    return Endpoint("ipmi", f"10.0.0.{i}", "admin", "hunter2", host=f"n{i}", port=623)


FAST = GuardPolicy(attempt_timeout=2.0, deadline=5.0, retries=2, backoff_base=0.01, backoff_max=0.02, breaker_threshold=3, breaker_reset=0.3)
# Long enough that no attempt is ever cut on a loaded machine: these tests are about ordering.
PATIENT = GuardPolicy(attempt_timeout=120.0, deadline=240.0, retries=0)


class FakeClock:
    """The guard's view of time, advanced by hand: breaker windows are then a matter of order,
    not of how fast a loaded machine runs the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(sys.modules[Guard.__module__], "time", types.SimpleNamespace(monotonic=fake.monotonic, sleep=fake.sleep))
    return fake


def test_secret_never_prints():
    s = Secret("hunter2")
    assert repr(s) == "***" and str(s) == "***" and f"{s}" == "***"
    assert "hunter2" not in repr(ep())
    assert s.reveal() == "hunter2"


def test_one_operation_at_a_time_per_bmc_but_parallel_across_bmcs():
    g = Guard(concurrency=8, policy=PATIENT)
    active: dict[str, int] = {}
    peak: dict[str, int] = {}
    total = {"now": 0, "peak": 0}
    mu = threading.Lock()
    side_by_side = threading.Event()

    def op(key: str):
        with mu:
            active[key] = active.get(key, 0) + 1
            peak[key] = max(peak.get(key, 0), active[key])
            total["now"] += 1
            total["peak"] = max(total["peak"], total["now"])
            if total["now"] > 1:
                side_by_side.set()
        # the first calls hold their BMC until a call for another BMC runs beside them: if the
        # guard serialised across BMCs this wait would time out and the assertion below fail
        side_by_side.wait(60)
        time.sleep(0.002)  # widens the window in which a second call on the same BMC would show
        with mu:
            active[key] -= 1
            total["now"] -= 1
        return key

    threads = [threading.Thread(target=g.run, args=(ep(i % 4), "op", lambda i=i: op(str(i % 4)))) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(v == 1 for v in peak.values()), peak
    assert total["peak"] > 1  # different BMCs did run side by side


def test_global_concurrency_limit():
    g = Guard(concurrency=3, policy=PATIENT)
    state = {"now": 0, "peak": 0}
    mu = threading.Lock()
    full = threading.Event()

    def op():
        with mu:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            if state["now"] >= 3:
                full.set()
        full.wait(60)  # hold the slots until the limit is reached: a fourth would show in the peak
        time.sleep(0.002)
        with mu:
            state["now"] -= 1

    threads = [threading.Thread(target=g.run, args=(ep(i), "op", op)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["peak"] == 3


def test_retries_transient_errors_then_succeeds():
    g = Guard(policy=FAST)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise BmcUnreachable("n0", "no answer")
        return "ok"

    assert g.run(ep(), "get", flaky) == "ok"
    assert len(calls) == 3


def test_auth_errors_are_not_retried():
    g = Guard(policy=FAST)
    calls = []

    def bad():
        calls.append(1)
        raise BmcAuthError("n0", "refused")

    with pytest.raises(BmcAuthError):
        g.run(ep(), "get", bad)
    assert len(calls) == 1


def test_non_idempotent_call_not_repeated_when_it_may_have_been_applied():
    g = Guard(policy=FAST)
    calls = []

    def cycle():
        calls.append(1)
        raise BmcTimeout("n0", "lost answer", maybe_applied=True)

    with pytest.raises(BmcTimeout):
        g.run(ep(), "power_cycle", cycle, idempotent=False)
    assert len(calls) == 1

    calls.clear()

    def cycle_not_sent():
        calls.append(1)
        if len(calls) == 1:
            raise BmcUnreachable("n0", "connection refused", maybe_applied=False)
        return None

    g.run(ep(1), "power_cycle", cycle_not_sent, idempotent=False)
    assert len(calls) == 2


def test_circuit_breaker_opens_and_half_opens(clock: FakeClock):
    g = Guard(policy=FAST)
    calls = []

    def dead():
        calls.append(1)
        raise BmcServerError("n0", "HTTP 500")

    with pytest.raises((BmcServerError, BmcCircuitOpen)):
        g.run(ep(), "get", dead)
    assert len(calls) == 3
    assert g.breaker_state(ep().key) == "open"
    with pytest.raises(BmcCircuitOpen):
        g.run(ep(), "get", dead)
    assert len(calls) == 3  # nothing sent to a dead BMC
    clock.sleep(FAST.breaker_reset * 0.9)
    with pytest.raises(BmcCircuitOpen):
        g.run(ep(), "get", dead)
    assert len(calls) == 3 and g.breaker_state(ep().key) == "open"
    clock.sleep(FAST.breaker_reset * 0.2)
    assert g.breaker_state(ep().key) == "half_open"
    assert g.run(ep(), "get", lambda: "back") == "back"  # the trial call closes it
    assert g.breaker_state(ep().key) == "closed"


def test_hung_call_is_cut_at_the_deadline_and_keeps_the_bmc_locked():
    g = Guard(policy=GuardPolicy(attempt_timeout=0.3, deadline=0.6, retries=2, backoff_base=0.01, breaker_reset=0.3))
    release = threading.Event()
    started: list[str] = []

    def hang() -> bool:
        started.append("hung")
        return release.wait(300)

    with pytest.raises(BmcTimeout) as ei:
        g.run(ep(), "get", hang)
    assert "no answer within 0.3s" in str(ei.value) and started == ["hung"]  # cut at the attempt budget, never retried
    # the abandoned call still runs: the BMC stays locked and the breaker open, a second call
    # is refused, not raced
    with pytest.raises((BmcBusy, BmcCircuitOpen)):
        g.run(ep(), "get", lambda: started.append("raced"))
    wait_until(lambda: g.breaker_state(ep().key) == "half_open", 60, "the breaker to half-open")
    # half-open, but the hung call still holds the BMC
    with pytest.raises(BmcBusy):
        g.run(ep(), "get", lambda: started.append("raced"), policy=GuardPolicy(deadline=0.2))
    assert started == ["hung"]
    release.set()
    # the hung call hands the BMC back when it ends: a patient caller gets it without a retry
    assert g.run(ep(), "get", lambda: "free again", policy=PATIENT) == "free again"


def test_unexpected_exception_is_typed_and_carries_host():
    g = Guard(policy=FAST)
    with pytest.raises(Exception) as ei:
        g.run(ep(7), "get", lambda: 1 / 0)
    assert ei.value.host == "n7"  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["ok", "unreachable", "server", "auth"]), min_size=1, max_size=8), st.integers(0, 4))
def test_attempts_are_bounded(outcomes, retries):
    g = Guard(policy=GuardPolicy(attempt_timeout=1, deadline=5, retries=retries, backoff_base=0.0001, backoff_max=0.0001, breaker_threshold=100))
    it = iter(outcomes)
    calls = []

    def op():
        calls.append(1)
        kind = next(it, "ok")
        if kind == "unreachable":
            raise BmcUnreachable("n", "x")
        if kind == "server":
            raise BmcServerError("n", "x")
        if kind == "auth":
            raise BmcAuthError("n", "x")
        return "ok"

    try:
        g.run(ep(), "get", op)
    except (BmcUnreachable, BmcServerError, BmcAuthError):
        pass
    assert 1 <= len(calls) <= retries + 1
