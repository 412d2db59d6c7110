"""GET /v1/inspections: machines the SoT does not know, as their inspection ramdisks reported them, and
what became of each (a pull request, a patch, or why not), read from the Store (docs/api.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ..inspect import list_inspections
from ..state.store import Store
from . import models as m
from .auth import require


def routes(store: Store) -> APIRouter:
    router = APIRouter(tags=["hosts"], dependencies=[Depends(require("read"))])

    @router.get("/v1/inspections", response_model=m.InspectionList, summary="reported machines waiting for enrollment, and their proposals")
    def get_inspections() -> m.InspectionList:
        # a sync route: FastAPI runs it in the thread pool (an etcd read may take its timeout)
        items = [m.Inspection.model_validate(rec.value) for rec in list_inspections(store)]
        return m.InspectionList(count=len(items), inspections=items)

    return router
