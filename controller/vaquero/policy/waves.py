"""Order disruptive host changes into waves that the cluster policies allow.

Rules, per cluster:
- at most ``max_concurrent`` hosts change in one wave;
- hosts that are in service (exist in the old revision and are on) may be taken down only while
  at least ``min_available`` hosts of the cluster stay up: a wave takes at most
  ``in_service - min_available`` of them;
- ``first`` hosts go first, then hosts ordered by ``order_by``; ``stages`` split the cluster into
  steps, each starting only after the previous one finished;
- a cluster starts after every cluster it depends on has finished its own waves.
Clusters that do not depend on each other share wave numbers: they run in parallel.

No wave is wasted: hosts keep their policy order (a wave never holds a host that comes after a
host of a later wave), and among the plans that keep that order the greedy cut used here is the
shortest. A cluster whose changed hosts are all in service takes exactly
sum over stages of ceil(hosts in stage / min(max_concurrent, in service - min_available)) waves;
a held host (no host of the cluster may go down) costs no wave; hosts removed from the SoT fill
the last wave's free places. A chain of dependent clusters costs the sum of its clusters' waves
and independent chains share wave numbers, so the plan's length is its longest chain.

Windows: without `now` the plan names each cluster's windows but no time, so the same SoT gives
the same plan text. With `now` (timezone-aware) every wave gets ``not_before``, the earliest time
it may start assuming earlier waves take no time (so: a lower bound), and a decision for each
wave that has to wait for a window ("wave 3 waits: window opens Tue 2026-12-01 02:00 UTC ...").
The run-time gate (runtime.py) checks the live clock, states and revisions before every wave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from graphlib import TopologicalSorter
from typing import Any

from ..sot.loader import SoT
from ..sot.models import Cluster, Host
from ..sot.validate import resolve_count
from .windows import Span, describe, next_span


@dataclass
class Step:
    host: str
    cluster: str
    action: str


@dataclass
class Wave:
    number: int
    steps: list[Step] = field(default_factory=list)
    not_before: datetime | None = None  # only with schedule(..., now=...): earliest start (UTC)


@dataclass
class Schedule:
    waves: list[Wave]
    decisions: list[str]  # why things are ordered the way they are, for a person reading the plan


def _order_key(order_by: str, host: Host) -> tuple[Any, ...]:
    value: Any = host.vars.get(order_by) if order_by in host.vars else getattr(host, order_by, None)
    return (value is None, str(value) if value is not None else "", host.name)


def order_hosts(cluster: Cluster, names: set[str]) -> list[Host]:
    """The rollout order of the given hosts of a cluster: `first`, then by `order_by`."""
    policy = cluster.policy
    by_name = {h.name: h for h in cluster.hosts if h.name in names}
    head = [by_name[n] for n in policy.first if n in by_name]
    rest = sorted((h for h in by_name.values() if h.name not in policy.first), key=lambda h: _order_key(policy.order_by, h))
    return head + rest


def split_stages(cluster: Cluster, hosts: list[Host]) -> list[tuple[str, list[Host]]]:
    """Hosts grouped by the first stage whose roles they have; the rest form a last stage."""
    stages = cluster.policy.stages
    if not stages:
        return [("", hosts)]
    groups: list[tuple[str, list[Host]]] = [(s.name, []) for s in stages]
    rest: list[Host] = []
    for host in hosts:
        for i, stage in enumerate(stages):
            if set(stage.roles) & set(host.roles):
                groups[i][1].append(host)
                break
        else:
            rest.append(host)
    if rest:
        groups.append(("(hosts in no stage)", rest))
    return [g for g in groups if g[1]]


def cluster_waves(cluster: Cluster, changes: dict[str, str], in_service: set[str], decisions: list[str]) -> list[list[Step]]:
    """Batches of one cluster, in order. `changes` maps host name -> action (disruptive only)."""
    policy = cluster.policy
    size = len(cluster.hosts)
    need = resolve_count(policy.min_available, size)
    up = sum(1 for h in cluster.hosts if h.name in in_service)
    batches: list[list[Step]] = []
    ordered = order_hosts(cluster, set(changes))
    previous = ""
    for stage_name, hosts in split_stages(cluster, ordered):
        if stage_name:
            when = f"starts after stage {previous} is ready" if previous else "goes first"
            decisions.append(f"cluster {cluster.name}: stage {stage_name} ({', '.join(h.name for h in hosts)}) {when}")
            previous = stage_name
        batch: list[Step] = []
        down = 0
        for host in hosts:
            action = changes[host.name]
            takes_down = host.name in in_service and action != "remove"
            if takes_down and up - 1 < need:
                # Checked before cutting the batch: a held host must not cost a wave.
                decisions.append(f"host {host.name} held: min_available {policy.min_available} would be violated ({up} of {size} up)")
                continue
            if takes_down and up - (down + 1) < need:
                batches.append(batch)  # not empty: down > 0 here
                batch, down = [], 0
            batch.append(Step(host.name, cluster.name, action))
            down += takes_down
            if action == "power" and host.power == "off":
                up -= 1  # it stays off: the cluster has one host less from here on
                down -= 1
            if len(batch) >= policy.max_concurrent:
                batches.append(batch)
                batch, down = [], 0
        if batch:
            batches.append(batch)
    # Hosts removed from the SoT are no longer in the cluster (they count in no min_available):
    # they leave last, first in the free places of the last wave, then in batches.
    members = {h.name for h in cluster.hosts}
    gone = [Step(n, cluster.name, changes[n]) for n in sorted(n for n in changes if n not in members)]
    if gone and batches and len(batches[-1]) < policy.max_concurrent:
        free = policy.max_concurrent - len(batches[-1])
        batches[-1].extend(gone[:free])
        gone = gone[free:]
    for i in range(0, len(gone), policy.max_concurrent):
        batches.append(gone[i : i + policy.max_concurrent])
    if batches:
        limit = min(policy.max_concurrent, max(up - need, 0)) if in_service & set(changes) else policy.max_concurrent
        decisions.append(
            f"cluster {cluster.name}: {len(changes)} host(s) in {len(batches)} wave(s), at most {policy.max_concurrent} at once"
            + (f", at most {limit} in-service host(s) down at once (min_available {policy.min_available})" if in_service & set(changes) else "")
        )
        for window in policy.windows:
            decisions.append(f"cluster {cluster.name}: waves start only inside window {','.join(window.days)} {window.start}-{window.end} {window.timezone}")
    return batches


def schedule(new: SoT, changes: dict[str, dict[str, str]], in_service: set[str], now: datetime | None = None) -> Schedule:
    """`changes`: cluster name -> {host name -> action}. Returns global waves, numbered from 1.

    `now` (timezone-aware): also explain, in absolute times, which waves wait for a window.
    """
    decisions: list[str] = []
    graph = {name: sorted(d for d in c.depends_on if d in new.clusters) for name, c in new.clusters.items()}
    finish: dict[str, int] = {}  # cluster -> last wave it uses (0 when neither it nor its dependencies have work)
    waves: dict[int, Wave] = {}
    sorter = TopologicalSorter(graph)
    sorter.prepare()
    while sorter.is_active():  # ready clusters in name order: the same SoT always gives the same plan
        for name in sorted(sorter.get_ready()):
            cluster = new.clusters[name]
            start = max((finish[d] for d in graph[name]), default=0)
            busy_deps = [d for d in graph[name] if finish[d] > 0]
            batches = cluster_waves(cluster, changes.get(name, {}), in_service, decisions) if changes.get(name) else []
            if batches and busy_deps:
                decisions.append(f"cluster {name} waits for {', '.join(sorted(busy_deps))} to be ready (depends_on): starts at wave {start + 1}")
            for offset, batch in enumerate(batches, start=1):
                waves.setdefault(start + offset, Wave(start + offset)).steps.extend(batch)
            finish[name] = start + len(batches)
            sorter.done(name)
    # Clusters deleted from the SoT: their hosts are powered off and forgotten; nothing waits on them.
    for name in sorted(set(changes) - set(new.clusters)):
        steps = [Step(h, name, a) for h, a in sorted(changes[name].items())]
        waves.setdefault(1, Wave(1)).steps.extend(steps)
        decisions.append(f"cluster {name} was removed from the SoT: its {len(steps)} host(s) are removed in wave 1")
    ordered = [waves[n] for n in sorted(waves)]
    if now is not None and ordered:
        _explain_windows(new, ordered, now, decisions)
    return Schedule(ordered, decisions)


def _explain_windows(new: SoT, waves: list[Wave], now: datetime, decisions: list[str]) -> None:
    """Set each wave's `not_before`: by then each of its clusters can have started, each inside its own windows."""
    decisions.append(f"times below assume now = {now.isoformat()} and waves that take no time: a wave may start later, never earlier")
    at = now
    spans: dict[tuple[Any, ...], Span | None] = {}  # clusters often share their windows: ask once per wave
    for wave in waves:
        start = at
        seen: set[str] = set()
        for step in wave.steps:
            if step.cluster in seen or step.cluster not in new.clusters:
                continue
            seen.add(step.cluster)
            windows = new.clusters[step.cluster].policy.windows
            key = (at, *((tuple(w.days), w.start, w.end, w.timezone) for w in windows))
            if key not in spans:
                spans[key] = next_span(windows, at)
            span = spans[key]
            if span is not None and not span.contains(at):
                decisions.append(f"wave {wave.number} waits: window opens {span.describe_start()} (cluster {step.cluster}, window {describe(span.window)})")
                start = max(start, span.start)
        wave.not_before = start
        at = start
