"""The run-time gate and the failure budget: one failing input per rule, and properties."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_fixtures import cluster, host, sot

from vaquero.policy.runtime import IN_PROGRESS, Allow, Continue, Halt, Hold, Retry, Rollback, Wait, budget, gate
from vaquero.sot.validate import resolve_count
from vaquero.state.machine import State

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # a Tuesday
TUE = [{"days": ["tue"], "start": "02:00", "end": "05:00"}]


def ready(*clusters, **override: str) -> dict[str, str]:
    states = {h.name: "ready" for c in clusters for h in c.hosts}
    states.update({k.replace("_", "-"): v for k, v in override.items()})
    return states


def test_state_names_are_the_state_machine_s():
    assert {"ready", "failed"} | IN_PROGRESS <= {s.value for s in State}


def test_allow_when_every_rule_holds():
    c = cluster("a", 4, max_concurrent=2, min_available=2, windows=TUE)
    verdict = gate(sot(c), "a", ["a-h0", "a-h1"], ready(c), NOW)
    assert verdict == Allow(("a-h0", "a-h1"), verdict.reason, datetime(2026, 12, 1, 5, 0, tzinfo=UTC))
    assert "2 of 4 stay ready" in verdict.reason and "until Tue 2026-12-01 05:00 UTC" in verdict.reason


def test_window_closed_waits_until_it_opens():
    c = cluster("a", 4, windows=TUE)
    verdict = gate(sot(c), "a", ["a-h0"], ready(c), datetime(2026, 11, 29, 2, 43, tzinfo=UTC))
    assert verdict == Wait(
        "wave waits: window opens Tue 2026-12-01 02:00 UTC (cluster a, window tue 02:00-05:00 UTC)", until=datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    )


def test_min_available_counts_hosts_already_failed():
    c = cluster("a", 5, max_concurrent=5, min_available=3)
    states = ready(c, a_h4="failed")  # 4 ready: only one more may go down
    verdict = gate(sot(c), "a", ["a-h0", "a-h1"], states, NOW)
    assert verdict == Hold(("a-h1",), ("a-h0",), verdict.reason)
    assert verdict.reason == "host a-h1 held: min_available 3 would be violated (3 of 5 ready, 1 failed, 3 must stay ready)"


def test_retrying_a_failed_host_takes_nothing_away():
    c = cluster("a", 3, max_concurrent=1, min_available=2)
    verdict = gate(sot(c), "a", ["a-h2"], ready(c, a_h2="failed"), NOW)
    assert isinstance(verdict, Allow) and verdict.hosts == ("a-h2",)


def test_max_concurrent_counts_hosts_already_in_progress():
    c = cluster("a", 4, max_concurrent=2)
    verdict = gate(sot(c), "a", ["a-h1", "a-h2"], ready(c, a_h0="installing"), NOW)
    assert verdict == Hold(("a-h2",), ("a-h1",), "host a-h2 held: max_concurrent 2 reached (1 other host(s) of a in progress)")


def test_dependency_not_ready_waits():
    a = cluster("a", 2)
    b = cluster("b", 2, depends_on=("a",))
    verdict = gate(sot(a, b), "b", ["b-h0"], ready(a, b, a_h1="installing"), NOW)
    assert verdict == Wait("cluster b waits: a is not ready (depends_on; a-h1: installing)")


def test_dependency_hosts_the_sot_wants_off_are_not_waited_for():
    a = cluster("a", [host("a-on"), host("a-off", power="off")])
    b = cluster("b", 1, depends_on=("a",))
    verdict = gate(sot(a, b), "b", ["b-h0"], {"a-on": "ready", "a-off": "enrolled", "b-h0": "ready"}, NOW)
    assert isinstance(verdict, Allow)


def test_dependency_ready_at_an_older_revision_waits():
    a = cluster("a", 2)
    b = cluster("b", 2, depends_on=("a",))
    new = sot(a, b, sha="f" * 40)
    revisions = {"a-h0": "f" * 40, "a-h1": "e" * 40}
    verdict = gate(new, "b", ["b-h0"], ready(a, b), NOW, revisions)
    assert verdict == Wait(f"cluster b waits: a is not ready at {'f' * 12} (depends_on; a-h1: ready at {'e' * 12})")
    revisions["a-h1"] = "f" * 40
    assert isinstance(gate(new, "b", ["b-h0"], ready(a, b), NOW, revisions), Allow)


def test_hosts_of_another_cluster_are_refused():
    a, b = cluster("a", 1), cluster("b", 1)
    with pytest.raises(ValueError, match="not hosts of cluster a: b-h0"):
        gate(sot(a, b), "a", ["b-h0"], ready(a, b), NOW)


# --- failure budget --------------------------------------------------------------------------


def test_halt_beyond_max_failures():
    c = cluster("a", 10, max_failures=1, on_failure="halt")
    assert isinstance(budget(c, "a-h0", {"a-h0": 1}), Continue)
    outcome = budget(c, "a-h1", {"a-h0": 1, "a-h1": 1})
    assert outcome == Halt("host a-h1 failed; 2 failed host(s) in a (a-h0, a-h1), max_failures 1 exceeded: on_failure halt")


def test_max_failures_percent_rounds_down():
    c = cluster("a", 10, max_failures="15%", on_failure="halt")  # 1.5 -> 1 host tolerated
    assert isinstance(budget(c, "a-h0", {"a-h0": 1}), Continue)
    outcome = budget(c, "a-h1", {"a-h0": 1, "a-h1": 1})
    assert isinstance(outcome, Halt) and "max_failures 15% (= 1 host(s)) exceeded" in outcome.reason


def test_default_policy_halts_on_the_first_failure():
    assert isinstance(budget(cluster("a", 3), "a-h0", {"a-h0": 1}), Halt)


def test_continue_goes_on_beyond_the_budget():
    c = cluster("a", 3, on_failure="continue")
    outcome = budget(c, "a-h0", {"a-h0": 1})
    assert isinstance(outcome, Continue) and "exceeded: on_failure continue" in outcome.reason


def test_retry_n_times_then_count_the_host_failed():
    c = cluster("a", 3, on_failure="retry", retries=2)
    assert budget(c, "a-h0", {"a-h0": 1}) == Retry("a-h0", 2, "host a-h0 failed attempt 1: retry, attempt 2 of 3 (on_failure: retry)")
    assert budget(c, "a-h0", {"a-h0": 2}) == Retry("a-h0", 3, "host a-h0 failed attempt 2: retry, attempt 3 of 3 (on_failure: retry)")
    outcome = budget(c, "a-h0", {"a-h0": 3})
    assert isinstance(outcome, Halt) and "after 3 attempt(s)" in outcome.reason and "retries used up" in outcome.reason


def test_retry_with_a_budget_tolerates_hosts_whose_retries_are_used_up():
    c = cluster("a", 6, on_failure="retry", retries=1, max_failures=1)
    assert isinstance(budget(c, "a-h0", {"a-h0": 2}), Continue)
    # a-h1 still has a retry: it is not counted yet
    assert isinstance(budget(c, "a-h1", {"a-h0": 2, "a-h1": 1}), Retry)
    assert isinstance(budget(c, "a-h1", {"a-h0": 2, "a-h1": 2}), Halt)


def test_rollback_names_the_failed_hosts():
    c = cluster("a", 3, on_failure="rollback")
    outcome = budget(c, "a-h2", {"a-h2": 1, "a-h0": 1})
    assert outcome == Rollback(("a-h0", "a-h2"), outcome.reason)
    assert outcome.reason.endswith("max_failures 0 exceeded: on_failure rollback, a-h0, a-h2 return to the previous revision")


def test_budget_needs_the_failure_counted():
    with pytest.raises(ValueError, match="not in failures"):
        budget(cluster("a", 1), "a-h0", {})


# --- properties -------------------------------------------------------------------------------

STATES = ["ready", "ready", "ready", "failed", "installing", "pending", "enrolled", None]


@st.composite
def situations(draw):
    n = draw(st.integers(1, 10))
    deps = draw(st.booleans())
    a = cluster("a", draw(st.integers(1, 3)))
    c = cluster(
        "c",
        n,
        ("a",) if deps else (),
        max_concurrent=draw(st.integers(1, 5)),
        min_available=draw(st.one_of(st.integers(0, n), st.sampled_from(["25%", "50%", "80%"]))),
        windows=draw(st.sampled_from([[], TUE])),
    )
    states = {}
    for h in a.hosts + c.hosts:
        s = draw(st.sampled_from(STATES))
        if s is not None:
            states[h.name] = s
    wave = draw(st.lists(st.sampled_from([h.name for h in c.hosts]), unique=True, min_size=1))
    now = draw(st.sampled_from([NOW, datetime(2026, 12, 2, 3, 0, tzinfo=UTC)]))
    return a, c, states, wave, now


@settings(max_examples=300, deadline=None)
@given(situations())
def test_the_gate_never_lets_a_wave_break_a_rule(situation):
    a, c, states, wave, now = situation
    verdict = gate(sot(a, c), "c", wave, states, now)
    if isinstance(verdict, Wait):
        return
    started = list(verdict.hosts if isinstance(verdict, Allow) else verdict.allowed)
    if isinstance(verdict, Hold):
        assert sorted(started + list(verdict.hosts)) == sorted(wave) and started == [h for h in wave if h in started]
    else:
        assert started == wave
    if not started:
        return
    # dependencies and windows: nothing starts unless they allow it
    assert all(states.get(h.name) == "ready" for h in a.hosts) or not c.depends_on
    assert not c.policy.windows or now.weekday() == 1
    # max_concurrent, counting hosts already in progress
    busy = sum(1 for h in c.hosts if states.get(h.name) in IN_PROGRESS and h.name not in wave)
    assert busy + len(started) <= c.policy.max_concurrent
    # min_available, counting hosts already failed or in progress as not available
    need = resolve_count(c.policy.min_available, len(c.hosts))
    ready_now = sum(1 for h in c.hosts if states.get(h.name) == "ready")
    going_down = sum(1 for h in started if states.get(h) == "ready")
    assert going_down == 0 or ready_now - going_down >= need


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 12),
    st.sampled_from(["halt", "continue", "retry", "rollback"]),
    st.integers(0, 3),
    st.one_of(st.integers(0, 4), st.sampled_from(["10%", "50%"])),
    st.data(),
)
def test_budget_never_tolerates_more_failed_hosts_than_max_failures(size, on_failure, retries, max_failures, data):
    c = cluster("a", size, on_failure=on_failure, retries=retries, max_failures=max_failures)
    names = [h.name for h in c.hosts]
    failures = data.draw(st.dictionaries(st.sampled_from(names), st.integers(1, 5), min_size=1))
    host = data.draw(st.sampled_from(sorted(failures)))
    outcome = budget(c, host, failures)
    counted = [h for h, n in failures.items() if n > (retries if on_failure == "retry" else 0)]
    limit = max_failures if isinstance(max_failures, int) else int(max_failures[:-1]) * size // 100
    if isinstance(outcome, Retry):
        assert on_failure == "retry" and failures[host] <= retries and outcome.attempt == failures[host] + 1
    elif len(counted) > limit:
        expected = {"halt": Halt, "retry": Halt, "continue": Continue, "rollback": Rollback}[on_failure]
        assert isinstance(outcome, expected)
        if isinstance(outcome, Rollback):
            assert sorted(outcome.hosts) == sorted(counted)
    else:
        assert isinstance(outcome, Continue)
