"""Liveness, readiness and Prometheus metrics.

The probes run on the event loop and never wait for the thread pool or the Store: a busy pool or a
hung Store must not make the orchestrator think the process itself is dead.
"""

from __future__ import annotations

import asyncio
import threading

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..state.store import Store
from .auth import require
from .metrics import Metrics


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


def routes(store: Store, metrics: Metrics) -> APIRouter:
    router = APIRouter(tags=["probes"])
    readiness = ReadyCache(store)

    @router.get("/healthz/live", summary="the process answers")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @router.get("/healthz/ready", summary="the Store is reachable and migrated", responses={503: {"description": "not ready"}})
    async def ready() -> JSONResponse:
        ok = await readiness.ok()
        return JSONResponse({"status": "ready" if ok else "not ready", "store": ok}, status_code=200 if ok else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse, dependencies=[Depends(require("read"))])
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
