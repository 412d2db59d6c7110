"""Operator controls of a run, as an APIRouter the controller API mounts: pause, resume, abort, steps.

    app.include_router(vaquero.api.runs.router)

- ``POST /v1/runs/{id}/pause``: the run finishes the host steps under way and starts no new one;
- ``POST /v1/runs/{id}/resume``: it goes on where it stopped;
- ``POST /v1/runs/{id}/abort``: the playbooks under way are cancelled (ansible-runner's cancel
  callback), their hosts fail with the reason "cancelled", the run and the plan end ``cancelled``;
- ``GET /v1/runs/{id}/steps``: every host step of the run (wave, state, attempt, failures, error).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from vaquero.runner import records as R

from .auth import require
from .settings import Token

router = APIRouter(tags=["runs"])


def _store(request: Request) -> Any:
    store = getattr(request.app.state, "store", None)
    if store is None:
        raise HTTPException(503, "no store")
    return store


def _change(request: Request, rid: str, fields: dict[str, Any], *, allowed: tuple[str, ...]) -> dict[str, Any]:
    store = _store(request)
    rec = store.get(R.run_key(rid))
    if rec is None:
        raise HTTPException(404, f"no run {rid}")
    if rec.value.get("state") not in allowed:
        raise HTTPException(409, f"run {rid} is {rec.value.get('state')}")
    value = R.update(store, R.run_key(rid), lambda run: {**run, **fields})
    return value or {}


@router.post("/v1/runs/{rid}/pause", summary="pause a run: no new host step starts until it is resumed", responses={404: {}, 409: {}})
def pause(rid: str, request: Request, token: Token = Depends(require("approve"))) -> dict[str, Any]:  # noqa: B008
    return _change(request, rid, {"paused": True, "paused_by": token.name, "paused_at": time.time()}, allowed=(R.RUNNING, R.PAUSED))


@router.post("/v1/runs/{rid}/resume", summary="resume a paused run", responses={404: {}, 409: {}})
def resume(rid: str, request: Request, token: Token = Depends(require("approve"))) -> dict[str, Any]:  # noqa: B008
    return _change(request, rid, {"paused": False, "resumed_by": token.name}, allowed=(R.RUNNING, R.PAUSED))


@router.post("/v1/runs/{rid}/abort", summary="abort a run: cancel the playbooks under way", responses={404: {}, 409: {}})
def abort(rid: str, request: Request, token: Token = Depends(require("approve"))) -> dict[str, Any]:  # noqa: B008
    value = _change(request, rid, {"abort_requested": True, "aborted_by": token.name}, allowed=(R.RUNNING, R.PAUSED))
    store = _store(request)
    R.update(store, R.plan_key(rid), lambda p: {**p, "cancel_requested": True, "cancel_requested_by": token.name} if p else None)
    return value


@router.get("/v1/runs/{rid}/steps", summary="the host steps of a run", dependencies=[Depends(require("read"))], responses={404: {}})
def run_steps(rid: str, request: Request) -> dict[str, Any]:
    store = _store(request)
    if store.get(R.run_key(rid)) is None:
        raise HTTPException(404, f"no run {rid}")
    return {"run": rid, "steps": sorted(R.steps(store, rid).values(), key=lambda s: (s.get("wave") or 0, s["host"]))}


def attach(app: Any, store: Any, data_dir: str | Path, **worker_options: Any) -> Any:
    """Mount the operator router on a FastAPI `app` and start a RunWorker on `store`; returns the worker."""
    from vaquero.runner.worker import RunWorker

    app.include_router(router)
    return RunWorker(store, data_dir, **worker_options).start()
