"""A Debian archive for lab guests: a small HTTP reverse proxy on the lab's bridge.

The lab's hosts live in a network namespace that cannot reach the outside, yet the Debian installer
(d-i) fetches its components and the whole base system from a Debian mirror. This proxy listens
inside the lab namespace (a short-lived thread enters it to open the listening socket) and forwards,
from the build host's own network, to the mirror the build host's apt sources name
(`/etc/apt/sources.list.d/*.sources` or `/etc/apt/sources.list`): no mirror is named in the code.

It is deliberately narrow: GET and HEAD only, paths under `/debian/dists/` and `/debian/pool/` made
of the characters Debian's archive uses (no `..`, no query), a bound on every answer's size, a
timeout on every upstream read and a bound on concurrent requests. Packages (`pool/**.deb`,
`.udeb`) are kept on disk under the lab cache (`<cache>/mirror/<upstream hash>/pool/...`): a pool
file name carries the package's version and the archive never serves two contents under one name,
and the installer checks each one against the signed indexes anyway, so a second install reads
them from disk. Indexes (`dists/`) always come from upstream.

    mirror = DebianMirror(netns=net.name, address="10.90.0.1", port=8082)
    mirror.start()        # d-i: mirror/http/hostname 10.90.0.1:8082, mirror/http/directory /debian
    ...
    mirror.stats()        # requests, bytes sent to guests, bytes fetched upstream, cache hits
    mirror.stop()
"""

from __future__ import annotations

import ctypes
import hashlib
import http.server
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .kernel import DEFAULT_CACHE, LabError

log = logging.getLogger(__name__)

PREFIX = "/debian/"
# Debian archive paths: dists/<suite>/... and pool/<component>/<letter>/<source>/<file>.
_PATH = re.compile(r"/debian/(?:dists|pool)/[A-Za-z0-9._+~-]+(?:/[A-Za-z0-9._+~-]+)*")
_CACHED = re.compile(r"/debian/pool/.+\.u?deb")
MAX_BYTES = 400 << 20  # the largest answer passed on (the biggest udeb/deb d-i needs is ~70 MiB)
MAX_CONCURRENT = 16
UPSTREAM_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
CHUNK = 256 << 10
# Headers passed on from upstream; everything else (cookies, caching proxies' own) stays out.
_PASS_HEADERS = ("content-type", "last-modified", "etag")
CLONE_NEWNET = 0x40000000
APT_SOURCES = Path("/etc/apt")


def apt_upstream(suite: str = "bookworm", apt_dir: Path = APT_SOURCES) -> str:
    """The first http(s) URI of the build host's apt sources that carries `suite` (a `deb` line or
    stanza), without a trailing slash: what the lab's guests are served through the proxy."""
    found: list[str] = []
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text(errors="replace")):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                m = re.match(r"([A-Za-z-]+):\s*(.*)", line)
                if m and not line.startswith("#"):
                    fields[m.group(1).lower()] = m.group(2)
            if fields.get("enabled", "yes").lower() == "no":
                continue
            if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
                found += fields.get("uris", "").split()
    lists = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                found.append(words[1])
    for uri in found:
        if re.fullmatch(r"https?://[A-Za-z0-9.-]+(?::\d{1,5})?(?:/[A-Za-z0-9._~/-]*)?", uri):
            return uri.rstrip("/")
    raise LabError(f"no http(s) apt source for suite {suite!r} in {apt_dir}/sources.list or {apt_dir}/sources.list.d/ (found {found or 'none'})")


def listen_in_netns(netns: str, address: str, port: int) -> socket.socket:
    """A listening TCP socket opened inside network namespace `netns`. A socket stays in the
    namespace it was made in; the thread that makes it enters the namespace and then ends, so no
    other thread of this process ever changes namespace."""
    result: list[socket.socket | BaseException] = []

    def enter_and_listen() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{netns}", "rb") as ns:
                if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                    raise LabError(f"cannot enter network namespace {netns}: {os.strerror(ctypes.get_errno())}")
            result.append(socket.create_server((address, port), backlog=64))
        except BaseException as exc:  # handed to the caller's thread
            result.append(exc)

    t = threading.Thread(target=enter_and_listen, name=f"netns-{netns}")
    t.start()
    t.join()
    got = result[0]
    if isinstance(got, BaseException):
        raise LabError(f"cannot listen on {address}:{port} in network namespace {netns}: {got}") from got
    return got


@dataclass
class MirrorStats:
    requests: int = 0
    refused: int = 0
    bytes_sent: int = 0  # to the guests
    bytes_upstream: int = 0  # fetched from the upstream mirror
    cache_hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {k: getattr(self, k) for k in ("requests", "refused", "bytes_sent", "bytes_upstream", "cache_hits")}


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    mirror: DebianMirror


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 60  # a guest that stops reading its request is dropped

    def log_message(self, format: str, *args: object) -> None:  # the base class names it `format`
        log.debug("mirror %s: " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        self.server.mirror.answer(self, head=False)

    def do_HEAD(self) -> None:
        self.server.mirror.answer(self, head=True)

    def _refuse(self) -> None:
        self.server.mirror.stats.add(requests=1, refused=1)
        self.send_error(405, "only GET and HEAD")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse


class DebianMirror:
    """The proxy. `start()` serves on a daemon thread; `stop()` closes the socket and the client."""

    def __init__(
        self,
        *,
        netns: str | None,
        address: str,
        port: int,
        upstream: str | None = None,
        cache: Path | None = DEFAULT_CACHE,
        access_log: Path | None = None,
    ) -> None:
        self.upstream = upstream or apt_upstream()
        self.netns, self.address, self.port = netns, address, port
        key = hashlib.sha256(self.upstream.encode()).hexdigest()[:16]
        self.cache_dir = cache / "mirror" / key if cache is not None else None
        self.access_log = access_log
        self.stats = MirrorStats()
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        self._log_lock = threading.Lock()
        self._client = httpx.Client(timeout=UPSTREAM_TIMEOUT, follow_redirects=False, trust_env=False)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/debian"

    def start(self) -> DebianMirror:
        if self.netns is None:  # this process's own namespace (tests on loopback)
            sock = socket.create_server((self.address, self.port), backlog=64)
        else:
            sock = listen_in_netns(self.netns, self.address, self.port)
        self.port = sock.getsockname()[1]  # port 0 asks the kernel for a free one
        server = _Server((self.address, self.port), _Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
        server.mirror = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="debian-mirror", daemon=True)
        self._thread.start()
        log.info("Debian mirror for the lab on %s (netns %s), forwarding to the host's apt source", self.url, self.netns or "-")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._client.close()

    def __enter__(self) -> DebianMirror:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one request --
    def answer(self, req: _Handler, head: bool) -> None:
        path = req.path
        self.stats.add(requests=1)
        if not _PATH.fullmatch(path) or "/../" in path + "/" or "/./" in path + "/":
            self.stats.add(refused=1)
            self._access(req, path, 403, 0, "refused")
            req.send_error(403, "not a Debian archive path")
            return
        if not self._slots.acquire(blocking=False):
            self.stats.add(refused=1)
            req.send_error(503, "too many requests at once")
            return
        try:
            cached = self._cached(path)
            if cached is not None and cached.is_file():
                self._send_file(req, path, cached, head)
            else:
                self._forward(req, path, head, cached)
        finally:
            self._slots.release()

    def _cached(self, path: str) -> Path | None:
        if self.cache_dir is None or not _CACHED.fullmatch(path):
            return None
        return self.cache_dir / path.removeprefix(PREFIX)

    def _send_file(self, req: _Handler, path: str, file: Path, head: bool) -> None:
        size = file.stat().st_size
        req.send_response(200)
        req.send_header("Content-Type", "application/vnd.debian.binary-package")
        req.send_header("Content-Length", str(size))
        req.end_headers()
        sent = 0
        if not head:
            with open(file, "rb") as fh:
                sent = _copy(fh.read, req.wfile.write)
        self.stats.add(bytes_sent=sent, cache_hits=1)
        self._access(req, path, 200, sent, "cache")

    def _forward(self, req: _Handler, path: str, head: bool, cache_to: Path | None) -> None:
        url = self.upstream + "/" + path.removeprefix(PREFIX)
        try:
            with self._client.stream("HEAD" if head else "GET", url) as up:
                length = up.headers.get("content-length")
                if length is not None and (not length.isdigit() or int(length) > MAX_BYTES):
                    req.send_error(502, f"upstream answer too large or malformed ({length} bytes, at most {MAX_BYTES})")
                    self._access(req, path, 502, 0, "too large")
                    return
                status = up.status_code if up.status_code in (200, 304, 404, 410) else 502
                req.send_response(status)
                for name in _PASS_HEADERS:
                    if name in up.headers:
                        req.send_header(name, up.headers[name])
                if head or status != 200:
                    # HEAD: the length GET would have; any other answer goes on without its body
                    req.send_header("Content-Length", (length or "0") if head and status == 200 else "0")
                    req.end_headers()
                    self._access(req, path, status, 0, "upstream")
                    return
                if length is None:
                    # no length: close after the body, the way HTTP/1.0 ends it
                    req.send_header("Connection", "close")
                    req.close_connection = True
                else:
                    req.send_header("Content-Length", length)
                req.end_headers()
                sent = self._relay(req, up.iter_bytes(CHUNK), cache_to, int(length) if length else None)
                self._access(req, path, 200, sent, "upstream")
        except httpx.HTTPError as exc:
            log.warning("mirror: upstream %s failed: %s", path, exc)
            req.close_connection = True
            try:
                req.send_error(502, f"upstream failed: {type(exc).__name__}")
            except OSError:
                pass
            self._access(req, path, 502, 0, type(exc).__name__)

    def _relay(self, req: _Handler, chunks: Iterator[bytes], cache_to: Path | None, length: int | None) -> int:
        """Stream upstream bytes to the guest (and into a cache file, renamed into place only when
        whole); past MAX_BYTES the connection is cut, so a guest sees a short answer, never a wrong one."""
        tmp = None
        if cache_to is not None and length is not None:
            cache_to.parent.mkdir(parents=True, exist_ok=True)
            tmp = tempfile.NamedTemporaryFile(dir=cache_to.parent, prefix=".part-", delete=False)
        sent = 0
        try:
            for chunk in chunks:
                sent += len(chunk)
                self.stats.add(bytes_upstream=len(chunk))
                if sent > MAX_BYTES:
                    req.close_connection = True
                    raise LabError(f"upstream answer past {MAX_BYTES} bytes")
                if tmp is not None:
                    tmp.write(chunk)
                req.wfile.write(chunk)
                self.stats.add(bytes_sent=len(chunk))
            if tmp is not None and cache_to is not None:
                tmp.close()
                if sent == length:
                    os.chmod(tmp.name, 0o644)
                    os.replace(tmp.name, cache_to)
        except (OSError, LabError) as exc:
            req.close_connection = True
            log.warning("mirror: %s cut after %d bytes: %s", req.path, sent, exc)
        finally:
            if tmp is not None:
                tmp.close()
                if os.path.exists(tmp.name):
                    os.unlink(tmp.name)
        return sent

    def _access(self, req: _Handler, path: str, status: int, sent: int, how: str) -> None:
        if self.access_log is None:
            return
        with self._log_lock, open(self.access_log, "a") as fh:
            fh.write(f"{time.time():.3f} {req.client_address[0]} {req.command} {path} {status} {sent} {how}\n")


def _copy(read: Callable[[int], bytes], write: Callable[[bytes], object]) -> int:
    n = 0
    while chunk := read(CHUNK):
        write(chunk)
        n += len(chunk)
    return n


def clear_cache(cache: Path = DEFAULT_CACHE) -> None:
    """Forget every package the mirror kept (the next install fetches them all again)."""
    shutil.rmtree(cache / "mirror", ignore_errors=True)
