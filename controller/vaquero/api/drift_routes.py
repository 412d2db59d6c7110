"""GET /v1/drift: the leader's last observation of every host, read from the Store (docs/api.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ..drift.records import actions, counts, read_all
from ..state.store import Store
from . import models as m
from .auth import require


def routes(store: Store) -> APIRouter:
    router = APIRouter(tags=["hosts"], dependencies=[Depends(require("read"))])

    @router.get("/v1/drift", response_model=m.DriftReport, summary="observed drift: hosts whose hardware differs from the applied revision, as plan actions")
    def get_drift() -> m.DriftReport:
        # a sync route: FastAPI runs it in the thread pool (an etcd read may take its timeout)
        records = read_all(store)
        return m.DriftReport(
            count=len(records),
            counts=counts(records),
            actions=[m.DriftAction.model_validate(a) for a in actions(records)],
            hosts=[m.DriftHost.model_validate(r) for r in records],
        )

    return router
