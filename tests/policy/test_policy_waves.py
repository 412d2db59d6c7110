"""The plan-time planner: invariants over random clusters and policies, and one failing input per rule."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from policy_fixtures import cluster, host, sot

from vaquero.policy.waves import Schedule, order_hosts, schedule, split_stages
from vaquero.sot.loader import SoT
from vaquero.sot.validate import resolve_count


def wave_of(s: Schedule) -> dict[str, int]:
    return {step.host: w.number for w in s.waves for step in w.steps}


def rolling(*clusters):
    """Every host of every cluster upgraded, all in service."""
    new = sot(*clusters)
    changes = {c.name: {h.name: "upgrade" for h in c.hosts} for c in clusters}
    return new, changes, {h.name for c in clusters for h in c.hosts}


# --- one failing input per rule: what the old planner (or a naive one) would get wrong ---------


def test_max_concurrent_limits_a_wave():
    s = schedule(*rolling(cluster("a", 5, max_concurrent=2)))
    assert [len(w.steps) for w in s.waves] == [2, 2, 1]


def test_min_available_limits_the_hosts_down_at_once():
    s = schedule(*rolling(cluster("a", 5, max_concurrent=5, min_available=3)))
    assert [len(w.steps) for w in s.waves] == [2, 2, 1]
    assert any("at most 2 in-service host(s) down at once (min_available 3)" in d for d in s.decisions)


def test_min_available_percent_rounds_up():
    s = schedule(*rolling(cluster("a", 5, max_concurrent=5, min_available="50%")))  # 3 of 5 stay up
    assert [len(w.steps) for w in s.waves] == [2, 2, 1]


def test_min_available_of_all_hosts_holds_them_and_costs_no_wave():
    c = cluster("a", [host("new1"), host("old1"), host("new2")], max_concurrent=3, min_available=1)
    s = schedule(sot(c), {"a": {"new1": "add", "old1": "upgrade", "new2": "add"}}, {"old1"})
    assert [[st.host for st in w.steps] for w in s.waves] == [["new1", "new2"]]  # the old planner cut a wave at old1
    assert "host old1 held: min_available 1 would be violated (1 of 3 up)" in s.decisions


def test_hosts_not_in_service_do_not_count_against_min_available():
    c = cluster("a", 4, max_concurrent=4, min_available=3)
    s = schedule(sot(c), {"a": {h.name: "add" for h in c.hosts}}, set())
    assert [len(w.steps) for w in s.waves] == [4]


def test_removed_hosts_fill_the_last_wave():
    c = cluster("a", 3, max_concurrent=2)
    changes = {"a": {"a-h0": "upgrade", "a-h1": "upgrade", "a-h2": "upgrade", "gone1": "remove"}}
    s = schedule(sot(c), changes, {"a-h0", "a-h1", "a-h2", "gone1"})
    assert [[st.host for st in w.steps] for w in s.waves] == [["a-h0", "a-h1"], ["a-h2", "gone1"]]  # was 3 waves


def test_first_then_order_by():
    hosts = [host("h1", vars={"rack": "r2"}), host("h2", vars={"rack": "r1"}), host("h3", vars={"rack": "r1"})]
    s = schedule(*rolling(cluster("a", hosts, first=["h1"], order_by="rack")))
    assert [[st.host for st in w.steps] for w in s.waves] == [["h1"], ["h2"], ["h3"]]


def test_stages_run_in_order_each_in_its_own_waves():
    hosts = [host("w1", ("worker",)), host("c1", ("canary",)), host("w2", ("worker",))]
    s = schedule(*rolling(cluster("a", hosts, max_concurrent=3, stages=[{"name": "canary", "roles": ["canary"]}])))
    assert [[st.host for st in w.steps] for w in s.waves] == [["c1"], ["w1", "w2"]]


def test_dependency_waits_for_every_wave_of_the_cluster_it_depends_on():
    a, b, c = cluster("a", 3), cluster("b", 2, depends_on=("a",)), cluster("c", 1)
    s = schedule(*rolling(a, b, c))
    w = wave_of(s)
    assert min(w["b-h0"], w["b-h1"]) == 4 and w["c-h0"] == 1  # c is independent: it shares wave 1
    assert "cluster b waits for a to be ready (depends_on): starts at wave 4" in s.decisions


def test_dependency_without_work_costs_nothing():
    a, b = cluster("a", 2), cluster("b", 2, depends_on=("a",))
    new = sot(a, b)
    s = schedule(new, {"b": {"b-h0": "upgrade", "b-h1": "upgrade"}}, {"b-h0", "b-h1"})
    assert [w.number for w in s.waves] == [1, 2]


def test_window_wait_is_explained_only_with_now():
    c = cluster("a", 2, windows=[{"days": ["tue"], "start": "02:00", "end": "05:00"}])
    plain = schedule(*rolling(c))
    assert all(w.not_before is None for w in plain.waves)
    assert not any("window opens" in d for d in plain.decisions)
    timed = schedule(*rolling(c), now=datetime(2026, 11, 29, 2, 43, tzinfo=UTC))
    assert "wave 1 waits: window opens Tue 2026-12-01 02:00 UTC (cluster a, window tue 02:00-05:00 UTC)" in timed.decisions
    assert [w.not_before for w in timed.waves] == [datetime(2026, 12, 1, 2, 0, tzinfo=UTC)] * 2
    inside = schedule(*rolling(c), now=datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    assert not any("waits: window" in d for d in inside.decisions)


# --- properties over random clusters, policies and dependencies --------------------------------

ACTIONS = ["upgrade", "reinstall", "add", "power", "remove"]


@st.composite
def scenarios(draw):
    n_clusters = draw(st.integers(1, 5))
    clusters, changes, in_service = [], {}, set()
    for ci in range(n_clusters):
        name = f"c{ci}"
        size = draw(st.integers(1, 9))
        hosts = []
        for hi in range(size):
            roles = tuple(draw(st.sets(st.sampled_from(["a", "b", "x"]), max_size=2)))
            rack = draw(st.sampled_from(["r1", "r2", "r3"]))
            hosts.append(host(f"{name}-h{hi}", roles, vars={"rack": rack}, power=draw(st.sampled_from(["on", "on", "off"]))))
        names = [h.name for h in hosts]
        mc = draw(st.integers(1, 5))
        min_available = draw(st.one_of(st.integers(0, size), st.sampled_from(["0%", "25%", "50%", "60%", "80%", "100%"])))
        first = draw(st.lists(st.sampled_from(names), unique=True, max_size=2))
        stages = draw(st.sampled_from([[], [{"name": "s1", "roles": ["a"]}], [{"name": "s1", "roles": ["a"]}, {"name": "s2", "roles": ["b"]}]]))
        deps = tuple(draw(st.sets(st.sampled_from([f"c{j}" for j in range(ci)]), max_size=2))) if ci else ()
        order_by = draw(st.sampled_from(["name", "rack"]))
        clusters.append(cluster(name, hosts, deps, max_concurrent=mc, min_available=min_available, first=first, order_by=order_by, stages=stages))
        work: dict[str, str] = {}
        for h in hosts:
            kind = draw(st.sampled_from(["none", "upgrade", "reinstall", "add", "power"]))
            if kind == "none":
                if h.power == "on" and draw(st.booleans()):
                    in_service.add(h.name)
                continue
            if kind == "add":
                work[h.name] = "add"
            elif kind == "power":
                work[h.name] = "power"  # on -> off: in service now; off -> on: not
                if h.power == "off":
                    in_service.add(h.name)
            else:
                work[h.name] = kind
                if h.power == "on" and draw(st.booleans()):
                    in_service.add(h.name)
        for gi in range(draw(st.integers(0, 2))):
            work[f"{name}-gone{gi}"] = "remove"
            in_service.add(f"{name}-gone{gi}")
        if work:
            changes[name] = work
    return sot(*clusters), changes, in_service


def min_cluster_waves(c, work: dict[str, str], in_service: set[str]) -> int:
    """Reference: the fewest waves of one cluster over all order-keeping cuts (dynamic programming)."""
    need = resolve_count(c.policy.min_available, len(c.hosts))
    mc = c.policy.max_concurrent
    up = sum(1 for h in c.hosts if h.name in in_service)
    total, last = 0, mc  # waves so far, hosts in the last wave
    for _, hosts in split_stages(c, order_hosts(c, set(work))):
        seq = []  # (takes_down, stays_off, up before it) of the hosts that are not held
        for h in hosts:
            down = h.name in in_service and work[h.name] != "remove"
            if down and up - 1 < need:
                continue  # held
            seq.append((down, work[h.name] == "power" and h.power == "off", up))
            if work[h.name] == "power" and h.power == "off":
                up -= 1
        if not seq:
            continue
        inf = (10**9, 0)
        best = [(0, 0)] + [inf] * len(seq)
        for j in range(1, len(seq) + 1):
            for i in range(j - 1, -1, -1):
                if j - i > mc:
                    break
                downs = 0
                for k in range(i, j):
                    downs += seq[k][0] and not seq[k][1]
                # up at the cut, minus hosts that went off inside the cut, minus the ones down now
                offs = sum(1 for k in range(i, j) if seq[k][1])
                if any(seq[k][0] for k in range(i, j)) and seq[i][2] - offs - downs < need:
                    continue
                if best[i][0] + 1 < best[j][0] or (best[i][0] + 1 == best[j][0] and j - i < best[j][1]):
                    best[j] = (best[i][0] + 1, j - i)
        total += best[-1][0]
        last = best[-1][1]
    gone = sum(1 for n in work if n not in {h.name for h in c.hosts})
    if gone:
        free = mc - last if total else 0
        total += -(-max(gone - free, 0) // mc)
    return total


def check(new: SoT, changes: dict[str, dict[str, str]], in_service: set[str], s: Schedule) -> None:
    seen = [step.host for w in s.waves for step in w.steps]
    assert len(seen) == len(set(seen)), "a host is scheduled twice"
    w = wave_of(s)
    held = {d.split()[1] for d in s.decisions if d.startswith("host ") and " held: " in d}
    assert set(w) | held == {h for work in changes.values() for h in work}
    assert [x.number for x in s.waves] == list(range(1, len(s.waves) + 1))
    per_cluster: dict[str, int] = {}
    for name, c in new.clusters.items():
        work = changes.get(name, {})
        need = resolve_count(c.policy.min_available, len(c.hosts))
        up = sum(1 for h in c.hosts if h.name in in_service)
        members = {h.name: h for h in c.hosts}
        for wave in s.waves:
            steps = [st for st in wave.steps if st.cluster == name]
            assert len(steps) <= c.policy.max_concurrent, "max_concurrent violated"
            offs = [st for st in steps if st.action == "power" and members.get(st.host) is not None and members[st.host].power == "off"]
            downs = [st for st in steps if st.host in in_service and st.host in members and st not in offs]
            if downs or offs:  # hosts powered off for good go down too
                assert up - len(offs) - len(downs) >= need, "min_available violated"
            up -= len(offs)
        # dependencies: every wave of a dependency comes first
        for dep in c.depends_on:
            dep_waves = [w[h] for h in changes.get(dep, {}) if h in w]
            mine = [w[h] for h in work if h in w]
            if dep_waves and mine:
                assert min(mine) > max(dep_waves), "dependency violated"
        # order within a stage; stages one after another
        prev_stage_last = 0
        for _, hosts in split_stages(c, order_hosts(c, set(work))):
            numbers = [w[h.name] for h in hosts if h.name in w]
            assert numbers == sorted(numbers), "policy order not kept"
            if numbers:
                assert numbers[0] > prev_stage_last, "stage started before the previous one finished"
                prev_stage_last = numbers[-1]
        mine = sorted({w[h] for h in work if h in w})
        per_cluster[name] = len(mine)
        if mine:
            assert mine == list(range(mine[0], mine[-1] + 1)), "a gap inside a cluster's waves"
        assert len(mine) == min_cluster_waves(c, work, in_service), "a wasted wave"
    # makespan: the longest chain of per-cluster wave counts (removed clusters: wave 1)
    finish: dict[str, int] = {}
    for name in sorted(new.clusters, key=lambda n: int(n[1:])):
        finish[name] = max((finish[d] for d in new.clusters[name].depends_on), default=0) + per_cluster[name]
    assert len(s.waves) == max(finish.values(), default=0)


@settings(max_examples=120, deadline=None)
@given(scenarios())
def test_plans_never_break_a_rule_and_waste_no_wave(scenario):
    new, changes, in_service = scenario
    s = schedule(new, changes, in_service)
    check(new, changes, in_service, s)
    # deterministic, whatever the order of the inputs
    shuffled = {c: dict(random.Random(1).sample(sorted(work.items()), len(work))) for c, work in reversed(list(changes.items()))}
    again = schedule(new, shuffled, set(sorted(in_service)))
    assert again == s


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 8), st.integers(0, 39), st.integers(0, 3))
def test_rolling_upgrade_takes_exactly_the_lower_bound(n, mc, need, chain):
    need = min(need, n - 1)
    clusters = [
        cluster(f"c{i}", [host(f"c{i}-h{j}") for j in range(n)], (f"c{i - 1}",) if i else (), max_concurrent=mc, min_available=need) for i in range(chain + 1)
    ]
    s = schedule(*rolling(*clusters))
    batch = min(mc, n - need)
    assert len(s.waves) == (chain + 1) * -(-n // batch)
