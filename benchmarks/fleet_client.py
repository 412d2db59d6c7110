"""A fleet of simulated PXE hosts in one asyncio process: DHCP, TFTP and HTTP on plain sockets.

Each host does what a BIOS PXE ROM and then iPXE do, in order, all hosts at once:
  1. DHCP DISCOVER -> OFFER -> REQUEST -> ACK, broadcast from UDP port 68 on one interface, its own
     MAC in chaddr, the broadcast flag set (so servers answer to 255.255.255.255), PXE's option 60
     and arch 0 (BIOS) in option 93; the boot file and TFTP server come from the ACK (file, siaddr).
     Retransmits after 4, 8, 16, 32 s (+-1 s at random), PXE's schedule, then the host fails.
  2. TFTP RRQ of that file with the blksize and tsize options, ACK of every block; the last packet
     is resent after 1 s without an answer (5 times at most). A TFTP ERROR (a full server answers
     "busy") makes the host ask again after 0.2-1 s, up to 20 times, as a PXE ROM that retries.
  3. HTTP/1.1 on one keep-alive connection (receive buffer 256 KiB): the host's iPXE script by MAC,
     then the kernel and the initrd that script names, whole bodies (Content-Length), status 200 each.

Input: a JSON spec (interface, base URL, hosts' names and MACs, blksize, sample). Output: a JSON
report of what every host got (lease, boot file, sha256 of the TFTP file and of the script, byte
count of every kernel/initrd, their sha256 on every `sample`-th host) and when, in seconds since
the storm began. Judging the answers is the caller's job (benchmarks/fleet_storm.py).

    python benchmarks/fleet_client.py SPEC.json REPORT.json
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import resource
import socket
import struct
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BOOTREQUEST, DISCOVER, OFFER, REQUEST, ACK, NAK = 1, 1, 2, 3, 5, 6
COOKIE = b"\x63\x82\x53\x63"
PXE_CLASS = b"PXEClient:Arch:00000:UNDI:002001"
DHCP_TIMEOUTS = (4.0, 8.0, 16.0, 32.0)  # PXE's schedule, each +-1 s at random (RFC 2131 4.1)
TFTP_TIMEOUT, TFTP_RESENDS, TFTP_TRIES = 1.0, 5, 20
RRQ, DATA, TACK, ERROR, OACK = 1, 3, 4, 5, 6
CHUNK = 256 << 10
RCVBUF = 256 << 10


class HostFailed(Exception):
    """This host did not get its boot files; the message says at which step."""


# -- DHCP --
def _option(code: int, value: bytes) -> bytes:
    return bytes((code, len(value))) + value


def dhcp_packet(kind: int, xid: int, mac: bytes, *, requested: bytes = b"", server: bytes = b"") -> bytes:
    head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", BOOTREQUEST, 1, 6, 0, xid, 0, 0x8000, bytes(4), bytes(4), bytes(4), bytes(4), mac, b"", b"")
    opts = _option(53, bytes((kind,))) + _option(57, struct.pack("!H", 1472)) + _option(55, bytes((1, 3, 6, 66, 67, 43, 60)))
    opts += _option(60, PXE_CLASS) + _option(93, b"\x00\x00") + _option(94, b"\x01\x02\x01")
    if requested:
        opts += _option(50, requested)
    if server:
        opts += _option(54, server)
    return head + COOKIE + opts + b"\xff"


def parse_options(raw: bytes) -> dict[int, bytes]:
    opts: dict[int, bytes] = {}
    i = 0
    while i < len(raw):
        code = raw[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        if i + 1 >= len(raw):
            break
        n = raw[i + 1]
        opts[code] = raw[i + 2 : i + 2 + n]
        i += 2 + n
    return opts


class DhcpSocket(asyncio.DatagramProtocol):
    """The fleet's one port-68 socket: replies are matched to the waiting host by xid and chaddr."""

    def __init__(self) -> None:
        self.waiting: dict[int, tuple[bytes, asyncio.Queue[tuple[int, bytes, dict[int, bytes]]]]] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 240 or data[0] != 2 or data[236:240] != COOKIE:
            return
        (xid,) = struct.unpack_from("!I", data, 4)
        entry = self.waiting.get(xid)
        if entry is None or data[28:34] != entry[0]:
            return
        opts = parse_options(data[240:])
        kind = opts.get(53, b"\x00")[0]
        entry[1].put_nowait((kind, data, opts))


async def dhcp(sock: DhcpSocket, mac: bytes, xid: int, broadcast: tuple[str, int]) -> dict[str, Any]:
    """One lease, DISCOVER to ACK; the ACK's address, server, boot file and siaddr."""
    assert sock.transport is not None
    queue: asyncio.Queue[tuple[int, bytes, dict[int, bytes]]] = asyncio.Queue()
    sock.waiting[xid] = (mac, queue)
    try:
        offer = None
        for tries, timeout in enumerate(DHCP_TIMEOUTS, 1):
            sock.transport.sendto(dhcp_packet(DISCOVER, xid, mac.ljust(16, b"\0")), broadcast)
            deadline = time.monotonic() + timeout + random.uniform(-1.0, 1.0)
            while offer is None and (left := deadline - time.monotonic()) > 0:
                try:
                    kind, data, opts = await asyncio.wait_for(queue.get(), left)
                except TimeoutError:
                    break
                if kind == OFFER and 54 in opts:
                    offer = (data[16:20], opts[54])
            if offer is None:
                continue
            sock.transport.sendto(dhcp_packet(REQUEST, xid, mac.ljust(16, b"\0"), requested=offer[0], server=offer[1]), broadcast)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                try:
                    kind, data, opts = await asyncio.wait_for(queue.get(), left)
                except TimeoutError:
                    break
                if kind == NAK:
                    raise HostFailed(f"DHCPNAK for {socket.inet_ntoa(offer[0])}")
                if kind == ACK:
                    boot_file = opts.get(67) or data[108:236].split(b"\0", 1)[0]
                    return {
                        "ip": socket.inet_ntoa(data[16:20]),
                        "server_id": socket.inet_ntoa(opts.get(54, bytes(4))),
                        "siaddr": socket.inet_ntoa(data[20:24]),
                        "file": boot_file.decode("ascii", "replace"),
                        "dhcp_tries": tries,
                    }
            offer = None
        raise HostFailed(f"no DHCP lease after {len(DHCP_TIMEOUTS)} attempts")
    finally:
        del sock.waiting[xid]


# -- TFTP --
class TftpBusy(Exception):
    """The server answered with a TFTP ERROR packet (a full server says it is busy)."""


class TftpDownload(asyncio.DatagramProtocol):
    """One read request, as a PXE ROM does it: OACK -> ACK 0, then DATA n -> ACK n until a short block."""

    def __init__(self, name: str, server: tuple[str, int], blksize: int, done: asyncio.Future[bytes]) -> None:
        self.name, self.server, self.blksize, self.done = name, server, blksize, done
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: tuple[str, int] | None = None
        self.block = 0
        self.chunks: list[bytes] = []
        self.last = b""
        self.resends = 0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        opts = f"{self.name}\0octet\0blksize\0{self.blksize}\0tsize\0000\0".encode()
        self._send(struct.pack("!H", RRQ) + opts, self.server)

    def _send(self, packet: bytes, to: tuple[str, int]) -> None:
        assert self.transport is not None
        self.last = packet
        self.transport.sendto(packet, to)
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(TFTP_TIMEOUT, self._timeout)

    def _timeout(self) -> None:
        if self.done.done():
            return
        self.resends += 1
        if self.resends > TFTP_RESENDS:
            self._finish(HostFailed(f"TFTP {self.name}: no answer after {TFTP_RESENDS} resends (block {self.block})"))
            return
        self._send(self.last, self.peer or self.server)

    def _finish(self, result: bytes | BaseException) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if not self.done.done():
            if isinstance(result, BaseException):
                self.done.set_exception(result)
            else:
                self.done.set_result(result)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.done.done() or len(data) < 4:
            return
        if self.peer is None:
            self.peer = addr  # the transfer's own port (TID) on the server
        elif addr != self.peer:
            return  # another TID: not ours (RFC 1350 says send it an error; a ROM ignores it)
        opcode, number = struct.unpack_from("!HH", data)
        if opcode == ERROR:
            message = data[4:].split(b"\0", 1)[0].decode("ascii", "replace")
            self._finish(TftpBusy(f"TFTP error {number}: {message}"))
        elif opcode == OACK and self.block == 0:
            opts = data[2:].split(b"\0")
            pairs = dict(zip(opts[0::2], opts[1::2], strict=False))
            self.blksize = int(pairs.get(b"blksize", b"512"))
            self.resends = 0
            self._send(struct.pack("!HH", TACK, 0), addr)
        elif opcode == DATA:
            if self.block == 0 and number == 1 and self.last[:2] == struct.pack("!H", RRQ):
                self.blksize = 512  # DATA 1 straight after the RRQ: the server ignored the options (RFC 2347)
            if number == (self.block + 1) & 0xFFFF:
                self.block += 1
                self.chunks.append(data[4:])
                self.resends = 0
                self._send(struct.pack("!HH", TACK, number), addr)
                if len(data) - 4 < self.blksize:
                    self._finish(b"".join(self.chunks))
            elif number == self.block & 0xFFFF:
                assert self.transport is not None
                self.transport.sendto(struct.pack("!HH", TACK, number), addr)  # our ACK was lost: say it again


async def tftp(name: str, server: str, blksize: int) -> tuple[bytes, int]:
    """The file's bytes and how many times the server turned the request away first."""
    loop = asyncio.get_running_loop()
    busy = 0
    while True:
        done: asyncio.Future[bytes] = loop.create_future()
        transport, proto = await loop.create_datagram_endpoint(partial(TftpDownload, name, (server, 69), blksize, done), local_addr=("0.0.0.0", 0))
        try:
            return await done, busy
        except TftpBusy as exc:
            busy += 1
            if busy >= TFTP_TRIES:
                raise HostFailed(f"TFTP {name}: turned away {busy} times, last: {exc}") from None
        finally:
            if proto.timer is not None:
                proto.timer.cancel()
            transport.close()
        await asyncio.sleep(random.uniform(0.2, 1.0))


# -- HTTP --
class HttpConnection:
    """HTTP/1.1 GETs on one keep-alive connection, bodies streamed through a reused buffer."""

    def __init__(self, sock: socket.socket, host: str) -> None:
        self.sock, self.host = sock, host
        self.buf = bytearray(CHUNK)
        self.view = memoryview(self.buf)
        self.pending = b""  # bytes read past the previous response's end (never, without pipelining)

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A firmware-sized receive buffer (set before connecting, so the window is scaled to it):
        # with Linux's default of up to 6 MiB each, a thousand connections share one kernel's TCP
        # memory (real hosts each have their own), and two runs had peer downloads stall past
        # nginx's 60 s send_timeout; TCP memory pressure is the likely cause, not a verified one.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        return cls(sock, f"{host}:{port}")

    async def get(self, path: str, sha: hashlib._Hash | None = None, keep: bool = False) -> tuple[int, bytes]:
        """(bytes of the body, the body when `keep`); any status but 200 fails the host."""
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.sock, f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nUser-Agent: iPXE/1.21.1\r\n\r\n".encode())
        head = self.pending
        while b"\r\n\r\n" not in head:
            n = await loop.sock_recv_into(self.sock, self.view)
            if n == 0:
                raise HostFailed(f"GET {path}: connection closed before the response headers")
            head += self.view[:n]
            if len(head) > 65536 and b"\r\n\r\n" not in head:
                raise HostFailed(f"GET {path}: response headers too long")
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "200":
            raise HostFailed(f"GET {path}: {lines[0]}")
        fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        if "content-length" not in fields:
            raise HostFailed(f"GET {path}: no Content-Length ({fields.get('transfer-encoding', 'no Transfer-Encoding either')})")
        length = int(fields["content-length"])
        body = bytearray() if keep else None
        got = min(len(rest), length)
        first = rest[:got]
        self.pending = rest[got:]
        if sha is not None:
            sha.update(first)
        if body is not None:
            body += first
        while got < length:
            n = await loop.sock_recv_into(self.sock, self.view[: min(CHUNK, length - got)])
            if n == 0:
                raise HostFailed(f"GET {path}: connection closed after {got} of {length} bytes")
            got += n
            if sha is not None:
                sha.update(self.view[:n])
            if body is not None:
                body += self.view[:n]
        return got, bytes(body) if body is not None else b""

    def close(self) -> None:
        self.sock.close()


def script_files(script: bytes) -> list[tuple[str, str]]:
    """(command, URL) of each `kernel` / `initrd` line of an iPXE script, in order."""
    out = []
    for line in script.decode("utf-8", "replace").splitlines():
        words = line.split()
        if words and words[0] in ("kernel", "initrd"):
            url = next((w for w in words[1:] if w.startswith(("http://", "https://"))), None)
            if url is None:
                raise HostFailed(f"script line without a URL: {line!r}")
            out.append((words[0], url))
    return out


async def boot(host: dict[str, Any], index: int, spec: dict[str, Any], sock: DhcpSocket, t0: float) -> dict[str, Any]:
    mac = bytes.fromhex(host["mac"].replace(":", ""))
    got: dict[str, Any] = {}
    stamp: dict[str, float] = {}
    try:
        got.update(await dhcp(sock, mac, spec["xid_base"] + index, ("255.255.255.255", 67)))
        stamp["lease"] = time.perf_counter() - t0
        data, busy = await tftp(got["file"], got["siaddr"], spec["blksize"])
        got.update(tftp_sha256=hashlib.sha256(data).hexdigest(), tftp_bytes=len(data), tftp_turned_away=busy)
        stamp["tftp"] = time.perf_counter() - t0
        base = urlsplit(spec["base_url"])
        conn = await HttpConnection.open(base.hostname or "", base.port or 80)
        try:
            _, script = await conn.get(f"/v1/boot/ipxe/{host['mac'].replace(':', '-')}", hashlib.sha256(), keep=True)
            got["script_sha256"] = hashlib.sha256(script).hexdigest()
            stamp["script"] = time.perf_counter() - t0
            files = []
            for command, url in script_files(script):
                parts = urlsplit(url)
                if (parts.hostname, parts.port or 80) != (base.hostname, base.port or 80):
                    raise HostFailed(f"{command} URL {url} is on another server than the script")
                sha = hashlib.sha256() if index % spec["sample"] == 0 else None
                n, _ = await conn.get(parts.path, sha)
                files.append({"command": command, "path": parts.path, "bytes": n, "sha256": sha.hexdigest() if sha else None})
            got["files"] = files
        finally:
            conn.close()
        stamp["done"] = time.perf_counter() - t0
    except (HostFailed, OSError, ValueError) as exc:
        got["error"] = f"{type(exc).__name__}: {exc}"
        stamp["failed"] = time.perf_counter() - t0
    got["t"] = stamp
    return got


async def storm(spec: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, spec["iface"].encode())
    # A thousand OFFERs and ACKs arrive within milliseconds: room for all (RCVBUFFORCE: root).
    raw.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
    raw.bind(("0.0.0.0", 68))
    _, sock = await loop.create_datagram_endpoint(DhcpSocket, sock=raw)
    t0 = time.perf_counter()
    results = await asyncio.gather(*(boot(h, i, spec, sock, t0) for i, h in enumerate(spec["hosts"])))
    took = time.perf_counter() - t0
    return {"seconds": took, "hosts": {h["name"]: r for h, r in zip(spec["hosts"], results, strict=True)}}


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * len(spec["hosts"]) + 256  # a UDP and a TCP socket per host, with room to spare
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    report = runner(storm(spec))
    Path(sys.argv[2]).write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
