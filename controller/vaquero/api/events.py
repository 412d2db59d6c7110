"""GET /v1/events: changes to hosts, host events, plans, runs and revisions as Server-Sent Events.

Each event's `id` is the Store revision of the change; a client that reconnects with
`Last-Event-ID` (or `?since=`) gets what it missed (as long as the Store still keeps it).
Plan values are sent without the plan body and the human dump; fetch /v1/plans/{id} for those.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from ..gate.records import plan_summary
from ..state.store import Store, WatchCompacted, WatchEvent
from .auth import require

router = APIRouter()
KINDS = ("hosts", "events", "plans", "runs", "revisions")
KEEPALIVE = 15.0


def _next(it: Iterator[WatchEvent]) -> WatchEvent | WatchCompacted | None:
    try:
        return next(it, None)
    except WatchCompacted as exc:
        return exc


async def stream(request: Request, store: Store, since: int, kinds: set[str], idle_timeout: float) -> AsyncIterator[str]:
    last = since
    it = store.watch("/", since=last, timeout=1.0)
    quiet_since = time.monotonic()
    keepalive_at = time.monotonic()
    yield "retry: 2000\n: connected\n\n"
    while True:
        if await request.is_disconnected():
            return
        ev = await run_in_threadpool(_next, it)
        now = time.monotonic()
        if isinstance(ev, WatchCompacted):
            # The client asked for history the store no longer has: tell it to re-read, go on from now.
            last = await run_in_threadpool(store.revision)
            yield f"event: reset\ndata: {json.dumps({'revision': last})}\n\n"
            it = store.watch("/", since=last, timeout=1.0)
            continue
        if ev is None:
            if idle_timeout and now - quiet_since >= idle_timeout:
                return
            if now - keepalive_at >= KEEPALIVE:
                keepalive_at = now
                yield ": keepalive\n\n"
            it = store.watch("/", since=last, timeout=1.0)
            continue
        last = ev.revision
        kind = ev.key.split("/")[1] if ev.key.count("/") >= 2 else ""
        if kind not in kinds:
            continue
        quiet_since = now
        value: Any = ev.value
        if kind == "plans" and isinstance(value, dict):
            value = plan_summary(value)
        data = json.dumps({"type": ev.type, "key": ev.key, "revision": ev.revision, "value": value}, separators=(",", ":"), default=str)
        yield f"id: {ev.revision}\nevent: {kind[:-1] if kind != 'events' else 'host_event'}\ndata: {data}\n\n"


@router.get(
    "/v1/events",
    tags=["events"],
    summary="Changes as Server-Sent Events (text/event-stream)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "an endless event stream"}},
    dependencies=[Depends(require("read"))],
)
async def events(
    request: Request,
    since: int | None = Query(None, ge=0, le=2**62, description="Store revision to start after (default: now)"),
    kinds: str = Query(",".join(KINDS), max_length=200, description=f"comma-separated subset of {', '.join(KINDS)}"),
    idle_timeout: float = Query(0, ge=0, le=86400, description="close the stream after this many seconds without an event (0: never)"),
    last_event_id: str | None = Header(None),
) -> StreamingResponse:
    store: Store = request.app.state.store
    start = since
    if start is None and last_event_id and last_event_id.strip().isdigit():
        start = int(last_event_id.strip())
    if start is None:
        revision_of = getattr(store, "revision", None)
        start = int(revision_of()) if callable(revision_of) else 0
    wanted = {k.strip() for k in kinds.split(",") if k.strip() in KINDS} or set(KINDS)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(request, store, start, wanted, idle_timeout), media_type="text/event-stream", headers=headers)
