"""Revisions of the source of truth: queue one (git URL@REV or a server path) for validation and planning, list them, read one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator

from ..gate import records as r
from ..gate.core import Gate, GateError
from ..sot.errors import SourceError
from ..sot.source import check_subdir, split_spec
from ..state.store import Store
from . import models as m
from .auth import require
from .errors import gate_error, get_or_404
from .settings import Settings, Token


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


def routes(settings: Settings, store: Store, gate: Gate) -> APIRouter:
    router = APIRouter(tags=["revisions"])

    @router.post(
        "/v1/revisions",
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
            raise gate_error(exc) from None
        if not created:
            response.status_code = 200
        return {"created": created, "revision": record}

    @router.get(
        "/v1/revisions",
        responses={200: {"model": m.RevisionList}},
        dependencies=[Depends(require("read"))],
        summary="revisions, newest first",
    )
    def list_revisions(state: str | None = Query(None, max_length=32), limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        items = [rec.value for rec in store.list("/revisions/") if state is None or rec.value.get("state") == state]
        items.sort(key=lambda v: v.get("created") or 0, reverse=True)
        return {"count": len(items[:limit]), "revisions": items[:limit]}

    @router.get(
        "/v1/revisions/{rid}",
        responses={200: {"model": m.RevisionOut}, 404: {}},
        dependencies=[Depends(require("read"))],
        summary="one revision",
    )
    def get_revision(rid: str) -> dict[str, Any]:
        if not r.valid_id(rid):
            raise HTTPException(404, "no such revision")
        return get_or_404(store, r.revision_key(rid), "such revision")

    return router
