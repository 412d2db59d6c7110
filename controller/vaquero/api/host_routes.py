"""The host routes over `HostViews` (hosts.py, which stays free of FastAPI): list, one host, its timeline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from ..gate import records as r
from . import models as m
from .auth import require
from .hosts import HostViews


def routes(hosts: HostViews) -> APIRouter:
    router = APIRouter(tags=["hosts"], dependencies=[Depends(require("read"))])

    @router.get("/v1/hosts", responses={200: {"model": m.HostList}}, summary="hosts with their state, filtered by cluster and state")
    async def list_hosts(cluster: str | None = Query(None, max_length=128), state: str | None = Query(None, max_length=32)) -> Response:
        # In a thread even when cached: checking the cache reads the Store (a network call with etcd).
        body = await run_in_threadpool(hosts.list_json, cluster, state)
        return Response(body, media_type="application/json")

    @router.get("/v1/hosts/{name}", responses={200: {"model": m.HostDetail}, 404: {}}, summary="one host: state, since when, and why it is stuck")
    def get_host(name: str) -> dict[str, Any]:
        if not r.valid_id(name):
            raise HTTPException(404, "no such host")
        out = hosts.detail(name)
        if out is None:
            raise HTTPException(404, f"no host {name!r} in the current revision or the store")
        return out

    @router.get("/v1/hosts/{name}/timeline", responses={200: {"model": m.Timeline}, 404: {}}, summary="a host's events, oldest first")
    def get_timeline(name: str) -> dict[str, Any]:
        if not r.valid_id(name):
            raise HTTPException(404, "no such host")
        items = hosts.timeline(name)
        if items is None:
            raise HTTPException(404, f"no host {name!r} in the current revision or the store")
        return {"host": name, "count": len(items), "events": items}

    return router
