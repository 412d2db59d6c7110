"""A virtual IPMI BMC fleet for the lab, the tests and the benchmarks (pyghmi's ``Bmc``).

One process serves any number of BMCs on consecutive UDP ports of one address; each keeps a
power state, the full boot flags (device, persistent, UEFI) and a count of every operation it
executed, so callers can check that nothing was lost or done twice. A small HTTP endpoint on
loopback (``--control-port``) returns that state as JSON::

    python -m vaquero.bmc.emulator --address 127.0.0.1 --port 6230 --count 100 \
        --username admin --password-file pw.txt --control-port 6229

Each BMC answers Get System GUID with a system UUID: the i-th ``--uuid`` for the i-th BMC (give
the host's ``uuid`` from the SoT, so the BMC is the machine the SoT describes), else one derived
from its port (a machine no SoT knows).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import traceback
import uuid
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyghmi.ipmi.bmc as pbmc
import pyghmi.ipmi.private.serversession as pserver

_BOOT_NAMES = {0: "none", 1: "pxe", 2: "disk", 3: "safe", 5: "cdrom", 6: "bios", 15: "floppy"}


class _Suite3Session(pserver.ServerSession):  # type: ignore[misc]
    """pyghmi's server only speaks cipher suite 3 (HMAC-SHA1) but accepts a request for
    SHA-256 and then answers in SHA-1, which breaks pyghmi's own client. A real SHA-1-only BMC
    refuses the SHA-256 request, and the client falls back: do that."""

    def create_open_session_response(self, request: bytes) -> bytearray:
        # a new RMCP+ session from this client replaces the one it had with this BMC (pyghmi keeps one per client address)
        self.bmc.sessions_meter.closed(self.bmc, self.sockaddr)
        if len(request) > 12 and request[12] not in (0, 1):
            self.clientsessionid = request[4:8]
            self.managedsessionid = b"\0\0\0\0"
            return bytearray([request[0], 0x11, 0, 0]) + self.clientsessionid
        return bytearray(super().create_open_session_response(request))

    def _got_rmcp_openrequest(self, data: bytes) -> None:
        # a client reusing its socket opens a new session: start a fresh server session instead of
        # re-running the handshake on this one's state (pyghmi would, and drop packets)
        _Suite3Session(self.authdata, self.kg, self.sockaddr, self.socket, data, self.uuid, bmc=self.bmc)

    def _send_rakp4(self, tagvalue: int, statuscode: int) -> None:
        super()._send_rakp4(tagvalue, statuscode)
        if statuscode == 0:  # RAKP 3 checked out: the session is open from here to its logout
            self.bmc.sessions_meter.opened(self.bmc, self.sockaddr)

    def handle_client_request(self, request: dict[str, Any]) -> None:
        if request["netfn"] == 6 and request["command"] == 0x3C:
            # logout: closed before the answer leaves, as the client counts it closed once answered
            self.bmc.sessions_meter.closed(self.bmc, self.sockaddr)
        else:
            self.bmc.sessions_meter.seen(self.bmc, self.sockaddr)
        super().handle_client_request(request)

    def close_server_session(self) -> None:
        self.bmc.sessions_meter.closed(self.bmc, self.sockaddr)
        # pyghmi leaves closed sessions registered; unregister, so the next session starts clean
        handlers = pserver.ipmisession.Session.bmc_handlers.get(self.sockaddr)
        if handlers is not None and handlers.get(self.bmc.port) is self:
            del handlers[self.bmc.port]
            if not handlers:
                del pserver.ipmisession.Session.bmc_handlers[self.sockaddr]

    def sessionless_data(self, data: bytes, sockaddr: Any) -> None:
        # pyghmi routes a new client's first packet here when it reaches the BMC's socket through
        # an existing session's queue; the BMC itself handles session-less packets
        self.bmc.sessionless_data(data, sockaddr)


pserver.ServerSession = _Suite3Session


class SessionMeter:
    """Open IPMI sessions of every BMC of this process, counted by the BMCs themselves: a session
    opens when RAKP 3 is accepted and closes at its logout, when the same client opens a new one,
    or after ``idle_timeout`` seconds without a packet (a client that died without logging out).

    Every change is logged with its CLOCK_MONOTONIC time (one clock for the machine), so the
    peaks of several emulator processes can be merged into one exact fleet-wide peak."""

    def __init__(self, idle_timeout: float = 60.0, max_events: int = 200_000) -> None:
        self.idle_timeout = idle_timeout
        self._mu = threading.Lock()
        self._open: dict[tuple[int, Any], float] = {}  # (bmc port, client address) -> last packet
        self.peak = 0
        self.bmc_peak: Counter[int] = Counter()
        self.events: deque[tuple[float, int]] = deque(maxlen=max_events)

    def _expire(self, now: float) -> None:
        for k in [k for k, seen in self._open.items() if now - seen > self.idle_timeout]:
            del self._open[k]
            self.events.append((now, -1))

    def opened(self, bmc: EmulatedBmc, addr: Any) -> None:
        now = time.monotonic()
        with self._mu:
            self._expire(now)
            if (bmc.port, addr) not in self._open:
                self.events.append((now, +1))
            self._open[(bmc.port, addr)] = now
            self.peak = max(self.peak, len(self._open))
            self.bmc_peak[bmc.port] = max(self.bmc_peak[bmc.port], sum(1 for p, _ in self._open if p == bmc.port))

    def seen(self, bmc: EmulatedBmc, addr: Any) -> None:
        with self._mu:
            if (bmc.port, addr) in self._open:
                self._open[(bmc.port, addr)] = time.monotonic()

    def closed(self, bmc: EmulatedBmc, addr: Any) -> None:
        with self._mu:
            if self._open.pop((bmc.port, addr), None) is not None:
                self.events.append((time.monotonic(), -1))

    def open_for(self, port: int) -> int:
        with self._mu:
            self._expire(time.monotonic())
            return sum(1 for p, _ in self._open if p == port)

    def snapshot(self) -> dict[str, Any]:
        with self._mu:
            self._expire(time.monotonic())
            return {"open": len(self._open), "peak": self.peak, "events": list(self.events)}

    def reset(self) -> None:
        """Start a new measurement: the peaks restart from what is open now, the log empties."""
        with self._mu:
            self._expire(time.monotonic())
            self.peak = len(self._open)
            self.bmc_peak = Counter(p for p, _ in self._open)
            self.events.clear()


class EmulatedBmc(pbmc.Bmc):  # type: ignore[misc]
    """One BMC. ``acpi_delay``: seconds a soft off takes (None: the OS ignores ACPI).
    ``power_delay``: seconds a power request takes to show in the state; ``stuck``: power requests
    are acknowledged and counted but the state never changes (a BMC that lies about its chassis)."""

    sessions_meter = SessionMeter()  # one per process, shared by its BMCs

    def __init__(
        self,
        authdata: dict[str, str],
        port: int,
        address: str,
        *,
        system_uuid: uuid.UUID,
        acpi_delay: float | None,
        delay: float,
        latency: float = 0.0,
        power_delay: float = 0.0,
        stuck: bool = False,
    ) -> None:
        super().__init__(authdata, port=port, address=address, bmcuuid=system_uuid)
        self.mfgid = 0xA2F1  # an unassigned-looking IANA number for "Vaquero emulated"
        self.prodid = 0x0001
        self.system_uuid = system_uuid
        self.powerstate = "off"
        self.boot_flags = [0, 0, 0, 0, 0]  # data bytes 1..5 of boot option parameter 5
        self.counts: Counter[str] = Counter()
        # every IPMI request the BMC answered, by "netfn/cmd" (hex): what a caller really sent it
        self.received: Counter[str] = Counter()
        self.acpi_delay = acpi_delay
        self.delay = delay
        self.latency = latency
        self.power_delay = power_delay
        self.stuck = stuck
        self._off_at: float | None = None
        self._pending: tuple[str, float] | None = None

    # state --------------------------------------------------------------------------------
    def _tick(self) -> None:
        if self._off_at is not None and time.monotonic() >= self._off_at:
            self.powerstate = "off"
            self._off_at = None
        if self._pending is not None and time.monotonic() >= self._pending[1]:
            self.powerstate = self._pending[0]
            self._pending = None

    def _set_power(self, state: str) -> None:
        self._off_at = None
        if self.stuck:
            return
        if self.power_delay:
            self._pending = (state, time.monotonic() + self.power_delay)
        else:
            self.powerstate = state

    def get_power_state(self) -> str:
        self._tick()
        return self.powerstate

    def power_on(self) -> int:
        self.counts["power_on"] += 1
        self._set_power("on")
        return 0

    def power_off(self) -> int:
        self.counts["power_off"] += 1
        self._set_power("off")
        return 0

    def power_shutdown(self) -> int:
        self.counts["power_shutdown"] += 1
        if self.powerstate == "on" and self.acpi_delay is not None and not self.stuck:
            self._off_at = time.monotonic() + self.acpi_delay
        return 0

    def power_cycle(self) -> int:
        self.counts["power_cycle"] += 1
        self._set_power("on")
        return 0

    def power_reset(self) -> int:
        self.counts["power_reset"] += 1
        self._set_power("on")
        return 0

    def get_system_guid(self) -> uuid.UUID:
        return self.system_uuid

    def is_active(self) -> bool:
        return self.powerstate == "on"

    # boot options, with the persistent and UEFI bits pyghmi's base class drops -------------
    def get_system_boot_options(self, request: dict[str, Any], session: Any) -> None:
        if request["data"][0] == 5:
            session.send_ipmi_response(data=[1, 5, *self.boot_flags])
        else:
            session.send_ipmi_response(code=0x80)

    def set_system_boot_options(self, request: dict[str, Any], session: Any) -> None:
        data = list(request["data"])
        if data[0] == 5:
            flags = [*data[1:], 0, 0, 0, 0, 0][:5]
            self.boot_flags = flags
            self.counts["set_boot"] += 1
        session.send_ipmi_response()

    def boot_state(self) -> dict[str, Any]:
        f = self.boot_flags
        valid = bool(f[0] & 0x80)
        return {
            "device": _BOOT_NAMES.get((f[1] >> 2) & 0xF, str((f[1] >> 2) & 0xF)) if valid else "none",
            "persistent": bool(f[0] & 0x40),
            "uefi": bool(f[0] & 0x20),
        }

    def handle_raw_request(self, request: dict[str, Any], session: Any) -> None:
        if self.delay:  # a slow BMC: blocks this emulator process, like a wedged BMC firmware
            time.sleep(self.delay)
        if self.latency:  # a real BMC's processing time, without holding up the other BMCs
            threading.Timer(self.latency, self._answer, (request, session)).start()
            return
        self._answer(request, session)

    def _answer(self, request: dict[str, Any], session: Any) -> None:
        self.received[f"{request['netfn']:#04x}/{request['command']:#04x}"] += 1
        self._tick()
        super().handle_raw_request(request, session)

    def state(self) -> dict[str, Any]:
        self._tick()
        sessions = {"open": self.sessions_meter.open_for(self.port), "peak": self.sessions_meter.bmc_peak[self.port]}
        return {
            "power": self.powerstate,
            "boot": self.boot_state(),
            "counts": dict(self.counts),
            "uuid": str(self.system_uuid),
            "sessions": sessions,
            "received": dict(self.received),
        }


def system_uuid_for(port: int) -> uuid.UUID:
    """The deterministic system UUID of the emulated BMC on ``port``."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"vaquero-emulated-bmc:{port}")


def serve(args: argparse.Namespace) -> None:
    from vaquero.bmc.ipmi import _patch_pyghmi

    uuids = list(args.uuid or [])
    if len(uuids) > args.count:
        raise SystemExit(f"{len(uuids)} --uuid values for {args.count} BMC(s)")

    _patch_pyghmi()  # the server side shares pyghmi's I/O loop and its missed wake-ups
    with open(args.password_file, encoding="utf-8") as fh:
        password = fh.read().strip()
    kg = None
    if args.kg_file:  # the BMC key of IPMI 2.0 two-key logins; a file, so it never shows in ps
        with open(args.kg_file, encoding="utf-8") as fh:
            kg = fh.read().strip()
    bmcs: dict[int, EmulatedBmc] = {}
    for i in range(args.count):
        port = args.port + i
        bmcs[port] = EmulatedBmc(
            {args.username: password},
            port,
            args.address,
            system_uuid=uuids[i] if i < len(uuids) else system_uuid_for(port),
            acpi_delay=args.acpi_delay,
            delay=args.delay,
            latency=args.latency,
            power_delay=args.power_delay,
            stuck=args.stuck,
        )
        if kg is not None:
            bmcs[port].set_kg(kg)

    if args.control_port:

        class Handler(BaseHTTPRequestHandler):
            # GET /: every BMC's state; GET /sessions: open IPMI sessions of the fleet, their peak
            # and the log of changes; POST /sessions/reset: a new measurement starts
            def do_POST(self) -> None:
                if self.path != "/sessions/reset":
                    self.send_error(404)
                    return
                EmulatedBmc.sessions_meter.reset()
                self._json({"ok": True})

            def do_GET(self) -> None:
                if self.path == "/sessions":
                    self._json(EmulatedBmc.sessions_meter.snapshot())
                    return
                self._json({str(p): b.state() for p, b in bmcs.items()})

            def _json(self, data: object) -> None:
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        httpd = ThreadingHTTPServer(("127.0.0.1", args.control_port), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print(f"ready {args.address} {args.port}..{args.port + args.count - 1}", flush=True)
    while True:
        try:
            pbmc.Bmc.listen(timeout=0.01)  # pyghmi can miss a wake-up: poll, so no answer waits ~1 s
        except Exception:  # one bad packet must not take the whole fleet down
            traceback.print_exc()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6230, help="first UDP port")
    ap.add_argument("--count", type=int, default=1, help="number of BMCs on consecutive ports")
    ap.add_argument("--username", default="admin")
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--control-port", type=int, default=0, help="loopback HTTP port serving the state as JSON")
    ap.add_argument("--acpi-delay", type=float, default=None, help="seconds a soft off takes; omit: the OS ignores ACPI")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds every answer is delayed, blocking the process (a slow BMC)")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds each BMC takes to process a command (does not block the others)")
    ap.add_argument("--power-delay", type=float, default=0.0, help="seconds a power request takes to change the power state")
    ap.add_argument("--stuck", action="store_true", help="acknowledge power requests but never change the power state")
    ap.add_argument(
        "--uuid",
        type=uuid.UUID,
        action="append",
        help="system UUID of the next BMC (repeat: the i-th for the i-th port); the rest get one derived from their port",
    )
    ap.add_argument("--kg-file", help="file holding the BMC key (Kg) every BMC requires at login (default: none, Kg = the password)")
    serve(ap.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
