"""How the API answers what went wrong: the app-wide exception handlers and the 404/gate-error helpers the routes share."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..gate.core import GateError
from ..state.store import Store, StoreUnavailable
from .metrics import Metrics
from .settings import Settings

log = logging.getLogger("vaquero.api")


def gate_error(exc: GateError) -> HTTPException:
    return HTTPException(exc.status, exc.message)


def get_or_404(store: Store, key: str, what: str) -> dict[str, Any]:
    rec = store.get(key)
    if rec is None:
        raise HTTPException(404, f"no {what}")
    return rec.value


def install_handlers(app: FastAPI, settings: Settings, metrics: Metrics) -> None:
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
