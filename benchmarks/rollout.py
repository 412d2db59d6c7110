#!/usr/bin/env python3
"""Plan a rolling upgrade of 10,000 hosts in 200 clusters under policies, vs the bare plan.

Generates four SoT revisions (5 sites, 200 clusters of 50 hosts): old and new (the profile's
version bumped, so every host is upgraded), each twice:
  bare:   max_concurrent only: no windows, no min_available, no dependencies, no stages;
  policy: reboot windows in four time zones (some across midnight), min_available (counts and
          percents), first hosts, canary stages on a quarter of the clusters, and dependency
          chains of four clusters (a -> b -> c -> d) at each site.
Then times make_plan + render_text (the loads are not timed) of both, the policy plan with
`now` so that window waits are explained, and prints:
  - plan time of the policy plan vs the bare plan (target <= 2x);
  - the planned makespan in waves vs its lower bound (target 1.0x). The bound, per cluster, is
    sum over its stages of ceil(hosts in stage / b) with b = min(max_concurrent, hosts - min_available):
    no plan can take more in-service hosts down at once (min_available) or start a stage before the
    previous one is ready; a dependency chain costs the sum of its clusters and independent
    chains run in parallel, so the plan's bound is its longest chain. The bound is a few lines of
    arithmetic over the SoT's raw YAML (yaml.safe_load), not Vaquero's ordering code, and the plan's
    waves are checked against the same YAML (every host once, at most b per cluster and wave,
    stages and depends_on in order) before its length counts. The plain
    ceil(hosts / max_concurrent) per chain is printed beside it: it is lower whenever min_available
    or stages force smaller waves, and no plan that keeps them can reach it.
Usage: benchmarks/rollout.py [--hosts N] [--clusters N] [--sites N] [--repeat N]
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]
CHAIN = 4  # clusters per dependency chain


def policy_of(c: int, size: int, bare: bool) -> dict[str, Any]:
    mc = (3, 5, 8, 10)[c % 4]
    if bare:
        return {"max_concurrent": mc}
    policy: dict[str, Any] = {
        "max_concurrent": mc,
        "min_available": ("80%", size - 7, "60%", 0)[(c // 4) % 4],
        "order_by": "rack",
        "windows": [
            {"days": ["mon", "tue", "wed", "thu"], "start": "22:00", "end": "04:00", "timezone": ZONES[c % len(ZONES)]},
            {"days": ["sat", "sun"], "start": "01:00", "end": "06:00", "timezone": ZONES[c % len(ZONES)]},
        ],
    }
    if c % 3 == 0:
        policy["first"] = [f"c{c}-h1"]
    if c % 4 == 1:
        policy["stages"] = [{"name": "canary", "roles": ["canary"]}]
    return policy


def generate(root: Path, sites: int, clusters: int, hosts: int, version: str, bare: bool) -> None:
    for d in ("sites", "profiles", "clusters"):
        (root / d).mkdir(parents=True, exist_ok=True)
    per_site, size = clusters // sites, hosts // clusters
    for s in range(sites):
        site = {
            "apiVersion": "vaquero/v1",
            "kind": "Site",
            "name": f"site{s}",
            "networks": [{"name": "prov", "subnet": f"10.{s}.0.0/16", "dhcp": {"mode": "server", "range": [f"10.{s}.255.1", f"10.{s}.255.250"]}}],
        }
        (root / "sites" / f"site{s}.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
    profile = {
        "apiVersion": "vaquero/v1",
        "kind": "Profile",
        "name": "linux",
        "version": version,
        "kernel": {"url": "https://mirror.example.net/vmlinuz", "sha256": "a" * 64},
    }
    (root / "profiles" / "linux.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    n = 0
    for c in range(clusters):
        s = c // per_site
        host_list = []
        for h in range(size):
            third, fourth = divmod(n % 60000, 250)
            host_list.append(
                {
                    "name": f"c{c}-h{h}",
                    "macs": [f"02:{(n >> 24) & 255:02x}:{(n >> 16) & 255:02x}:{(n >> 8) & 255:02x}:{n & 255:02x}:01"],
                    "roles": ["canary"] if h < 2 else ["worker"],
                    "ips": {"prov": f"10.{s}.{third % 250 + 1}.{fourth + 2}"},
                    "vars": {"rack": f"r{h % 7}"},
                }
            )
            n += 1
        cluster = {
            "apiVersion": "vaquero/v1",
            "kind": "Cluster",
            "name": f"c{c}",
            "site": f"site{s}",
            "profile": "linux",
            "depends_on": [] if bare or (c % per_site) % CHAIN == 0 else [f"c{c - 1}"],
            "policy": policy_of(c, size, bare),
            "hosts": host_list,
        }
        (root / "clusters" / f"c{c}.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))


def raw_clusters(root: Path) -> dict[str, dict[str, Any]]:
    """The clusters as written in the SoT's YAML, read with nothing of Vaquero's."""
    clusters = {}
    for path in sorted((root / "clusters").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        clusters[doc["name"]] = doc
    return clusters


def wave_capacity(cluster: dict[str, Any]) -> int:
    """In-service hosts one wave may take down: min(max_concurrent, hosts - min_available).

    Policy defaults as docs/sot.md gives them: max_concurrent 1, min_available 0; a percentage is
    rounded up (a safety floor is never rounded away). Every host here is in service and upgraded.
    """
    policy = cluster.get("policy") or {}
    n = len(cluster["hosts"])
    floor = policy.get("min_available", 0)
    if isinstance(floor, str):
        floor = math.ceil(int(floor.rstrip("%")) * n / 100)
    return min(policy.get("max_concurrent", 1), n - floor)


def stage_sizes(cluster: dict[str, Any]) -> list[int]:
    """Hosts per stage: a host belongs to the first stage sharing one of its roles; the rest form a last stage."""
    stages = (cluster.get("policy") or {}).get("stages") or []
    counts = [0] * (len(stages) + 1)
    for host in cluster["hosts"]:
        roles = set(host.get("roles") or [])
        index = next((i for i, stage in enumerate(stages) if roles & set(stage["roles"])), len(stages))
        counts[index] += 1
    return [c for c in counts if c]


def lower_bound(clusters: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """(bound honouring min_available and stages, plain ceil(n / max_concurrent)), longest chain of each.

    Computed from the raw YAML, independently of Vaquero's ordering code: a cluster needs at least
    sum over its stages of ceil(hosts in stage / capacity) waves (stages never share a wave, and no
    wave may take more than the capacity down); a cluster starts after its dependencies finish, so
    a chain costs the sum of its clusters; independent chains run side by side.
    """
    strict: dict[str, int] = {}
    plain: dict[str, int] = {}

    def cost(name: str) -> tuple[int, int]:
        if name not in strict:
            c = clusters[name]
            capacity = wave_capacity(c)
            own = sum(math.ceil(k / capacity) for k in stage_sizes(c)) if capacity > 0 else 0
            deps = [cost(d) for d in c.get("depends_on") or []]
            strict[name] = own + max((d[0] for d in deps), default=0)
            max_concurrent = (c.get("policy") or {}).get("max_concurrent", 1)
            plain[name] = math.ceil(len(c["hosts"]) / max_concurrent) + max((d[1] for d in deps), default=0)
        return strict[name], plain[name]

    for name in clusters:
        cost(name)
    return max(strict.values()), max(plain.values())


def check_plan(clusters: dict[str, dict[str, Any]], waves: list[Any]) -> list[str]:
    """What the planned waves break of the raw YAML's rules, checked without Vaquero's code (empty: none)."""
    where: dict[str, int] = {}
    per_wave: dict[tuple[str, int], int] = {}
    problems = []
    for wave in waves:
        for step in wave.steps:
            if step.host in where:
                problems.append(f"host {step.host} is in waves {where[step.host]} and {wave.number}")
            where[step.host] = wave.number
            per_wave[step.cluster, wave.number] = per_wave.get((step.cluster, wave.number), 0) + 1
    for name, c in clusters.items():
        names = [h["name"] for h in c["hosts"]]
        missing = [h for h in names if h not in where]
        if missing:
            problems.append(f"cluster {name}: {len(missing)} host(s) in no wave, e.g. {missing[0]}")
            continue
        busiest = max((k for (cl, _), k in per_wave.items() if cl == name), default=0)
        if busiest > wave_capacity(c):
            problems.append(f"cluster {name}: {busiest} hosts in one wave, capacity {wave_capacity(c)}")
        stages = (c.get("policy") or {}).get("stages") or []
        stage_of = {}
        for host in c["hosts"]:
            roles = set(host.get("roles") or [])
            stage_of[host["name"]] = next((i for i, stage in enumerate(stages) if roles & set(stage["roles"])), len(stages))
        for i in range(len(stages)):
            done = [where[h] for h in names if stage_of[h] <= i]
            later = [where[h] for h in names if stage_of[h] > i]
            if done and later and min(later) <= max(done):
                problems.append(f"cluster {name}: a host after stage {stages[i]['name']} runs in wave {min(later)}, before that stage ends")
        for dep in c.get("depends_on") or []:
            last_dep = max(where[h["name"]] for h in clusters[dep]["hosts"])
            if min(where[h] for h in names) <= last_dep:
                problems.append(f"cluster {name} starts at or before wave {last_dep}, where {dep} (depends_on) still runs")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--clusters", type=int, default=200)
    ap.add_argument("--sites", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from vaquero.plan import make_plan, render_text
    from vaquero.sot import load

    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # a Wednesday noon: most windows are closed
    with tempfile.TemporaryDirectory() as tmp:
        sots = {}

        for kind in ("bare", "policy"):
            for rev, version in (("old", "1"), ("new", "2")):
                root = Path(tmp, kind, rev)
                generate(root, args.sites, args.clusters, args.hosts, version, bare=kind == "bare")
                sots[kind, rev] = load(root, semantic=rev == "old") if rev == "old" else load(root)
        raw = raw_clusters(Path(tmp, "policy", "new"))
    # The four loaded revisions are long-lived: keep the collector from re-walking them in both timings.
    gc.collect()
    gc.freeze()
    bare_times, policy_times = [], []
    for _ in range(args.repeat):  # interleaved, so noise hits both sides alike
        t = time.perf_counter()
        bare = make_plan(sots["bare", "old"], sots["bare", "new"])
        render_text(bare)
        bare_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        plan = make_plan(sots["policy", "old"], sots["policy", "new"], now=now)
        render_text(plan)
        policy_times.append(time.perf_counter() - t)
    # The policy engine alone (the part this benchmark is about; the SoT diff above is shared).
    from vaquero.policy.waves import schedule

    engine: dict[str, list[float]] = {"bare": [], "policy": []}
    for kind, result, at in (("bare", bare, None), ("policy", plan, now)):
        changes: dict[str, dict[str, str]] = {}
        for h in result.hosts:
            changes.setdefault(h.cluster, {})[h.host] = h.action
        in_service = {h.name for _, _, h in sots[kind, "old"].hosts()}
        for _ in range(args.repeat):
            t = time.perf_counter()
            schedule(sots[kind, "new"], changes, in_service, at)
            engine[kind].append(time.perf_counter() - t)
    eb, ep = statistics.median(engine["bare"]), statistics.median(engine["policy"])
    upgrades = plan.summary["upgrade"]
    if upgrades != args.hosts or bare.summary["upgrade"] != args.hosts:
        print(f"unexpected plan: {upgrades} upgrades, expected {args.hosts}", file=sys.stderr)
        return 1
    b, p = statistics.median(bare_times), statistics.median(policy_times)
    waves = len(plan.schedule.waves)
    bound, plain = lower_bound(raw)
    problems = check_plan(raw, plan.schedule.waves)
    if problems:
        # A plan that breaks a rule is no result: its wave count says nothing against the bound.
        print(f"the policy plan breaks {len(problems)} rule(s) of the SoT, e.g.: " + "; ".join(problems[:5]), file=sys.stderr)
        return 1
    waits = sum(1 for d in plan.schedule.decisions if " waits: window opens " in d)
    held = sum(1 for d in plan.schedule.decisions if " held: " in d)
    chains = args.clusters // CHAIN
    print(f"hosts {args.hosts}, clusters {args.clusters} ({chains} dependency chains of {CHAIN}), sites {args.sites}, repeats {args.repeat}")
    print(f"bare plan (max_concurrent only): median {b:.3f}s, {len(bare.schedule.waves)} wave(s)")
    print(f"policy plan (windows, min_available, first, stages, depends_on, now={now.isoformat()}): median {p:.3f}s")
    print(f"  {waves} wave(s), {len(plan.schedule.decisions)} decision(s), {waits} window wait(s) explained, {held} host(s) held")
    print(f"  of which the policy engine (waves.schedule): policy {ep:.3f}s, bare {eb:.3f}s ({ep / eb:.2f}x)")
    print(f"rollout plan time vs bare plan ratio {p / b:.2f} (policy {p:.3f}s, bare {b:.3f}s, target <= 2.0)")
    print(
        f"rollout makespan vs lower bound ratio {waves / bound:.2f} (planned {waves} waves, checked against the raw YAML: every host "
        f"once, capacity, stages, depends_on; bound {bound} from the raw YAML = longest chain of per-cluster sum over stages of "
        f"ceil(n / min(max_concurrent, n - min_available)); ceil(n / max_concurrent) per chain alone: {plain}; target 1.0)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
