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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from typing import Any

from ..sot.loader import SoT
from ..sot.models import Cluster, Host
from ..sot.validate import resolve_count


@dataclass
class Step:
    host: str
    cluster: str
    action: str


@dataclass
class Wave:
    number: int
    steps: list[Step] = field(default_factory=list)


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
    for stage_name, hosts in split_stages(cluster, ordered):
        if stage_name:
            decisions.append(f"cluster {cluster.name}: stage {stage_name} ({', '.join(h.name for h in hosts)}) starts after the previous stage is ready")
        batch: list[Step] = []
        down = 0
        for host in hosts:
            action = changes[host.name]
            takes_down = host.name in in_service and action != "remove"
            if takes_down and up - (down + 1) < need:
                if batch:
                    batches.append(batch)
                    batch, down = [], 0
                if up - 1 < need:
                    decisions.append(f"host {host.name} held: min_available {policy.min_available} would be violated ({up} of {size} up)")
                    continue
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
    # Hosts removed from the SoT are no longer in the cluster: they leave last, in batches.
    gone = sorted(n for n in changes if n not in {h.name for h in cluster.hosts})
    for i in range(0, len(gone), policy.max_concurrent):
        batches.append([Step(n, cluster.name, changes[n]) for n in gone[i : i + policy.max_concurrent]])
    if batches:
        limit = min(policy.max_concurrent, max(up - need, 0)) if in_service & set(changes) else policy.max_concurrent
        decisions.append(
            f"cluster {cluster.name}: {len(changes)} host(s) in {len(batches)} wave(s), at most {policy.max_concurrent} at once"
            + (f", at most {limit} in-service host(s) down at once (min_available {policy.min_available})" if in_service & set(changes) else "")
        )
        for window in policy.windows:
            decisions.append(f"cluster {cluster.name}: waves start only inside window {','.join(window.days)} {window.start}-{window.end} {window.timezone}")
    return batches


def schedule(new: SoT, changes: dict[str, dict[str, str]], in_service: set[str]) -> Schedule:
    """`changes`: cluster name -> {host name -> action}. Returns global waves, numbered from 1."""
    decisions: list[str] = []
    graph = {name: [d for d in c.depends_on if d in new.clusters] for name, c in new.clusters.items()}
    finish: dict[str, int] = {}  # cluster -> last wave it uses (0 when it has no work)
    waves: dict[int, Wave] = {}
    for name in TopologicalSorter(graph).static_order():
        cluster = new.clusters[name]
        start = max((finish[d] for d in graph[name]), default=0)
        busy_deps = [d for d in graph[name] if finish[d] > 0]
        batches = cluster_waves(cluster, changes.get(name, {}), in_service, decisions) if changes.get(name) else []
        if batches and busy_deps:
            decisions.append(f"cluster {name} waits for {', '.join(sorted(busy_deps))} to be ready (depends_on): starts at wave {start + 1}")
        for offset, batch in enumerate(batches, start=1):
            waves.setdefault(start + offset, Wave(start + offset)).steps.extend(batch)
        finish[name] = start + len(batches)
    # Clusters deleted from the SoT: their hosts are powered off and forgotten; nothing waits on them.
    for name in sorted(set(changes) - set(new.clusters)):
        steps = [Step(h, name, a) for h, a in sorted(changes[name].items())]
        waves.setdefault(1, Wave(1)).steps.extend(steps)
        decisions.append(f"cluster {name} was removed from the SoT: its {len(steps)} host(s) are removed in wave 1")
    return Schedule([waves[n] for n in sorted(waves)], decisions)
