"""Prometheus metrics: hosts and plans by state and run durations (read from the Store at scrape
time, so they survive a restart), webhook deliveries, plan latency and errors (counted in process)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ..drift.records import counts, read_all
from ..state.store import Store

RUN_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)


class StoreCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        ready = GaugeMetricFamily("vaquero_store_ready", "1 when the Store is reachable and migrated")
        try:
            ok = self.store.ready()
        except Exception:
            ok = False
        ready.add_metric([], 1.0 if ok else 0.0)
        yield ready
        if not ok:
            return
        hosts = GaugeMetricFamily("vaquero_hosts", "hosts by lifecycle state", labels=["state"])
        for state, n in sorted(Tally(r.value.get("state", "unknown") for r in self.store.list("/hosts/")).items()):
            hosts.add_metric([str(state)], n)
        yield hosts
        plans = GaugeMetricFamily("vaquero_plans", "plans by state", labels=["state"])
        for state, n in sorted(Tally(r.value.get("state", "unknown") for r in self.store.list("/plans/")).items()):
            plans.add_metric([str(state)], n)
        yield plans
        drift = GaugeMetricFamily(
            "vaquero_drift_hosts", "hosts whose observed hardware differs from the applied revision, by kind; unknown: BMC not readable", labels=["kind"]
        )
        for kind, n in counts(read_all(self.store)).items():
            drift.add_metric([kind], n)
        yield drift
        durations: list[float] = []
        for rec in self.store.list("/runs/"):
            v = rec.value
            start = v.get("started", v.get("started_at"))
            end = v.get("finished", v.get("finished_at"))
            if isinstance(start, int | float) and isinstance(end, int | float) and end >= start:
                durations.append(float(end - start))
        buckets: list[tuple[str, float]] = [(str(b), float(sum(1 for d in durations if d <= b))) for b in RUN_BUCKETS]
        buckets.append(("+Inf", float(len(durations))))
        runs = HistogramMetricFamily("vaquero_run_duration_seconds", "duration of finished runs")
        runs.add_metric([], buckets, sum_value=sum(durations))
        yield runs


class Metrics:
    """One registry per app, so several apps (tests, standalone) do not collide."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(store))
        self.deliveries = Counter("vaquero_webhook_deliveries", "GitHub webhook deliveries by event and outcome", ["event", "result"], registry=self.registry)
        self.errors = Counter("vaquero_errors", "errors by kind", ["kind"], registry=self.registry)
        self.plan_seconds = Histogram(
            "vaquero_plan_ready_seconds",
            "from a revision's arrival (webhook or API) to its plan record",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.plans = Counter("vaquero_plans_made", "plans made by the gate, by the state they started in", ["state"], registry=self.registry)

    # GateObserver
    def planned(self, state: str, seconds: float) -> None:
        self.plans.labels(state).inc()
        self.plan_seconds.observe(seconds)

    def error(self, kind: str) -> None:
        self.errors.labels(kind).inc()
