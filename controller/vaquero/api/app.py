"""The controller's HTTP API: `create_app(settings, store)` returns a FastAPI app.

The runner and `vaquero standalone` build their own Store and mount or serve this app in the
same process; the gate's worker thread starts and stops with the app's lifespan.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, field_validator

from .. import __version__
from ..gate import records as r
from ..gate.core import Gate, GateError
from ..gate.github import StatusReporter
from ..sot.errors import SourceError
from ..sot.source import check_subdir, split_spec
from ..state.store import Store, StoreUnavailable
from . import events, webhook
from . import models as m
from .auth import require
from .hosts import HostViews
from .metrics import Metrics
from .settings import Settings, Token

log = logging.getLogger("vaquero.api")

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class RevisionRequest(BaseModel):
    source: str = Field(
        min_length=1,
        max_length=2048,
        description="GIT-URL@REVISION (branch, tag or SHA; resolved once to a commit SHA) or an absolute path to a SoT folder on the server",
        examples=["https://github.com/example/sot.git@main", "/srv/sot"],
    )
    subdir: str = Field(
        "",
        max_length=512,
        pattern=r"^$|^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$",
        description="the SoT's folder inside the repository: a relative path, no '..' (checked again against the fetched tree)",
    )

    @field_validator("subdir")
    @classmethod
    def _inside(cls, value: str) -> str:
        try:
            return check_subdir(value)
        except SourceError as exc:
            raise ValueError(str(exc)) from None


class Decision(BaseModel):
    comment: str = Field("", max_length=2000)


class Approval(Decision):
    digest: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="the `digest` of the plan as you read it (GET /v1/plans/{id}): a plan that changed since is not approved (409)",
    )


def _gate_error(exc: GateError) -> HTTPException:
    return HTTPException(exc.status, exc.message)


def _get(store: Store, key: str, what: str) -> dict[str, Any]:
    rec = store.get(key)
    if rec is None:
        raise HTTPException(404, f"no {what}")
    return rec.value


class ReadyCache:
    """store.ready() for the readiness probe, asked on one dedicated thread (never the pool, never the loop).

    Probes that arrive together share one check; a probe waits (asynchronously) at most `timeout`
    seconds for a check that started after it arrived, and a Store that hangs longer is "not ready".
    """

    def __init__(self, store: Store, timeout: float = 2.0) -> None:
        self.store = store
        self.timeout = timeout
        self._lock = threading.Lock()
        self._want = threading.Event()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]] = []
        self._thread: threading.Thread | None = None

    async def ok(self) -> bool:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        with self._lock:
            self._waiters.append((loop, fut))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vaquero-ready", daemon=True)
                self._thread.start()
            self._want.set()  # under the lock: the thread cannot decide to end between the two
        try:
            return await asyncio.wait_for(fut, self.timeout)
        except TimeoutError:
            return False

    def _run(self) -> None:
        while True:
            self._want.wait(60)
            with self._lock:
                if not self._want.is_set():  # nobody asked for a minute: end (a new probe starts another)
                    self._thread = None
                    return
                self._want.clear()
                waiters, self._waiters = self._waiters, []
            try:
                ok = bool(self.store.ready())
            except Exception:
                ok = False
            for loop, fut in waiters:
                try:
                    loop.call_soon_threadsafe(_resolve, fut, ok)
                except RuntimeError:  # that probe's loop is gone
                    pass


def _resolve(fut: asyncio.Future[bool], ok: bool) -> None:
    if not fut.done():
        fut.set_result(ok)


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
    reporter = StatusReporter(settings.github_token, settings.github_api) if settings.github_token else None
    gate = gate or Gate(store, cache=settings.cache, reporter=reporter, public_url=settings.public_url, observer=metrics, scrub=settings.scrub)
    hosts = HostViews(store, gate)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start_gate:
            gate.start()
        hosts.start()
        log.info("API ready: %d token(s), webhook %s", len(settings.tokens), "on" if settings.webhook_secret else "off")
        try:
            yield
        finally:
            await run_in_threadpool(hosts.stop)
            if start_gate:
                await run_in_threadpool(gate.stop)

    app = FastAPI(
        title="Vaquero controller API",
        version=__version__,
        description="Revisions of the source of truth, their plans and approvals, runs, hosts and their timelines. "
        "Every endpoint needs a bearer token except the GitHub webhook (HMAC signature) and the probes.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.gate = gate
    app.state.metrics = metrics
    app.state.hosts = hosts

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        metrics.error("store_unavailable")
        log.error("store unavailable: %s", settings.scrub(str(exc)))
        return JSONResponse({"detail": "the store is unavailable; try again"}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer echoes each bad `input`: a NaN there cannot be written as JSON (a 500
        # instead of a 422), and a huge or secret-bearing value would be sent back. Where and why only.
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:500], "type": e.get("type")} for e in exc.errors()[:50]]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        metrics.error("internal")
        log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    app.include_router(webhook.router)
    app.include_router(events.router)
    for router in _runner_routers() if routers is None else routers:
        app.include_router(router)

    # -- probes and metrics --
    # Probes run on the event loop and never wait for the thread pool or the Store: a busy pool
    # or a hung Store must not make the orchestrator think the process itself is dead.
    readiness = ReadyCache(store)

    @app.get("/healthz/live", tags=["probes"], summary="the process answers")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/healthz/ready", tags=["probes"], summary="the Store is reachable and migrated", responses={503: {"description": "not ready"}})
    async def ready() -> JSONResponse:
        ok = await readiness.ok()
        return JSONResponse({"status": "ready" if ok else "not ready", "store": ok}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["probes"], summary="Prometheus metrics", response_class=PlainTextResponse, dependencies=[Depends(require("read"))])
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- revisions --
    @app.post(
        "/v1/revisions",
        tags=["revisions"],
        status_code=202,
        responses={200: {"model": m.RevisionAccepted}, 202: {"model": m.RevisionAccepted}, 422: {"model": m.ErrorOut}},
        summary="queue a revision (git URL@REV or a local path): validate and plan it",
    )
    def post_revision(body: RevisionRequest, response: Response, token: Token = Depends(require("approve"))) -> dict[str, Any]:  # noqa: B008
        url, rev = split_spec(body.source)
        if not settings.source_allowed(url if rev is not None else body.source):
            raise HTTPException(422, "this server does not take revisions from that source (see --repo and --allow-source)")
        try:
            if rev is None:
                record, created = gate.submit_path(body.source, subdir=body.subdir, actor=token.name)
            else:
                sha = gate.resolve(url, rev)
                record, created = gate.submit_git(url, sha, subdir=body.subdir, actor=token.name)
        except GateError as exc:
            raise _gate_error(exc) from None
        if not created:
            response.status_code = 200
        return {"created": created, "revision": record}

    @app.get(
        "/v1/revisions",
        tags=["revisions"],
        responses={200: {"model": m.RevisionList}},
        dependencies=[Depends(require("read"))],
        summary="revisions, newest first",
    )
    def list_revisions(state: str | None = Query(None, max_length=32), limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        items = [rec.value for rec in store.list("/revisions/") if state is None or rec.value.get("state") == state]
        items.sort(key=lambda v: v.get("created") or 0, reverse=True)
        return {"count": len(items[:limit]), "revisions": items[:limit]}

    @app.get(
        "/v1/revisions/{rid}",
        tags=["revisions"],
        responses={200: {"model": m.RevisionOut}, 404: {}},
        dependencies=[Depends(require("read"))],
        summary="one revision",
    )
    def get_revision(rid: str) -> dict[str, Any]:
        if not r.valid_id(rid):
            raise HTTPException(404, "no such revision")
        return _get(store, r.revision_key(rid), "such revision")

    # -- plans --
    @app.get(
        "/v1/plans",
        tags=["plans"],
        responses={200: {"model": m.PlanList}},
        dependencies=[Depends(require("read"))],
        summary="plans, newest first (without plan bodies)",
    )
    def list_plans(state: str | None = Query(None, max_length=32), limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        items = [r.plan_summary(rec.value) for rec in reversed(store.list("/plans/")) if state is None or rec.value.get("state") == state]
        return {"count": len(items[:limit]), "plans": items[:limit]}

    @app.get(
        "/v1/plans/{pid}",
        tags=["plans"],
        responses={200: {"model": m.PlanOut}, 404: {}},
        dependencies=[Depends(require("read"))],
        summary="one plan: JSON plan, human dump (`text`), errors",
    )
    def get_plan(pid: str) -> dict[str, Any]:
        if not r.valid_id(pid):
            raise HTTPException(404, "no such plan")
        return _get(store, r.plan_key(pid), "such plan")

    @app.get(
        "/v1/plans/{pid}/text",
        tags=["plans"],
        dependencies=[Depends(require("read"))],
        response_class=PlainTextResponse,
        summary="the human dump of a plan (or its errors, one per line, file:line: field: message)",
    )
    def get_plan_text(pid: str) -> PlainTextResponse:
        if not r.valid_id(pid):
            raise HTTPException(404, "no such plan")
        v = _get(store, r.plan_key(pid), "such plan")
        if v.get("text"):
            return PlainTextResponse(v["text"])
        lines = [
            f"{e.get('file')}:{e.get('line')}: {e.get('field')}: {e.get('message')}" if e.get("file") else str(e.get("message")) for e in v.get("errors") or []
        ]
        return PlainTextResponse(f"Revision {v.get('label')} is {v.get('state')}:\n" + "".join(f"  {x}\n" for x in lines))

    def _decide(verb: str, pid: str, token: Token, body: Decision | None = None) -> dict[str, Any]:
        if not r.valid_id(pid):
            raise HTTPException(404, f"no plan {pid}")
        kwargs = {"digest": body.digest} if isinstance(body, Approval) else {}
        try:
            value: dict[str, Any] = getattr(gate, verb)(pid, token.name, body.comment if body else "", **kwargs)
        except GateError as exc:
            raise _gate_error(exc) from None
        return r.plan_summary(value)

    @app.post(
        "/v1/plans/{pid}/approve",
        tags=["approvals"],
        summary="approve a plan waiting for approval, as read: the body carries the plan's digest (records who and when)",
        responses={
            200: {"model": m.PlanSummaryOut},
            404: {"description": "no such plan"},
            409: {"description": "not waiting for approval (superseded, rejected, ...), or its digest is not the one given"},
            422: {"description": "no digest in the body"},
        },
    )
    def approve(pid: str, body: Approval, token: Token = Depends(require("approve"))) -> dict[str, Any]:  # noqa: B008
        return _decide("approve", pid, token, body)

    @app.post(
        "/v1/plans/{pid}/reject",
        tags=["approvals"],
        summary="reject a plan waiting for approval",
        responses={200: {"model": m.PlanSummaryOut}, 404: {}, 409: {}},
    )
    def reject(pid: str, body: Decision | None = None, token: Token = Depends(require("approve"))) -> dict[str, Any]:  # noqa: B008
        return _decide("reject", pid, token, body)

    @app.post(
        "/v1/plans/{pid}/cancel",
        tags=["approvals"],
        summary="ask the runner to stop an approved or running plan",
        responses={200: {"model": m.PlanSummaryOut}, 404: {}, 409: {}},
    )
    def cancel(pid: str, token: Token = Depends(require("approve"))) -> dict[str, Any]:  # noqa: B008
        return _decide("cancel", pid, token)

    # -- runs --
    @app.get(
        "/v1/runs",
        tags=["runs"],
        responses={200: {"model": m.RunList}},
        dependencies=[Depends(require("read"))],
        summary="runs (written by the runner), newest first",
    )
    def list_runs(limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        items = [rec.value for rec in store.list("/runs/")]
        items.sort(key=lambda v: v.get("started") or v.get("created") or 0, reverse=True)
        return {"count": len(items[:limit]), "runs": items[:limit]}

    @app.get("/v1/runs/{rid}", tags=["runs"], dependencies=[Depends(require("read"))], summary="one run")
    def get_run(rid: str) -> dict[str, Any]:
        if not r.valid_id(rid):
            raise HTTPException(404, "no such run")
        return _get(store, r.run_key(rid), "such run")

    # -- hosts --
    @app.get(
        "/v1/hosts",
        tags=["hosts"],
        responses={200: {"model": m.HostList}},
        dependencies=[Depends(require("read"))],
        summary="hosts with their state, filtered by cluster and state",
    )
    async def list_hosts(cluster: str | None = Query(None, max_length=128), state: str | None = Query(None, max_length=32)) -> Response:
        # In a thread even when cached: checking the cache reads the Store (a network call with etcd).
        body = await run_in_threadpool(hosts.list_json, cluster, state)
        return Response(body, media_type="application/json")

    @app.get(
        "/v1/hosts/{name}",
        tags=["hosts"],
        responses={200: {"model": m.HostDetail}, 404: {}},
        dependencies=[Depends(require("read"))],
        summary="one host: state, since when, and why it is stuck",
    )
    def get_host(name: str) -> dict[str, Any]:
        if not r.valid_id(name):
            raise HTTPException(404, "no such host")
        out = hosts.detail(name)
        if out is None:
            raise HTTPException(404, f"no host {name!r} in the current revision or the store")
        return out

    @app.get(
        "/v1/hosts/{name}/timeline",
        tags=["hosts"],
        responses={200: {"model": m.Timeline}, 404: {}},
        dependencies=[Depends(require("read"))],
        summary="a host's events, oldest first",
    )
    def get_timeline(name: str) -> dict[str, Any]:
        if not r.valid_id(name):
            raise HTTPException(404, "no such host")
        items = hosts.timeline(name)
        if items is None:
            raise HTTPException(404, f"no host {name!r} in the current revision or the store")
        return {"host": name, "count": len(items), "events": items}

    return app
