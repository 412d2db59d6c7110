"""GET /v1/events: changes to hosts, host events, plans, runs and revisions as Server-Sent Events.

Each event's `id` is the Store revision of the change; a client that reconnects with
`Last-Event-ID` (or `?since=`) gets what it missed (as long as the Store still keeps it).
Plan values are sent without the plan body and the human dump; fetch /v1/plans/{id} for those.

Every stream is fed by one shared watch (`EventHub`: one thread per app watches the Store and fans
events out to per-stream asyncio queues), so an open stream holds no pool thread and costs a
queue, not a Store watch. At most `MAX_STREAMS` streams are open at once (503 beyond); a stream
whose client reads too slowly to keep up gets a `reset` event and is closed, so a slow reader
never makes the hub buffer without bound.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from ..gate.records import plan_summary
from ..state.store import Store, WatchCompacted, WatchEvent
from .auth import require

log = logging.getLogger("vaquero.api.events")

router = APIRouter()
KINDS = ("hosts", "events", "plans", "runs", "revisions")
KEEPALIVE = 15.0
MAX_STREAMS = 100
QUEUE_SIZE = 1000  # events a stream may fall behind before it is reset
MAX_HISTORY = 10_000  # events replayed for a reconnecting client; more than that: reset


class _Reset:
    """Sent to a stream when it must re-read (history compacted, or it fell too far behind)."""

    def __init__(self, revision: int) -> None:
        self.revision = revision


class _Sub:
    __slots__ = ("__weakref__", "loop", "overflowed", "queue")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[WatchEvent | _Reset] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False

    def offer(self, item: WatchEvent | _Reset) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True


class EventHub:
    """One Store watch shared by every event stream of an app. The thread runs while someone listens."""

    def __init__(self, store: Store, max_streams: int = MAX_STREAMS) -> None:
        self.store = store
        self.max_streams = max_streams
        # Weak: a stream whose response never started (client gone at once) runs no `finally`;
        # its queue must still not count against the cap.
        self.subs: weakref.WeakSet[_Sub] = weakref.WeakSet()
        self.last = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> tuple[_Sub, int] | None:
        """A new stream's queue and the revision from which the hub feeds it; None at the cap. Blocking (reads the Store)."""
        with self._lock:
            if len(self.subs) >= self.max_streams:
                return None
            if self._thread is None or not self._thread.is_alive():
                self.last = _revision(self.store)
                self._thread = threading.Thread(target=self._run, name="vaquero-events", daemon=True)
                self._thread.start()
            sub = _Sub(loop)
            self.subs.add(sub)
            return sub, self.last

    def unsubscribe(self, sub: _Sub) -> None:
        with self._lock:
            self.subs.discard(sub)

    @property
    def streams(self) -> int:
        return len(self.subs)

    def _publish(self, item: WatchEvent | _Reset) -> None:
        with self._lock:
            self.last = item.revision
            subs = list(self.subs)
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub.offer, item)
            except RuntimeError:  # that stream's loop is closed
                self.unsubscribe(sub)

    def _run(self) -> None:
        failures = 0
        while True:
            with self._lock:
                if not self.subs:
                    self._thread = None
                    return
                since = self.last
            try:
                for ev in self.store.watch("/", since=since, timeout=1.0):
                    self._publish(ev)
                failures = 0
            except WatchCompacted:
                self._publish(_Reset(_revision(self.store)))
            except Exception as exc:
                # The store is away: keep the streams open and try again, a little later each time.
                failures += 1
                log.warning("event watch failed (%s); retrying", type(exc).__name__)
                time.sleep(min(5.0, 0.2 * failures))


def _revision(store: Store) -> int:
    revision_of = getattr(store, "revision", None)
    return int(revision_of()) if callable(revision_of) else 0


def hub_of(request: Request) -> EventHub:
    state = request.app.state
    hub: EventHub | None = getattr(state, "event_hub", None)
    if hub is None:
        hub = state.event_hub = EventHub(state.store)
    return hub


def _history(store: Store, since: int, until: int) -> list[WatchEvent] | _Reset:
    """What happened after `since` up to `until` (a reconnecting client's gap); a reset when it is gone or too long."""
    out: list[WatchEvent] = []
    try:
        for ev in store.watch("/", since=since, timeout=0.05):
            if ev.revision > until:
                break
            out.append(ev)
            if len(out) > MAX_HISTORY or ev.revision >= until:
                break
    except WatchCompacted:
        return _Reset(until)
    if len(out) > MAX_HISTORY:
        return _Reset(until)
    return out


def _frame(ev: WatchEvent, kinds: set[str]) -> str | None:
    kind = ev.key.split("/")[1] if ev.key.count("/") >= 2 else ""
    if kind not in kinds:
        return None
    value: Any = ev.value
    if kind == "plans" and isinstance(value, dict):
        value = plan_summary(value)
    data = json.dumps({"type": ev.type, "key": ev.key, "revision": ev.revision, "value": value}, separators=(",", ":"), default=str)
    return f"id: {ev.revision}\nevent: {kind[:-1] if kind != 'events' else 'host_event'}\ndata: {data}\n\n"


def _reset_frame(revision: int) -> str:
    return f"event: reset\ndata: {json.dumps({'revision': revision})}\n\n"


async def stream(hub: EventHub, sub: _Sub, fed_from: int, since: int, kinds: set[str], idle_timeout: float) -> AsyncIterator[str]:
    sent = since
    try:
        yield "retry: 2000\n: connected\n\n"
        if since < fed_from:
            past = await run_in_threadpool(_history, hub.store, since, fed_from)
            if isinstance(past, _Reset):
                yield _reset_frame(past.revision)
                sent = past.revision
            else:
                for ev in past:
                    if ev.revision > sent:
                        sent = ev.revision
                        frame = _frame(ev, kinds)
                        if frame is not None:
                            yield frame
        quiet_since = time.monotonic()
        while True:
            wait = KEEPALIVE
            if idle_timeout:
                wait = min(wait, max(0.0, idle_timeout - (time.monotonic() - quiet_since)))
            try:
                item = await asyncio.wait_for(sub.queue.get(), wait)
            except TimeoutError:
                if idle_timeout and time.monotonic() - quiet_since >= idle_timeout:
                    return
                yield ": keepalive\n\n"
                continue
            if sub.overflowed and sub.queue.empty():
                # Too far behind: say so and end; the client re-reads and reconnects from where it is.
                yield _reset_frame(hub.last)
                return
            if isinstance(item, _Reset):
                sent = item.revision
                yield _reset_frame(item.revision)
                continue
            if item.revision <= sent:
                continue  # already sent from the history read
            sent = item.revision
            frame = _frame(item, kinds)
            if frame is not None:
                quiet_since = time.monotonic()
                yield frame
    finally:
        hub.unsubscribe(sub)


@router.get(
    "/v1/events",
    tags=["events"],
    summary="Changes as Server-Sent Events (text/event-stream)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "an endless event stream"},
        503: {"description": "too many event streams are open; try again later"},
    },
    dependencies=[Depends(require("read"))],
)
async def events(
    request: Request,
    since: int | None = Query(None, ge=0, le=2**62, description="Store revision to start after (default: now)"),
    kinds: str = Query(",".join(KINDS), max_length=200, description=f"comma-separated subset of {', '.join(KINDS)}"),
    idle_timeout: float = Query(0, ge=0, le=86400, description="close the stream after this many seconds without an event (0: never)"),
    last_event_id: str | None = Header(None, max_length=32),
) -> StreamingResponse:
    hub = hub_of(request)
    got = await run_in_threadpool(hub.subscribe, asyncio.get_running_loop())
    if got is None:
        raise HTTPException(503, f"too many event streams open (at most {hub.max_streams}); try again later", headers={"Retry-After": "10"})
    sub, fed_from = got
    start = since
    if start is None and last_event_id and last_event_id.strip().isdigit():
        start = int(last_event_id.strip())
    if start is None:
        start = fed_from
    wanted = {k.strip() for k in kinds.split(",") if k.strip() in KINDS} or set(KINDS)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(hub, sub, fed_from, start, wanted, idle_timeout), media_type="text/event-stream", headers=headers)
