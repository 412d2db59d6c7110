"""The run-time policy gate: asked before every wave, and after every failure.

The plan (waves.py) is made from SoT revisions alone and assumes every in-service host is ready.
At run time the runner asks again with what is true now: the clock, each host's state (from the
host state machine) and the SoT revision each host is at. Two questions, two functions:

``gate(sot, cluster, wave, states, now, revisions=None) -> Allow | Wait | Hold``
    before starting ``wave`` (host names of one cluster, in plan order). Rules, in this order:

    1. depends_on: every host of every cluster this one depends on (but hosts the SoT wants
       ``power: off``) is ``ready``, and, when the SoT
       has a revision (``sot.sha``) and ``revisions`` is given, ready *at that revision*;
       otherwise ``Wait(reason, until=None)``: ask again after a host changes state;
    2. windows: ``now`` is inside one of the cluster's windows; otherwise
       ``Wait(reason, until=<when the next window opens>)``;
    3. per host, in wave order: ``max_concurrent`` (hosts of the cluster already in progress count)
       and ``min_available`` (hosts counted as available are those ``ready`` now, so hosts already
       failed or still in progress count against it; a host of the wave that is not ready now takes
       nothing away). Hosts that would break a rule are held:
       ``Hold(hosts=<held>, allowed=<may start now, possibly none>, reason)``.

    Otherwise ``Allow(hosts, reason, until=<when the window closes, None without windows>)``.

``budget(cluster, host, failures) -> Continue | Retry | Halt | Rollback``
    after ``host`` failed. ``failures`` maps each host of the cluster that failed in this run and
    is not ready again to its failed attempts so far (``host`` included, >= 1). Rules:

    - ``on_failure: retry``: a host is retried until it failed ``1 + retries`` times
      (``Retry(host, attempt=<next attempt number, from 2>)``); only then it counts as failed;
    - failed hosts up to ``max_failures`` (a count, or a percent of the cluster rounded *down*:
      a tolerance is never rounded up) are tolerated: ``Continue``;
    - beyond it, ``on_failure`` decides: ``halt`` -> ``Halt``; ``continue`` -> ``Continue``;
      ``retry`` (retries used up) -> ``Halt``; ``rollback`` -> ``Rollback(hosts=<the failed hosts>)``:
      the runner returns them to the previous revision and starts no further wave of the cluster.

Every answer carries a ``reason`` a person can read ("wave waits: window opens Tue 2026-12-01 02:00
UTC ..."; "host h7 held: min_available 3 would be violated ..."). Host states are plain strings
(``ready``, ``failed``, ``installing``...: ``vaquero.state.State`` values); a host missing from
``states`` counts as not ready and not in progress.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..sot.loader import SoT
from ..sot.models import Cluster
from ..sot.validate import resolve_count
from .windows import describe, next_span

READY = "ready"
FAILED = "failed"
# States of a host that is being changed right now (it is down, and takes a max_concurrent place).
IN_PROGRESS = frozenset({"pending", "draining", "powering_off", "netbooting", "installing", "rebooting", "validating"})


@dataclass(frozen=True)
class Allow:
    hosts: tuple[str, ...]
    reason: str
    until: datetime | None = None  # the window closes then (UTC); None: the cluster has no windows


@dataclass(frozen=True)
class Wait:
    reason: str
    until: datetime | None = None  # ask again then (UTC); None: ask again when a host changes state


@dataclass(frozen=True)
class Hold:
    hosts: tuple[str, ...]  # held back: ask again for them later
    allowed: tuple[str, ...]  # may start now; empty: none can, wait for a host to change state
    reason: str


Verdict = Allow | Wait | Hold


@dataclass(frozen=True)
class Continue:
    reason: str


@dataclass(frozen=True)
class Retry:
    host: str
    attempt: int  # the number of the attempt to start now: 2 for the first retry
    reason: str


@dataclass(frozen=True)
class Halt:
    reason: str


@dataclass(frozen=True)
class Rollback:
    hosts: tuple[str, ...]
    reason: str


Outcome = Continue | Retry | Halt | Rollback


def _some(items: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _dependencies(sot: SoT, cluster: Cluster, states: Mapping[str, str], revisions: Mapping[str, str | None] | None) -> Wait | None:
    check_revision = sot.sha is not None and revisions is not None
    for dep in sorted(cluster.depends_on):
        other = sot.clusters.get(dep)
        if other is None:
            continue  # validation reports unknown clusters; nothing to wait for
        behind = []
        for host in other.hosts:
            if host.power == "off":
                continue  # the SoT wants it off: it is never ready, and nothing waits for it
            state = states.get(host.name, "unknown")
            if state != READY:
                behind.append(f"{host.name}: {state}")
            elif check_revision and revisions is not None and revisions.get(host.name) != sot.sha:
                at = revisions.get(host.name)
                behind.append(f"{host.name}: ready at {at[:12] if at else 'an unknown revision'}")
        if behind:
            where = f" at {sot.sha[:12]}" if check_revision and sot.sha else ""
            return Wait(f"cluster {cluster.name} waits: {dep} is not ready{where} (depends_on; {_some(behind)})")
    return None


def gate(
    sot: SoT,
    cluster: str,
    wave: Sequence[str],
    states: Mapping[str, str],
    now: datetime,
    revisions: Mapping[str, str | None] | None = None,
) -> Verdict:
    """May `wave` (hosts of `cluster`) start at `now`? See the module docstring for the rules."""
    c = sot.clusters[cluster]
    policy = c.policy
    members = {h.name for h in c.hosts}
    strangers = [h for h in wave if h not in members]
    if strangers:
        raise ValueError(f"not hosts of cluster {cluster}: {', '.join(strangers)}")
    waiting = _dependencies(sot, c, states, revisions)
    if waiting is not None:
        return waiting
    span = next_span(policy.windows, now)
    if span is not None and not span.contains(now):
        return Wait(f"wave waits: window opens {span.describe_start()} (cluster {cluster}, window {describe(span.window)})", until=span.start)
    size = len(c.hosts)
    need = resolve_count(policy.min_available, size)
    ready = sum(1 for h in members if states.get(h) == READY)
    failed = sum(1 for h in members if states.get(h) == FAILED)
    busy = sum(1 for h in members if states.get(h) in IN_PROGRESS and h not in wave)
    allowed: list[str] = []
    held: list[str] = []
    reasons: list[str] = []
    down = 0
    for host in wave:
        if busy + len(allowed) + 1 > policy.max_concurrent:
            held.append(host)
            reasons.append(f"host {host} held: max_concurrent {policy.max_concurrent} reached ({busy} other host(s) of {cluster} in progress)")
            continue
        if states.get(host) == READY:
            if ready - down - 1 < need:
                held.append(host)
                reasons.append(
                    f"host {host} held: min_available {policy.min_available} would be violated "
                    f"({ready - down} of {size} ready, {failed} failed, {need} must stay ready)"
                )
                continue
            down += 1
        allowed.append(host)
    if held:
        return Hold(tuple(held), tuple(allowed), "; ".join(reasons))
    inside = f", inside window {describe(span.window)} until {span.describe_end()}" if span is not None else ""
    reason = f"{len(allowed)} host(s) of {cluster} may start ({ready - down} of {size} stay ready, {need} needed){inside}"
    return Allow(tuple(allowed), reason, span.end if span else None)


def tolerated_failures(cluster: Cluster) -> int:
    """max_failures as a number of hosts: a percent of the cluster rounded down."""
    value = cluster.policy.max_failures
    if isinstance(value, int):
        return value
    return int(value.rstrip("%")) * len(cluster.hosts) // 100


def budget(cluster: Cluster, host: str, failures: Mapping[str, int]) -> Outcome:
    """What to do after `host` failed. See the module docstring for the rules."""
    policy = cluster.policy
    attempts = failures.get(host, 0)
    if attempts < 1:
        raise ValueError(f"host {host} is not in failures: count its failed attempt before asking")
    if policy.on_failure == "retry" and attempts <= policy.retries:
        return Retry(host, attempts + 1, f"host {host} failed attempt {attempts}: retry, attempt {attempts + 1} of {1 + policy.retries} (on_failure: retry)")
    exhausted = policy.retries if policy.on_failure == "retry" else 0
    counted = sorted(h for h, n in failures.items() if n > exhausted)
    limit = tolerated_failures(cluster)
    tried = f" after {attempts} attempt(s)" if policy.on_failure == "retry" else ""
    head = f"host {host} failed{tried}; {len(counted)} failed host(s) in {cluster.name} ({_some(counted)}), max_failures {policy.max_failures}"
    if limit and policy.max_failures != limit:
        head += f" (= {limit} host(s))"
    if len(counted) <= limit:
        return Continue(f"{head}: tolerated, the rollout continues")
    if policy.on_failure == "continue":
        return Continue(f"{head} exceeded: on_failure continue, the rollout continues")
    if policy.on_failure == "rollback":
        return Rollback(tuple(counted), f"{head} exceeded: on_failure rollback, {_some(counted)} return to the previous revision")
    if policy.on_failure == "retry":
        return Halt(f"{head} exceeded: retries used up, halt")
    return Halt(f"{head} exceeded: on_failure halt")
