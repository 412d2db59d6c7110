"""One place that builds uvicorn configs, with the limits every Vaquero HTTP server runs under.

uvicorn bounds the time between two requests on a keep-alive connection, but nothing else: a client
that opens a connection and sends one header line every few seconds (slowloris) keeps its socket
forever, and a thousand of them exhaust the process's file descriptors, after which nobody is served.
`guarded(base, limits)` makes a subclass of uvicorn's httptools protocol (or of the agent's
BootHttpProtocol) that adds, per connection and per server:

* a header timeout: a request whose headers are not complete `header_timeout` seconds after the
  connection was made (or after its first byte, on a kept-alive connection) gets 408 and is closed;
* a header size cap (431 beyond `max_header_bytes`; httptools has no limit of its own);
* a body size cap (413 beyond `max_body_bytes`: on Content-Length before any body byte is read,
  and counted as a chunked body arrives);
* a body timeout: the whole body must arrive within `body_timeout` seconds of the headers;
* a connection cap per server: at `max_connections`, a new connection evicts the oldest connection
  that is idle or still sending its headers (a slowloris, or a keep-alive client that can
  reconnect); only when every connection is busy with a request is the new one answered 503.
  Legitimate requests complete their headers in milliseconds, so a flood of slow clients only ever
  evicts itself.

`server_config(app, host=, port=)` returns the uvicorn.Config with those protocols and limits;
`VAQUERO_HTTP_MAX_CONNECTIONS` overrides the cap (it defaults to what the fd limit allows).
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import weakref
from dataclasses import dataclass, replace
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("vaquero.http")

MAX_CONNECTIONS_ENV = "VAQUERO_HTTP_MAX_CONNECTIONS"
# File descriptors kept for everything that is not an HTTP connection (TFTP sessions, dnsmasq,
# the store, log files, asset files being sent).
_FD_RESERVE = 384


def default_max_connections(wanted: int = 1000) -> int:
    """`wanted`, lowered so that a full server still leaves file descriptors for the rest of the process."""
    env = os.environ.get(MAX_CONNECTIONS_ENV, "").strip()
    if env:
        try:
            wanted = int(env)
        except ValueError:
            raise ValueError(f"{MAX_CONNECTIONS_ENV}={env!r}: not an integer") from None
        if wanted < 1:
            raise ValueError(f"{MAX_CONNECTIONS_ENV}={env!r}: must be at least 1")
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, (soft - _FD_RESERVE) // 2))


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 10.0
    body_timeout: float = 120.0
    keep_alive: float = 5.0
    max_header_bytes: int = 64 << 10
    max_body_bytes: int = 25 << 20  # GitHub's own cap on webhook payloads, the largest body Vaquero takes
    max_connections: int = 1000


class _Guard:
    """Per-server bookkeeping: connections that may be evicted (idle, or headers incomplete), oldest first."""

    def __init__(self) -> None:
        self.evictable: dict[Any, None] = {}
        self.evicted = 0
        self.refused = 0
        self.timed_out = 0


_guards: weakref.WeakKeyDictionary[Any, _Guard] = weakref.WeakKeyDictionary()


def guard_of(server_state: Any) -> _Guard:
    g = _guards.get(server_state)
    if g is None:
        g = _guards[server_state] = _Guard()
    return g


def _reply_and_close(transport: asyncio.BaseTransport, status: int, default_headers: list[tuple[bytes, bytes]], msg: bytes) -> None:
    head = b"".join(name + b": " + value + b"\r\n" for name, value in default_headers)
    extra = b"retry-after: 1\r\n" if status == 503 else b""
    raw = STATUS_LINE[status] + head + extra
    raw += b"content-type: text/plain; charset=utf-8\r\ncontent-length: " + str(len(msg)).encode() + b"\r\nconnection: close\r\n\r\n" + msg
    try:
        transport.write(raw)  # type: ignore[attr-defined]
    finally:
        transport.close()


class GuardedMixin:
    """The limits above, over an httptools-based uvicorn protocol (put it first in the bases)."""

    limits: Limits = Limits()

    # Attributes of the uvicorn protocol this mixes into.
    server_state: Any
    connections: set[Any]
    transport: asyncio.Transport
    cycle: Any
    loop: asyncio.AbstractEventLoop
    timeout_keep_alive_task: Any

    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _header_bytes = 0
    _in_headers = False
    _in_body = False
    _body_bytes = 0
    _refused = False
    _dead = False  # answered by the guard and closing: the parser's remaining callbacks do nothing

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        guard = guard_of(self.server_state)
        if len(self.connections) >= self.limits.max_connections:
            victim = next(iter(guard.evictable), None)
            if victim is None:
                guard.refused += 1
                self._refused = True
                _reply_and_close(transport, 503, self.server_state.default_headers, b"too many connections; try again\n")
                return
            guard.evicted += 1
            victim._evict()
        super().connection_made(transport)  # type: ignore[misc]
        self._start_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._stop_timers()
        guard_of(self.server_state).evictable.pop(self, None)
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._in_headers and not self._in_body and (self.cycle is None or self.cycle.response_complete):
            self._start_headers()  # a kept-alive connection starts its next request
        was_in_headers = self._in_headers
        super().data_received(data)  # type: ignore[misc]
        # Only bytes of a request whose headers are still incomplete count (one read is bounded by the transport).
        if was_in_headers and self._in_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                log.warning("http: request headers larger than %d bytes refused", self.limits.max_header_bytes)
                self._abandon(431, b"request headers too large\n")

    def on_message_begin(self) -> None:
        if not self._dead:
            super().on_message_begin()  # type: ignore[misc]

    def on_url(self, url: bytes) -> None:
        if not self._dead:
            super().on_url(url)  # type: ignore[misc]

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._dead:
            super().on_header(name, value)  # type: ignore[misc]

    def on_body(self, body: bytes) -> None:
        if self._dead:
            return
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.max_body_bytes:
            log.warning("http: request body larger than %d bytes refused", self.limits.max_body_bytes)
            self._refuse_body()
            return
        super().on_body(body)  # type: ignore[misc]

    def on_headers_complete(self) -> None:
        if self._dead:
            return
        self._body_bytes = 0
        declared = next((v for n, v in self.headers if n == b"content-length"), None)  # type: ignore[attr-defined]
        if declared is not None and declared.strip().isdigit() and int(declared) > self.limits.max_body_bytes:
            log.warning("http: request body of %s bytes declared, refused (limit %d)", declared.decode("ascii", "replace"), self.limits.max_body_bytes)
            self._refuse_body()
            return
        self._in_headers = False
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        guard_of(self.server_state).evictable.pop(self, None)
        self._in_body = True
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_timeout)
        super().on_headers_complete()  # type: ignore[misc]

    def on_message_complete(self) -> None:
        if self._dead:
            return
        self._in_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            # Idle until the next request (uvicorn's keep-alive timer runs): evictable again.
            guard_of(self.server_state).evictable[self] = None
            # Answered before its body was read (413, 401, 404): reading the rest would be work for
            # the sender's benefit only, so the connection ends. Checked after the current parser
            # feed, which may still hold the end of a short body.
            self.loop.call_soon(self._close_if_body_unread)

    def _close_if_body_unread(self) -> None:
        if self._in_body and not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._stop_timers()
            guard_of(self.server_state).evictable.pop(self, None)
            self.transport.close()

    # -- internals --
    def _start_headers(self) -> None:
        self._in_headers = True
        self._header_bytes = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._header_timeout)
        evictable = guard_of(self.server_state).evictable
        evictable.pop(self, None)
        evictable[self] = None

    def _stop_timers(self) -> None:
        for t in (self._header_timer, self._body_timer):
            if t is not None:
                t.cancel()
        self._header_timer = self._body_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self._in_headers or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request behind one still being answered: let that answer finish first.
            self._header_timer = self.loop.call_later(self.limits.header_timeout, self._header_timeout)
            return
        guard_of(self.server_state).timed_out += 1
        self._abandon(408, b"request headers not complete in time\n")

    def _body_timeout(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        log.warning("http: request body not complete within %.0f s, connection closed", self.limits.body_timeout)
        self.transport.close()

    def _evict(self) -> None:
        guard_of(self.server_state).evictable.pop(self, None)
        if self.transport.is_closing():
            return
        if self._in_headers and self._header_bytes:
            self._abandon(503, b"server busy; try again\n")
        else:
            self.transport.close()  # idle keep-alive connection: clients reconnect by themselves

    def _refuse_body(self) -> None:
        self._dead = True
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not getattr(cycle, "response_started", False):
            self._abandon(413, b"request body too large\n")
        else:  # the application already answers: no second status line, just the end of the connection
            self._stop_timers()
            self.transport.close()

    def _abandon(self, status: int, msg: bytes) -> None:
        self._stop_timers()
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        guard_of(self.server_state).evictable.pop(self, None)
        _reply_and_close(self.transport, status, self.server_state.default_headers, msg)


def guarded(base: type[HttpToolsProtocol] = HttpToolsProtocol, limits: Limits | None = None) -> type[HttpToolsProtocol]:
    """A subclass of `base` that enforces `limits`."""
    lim = limits or Limits()
    return type(f"Guarded{base.__name__}", (GuardedMixin, base), {"limits": lim})


def server_config(
    app: Any,
    *,
    host: str,
    port: int,
    protocol: type[HttpToolsProtocol] = HttpToolsProtocol,
    limits: Limits | None = None,
    **kwargs: Any,
) -> uvicorn.Config:
    """uvicorn.Config for `app` with the guarded protocol and the matching uvicorn limits.

    `kwargs` go to uvicorn.Config as they are (log_config, ssl_certfile, lifespan, ...).
    """
    lim = limits or Limits()
    lim = replace(lim, max_connections=default_max_connections(lim.max_connections))
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded(protocol, lim),
        timeout_keep_alive=int(lim.keep_alive) or 1,
        # Connections are capped by the protocol. uvicorn also counts connections here, and an
        # evicted one stays in its set until the loop runs its connection_lost: leave room for those.
        limit_concurrency=2 * lim.max_connections,
        h11_max_incomplete_event_size=lim.max_header_bytes,
        **kwargs,
    )
