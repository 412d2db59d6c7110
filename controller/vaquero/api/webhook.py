"""POST /v1/webhooks/github: GitHub as the SoT provider.

Checked in this order: a webhook secret is configured (else 503), a signature header is there
(401), the declared body size (411 without Content-Length, 413 beyond GitHub's own 25 MB cap),
then the body is read in chunks, counted (413) and hashed as it comes, the signature over the raw
body (401), the delivery id (400), the body (400: JSON too deep or malformed is a client error,
never a 500), then deduplication by delivery id, kept in the Store so a replay does nothing
twice, also after a restart. Nothing is buffered before the size is known to be acceptable, and
only `LARGE_SLOTS` bodies above `SMALL_BODY` are buffered at once, so a flood of big unsigned
bodies costs neither memory nor HMAC work. A `push` to the configured repository
and branch queues exactly the pushed SHA (`after`); the gate does the rest in the background.
`pull_request`, `check_suite` and `check_run` deliveries plan a PR's head for review (webhook_pulls).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ..gate import records as r
from ..gate.core import SHA_RE, ZERO_SHA, GateError
from . import webhook_pulls
from .models import WebhookResult

log = logging.getLogger("vaquero.api.webhook")
router = APIRouter()

_URL_FIELDS = ("clone_url", "git_url", "ssh_url", "html_url", "url", "svn_url")

MAX_BODY = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB and does not send larger ones
SMALL_BODY = 1 << 20  # nearly every push payload is below this
LARGE_SLOTS = 2
LARGE_WAIT = 10.0


def _large_slots(request: Request) -> asyncio.Semaphore:
    # One per app (and so per event loop): a semaphore is bound to the loop that first waits on it.
    slots: asyncio.Semaphore | None = getattr(request.app.state, "webhook_large_slots", None)
    if slots is None:
        slots = request.app.state.webhook_large_slots = asyncio.Semaphore(LARGE_SLOTS)
    return slots


class BodyTooLarge(Exception):
    pass


async def read_signed_body(request: Request, secret: str, limit: int = MAX_BODY) -> tuple[bytes, str]:
    """The raw body (at most `limit` bytes, else BodyTooLarge) and its HMAC-SHA256 hex digest, computed as it arrives."""
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        mac.update(chunk)
        chunks.append(chunk)
    return b"".join(chunks), mac.hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    return digest_ok(hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(), header)


def digest_ok(hexdigest: str, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(("sha256=" + hexdigest).encode(), header.strip().encode("ascii", "replace"))


def _norm(url: str) -> str:
    url = url.strip().rstrip("/")
    return url[:-4] if url.endswith(".git") else url


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    try:
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            form = parse_qs(body.decode("utf-8"), strict_parsing=False)
            text = form.get("payload", [""])[0]
        else:
            text = body.decode("utf-8")
        payload = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "the body is not valid JSON") from None
    except RecursionError:
        raise HTTPException(400, "the body's JSON is nested too deeply") from None
    if not isinstance(payload, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return payload


def repository_matches(payload: dict[str, Any], repo_url: str | None, repo_name: str | None) -> str | None:
    """The payload's repository full_name when it is the configured repository, else None."""
    repo = payload.get("repository")
    if not isinstance(repo, dict):
        return None
    full_name = repo.get("full_name") if isinstance(repo.get("full_name"), str) else None
    if repo_name and full_name and full_name.lower() == repo_name.lower():
        return full_name
    if repo_url:
        for name in _URL_FIELDS:
            value = repo.get(name)
            if isinstance(value, str) and _norm(value) == _norm(repo_url):
                return full_name or repo_name
    return None


@router.post(
    "/v1/webhooks/github",
    tags=["webhook"],
    summary="GitHub webhook (push, pull_request, check_suite, check_run, ping); authenticated by X-Hub-Signature-256, not by a bearer token",
    responses={
        200: {"description": "ping answered, duplicate delivery, a closed PR, or an event that needs no work", "model": WebhookResult},
        202: {"description": "push accepted: the revision is queued; or a PR head queued for planning", "model": WebhookResult},
        400: {"description": "malformed body or missing delivery id"},
        401: {"description": "missing or wrong signature"},
        411: {"description": "no Content-Length"},
        413: {"description": "body larger than 25 MB"},
        503: {"description": "no webhook secret configured, or too many large bodies at once"},
    },
)
async def github_webhook(
    request: Request,
    x_github_event: str | None = Header(None),
    x_github_delivery: str | None = Header(None),
    x_hub_signature_256: str | None = Header(None),
) -> JSONResponse:
    received = time.time()
    settings = request.app.state.settings
    metrics = request.app.state.metrics
    if not settings.webhook_secret:
        metrics.deliveries.labels(x_github_event or "none", "not_configured").inc()
        raise HTTPException(503, "no webhook secret is configured on this server")
    if not x_hub_signature_256 or not x_hub_signature_256.startswith("sha256="):
        metrics.deliveries.labels("unverified", "bad_signature").inc()
        log.warning("webhook delivery refused: no signature")
        raise HTTPException(401, "missing or wrong X-Hub-Signature-256")
    declared = _content_length(request)
    if declared > MAX_BODY:
        metrics.deliveries.labels("unverified", "too_large").inc()
        log.warning("webhook delivery refused: body of %d bytes declared (limit %d)", declared, MAX_BODY)
        raise HTTPException(413, f"webhook bodies are limited to {MAX_BODY} bytes")
    body, digest = await _read_bounded(request, settings.webhook_secret, declared, metrics)
    if not digest_ok(digest, x_hub_signature_256):
        metrics.deliveries.labels("unverified", "bad_signature").inc()
        log.warning("webhook delivery refused: missing or wrong signature")
        raise HTTPException(401, "missing or wrong X-Hub-Signature-256")
    event = (x_github_event or "").strip()
    delivery = (x_github_delivery or "").strip()
    if not event:
        raise HTTPException(400, "missing X-GitHub-Event header")
    if not r.valid_id(delivery):
        metrics.deliveries.labels(event, "bad_request").inc()
        raise HTTPException(400, "missing or malformed X-GitHub-Delivery header")
    content_type = request.headers.get("content-type", "application/json")
    # A big body is parsed off the event loop, so probes and other requests do not wait for it.
    payload = parse_body(body, content_type) if len(body) <= SMALL_BODY else await run_in_threadpool(parse_body, body, content_type)
    result = await run_in_threadpool(_handle, request, event, delivery, payload, received)
    metrics.deliveries.labels(event, result["status"]).inc()
    return JSONResponse(result, status_code=202 if result["status"] == "queued" else 200)


def _content_length(request: Request) -> int:
    raw = request.headers.get("content-length")
    if raw is None:
        # GitHub always sends one; without it the size is only known after reading everything.
        raise HTTPException(411, "a Content-Length header is required")
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 18:
        raise HTTPException(400, "malformed Content-Length")
    return int(raw)


async def _read_bounded(request: Request, secret: str, declared: int, metrics: Any) -> tuple[bytes, str]:
    try:
        if declared <= SMALL_BODY:
            return await read_signed_body(request, secret)
        slots = _large_slots(request)
        try:
            await asyncio.wait_for(slots.acquire(), LARGE_WAIT)
        except TimeoutError:
            metrics.deliveries.labels("unverified", "busy").inc()
            raise HTTPException(503, "too many large webhook bodies at once; try again", headers={"Retry-After": "5"}) from None
        try:
            return await read_signed_body(request, secret)
        finally:
            slots.release()
    except BodyTooLarge:
        metrics.deliveries.labels("unverified", "too_large").inc()
        raise HTTPException(413, f"webhook bodies are limited to {MAX_BODY} bytes") from None


def _handle(request: Request, event: str, delivery: str, payload: dict[str, Any], received: float) -> dict[str, Any]:
    settings = request.app.state.settings
    store = request.app.state.store
    gate = request.app.state.gate
    key = r.delivery_key(delivery)
    if store.get(key) is not None:
        log.info("webhook delivery %s already handled: nothing to do", delivery)
        return {"status": "duplicate", "delivery": delivery}
    result: dict[str, Any] = {"delivery": delivery, "event": event}
    if event == "ping":
        result |= {"status": "pong", "zen": payload.get("zen") if isinstance(payload.get("zen"), str) else None}
    elif event in ("pull_request", "check_suite", "check_run"):
        full_name = repository_matches(payload, settings.repo_url, settings.repo_name) if settings.repo_url else None
        result |= webhook_pulls.handle(settings, getattr(request.app.state, "pulls", None), event, delivery, payload, full_name)
    elif event != "push":
        result |= {"status": "ignored", "reason": f"event {event!r} is not acted on (only push, pull_request, check_suite, check_run)"}
    else:
        result |= _push(settings, gate, delivery, payload, received)
    record = {"event": event, "received": received, **{k: v for k, v in result.items() if k != "zen"}}
    if store.cas(key, record, expect=0) is None:
        return {"status": "duplicate", "delivery": delivery}
    reason = f": {result['reason']}" if result.get("reason") else ""
    log.info("webhook %s delivery %s: %s%s", event, delivery, result["status"], reason, extra={"sha": result.get("sha")})
    return result


def _push(settings: Any, gate: Any, delivery: str, payload: dict[str, Any], received: float) -> dict[str, Any]:
    if not settings.repo_url:
        return {"status": "ignored", "reason": "no repository is configured on this server (--repo)"}
    full_name = repository_matches(payload, settings.repo_url, settings.repo_name)
    if full_name is None:
        return {"status": "ignored", "reason": "push to another repository"}
    ref = payload.get("ref")
    if ref != f"refs/heads/{settings.branch}":
        return {"status": "ignored", "reason": f"push to {ref!r}, not to branch {settings.branch!r}"}
    after = payload.get("after")
    if payload.get("deleted") is True or after == ZERO_SHA:
        return {"status": "ignored", "reason": "branch deletion"}
    if not isinstance(after, str) or not SHA_RE.match(after):
        raise HTTPException(400, "push payload without a valid 'after' commit SHA")
    try:
        rev, created = gate.submit_git(
            settings.repo_url, after, subdir=settings.subdir, actor=f"github:{full_name}", github=full_name, delivery=delivery, received=received
        )
    except GateError as exc:
        raise HTTPException(exc.status, exc.message) from None
    if not created:
        return {"status": "known", "sha": after, "revision": rev["id"], "reason": "this commit was already received"}
    return {"status": "queued", "sha": after, "revision": rev["id"]}
