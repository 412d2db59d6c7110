"""uvicorn's httptools protocol with a fast path for pre-rendered boot responses.

During a boot storm nearly every request is a GET of a pre-rendered iPXE script. uvicorn
spends most of such a request on ASGI machinery (a scope dict, a response cycle object, an
asyncio task). For a GET/HEAD whose path is in the BootApp's pre-rendered table, this protocol
writes the complete response (status line, uvicorn's date/server headers, the pre-built headers
and body) straight to the transport from the parser callback. Everything else - other paths,
other methods, HTTP/1.0, `Connection: close`, a request pipelined behind a slow one, upgrades -
goes through uvicorn's normal ASGI path to the same BootApp, so behaviour is the same; only the
cost differs. Use with `uvicorn.Config(app, http=BootHttpProtocol)`.
"""

from __future__ import annotations

from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from vaquero.httpserver import Limits

# iPXE keeps its connection between the script, the kernel and the initrd: a longer keep-alive
# than the API's saves a handshake per file during a boot storm.
# Nothing sent to the agent is larger than a callback or an admin request.
AGENT_LIMITS = Limits(keep_alive=30.0, max_body_bytes=1 << 20)


class _NoEvent:
    def set(self) -> None:
        pass


class _Done:
    """Stands in for uvicorn's response cycle after a fast-path response."""

    response_complete = True
    keep_alive = True
    disconnected = False
    message_event = _NoEvent()


_DONE = _Done()


_header_cache: tuple[int, bytes] = (0, b"")


def _default_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's date/server headers as bytes; uvicorn builds a new list once a second."""
    global _header_cache
    key = id(headers)
    if _header_cache[0] != key:
        _header_cache = (key, b"".join(name + b": " + value + b"\r\n" for name, value in headers))
    return _header_cache[1]


class BootHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._boot_app: Any = self.config.app  # the BootApp itself (self.app may be wrapped by middleware)
        self._scope_pending = False

    def on_message_begin(self) -> None:
        # uvicorn builds the ASGI scope here; a fast-path request never needs one, so it is
        # built only when the request goes the ASGI way (see _build_scope).
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self._scope_pending = True

    def _build_scope(self) -> None:
        self._scope_pending = False
        self.scope = {  # type: ignore[typeddict-item]
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }

    def on_headers_complete(self) -> None:
        parser = self.parser
        method = parser.get_method()
        if (
            (method == b"GET" or method == b"HEAD")
            and (self.cycle is None or self.cycle.response_complete)
            and not self.pipeline
            and parser.should_keep_alive()
            and parser.get_http_version() == "1.1"
            and not parser.should_upgrade()
        ):
            path = httptools.parse_url(self.url).path
            hit = self._boot_app.prepared.get(path.decode("ascii", "replace")) if b"%" not in path else None
            if hit is not None:
                status, _, body, host, kind, head = hit
                raw = STATUS_LINE[status] + _default_headers(self.server_state.default_headers) + head
                self.transport.write(raw + body if method == b"GET" else raw)
                if kind is not None and host is not None and kind != "config":
                    self._boot_app.states.served(host, kind)
                self.cycle = _DONE  # type: ignore[assignment]
                self.on_response_complete()
                return
        if self._scope_pending:
            self._build_scope()
        super().on_headers_complete()
