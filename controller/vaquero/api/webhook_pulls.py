"""Pull request deliveries of the GitHub webhook: `pull_request`, `check_suite` and `check_run`
(re-run), typed before use.

Only a PR whose base is the configured branch of the configured repository is planned. Its head
is always fetched from the configured repository (`--repo`) at the head SHA, never from a URL in
the payload; a head in another repository (a fork) is planned for review and marked so.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..gate import records as r
from ..gate.core import GateError
from ..gate.pulls import PullPlanner
from ..inspect import pull_closed
from ..state.store import Store
from . import models as m
from .auth import require
from .errors import get_or_404

Sha = Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")]
Number = Annotated[int, Field(ge=1, lt=1 << 31)]
PLAN_ACTIONS = ("opened", "synchronize", "reopened")
SUITE_ACTIONS = ("requested", "rerequested")


class _Typed(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Repo(_Typed):
    id: int | None = None
    full_name: str | None = Field(None, max_length=200)


class _End(_Typed):
    ref: str = Field(max_length=255)
    sha: Sha
    repo: _Repo | None = None  # null when the fork the PR came from was deleted


class _PullRequest(_Typed):
    number: Number
    head: _End
    base: _End
    merged: bool | None = None
    merge_commit_sha: Sha | None = None


class PullRequestEvent(_Typed):
    action: str = Field(max_length=64)
    pull_request: _PullRequest
    repository: _Repo


class _Suite(_Typed):
    head_sha: Sha
    pull_requests: list[_PullRequest] = Field(default_factory=list, max_length=100)


class CheckSuiteEvent(_Typed):
    action: str = Field(max_length=64)
    check_suite: _Suite
    repository: _Repo


class CheckRunEvent(_Typed):
    """A re-run asked for on one check run: the same lists as a suite (head_sha, pull_requests)."""

    action: str = Field(max_length=64)
    check_run: _Suite
    repository: _Repo


def _typed(model: type[_Typed], payload: dict[str, Any]) -> Any:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
        raise HTTPException(400, f"{model.__name__} payload not as GitHub sends it: {where}") from None


def _fork(pr: _PullRequest, repository: _Repo) -> bool:
    head, base = pr.head.repo, pr.base.repo
    if head is None:
        return True
    if head.id is not None and base is not None and base.id is not None:
        return head.id != base.id
    return (head.full_name or "").lower() != (repository.full_name or "").lower()


def _base_ok(settings: Any, pr: _PullRequest, repository: _Repo) -> str | None:
    """Why this PR is not planned, or None when its base is the configured branch of the configured repository."""
    if pr.base.ref != settings.branch:
        return f"pull request into {pr.base.ref!r}, not into branch {settings.branch!r}"
    base = pr.base.repo
    if base is not None and base.id is not None and repository.id is not None and base.id != repository.id:
        return "pull request into another repository"
    if base is not None and base.full_name and repository.full_name and base.full_name.lower() != repository.full_name.lower():
        return "pull request into another repository"
    return None


def _queue(settings: Any, pulls: PullPlanner, full_name: str, pr: _PullRequest, repository: _Repo, action: str, delivery: str) -> dict[str, Any]:
    fork = _fork(pr, repository)
    try:
        _, created = pulls.submit(
            github=full_name,
            url=settings.repo_url,
            subdir=settings.subdir,
            number=pr.number,
            head_sha=pr.head.sha,
            fork=fork,
            action=action,
            delivery=delivery,
            force=action in ("reopened", "rerequested"),
        )
    except GateError as exc:
        raise HTTPException(exc.status, exc.message) from None
    result = {"sha": pr.head.sha, "pull_request": pr.number, "fork": fork}
    if not created:
        return result | {"status": "known", "reason": "this head is already planned against the applied revision"}
    return result | {"status": "queued"}


def handle(settings: Any, pulls: PullPlanner | None, event: str, delivery: str, payload: dict[str, Any], full_name: str | None) -> dict[str, Any]:
    """The answer to one `pull_request`, `check_suite` or `check_run` delivery (the caller checked the repository: `full_name`)."""
    if pulls is None or not settings.repo_url:
        return {"status": "ignored", "reason": "no repository is configured on this server (--repo)"}
    if full_name is None:
        return {"status": "ignored", "reason": f"{event} of another repository"}
    if event == "pull_request":
        ev = _typed(PullRequestEvent, payload)
        pr = ev.pull_request
        why = _base_ok(settings, pr, ev.repository)
        if why:
            return {"status": "ignored", "reason": why, "pull_request": pr.number}
        if ev.action == "closed":
            merged = bool(pr.merged)
            reason = pulls.closed(pr.number, merged=merged, merge_sha=pr.merge_commit_sha if merged else None)
            mac = pull_closed(pulls.store, pr.number, merged=merged)
            if mac is not None:
                reason += f"; the enrollment of {mac} is {'merged' if merged else 'rejected (never proposed again)'}"
            return {"status": "merged" if merged else "dropped", "pull_request": pr.number, "reason": reason}
        if ev.action not in PLAN_ACTIONS:
            return {"status": "ignored", "reason": f"pull_request action {ev.action!r} needs no plan", "pull_request": pr.number}
        return _queue(settings, pulls, full_name, pr, ev.repository, ev.action, delivery)
    if event == "check_run":
        run = _typed(CheckRunEvent, payload)
        action, checked, repository = run.action, run.check_run, run.repository
        if action != "rerequested":
            return {"status": "ignored", "reason": f"check_run action {action!r} needs no plan"}
    else:
        suite = _typed(CheckSuiteEvent, payload)
        action, checked, repository = suite.action, suite.check_suite, suite.repository
        if action not in SUITE_ACTIONS:
            return {"status": "ignored", "reason": f"check_suite action {action!r} needs no plan"}
    answers = []
    for pr in checked.pull_requests:
        if pr.head.sha != checked.head_sha or _base_ok(settings, pr, repository):
            continue
        answers.append(_queue(settings, pulls, full_name, pr, repository, action, delivery))
    if not answers:
        return {"status": "ignored", "reason": f"the {event} is on no pull request into the configured branch"}
    queued = [a for a in answers if a["status"] == "queued"]
    first = (queued or answers)[0]
    return first | {"pull_requests": [a["pull_request"] for a in answers]}


def routes(store: Store) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/v1/pulls/{number}",
        tags=["plans"],
        responses={200: {"model": m.PullOut}, 404: {}},
        dependencies=[Depends(require("read"))],
        summary="the plan of an open (or merged) pull request: never applied, for review",
    )
    def get_pull(number: Annotated[int, Path(ge=1, lt=1 << 31)]) -> dict[str, Any]:
        return get_or_404(store, r.pull_key(number), "plan of that pull request")

    return router
