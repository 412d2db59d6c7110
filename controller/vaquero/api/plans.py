"""Plans and the decisions on them: read a plan (JSON or its human dump), approve it as read, reject it, cancel it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from ..gate import records as r
from ..gate.core import Gate, GateError
from ..state.store import Store
from . import models as m
from .auth import require
from .errors import gate_error, get_or_404
from .settings import Token


class Decision(BaseModel):
    comment: str = Field("", max_length=2000)


class Approval(Decision):
    digest: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="the `digest` of the plan as you read it (GET /v1/plans/{id}): a plan that changed since is not approved (409)",
    )


def routes(store: Store, gate: Gate) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/v1/plans",
        tags=["plans"],
        responses={200: {"model": m.PlanList}},
        dependencies=[Depends(require("read"))],
        summary="plans, newest first (without plan bodies)",
    )
    def list_plans(state: str | None = Query(None, max_length=32), limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        items = [r.plan_summary(rec.value) for rec in reversed(store.list("/plans/")) if state is None or rec.value.get("state") == state]
        return {"count": len(items[:limit]), "plans": items[:limit]}

    @router.get(
        "/v1/plans/{pid}",
        tags=["plans"],
        responses={200: {"model": m.PlanOut}, 404: {}},
        dependencies=[Depends(require("read"))],
        summary="one plan: JSON plan, human dump (`text`), errors",
    )
    def get_plan(pid: str) -> dict[str, Any]:
        if not r.valid_id(pid):
            raise HTTPException(404, "no such plan")
        return get_or_404(store, r.plan_key(pid), "such plan")

    @router.get(
        "/v1/plans/{pid}/text",
        tags=["plans"],
        dependencies=[Depends(require("read"))],
        response_class=PlainTextResponse,
        summary="the human dump of a plan (or its errors, one per line, file:line: field: message)",
    )
    def get_plan_text(pid: str) -> PlainTextResponse:
        if not r.valid_id(pid):
            raise HTTPException(404, "no such plan")
        v = get_or_404(store, r.plan_key(pid), "such plan")
        if v.get("text"):
            return PlainTextResponse(v["text"])
        lines = [
            f"{e.get('file')}:{e.get('line')}: {e.get('field')}: {e.get('message')}" if e.get("file") else str(e.get("message")) for e in v.get("errors") or []
        ]
        return PlainTextResponse(f"Revision {v.get('label')} is {v.get('state')}:\n" + "".join(f"  {x}\n" for x in lines))

    def decide(verb: str, pid: str, token: Token, body: Decision | None = None) -> dict[str, Any]:
        if not r.valid_id(pid):
            raise HTTPException(404, f"no plan {pid}")
        kwargs = {"digest": body.digest} if isinstance(body, Approval) else {}
        try:
            value: dict[str, Any] = getattr(gate, verb)(pid, token.name, body.comment if body else "", **kwargs)
        except GateError as exc:
            raise gate_error(exc) from None
        return r.plan_summary(value)

    @router.post(
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
        return decide("approve", pid, token, body)

    @router.post(
        "/v1/plans/{pid}/reject",
        tags=["approvals"],
        summary="reject a plan waiting for approval",
        responses={200: {"model": m.PlanSummaryOut}, 404: {}, 409: {}},
    )
    def reject(pid: str, body: Decision | None = None, token: Token = Depends(require("approve"))) -> dict[str, Any]:  # noqa: B008
        return decide("reject", pid, token, body)

    @router.post(
        "/v1/plans/{pid}/cancel",
        tags=["approvals"],
        summary="ask the runner to stop an approved or running plan",
        responses={200: {"model": m.PlanSummaryOut}, 404: {}, 409: {}},
    )
    def cancel(pid: str, token: Token = Depends(require("approve"))) -> dict[str, Any]:  # noqa: B008
        return decide("cancel", pid, token)

    return router
