"""Read-only TFTP for iPXE binaries, on tftpy's protocol code.

tftpy as it comes re-reads files per transfer, select()s over every session socket per packet
and decodes every ACK into objects while formatting debug strings; that costs it ~1.3-1.8x
dnsmasq's time. Here tftpy handles each request (RRQ parsing, blksize/tsize negotiation, the
OACK or first DATA block, errors) and this module drives it: files come from an in-memory cache
through tftpy's `dyn_file_func` (its root is an empty folder, so tftpy never touches the disk),
sessions are multiplexed with epoll, timeouts are swept a few times a second rather than per
packet, uploads are refused, and once a download is negotiated the ACK -> next DATA loop runs
here on a connected socket (same rules as tftpy's TftpStateExpectACK: a block is sent after the
ACK of the previous one, duplicate ACKs are ignored, the last packet is resent on timeout).

Requests with `..`, absolute paths, or names that are not in the cache are refused with a
TFTP error and a log line naming the client.

Bounds: at most `max_sessions` transfers at once (each holds a socket). A full server makes room by
dropping the oldest transfer that never got an ACK (a flood of read requests that are never
acknowledged only ever evicts itself; a real client ACKs within milliseconds, and an ACK already
waiting in a transfer's socket is read before it is judged; the evicted client is told "busy");
when every transfer is moving, the request gets a TFTP "server busy" error from the main socket. A transfer
ends after `retries` sweeps without progress or after `max_session_time` seconds. An exception in
one session ends that session only, and a supervisor restarts the loop if it dies (`restarts`).
"""

from __future__ import annotations

import io
import logging
import os
import select
import socket
import struct
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any

import tftpy
from tftpy.TftpShared import MAX_BLKSIZE, TftpException, TftpTimeout, TftpTimeoutExpectACK

log = logging.getLogger(__name__)
# tftpy logs every packet at debug and every session at info; keep that off the hot path.
logging.getLogger("tftpy").setLevel(logging.WARNING)

DEFAULT_IPXE_DIRS = ("/usr/lib/ipxe",)
MAX_FILE = 64 << 20
MAX_SESSIONS = 256
MAX_SESSION_TIME = 600.0


class FileCache:
    """The TFTP root's regular files (top level and sub-folders), read once into memory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, bytes] = {}
        self._packets: dict[tuple[str, int, int], tuple[bytes, ...]] = {}
        self.reload()

    def reload(self) -> None:
        files: dict[str, bytes] = {}
        root = self.root.resolve()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                p = Path(dirpath) / name
                try:
                    real = p.resolve(strict=True)
                except OSError:
                    continue
                # Symlinks the operator put in the root are followed (Debian's ipxe.efi is one);
                # clients can only name what is in this cache, so they cannot escape it.
                if not real.is_file() or real.stat().st_size > MAX_FILE:
                    continue
                files[str(p.relative_to(root))] = real.read_bytes()
        self.files = files
        self._packets = {}

    def packets(self, name: str, data: bytes, blksize: int) -> tuple[bytes, ...]:
        """The file's DATA packets at a block size, built once and kept (a few sizes per file)."""
        key = (name, blksize, id(data))
        hit = self._packets.get(key)
        if hit is None:
            if len(self._packets) >= 64:
                self._packets.clear()
            hit = self._packets[key] = build_packets(data, blksize)
        return hit

    def lookup(self, name: str) -> bytes | None:
        """The bytes for a requested name, or None when it is refused or unknown."""
        if not name or "\x00" in name or "\\" in name or name.startswith("/"):
            return None
        parts = PurePosixPath(name).parts
        if any(p in ("..", ".") for p in parts):
            return None
        return self.files.get("/".join(parts))


class _Cached(io.BytesIO):
    """A cached file as tftpy's file object; `raw` is the cache's own bytes (no copy)."""

    def __init__(self, raw: bytes, name_key: str) -> None:
        super().__init__(raw)
        self.raw = raw
        self.name_key = name_key


class _Context(tftpy.TftpContexts.TftpContextServer):  # type: ignore[misc]
    """tftpy's server context, minus a resolver call per session (clients are addresses)."""

    def _sethost(self, host: str) -> None:
        self._TftpContext__host = host
        self.address = host

    host = property(tftpy.TftpContexts.TftpContext.gethost, _sethost)


_ACK = 4
_ERR = 5
_DAT_HEADER = struct.Struct("!HH")
_BUSY = _DAT_HEADER.pack(_ERR, 0) + b"server busy, try again\0"
_INTERNAL = _DAT_HEADER.pack(_ERR, 0) + b"internal error\0"


def build_packets(data: bytes, blksize: int) -> tuple[bytes, ...]:
    """Every DATA packet of a file at a block size, block numbers wrapping at 65536."""
    count = len(data) // blksize + 1  # the last block is short (possibly empty)
    pack = _DAT_HEADER.pack
    return tuple(pack(3, (i + 1) & 0xFFFF) + data[i * blksize : (i + 1) * blksize] for i in range(count))


class _Download:
    """The data phase of one negotiated download (after tftpy sent the OACK or DATA 1).

    `sent` is how many packets went out (0 after an OACK); the ACK of block `sent` (mod 65536)
    triggers the next one. Duplicate or stray ACKs are ignored; the sweep resends on timeout.
    """

    __slots__ = ("expect", "host", "last", "packets", "progress", "recv", "retries", "send", "sent", "sock", "started", "swept")

    def __init__(self, ctx: Any, packets: tuple[bytes, ...]) -> None:
        self.sock: socket.socket = ctx.sock
        self.host: str = ctx.host
        self.packets = packets
        self.sent: int = ctx.next_block  # 0 after an OACK, 1 after DATA 1
        self.expect = self.sent & 0xFFFF
        self.last: bytes = ctx.last_pkt.buffer if ctx.last_pkt is not None else b""
        self.retries = 0
        self.progress = 0  # bumps on every good ACK; the sweep compares it with `swept`
        self.swept = -1
        self.started = time.monotonic()
        self.sock.connect((ctx.host, ctx.tidport))
        # tftpy gave the socket a timeout, which makes CPython poll() before every recv and
        # send; the fast path is driven by epoll, so plain non-blocking calls are enough.
        self.sock.setblocking(False)
        self.recv = self.sock.recv
        self.send = self.sock.send

    def on_packet(self) -> bool:
        """Handle one incoming packet; True when the transfer is over."""
        try:
            buf = self.recv(MAX_BLKSIZE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True  # ICMP port unreachable: the client went away
        if len(buf) < 4 or buf[0] != 0:
            return False
        if buf[1] == _ACK:
            if (buf[2] << 8 | buf[3]) != self.expect:
                return False  # duplicate or stray ACK
            sent = self.sent
            if sent == len(self.packets):
                return True  # the final block is acknowledged
            pkt = self.packets[sent]
            self.sent = sent + 1
            self.expect = (sent + 1) & 0xFFFF
            self.last = pkt
            self.progress += 1
            try:
                self.send(pkt)
            except BlockingIOError:
                pass  # socket buffer full: the sweep resends
            return False
        return buf[1] == _ERR

    def on_sweep(self, max_retries: int, deadline: float) -> bool:
        """Called every `timeout` seconds; resend when nothing moved since. True to give up."""
        if self.started < deadline:
            log.warning("tftp %s: transfer still running after %.0f s, ended", self.host, MAX_SESSION_TIME, extra={"host": self.host})
            return True
        if self.progress != self.swept:
            self.swept = self.progress
            self.retries = 0
            return False
        self.retries += 1
        if self.retries > max_retries:
            log.warning("tftp %s: no ACK for block %d after %d retries, giving up", self.host, self.sent, max_retries, extra={"host": self.host})
            return True
        try:
            self.send(self.last)
        except BlockingIOError:
            pass
        except OSError:
            return True
        return False

    def close(self) -> None:
        self.sock.close()


class TftpServer:
    """`TftpServer(root).start(("10.90.0.1", 69))` serves in a thread; `stop()` ends it."""

    def __init__(
        self, root: Path, *, timeout: float = 2.0, retries: int = 5, max_sessions: int = MAX_SESSIONS, max_session_time: float = MAX_SESSION_TIME
    ) -> None:
        self.cache = FileCache(root)
        self.timeout = timeout
        self.retries = retries
        self.max_sessions = max_sessions
        self.max_session_time = max_session_time
        self._empty = tempfile.mkdtemp(prefix="vaquero-tftp-")
        self._server = tftpy.TftpServer(self._empty, dyn_file_func=self._open, upload_open=self._refuse_upload)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sock: socket.socket | None = None
        self.transfers = 0
        self.refused = 0
        self.busy = 0  # requests answered "server busy"
        self.evicted = 0  # unacknowledged transfers dropped to make room
        self.errors = 0  # sessions ended by an unexpected exception
        self.restarts = 0  # times the supervisor restarted a dead loop
        self._address: tuple[str, int] | None = None
        self._fast: dict[int, _Download] = {}
        self._slow: dict[int, str] = {}

    # -- tftpy hooks --
    def _open(self, name: str, raddress: str | None = None, rport: int | None = None, **_: Any) -> _Cached | None:
        data = self.cache.lookup(name)
        if data is None:
            self.refused += 1
            reason = "path escape refused" if (".." in name or name.startswith("/")) else "no such file"
            log.warning("tftp %s: %r from %s", reason, name, raddress, extra={"host": raddress})
            return None
        self.transfers += 1
        log.info("tftp sending %s (%d bytes) to %s", name, len(data), raddress, extra={"host": raddress})
        return _Cached(data, name)

    def _refuse_upload(self, path: str, context: Any) -> None:
        log.warning("tftp upload refused: %r from %s", path, context.host, extra={"host": context.host})
        self.refused += 1
        return None

    # -- lifecycle --
    def bind(self, address: tuple[str, int], *, reuse_port: bool = False) -> tuple[str, int]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # several worker processes share the port; the kernel spreads requests
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(address)
        sock.setblocking(False)
        self.sock = sock
        host, port = sock.getsockname()[:2]
        self._address = (host, port)
        self._reuse_port = reuse_port
        return host, port

    def start(self, address: tuple[str, int]) -> tuple[str, int]:
        bound = self.bind(address)
        self._thread = threading.Thread(target=self.supervise, name="tftp", daemon=True)
        self._thread.start()
        log.info("tftp serving %d files from %s on %s:%d", len(self.cache.files), self.cache.root, *bound)
        return bound

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.sock is not None:
            self.sock.close()
        try:
            os.rmdir(self._empty)
        except OSError:
            pass

    def supervise(self) -> None:
        """Run the loop; if it dies, log it, count it and start it again (the port stays bound)."""
        failures = 0
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.serve()
                return
            except Exception:
                self.restarts += 1
                failures = 1 if time.monotonic() - began > 60 else failures + 1
                log.exception("tftp: the server loop died; restarting it (restart %d)", self.restarts)
            if self.sock is None or self.sock.fileno() < 0:
                try:
                    assert self._address is not None
                    self.bind(self._address, reuse_port=self._reuse_port)
                except OSError:
                    log.exception("tftp: cannot bind %s:%d again", *(self._address or ("?", 0)))
            # Back off while it keeps dying, so a persistent fault does not spin a core.
            self._stop.wait(min(5.0, 0.05 * 2**failures))

    @property
    def sessions(self) -> int:
        """Transfers in progress (each holds a socket)."""
        return len(self._fast) + len(self._slow)

    def serve(self) -> None:
        """The loop: raw epoll, fd -> session; the data phase never leaves this function's locals."""
        assert self.sock is not None
        main = self.sock
        ep = select.epoll()
        ep.register(main.fileno(), select.EPOLLIN)
        self._ep = ep
        self._fast = {}
        self._slow = {}
        sessions: dict[str, Any] = {}
        fast = self._fast
        slow = self._slow
        main_fd = main.fileno()
        timeout = self.timeout
        last_sweep = time.monotonic()
        stop = self._stop
        try:
            while not stop.is_set():
                for fd, _ in ep.poll(0.25):
                    dl = fast.get(fd)
                    try:
                        if dl is not None:
                            if dl.on_packet():
                                self._close_fast(fd)
                        elif fd == main_fd:
                            self._new_session(main, sessions)
                        elif fd in slow:
                            self._cycle(slow[fd], sessions)
                    except Exception:
                        # One bad session must not take the others down: end it, keep serving.
                        self.errors += 1
                        log.exception("tftp: session on fd %d failed; ended", fd)
                        self._drop_fd(fd, sessions)
                now = time.monotonic()
                if now - last_sweep >= timeout:
                    last_sweep = now
                    self._sweep(sessions)
                    deadline = now - self.max_session_time
                    for fd, dl in list(fast.items()):
                        try:
                            over = dl.on_sweep(self.retries, deadline)
                        except Exception:
                            self.errors += 1
                            log.exception("tftp %s: sweep failed; transfer ended", dl.host)
                            over = True
                        if over:
                            self._close_fast(fd)
        finally:
            for skey in list(sessions):
                self._end(skey, sessions)
            for fd in list(fast):
                self._close_fast(fd)
            ep.close()

    def _drop_fd(self, fd: int, sessions: dict[str, Any]) -> None:
        if fd in self._fast:
            try:
                self._fast[fd].send(_INTERNAL)  # tell the client now rather than let it time out
            except OSError:
                pass
            self._close_fast(fd)
        elif fd in self._slow:
            self._end(self._slow[fd], sessions)

    def _make_room(self, sessions: dict[str, Any]) -> bool:
        """At the cap, end the oldest transfer that was never acknowledged; False when all are moving."""
        if self.sessions < self.max_sessions:
            return True
        for skey in sessions:  # a session still negotiating (oldest first)
            self._end(skey, sessions)
            self.evicted += 1
            return True
        for fd, dl in list(self._fast.items()):  # insertion order: oldest first
            if dl.progress == 0:
                # In a boot storm the requests are read while the first ACKs still wait in their
                # sessions' sockets: take that ACK before judging, a transfer that moves stays.
                if dl.on_packet():
                    self._close_fast(fd)
                    return True
                if dl.progress:
                    continue
                try:
                    dl.send(_BUSY)  # tell the client now rather than let it time out
                except OSError:
                    pass
                self._close_fast(fd)
                self.evicted += 1
                return True
        return False

    def _close_fast(self, fd: int) -> None:
        dl = self._fast.pop(fd)
        try:
            self._ep.unregister(fd)
        except (OSError, ValueError):
            pass
        dl.close()

    def _new_session(self, main: socket.socket, sessions: dict[str, Any]) -> None:
        try:
            buffer, (raddress, rport) = main.recvfrom(MAX_BLKSIZE)
        except (BlockingIOError, InterruptedError):
            return
        skey = f"{raddress}:{rport}"
        if skey in sessions:
            return
        if not self._make_room(sessions):
            self.busy += 1
            if self.busy & (self.busy - 1) == 0:  # 1, 2, 4, 8...: a flood must not flood the log
                log.warning("tftp: %d transfers in progress, request from %s refused (%d so far)", self.sessions, raddress, self.busy, extra={"host": raddress})
            try:
                main.sendto(_BUSY, (raddress, rport))
            except OSError:
                pass
            return
        if len(buffer) > 4 and buffer[1] in (1, 2):  # RRQ / WRQ: log escapes tftpy refuses itself
            name = buffer[2:].split(b"\0", 1)[0].decode("latin-1")
            if ".." in name.split("/"):
                self.refused += 1
                log.warning("tftp path escape refused: %r from %s", name, raddress, extra={"host": raddress})
        try:
            ctx = _Context(raddress, rport, self.timeout, self._empty, self._open, self._refuse_upload, retries=self.retries)
        except OSError as exc:  # out of sockets (EMFILE, ENOBUFS): refuse this one, keep serving
            self.busy += 1
            log.warning("tftp: cannot open a session socket for %s: %s", raddress, exc, extra={"host": raddress})
            try:
                main.sendto(_BUSY, (raddress, rport))
            except OSError:
                pass
            return
        sessions[skey] = ctx
        self._slow[ctx.sock.fileno()] = skey
        self._ep.register(ctx.sock.fileno(), select.EPOLLIN)
        try:
            ctx.start(buffer)
        except TftpTimeoutExpectACK:
            ctx.timeout_expectACK = True
        except (TftpException, ValueError, KeyError) as exc:
            log.info("tftp %s: %s", skey, exc, extra={"host": raddress})
            self._end(skey, sessions)
            return
        except Exception:
            self.errors += 1
            log.exception("tftp %s: request failed; session ended", skey, extra={"host": raddress})
            self._end(skey, sessions)
            return
        if ctx.state is None:
            self._end(skey, sessions)
        elif isinstance(ctx.state, tftpy.TftpStates.TftpStateExpectACK) and isinstance(ctx.fileobj, _Cached):
            # Negotiated download: the data phase runs on the fast path from here.
            try:
                dl = _Download(ctx, self.cache.packets(ctx.fileobj.name_key, ctx.fileobj.raw, ctx.getBlocksize()))
            except Exception:
                self.errors += 1
                log.exception("tftp %s: transfer setup failed; session ended", skey, extra={"host": raddress})
                try:
                    ctx.sock.sendto(_INTERNAL, (raddress, ctx.tidport))
                except OSError:
                    pass
                self._end(skey, sessions)
                return
            sessions.pop(skey, None)
            fd = ctx.sock.fileno()
            self._slow.pop(fd, None)
            self._fast[fd] = dl

    def _cycle(self, skey: str, sessions: dict[str, Any]) -> None:
        ctx = sessions.get(skey)
        if ctx is None:
            return
        ctx.timeout_expectACK = False
        try:
            ctx.cycle()
        except TftpTimeoutExpectACK:
            ctx.timeout_expectACK = True
        except (TftpException, OSError, ValueError) as exc:
            log.info("tftp %s: %s", skey, exc, extra={"host": ctx.host})
            self._end(skey, sessions)
            return
        if ctx.state is None:
            self._end(skey, sessions)

    def _sweep(self, sessions: dict[str, Any]) -> None:
        now = time.time()
        for skey, ctx in list(sessions.items()):
            try:
                self._check(skey, ctx, now, sessions)
            except Exception:
                self.errors += 1
                log.exception("tftp %s: timeout handling failed; session ended", skey, extra={"host": ctx.host})
                self._end(skey, sessions)

    def _check(self, skey: str, ctx: Any, now: float, sessions: dict[str, Any]) -> None:
        try:
            ctx.checkTimeout(now)
        except TftpTimeout:
            ctx.retry_count += 1
            if ctx.retry_count >= ctx.retries or ctx.state is None:
                log.warning("tftp %s: gave up after %d retries", skey, ctx.retry_count, extra={"host": ctx.host})
                self._end(skey, sessions)
            else:
                ctx.timeout_expectACK = False
                ctx.last_update = now
                ctx.state.resendLast()

    def _end(self, skey: str, sessions: dict[str, Any]) -> None:
        ctx = sessions.pop(skey, None)
        if ctx is None:
            return
        try:
            fd = ctx.sock.fileno()
            self._slow.pop(fd, None)
            self._ep.unregister(fd)
        except (OSError, ValueError):
            pass
        try:
            ctx.end()
        except Exception:
            pass


def default_root(configured: str | None = None) -> Path:
    if configured:
        return Path(configured)
    for d in DEFAULT_IPXE_DIRS:
        if Path(d).is_dir():
            return Path(d)
    raise FileNotFoundError("no iPXE binaries: install Debian's ipxe package or pass a TFTP folder")
