"""GET /v1/inspections: machines the SoT does not know, as their inspection ramdisks reported them, and
what became of each (a pull request, a patch, or why not), read from the Store (docs/api.md).
DELETE /v1/inspections/{mac}: forget one, so that its next report is proposed afresh."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path

from ..inspect import forget_inspection, list_inspections
from ..state.store import Store
from . import models as m
from .auth import require

MacPath = Annotated[str, Path(pattern=r"^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$", description="the machine's boot MAC")]


def routes(store: Store) -> APIRouter:
    router = APIRouter(tags=["hosts"], dependencies=[Depends(require("read"))])

    @router.get("/v1/inspections", response_model=m.InspectionList, summary="reported machines waiting for enrollment, and their proposals")
    def get_inspections() -> m.InspectionList:
        # a sync route: FastAPI runs it in the thread pool (an etcd read may take its timeout)
        items = [m.Inspection.model_validate(rec.value) for rec in list_inspections(store)]
        return m.InspectionList(count=len(items), inspections=items)

    @router.delete(
        "/v1/inspections/{mac}",
        dependencies=[Depends(require("approve"))],
        summary="forget a reported machine (e.g. after its pull request was rejected): its next report is proposed again",
        responses={404: {"description": "no report of that MAC"}},
    )
    def delete_inspection(mac: MacPath) -> dict[str, Any]:
        norm = mac.lower().replace("-", ":")
        if not forget_inspection(store, norm):
            raise HTTPException(404, f"no report of {norm}")
        return {"mac": norm, "forgotten": True}

    return router
