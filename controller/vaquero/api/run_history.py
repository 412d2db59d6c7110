"""The runs the runner wrote, read-only; its operator controls (pause, abort, ...) are in `runs.py`, mounted only with the runner."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query

from ..gate import records as r
from ..state.store import Store
from . import models as m
from .auth import require
from .errors import get_or_404


def routes(store: Store) -> APIRouter:
    router = APIRouter(tags=["runs"], dependencies=[Depends(require("read"))])

    @router.get("/v1/runs", responses={200: {"model": m.RunList}}, summary="runs (written by the runner), newest first")
    def list_runs(limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        items = [rec.value for rec in store.list("/runs/")]
        items.sort(key=lambda v: v.get("started") or v.get("created") or 0, reverse=True)
        return {"count": len(items[:limit]), "runs": items[:limit]}

    @router.get("/v1/runs/{rid}", summary="one run")
    def get_run(rid: str) -> dict[str, Any]:
        if not r.valid_id(rid):
            raise HTTPException(404, "no such run")
        return get_or_404(store, r.run_key(rid), "such run")

    return router
