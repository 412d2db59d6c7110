"""The controller's HTTP API: `create_app(settings, store)` returns a FastAPI app.

The runner and `vaquero standalone` build their own Store and mount or serve this app in the
same process; the gate's worker thread starts and stops with the app's lifespan. The routes live
in one module per job (probes, revisions, plans, run_history, host_routes, webhook, events); this
module builds their shared dependencies once and composes them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.concurrency import run_in_threadpool

from .. import __version__
from ..gate.core import Gate
from ..gate.github import GitHubClient
from ..gate.pulls import PullPlanner
from ..state.store import Store
from . import drift_routes, events, host_routes, inspection_routes, plans, probes, revisions, run_history, webhook, webhook_pulls
from .errors import install_handlers
from .hosts import HostViews
from .metrics import Metrics
from .settings import Settings

log = logging.getLogger("vaquero.api")


def _runner_routers() -> list[APIRouter]:
    """The runner's operator controls (pause, resume, abort, steps), when the runner is installed."""
    try:
        from .runs import router
    except ImportError:
        return []
    return [router]


def create_app(settings: Settings, store: Store, *, gate: Gate | None = None, start_gate: bool = True, routers: Sequence[APIRouter] | None = None) -> FastAPI:
    """The API over `store`. `routers` are mounted too (default: the runner's, when importable)."""
    metrics = Metrics(store)
    reporter = GitHubClient(settings.github_token, settings.github_api) if settings.github_token else None
    gate = gate or Gate(store, cache=settings.cache, reporter=reporter, public_url=settings.public_url, observer=metrics, scrub=settings.scrub)
    pulls = PullPlanner(gate, gate.reporter, public_url=settings.public_url)
    hosts = HostViews(store, gate)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start_gate:
            gate.start()
        pulls.start()
        hosts.start()
        log.info("API ready: %d token(s), webhook %s", len(settings.tokens), "on" if settings.webhook_secret else "off")
        try:
            yield
        finally:
            await run_in_threadpool(hosts.stop)
            await run_in_threadpool(pulls.stop)
            if start_gate:
                await run_in_threadpool(gate.stop)

    app = FastAPI(
        title="Vaquero controller API",
        version=__version__,
        description="Revisions of the source of truth, their plans and approvals, runs, hosts and their timelines. "
        "Every endpoint needs a bearer token except the GitHub webhook (HMAC signature) and the probes.",
        lifespan=lifespan,
    )
    # The webhook, event stream, auth and runner routes find their dependencies here, per request.
    app.state.settings = settings
    app.state.store = store
    app.state.gate = gate
    app.state.pulls = pulls
    app.state.metrics = metrics
    app.state.hosts = hosts
    install_handlers(app, settings, metrics)

    app.include_router(webhook.router)
    app.include_router(events.router)
    for router in _runner_routers() if routers is None else routers:
        app.include_router(router)
    app.include_router(probes.routes(store, metrics))
    app.include_router(revisions.routes(settings, store, gate))
    app.include_router(plans.routes(store, gate))
    app.include_router(webhook_pulls.routes(store))
    app.include_router(run_history.routes(store))
    app.include_router(host_routes.routes(hosts))
    app.include_router(drift_routes.routes(store))
    app.include_router(inspection_routes.routes(store))
    return app
