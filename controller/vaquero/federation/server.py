"""The controller side of the federation link: `router(store, settings)`, mounted into the API app.

    GET  /v1/agents                          every agent's last heartbeat         (API token, role read)
    GET  /v1/agents/{agent}/bundle?have=V    the agent's site bundle; 304 if V is current (agent token)
    POST /v1/agents/{agent}/events           a batch of host events, applied once each   (agent token)
    POST /v1/agents/{agent}/heartbeat        last seen, bundle version, queue depth       (agent token)
    POST /v1/agents/{agent}/inspections      an unknown machine's inspection report -> /inspections/<mac>  (agent token)

An agent token (`name:agent:token`) is bound to one agent: it reads that agent's bundle and
posts that agent's events, for hosts of that agent's site only. Missing or unknown token: 401;
another agent's path: 403. Events go through `state.machine.transition`, idempotent by event
id: a batch sent twice (the answer was lost in a partition) changes nothing the second time.

Everything an agent sends is bounded before it is parsed or stored: request bodies of these routes
are at most `MAX_BODY` bytes (413, checked on Content-Length and counted while reading), JSON
nested too deeply is a 400, and every field has a type and a size (host names are RFC 1123
labels; a heartbeat names at most as many armed hosts as the agent's site has, and only those).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, StringConstraints, field_validator

from vaquero.inspect.records import TooManyInspections, inspection_key, record_inspection
from vaquero.inspect.report import InspectionReport
from vaquero.render.ipxe import mac_key
from vaquero.state.machine import Event, State, TransitionRefused, event_seen_key, transition
from vaquero.state.store import Store

from .bundle import BundleBuilder, BundleError
from .tokens import AgentTokens

log = logging.getLogger("vaquero.federation")

AGENT_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
EVENT_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
MAX_BATCH = 1000
MAX_DETAIL = 16 << 10  # bytes of JSON per event's detail
MAX_DETAIL_DEPTH = 16
MAX_BODY = 1 << 20  # bytes per request body on the agents' routes
MAX_ARMED = 10_000  # hard cap; the agent's site's host count is the real one
EPOCH_MAX = 2.0**40  # seconds: far beyond any real timestamp, below what JSON floats lose precision on
HostName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            if d > MAX_DETAIL_DEPTH:
                return d
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


class BoundedBodyRoute(APIRoute):
    """A route whose request body is refused (413) beyond MAX_BODY bytes before it is parsed,
    and whose too-deeply nested JSON is a 400 rather than a RecursionError (500)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            if request.method in ("POST", "PUT", "PATCH"):
                declared = request.headers.get("content-length")
                if declared is not None and (not declared.strip().isdigit() or int(declared) > MAX_BODY):
                    return JSONResponse({"detail": f"request bodies here are limited to {MAX_BODY} bytes"}, status_code=413)
                chunks: list[bytes] = []
                size = 0
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_BODY:
                        return JSONResponse({"detail": f"request bodies here are limited to {MAX_BODY} bytes"}, status_code=413)
                    chunks.append(chunk)
                request._body = b"".join(chunks)  # Starlette's cache: FastAPI parses this, never the stream again
            try:
                return await handler(request)
            except RecursionError:
                return JSONResponse({"detail": "JSON nested too deeply"}, status_code=400)

        return bounded
_STATES = {s.value for s in State}

_bearer = HTTPBearer(auto_error=False, description="An agent token: `Authorization: Bearer <token>` (token line name:agent:token)")


class HostEvent(BaseModel):
    id: str = Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$", description="unique per event: a replay is recognised by it")
    host: HostName
    state: str = Field(min_length=1, max_length=32)
    reason: str = Field("", max_length=2000)
    time: float | None = Field(None, ge=0, le=EPOCH_MAX, allow_inf_nan=False)
    sha: str | None = Field(None, max_length=128)
    plan: str | None = Field(None, max_length=128)
    run: str | None = Field(None, max_length=128)
    step: str | None = Field(None, max_length=256)
    attempt: int | None = Field(None, ge=0, le=1_000_000)
    detail: dict[str, Any] = Field(default_factory=dict)

    @field_validator("detail")
    @classmethod
    def _small(cls, v: dict[str, Any]) -> dict[str, Any]:
        if _depth(v) > MAX_DETAIL_DEPTH:
            raise ValueError(f"detail nested deeper than {MAX_DETAIL_DEPTH} levels")
        if len(json.dumps(v, default=str)) > MAX_DETAIL:
            raise ValueError(f"detail larger than {MAX_DETAIL} bytes of JSON")
        return v


class EventBatch(BaseModel):
    events: list[HostEvent] = Field(max_length=MAX_BATCH)


class Heartbeat(BaseModel):
    version: str | None = Field(None, max_length=256, description="the bundle version the agent serves")
    sha: str | None = Field(None, max_length=128)
    queued: int = Field(0, ge=0, le=1 << 40, description="events waiting in the agent's queue")
    started: float | None = Field(None, ge=0, le=EPOCH_MAX, allow_inf_nan=False)
    agent_version: str | None = Field(None, max_length=64)
    armed: list[HostName] = Field(
        default_factory=list, max_length=MAX_ARMED, description="hosts the agent serves their installer (at most the hosts of its site)"
    )
    rejected: str | None = Field(None, max_length=256, description="a bundle version the agent refused (it cannot load or render it)")
    rejected_why: str | None = Field(None, max_length=1000)


def agent_key(agent: str) -> str:
    return f"/agents/{agent}"


def _tokens_from(settings: Any) -> AgentTokens:
    given = getattr(settings, "agent_tokens", None)
    if isinstance(given, AgentTokens):
        return given
    return AgentTokens.load(getattr(settings, "agent_tokens_file", None) or getattr(settings, "tokens_file", None))


def router(store: Store, settings: Any, *, operator_auth: Callable[[str], Any], agent_tokens: AgentTokens | None = None) -> APIRouter:
    """The /v1/agents routes over `store`. Agent tokens: `agent_tokens`, else `settings.agent_tokens`,
    else the `agent` lines of `settings.agent_tokens_file` and $VAQUERO_AGENT_TOKENS. `operator_auth(role)`
    is the API's dependency for an operator token of that role (given by the API: the federation sits below it)."""
    tokens = agent_tokens if agent_tokens is not None else _tokens_from(settings)
    builder = BundleBuilder(store)
    r = APIRouter(tags=["agents"], route_class=BoundedBodyRoute)

    async def agent_auth(
        request: Request,
        agent: str = Path(pattern=AGENT_NAME, max_length=63),
        credentials: HTTPAuthorizationCredentials | None = Security(_bearer),  # noqa: B008
    ) -> str:
        client = request.client.host if request.client else "?"
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            log.warning("agent %s: request from %s without a bearer token", agent, client)
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        owner = tokens.match(credentials.credentials)
        if owner is None:
            log.warning("agent %s: request from %s with an unknown token", agent, client)
            raise HTTPException(401, "invalid bearer token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if owner != agent:
            log.warning("agent %s: request from %s with the token of agent %s refused", agent, client, owner)
            raise HTTPException(403, f"this token belongs to agent {owner!r}, not {agent!r}")
        return agent

    @r.get("/v1/agents", summary="agents: last heartbeat, bundle version they serve, events queued", dependencies=[Depends(operator_auth("read"))])
    def list_agents() -> dict[str, Any]:
        items = [rec.value for rec in store.list("/agents/")]
        now = time.time()
        for item in items:
            item["age"] = round(now - float(item.get("last_seen") or 0), 3)
        return {"count": len(items), "agents": items}

    @r.get(
        "/v1/agents/{agent}/bundle",
        summary="the agent's site bundle for the applied revision (ETag = bundle version; 304 when the agent has it)",
        responses={304: {"description": "the agent's copy is current"}, 401: {}, 403: {}, 404: {"description": "nothing applied, or unknown agent"}},
    )
    def get_bundle(
        request: Request,
        agent: str = Depends(agent_auth),
        have: str | None = Query(None, max_length=256, description="the bundle version the agent has"),
    ) -> Response:
        try:
            bundle = builder.build(agent)
        except BundleError as exc:
            raise HTTPException(exc.status, exc.message) from None
        version = bundle["version"]
        etag = f'"{version}"'
        inm = [t.strip() for t in (request.headers.get("if-none-match") or "").split(",") if t.strip()]
        if have == version or etag in inm or f"W/{etag}" in inm:
            return Response(status_code=304, headers={"ETag": etag})
        log.info("bundle %s sent to agent %s (site %s)", version, agent, bundle["site"], extra={"sha": bundle["sha"], "site": bundle["site"]})
        return JSONResponse(bundle, headers={"ETag": etag, "Cache-Control": "no-store"})

    @r.post(
        "/v1/agents/{agent}/events",
        summary="apply a batch of host events, each once (by its id)",
        responses={200: {"description": "ids applied, duplicates (applied before) and refused (with why)"}, 401: {}, 403: {}},
    )
    def post_events(batch: EventBatch, agent: str = Depends(agent_auth)) -> dict[str, Any]:
        try:
            _, site, hosts = builder.site_hosts(agent)
            site_name: str | None = site.name
        except BundleError:
            site_name, hosts = None, {}
        applied: list[str] = []
        duplicates: list[str] = []
        refused: dict[str, str] = {}
        for ev in batch.events:
            if store.get(event_seen_key(ev.id)) is not None:
                duplicates.append(ev.id)
                continue
            if ev.host not in hosts:
                refused[ev.id] = f"host {ev.host!r} is not in site {site_name or '(none applied)'} of agent {agent}"
                continue
            if ev.state not in _STATES:
                refused[ev.id] = f"unknown state {ev.state!r}"
                continue
            event = Event(
                host=ev.host,
                state=ev.state,
                previous=None,
                actor=f"agent:{agent}",
                reason=ev.reason,
                sha=ev.sha,
                plan=ev.plan,
                run=ev.run,
                step=ev.step,
                attempt=ev.attempt,
                detail=ev.detail,
                id=ev.id,
                time=ev.time if ev.time is not None else time.time(),
            )
            try:
                transition(store, event)
            except TransitionRefused as exc:
                refused[ev.id] = str(exc)
                log.warning("agent %s: event %s refused: %s", agent, ev.id, exc, extra={"host": ev.host, "sha": ev.sha, "event": ev.state})
                continue
            applied.append(ev.id)
            log.info("agent %s: host -> %s", agent, ev.state, extra={"host": ev.host, "sha": ev.sha, "plan": ev.plan, "event": ev.state})
        return {"applied": applied, "duplicates": duplicates, "refused": refused}

    @r.post(
        "/v1/agents/{agent}/inspections",
        status_code=201,
        summary="keep an unknown machine's inspection report (discovery) for enrollment by pull request",
        responses={
            201: {"description": "stored as /inspections/<mac>"},
            401: {},
            403: {},
            404: {"description": "the agent's site does not enroll unknown machines (discovery off), or nothing is applied"},
            409: {"description": "the MAC belongs to a host of the site"},
            413: {"description": "body too large"},
            422: {"description": "not an inspection report; nothing stored"},
            503: {"description": "too many machines are waiting to be enrolled"},
        },
    )
    def post_inspection(report: InspectionReport, agent: str = Depends(agent_auth)) -> dict[str, Any]:
        try:
            sot, site, _ = builder.site_hosts(agent)
        except BundleError as exc:
            raise HTTPException(exc.status, exc.message) from None
        if site.discovery is None or not site.discovery.enabled:
            raise HTTPException(404, f"site {site.name} does not enroll unknown machines (discovery is off)")
        # A report is a claim from an unauthenticated network; it is only ever a proposal, and never about a known host.
        known = {mac_key(m) for c, _, h in sot.hosts() if c.site == site.name for m in h.macs}
        if mac_key(report.boot_mac) in known:
            raise HTTPException(409, f"{report.boot_mac} is a MAC of a host of site {site.name}")
        try:
            record = record_inspection(store, report, site=site.name, agent=agent)
        except TooManyInspections as exc:
            raise HTTPException(503, str(exc)) from None
        log.info("agent %s: inspection report of %s kept (%s)", agent, report.boot_mac, record["status"], extra={"site": site.name, "host": report.boot_mac})
        return {"key": inspection_key(report.boot_mac), "status": record["status"], "reports": record["reports"]}

    @r.post(
        "/v1/agents/{agent}/heartbeat",
        summary="record that the agent is alive, and what it serves",
        responses={401: {}, 403: {}, 413: {"description": "body too large"}, 422: {"description": "a field out of bounds; nothing stored"}},
    )
    def heartbeat(body: Heartbeat, request: Request, agent: str = Depends(agent_auth)) -> dict[str, Any]:
        armed = sorted(set(body.armed))
        try:
            _, _, hosts = builder.site_hosts(agent)
        except BundleError:
            hosts = {}
        if len(armed) > len(hosts):
            raise HTTPException(422, f"{len(armed)} armed hosts named; the agent's site has {len(hosts)}")
        unknown = [h for h in armed if h not in hosts]
        if unknown:
            # Stale names (a host removed since the agent armed it) are not worth refusing the heartbeat for,
            # but only the site's hosts are stored.
            log.info("agent %s: %d armed name(s) not in its site ignored", agent, len(unknown))
            armed = [h for h in armed if h in hosts]
        value = {
            "name": agent,
            "last_seen": time.time(),
            "version": body.version,
            "sha": body.sha,
            "queued": body.queued,
            "started": body.started,
            "agent_version": body.agent_version,
            "armed": armed,
            "rejected": body.rejected,
            "rejected_why": body.rejected_why,
            "address": request.client.host if request.client else None,
        }
        store.put(agent_key(agent), value)
        try:
            latest: str | None = builder.build(agent)["version"]
        except BundleError:
            latest = None
        return {"ok": True, "version": latest}

    return r


def add_arguments(p: Any) -> None:
    """`vaquero server` options for the agents' routes."""
    p.add_argument("--agent-tokens-file", help="agent tokens, lines name:agent:token (name = the agent's name in its Site); also $VAQUERO_AGENT_TOKENS")


def include(app: Any, store: Store, settings: Any, agent_tokens_file: str | None = None, *, operator_auth: Callable[[str], Any]) -> AgentTokens:
    """Mount the /v1/agents routes into the API app (after create_app). Raises TokenError for a bad tokens file."""
    tokens = AgentTokens.load(agent_tokens_file)
    if not len(tokens):
        log.warning("no agent tokens (--agent-tokens-file or $VAQUERO_AGENT_TOKENS): every agent will get 401")
    app.include_router(router(store, settings, operator_auth=operator_auth, agent_tokens=tokens))
    return tokens
