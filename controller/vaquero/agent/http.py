"""The agent's HTTP boot server: one bare ASGI callable, no framework on the hot path.

GET/HEAD of iPXE scripts is a single dict lookup of pre-rendered bytes (headers included);
everything else (configs, assets by path with Range, the callback, status and admin calls) goes
through a small dispatcher. Routes:

    GET  /boot.ipxe                          chain script handed out by DHCP
    GET  /v1/boot/ipxe/<mac as aa-bb-..>     the host's script (install | localboot | unknown)
    GET  /v1/boot/config/<host>?token=T      cloud-init user-data or Ignition JSON   (install token)
    GET  /v1/boot/nocloud/<host>/<T>/{user-data,meta-data,vendor-data}              (install token)
         (or /v1/boot/nocloud/<host>/<file>?token=T)
    GET  /assets/<profile>/<file>            OS assets (Range, HEAD, no listings)
    GET  /ipxe/<file>                        iPXE binaries over HTTP (UEFI HTTP boot)
    GET  /v1/boot/iso/<host>.iso?token=I     the host's boot ISO, virtual_media hosts only (ISO token, see iso_token)
    GET  /v1/boot/iso-url/<host>             that URL, with the ISO token of the current install   (admin token)
    GET  /v1/boot/deploy/<host>?token=T      image profiles: the deploy ramdisk's instructions    (install token)
    POST /v1/boot/progress/<host>?token=T    the deploy ramdisk's progress report (install token; small, rate-limited)
    POST /v1/boot/callback/<host>?token=T    the installer is done: host -> localboot (install token, once);
                                             {"result": "failure", "reason": ...} -> host failed
    POST /v1/boot/phone-home/<host>?token=P  the installed OS came up (its own one-time token, see phone_home_token)
    POST /v1/inspect/<mac>                   discovery: an unknown machine's inspection report (no token: see below)
    GET  /v1/boot/status/<host>              JSON state of a host (no token values)
    POST /v1/boot/install/<host>             arm a host for install      (admin token)
    POST /v1/boot/wipe/<host>                arm a host for a wipe of its disks (decommission), body
                                             {"erase": "signatures"|"full"}   (admin token)
    POST /v1/boot/localboot/<host>           disarm a host               (admin token)
    GET  /healthz

Decommission: a host that leaves the SoT is kept as *retired* (its last rendering: MACs,
reservation, wipe script) when a new bundle is swapped in (``set_bundle``), so it can still be
armed for its wipe and boot it. The wipe's success callback leaves it ``wiped``: its MACs get the
unknown-MAC script, its reservation leaves the DHCP hosts file (``dhcp_hosts``, applied through
``on_dhcp_change``) and a retired host is forgotten.

Discovery (the site's ``discovery.enabled``): an unknown MAC gets the inspection script (the deploy
ramdisk in inspection mode, render.ipxe.inspect_script) instead of the one that installs nothing,
and its report comes back to ``POST /v1/inspect/<mac>``. That route has no token (the machine is
unknown: nothing could have given it one), so it is bounded instead: discovery off 404; a MAC the
site knows 409; one accepted report per MAC every INSPECT_WINDOW seconds, 429 otherwise; 503 when
the inbox holds its cap of machines; the body at most MAX_REPORT_BYTES (413) before it is parsed
into an InspectionReport (422 with the reason); the path's MAC must be the report's boot MAC (400).
An accepted report is on disk in the inbox (vaquero.inspect.inbox) before the 202; ``on_inspection``
then hands it on (the federation's sync loop, or the standalone controller's store).

Admin routes deny by default: a BootApp without an admin token refuses them all (the agent
service always gives it one, see service.admin_token). Install tokens: see state.py. Configs
are never on the pre-rendered fast path, because that path does not see query strings.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import mmap
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError

from vaquero.inspect.inbox import InboxFull, InspectionInbox
from vaquero.inspect.report import MAX_REPORT_BYTES, InspectionReport
from vaquero.render.boot_iso import BASE_ISO, IsoError, build_iso
from vaquero.render.bundle import HostBoot, SiteBundle
from vaquero.render.deploy import with_erase
from vaquero.render.ipxe import MAC_PLACEHOLDER, mac_key, unknown_script
from vaquero.render.site import RenderError
from vaquero.sot.templates import PHONE_HOME_PLACEHOLDER, TOKEN_PLACEHOLDER

from .state import ERASE_MODES, TOKEN_RE, BootStates, StateError, TokenRefused, token_hint

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
# status, headers, body, host, script kind, and the headers as raw HTTP bytes (for fasthttp)
Prepared = tuple[int, Headers, bytes, str | None, str | None, bytes]

CHUNK = 1 << 20
MAX_CALLBACK = 64 << 10
MAX_PROGRESS = 1024  # bytes of one progress report
MAX_REASON = 2000  # characters of a failure callback's reason kept
# At most PROGRESS_BURST reports per host within PROGRESS_WINDOW seconds (the ramdisk sends one every few
# seconds): more are answered 429 and not kept, so a flood costs neither memory nor disk writes.
PROGRESS_BURST = 4
PROGRESS_WINDOW = 2.0
PROGRESS_PHASES = frozenset({"started", "disk", "writing", "written", "resized", "seeded", "wiping", "wiped"})
# One accepted inspection report per MAC in this many seconds: a machine reports once per boot.
INSPECT_WINDOW = 30.0
MAX_UNKNOWN_MACS = 4096  # distinct unknown MACs counted (a bound on what requests can make the agent keep)
MAX_ADMIN_BODY = 1024  # bytes of an admin call's JSON body (the wipe's erase mode)
_DISK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
# Bounds on what is parsed from a request: int() of thousands of digits raises (and costs CPU),
# 19 digits already exceed any file size.
MAX_RANGE_HEADER = 128
MAX_AUTH_HEADER = 1024
MAX_QUERY = 1024
_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")
_NOCLOUD_FILES = ("user-data", "meta-data", "vendor-data")
_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"
_CONFIG_TYPES = {"ignition": _JSON, "preseed": _TEXT}


def _prepared(status: int, body: bytes, ctype: bytes = _TEXT, host: str | None = None, kind: str | None = None) -> Prepared:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    raw = b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n"
    return (status, headers, body, host, kind, raw)


def safe_path(root: Path, rel: str, *, follow_file_links: bool = False) -> Path | None:
    """root/rel when rel is a plain relative path to a regular file inside root, else None.

    follow_file_links (the iPXE root): a file that is a symlink in root is followed wherever it
    points, as the TFTP server does (Debian's /usr/lib/ipxe/ipxe.efi -> /boot/ipxe.efi); folders on
    the way must still be real folders inside root. Asset roots never follow links out of root."""
    if not rel or "\x00" in rel or "\\" in rel or rel.startswith("/"):
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    candidate = root.joinpath(*parts)
    try:
        real = candidate.resolve(strict=True)
        top = root.resolve(strict=True)
        # Only a followed link needs its folder resolved too (asset requests are the hot path).
        inside = candidate.parent.resolve(strict=True) == top.joinpath(*parts[:-1]) if follow_file_links else real.is_relative_to(top)
    except (OSError, RuntimeError):
        return None
    if not inside or not real.is_file():
        return None
    return real


def header(scope: Scope, name: bytes, limit: int) -> bytes | None:
    """The first `name` header, or None when absent or longer than `limit` (treated as absent)."""
    for k, v in scope.get("headers", ()):
        if k == name:
            return v if len(v) <= limit else None
    return None


def bearer(scope: Scope) -> bytes | None:
    """The bearer token as raw bytes: compared as bytes, so a non-ASCII header is just a wrong token."""
    auth = header(scope, b"authorization", MAX_AUTH_HEADER)
    if auth is None:
        return None
    scheme, _, value = auth.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not value.strip():
        return None
    return value.strip()


def query_token(scope: Scope) -> str | None:
    raw: bytes = scope.get("query_string") or b""
    if not raw or len(raw) > MAX_QUERY:
        return None
    try:
        pairs = parse_qsl(raw.decode("ascii"), max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        return None
    return next((v for k, v in pairs if k == "token"), None)


def iso_token(install_token: str, host: str) -> str:
    """The token of a host's boot ISO URL, derived from its install token (HMAC-SHA256, URL-safe).

    The ISO URL sits in the BMC's VirtualMedia ``Image`` for anyone who can read the BMC, and the
    BMC fetches it from its own address: it carries a capability for the ISO only (which holds
    nothing secret), valid while the host is armed, never the install token itself, which fetches
    the host's config and makes its callback."""
    mac = hmac.new(install_token.encode(), f"vaquero-boot-iso:{host}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def phone_home_token(install_token: str, host: str) -> str:
    """The installed OS's one-time phone-home token, derived from the install token (HMAC-SHA256,
    URL-safe). The deploy ramdisk (or an installer through its config) writes the URL carrying it to the disk; the agent keeps only its
    digest once the ramdisk's callback has used the install token up."""
    mac = hmac.new(install_token.encode(), f"vaquero-phone-home:{host}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _with_tokens(rendered: bytes, token: str, host: str) -> bytes:
    """A rendered config or deploy text with this install's token and the phone-home token derived
    from it put in for their placeholders (both URL-safe base64: nothing to quote)."""
    return rendered.replace(TOKEN_PLACEHOLDER.encode(), token.encode()).replace(PHONE_HOME_PLACEHOLDER.encode(), phone_home_token(token, host).encode())


def progress_event(report: Any) -> dict[str, Any] | None:
    """A deploy progress report as the agent keeps it, or None when it is not one: a known phase,
    byte counts as non-negative integers below 2**53, a kernel disk name. Nothing else is kept."""
    if not isinstance(report, dict) or set(report) - {"phase", "bytes", "total", "disk"}:
        return None
    phase = report.get("phase")
    if phase not in PROGRESS_PHASES:
        return None
    event: dict[str, Any] = {"phase": phase}
    for key in ("bytes", "total"):
        value = report.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 53:
            return None
        event[key] = value
    disk = report.get("disk")
    if disk is not None:
        if not isinstance(disk, str) or not _DISK_NAME.fullmatch(disk):
            return None
        event["disk"] = disk
    return event


def loggable(path: str) -> str:
    """A request path fit for a log: a NoCloud seed's token segment is masked."""
    if path.startswith("/v1/boot/nocloud/"):
        parts = path.split("/")
        if len(parts) == 7:  # "", v1, boot, nocloud, host, token, file
            parts[5] = "***"
            path = "/".join(parts)
    return path[:256]


def is_escape(rel: str) -> bool:
    return rel.startswith("/") or "\\" in rel or "\x00" in rel or any(p in (".", "..") for p in rel.split("/"))


class BootApp:
    def __init__(
        self,
        bundle: SiteBundle,
        states: BootStates,
        *,
        asset_root: Path,
        ipxe_root: Path | None = None,
        admin_token: str | None = None,
        on_change: Callable[[str], None] | None = None,
        on_dhcp_change: Callable[[], None] | None = None,
        access_log: bool = False,
        iso_dir: Path | None = None,
        iso_base: Path = BASE_ISO,
        inbox: InspectionInbox | None = None,
    ) -> None:
        self.bundle = bundle
        self.inbox = inbox  # None: this agent keeps no inspection reports (discovery answers 503)
        self.on_inspection: Callable[[], None] | None = None  # a report was put in the inbox: hand it on
        self.inspect_times: dict[str, float] = {}  # MAC -> when its last report was accepted
        self.iso_dir = iso_dir  # None: no boot ISOs served (virtual_media needs the agent to give one)
        self.iso_base = iso_base
        self.states = states
        self.asset_root = asset_root
        self.ipxe_root = ipxe_root
        self.admin_token = admin_token
        self.on_change = on_change
        self.on_dhcp_change = on_dhcp_change  # the reservations changed (a host was wiped): re-apply dhcp_hosts()
        self.retired: dict[str, HostBoot] = {}  # hosts of an earlier bundle, kept until wiped (decommission)
        self.access_log = access_log
        self.prepared: dict[str, Prepared] = {}
        self.unknown = _prepared(200, unknown_script().encode())
        self.unknown_macs: dict[str, int] = {}
        self.unready: dict[str, str] = {}  # hosts that cannot be installed (missing assets) and why
        self.progress_times: dict[str, list[float]] = {}  # host -> when its recent progress reports came
        self.rebuild()

    # -- pre-rendering --
    def host(self, name: str) -> HostBoot | None:
        """A host this agent serves: one of the bundle's, or a retired one awaiting its wipe."""
        return self.bundle.hosts.get(name) or self.retired.get(name)

    def _host_script(self, name: str) -> Prepared | None:
        """The host's script; None for a wiped host (its MACs get the unknown-MAC script)."""
        hb = self.host(name)
        assert hb is not None
        st = self.states.get(name)
        # An armed host without a token would boot an installer that cannot call back: fail closed.
        if st.mode == "install" and hb.install is not None and st.token and name in self.bundle.hosts:
            return _prepared(200, hb.install.replace(TOKEN_PLACEHOLDER, st.token).encode(), host=name, kind="install")
        if st.mode == "wipe" and hb.wipe is not None and st.token:
            return _prepared(200, hb.wipe.replace(TOKEN_PLACEHOLDER, st.token).encode(), host=name, kind="wipe")
        if st.mode == "none":
            return None
        return _prepared(200, hb.localboot.encode(), host=name, kind="localboot")

    def _served(self) -> dict[str, HostBoot]:
        return {**self.retired, **self.bundle.hosts}

    def rebuild(self, only: str | None = None) -> None:
        """Pre-render responses: all of them, or one host's script after its state changed."""
        b = self.bundle
        if only is not None:
            hb = self.host(only)
            if hb is None:
                return
            script = self._host_script(only)
            for mac in hb.macs:
                key = f"/v1/boot/ipxe/{mac_key(mac)}"
                if script is None:
                    self.prepared.pop(key, None)
                else:
                    self.prepared[key] = script
            return
        prepared: dict[str, Prepared] = {"/boot.ipxe": _prepared(200, b.chain.encode()), "/healthz": _prepared(200, b"ok\n")}
        for name, hb in self._served().items():
            script = self._host_script(name)
            if script is None:
                continue
            for mac in hb.macs:
                prepared[f"/v1/boot/ipxe/{mac_key(mac)}"] = script
        self.prepared = prepared

    def set_bundle(self, bundle: SiteBundle) -> None:
        """Serve a new bundle. Hosts the old one had and the new one has not are kept as retired (their
        last rendering) until they are wiped, so a decommission can still boot them; a host back in
        the SoT is served from the new bundle again."""
        departed = {n: hb for n, hb in self.bundle.hosts.items() if n not in bundle.hosts}
        kept = {n: hb for n, hb in {**self.retired, **departed}.items() if n not in bundle.hosts and self.states.get(n).state != "wiped"}
        for name in departed:
            if name in kept:
                log.info("host left the SoT: kept as retired until it is wiped", extra={"host": name, "event": "boot.retired"})
        self.retired = kept
        self.bundle = bundle
        self.rebuild()

    def dhcp_hosts(self) -> str:
        """The dhcp-hostsfile: the reservations of the bundle's and the retired hosts, but no wiped host's."""
        lines = [ln for n, hb in sorted(self._served().items()) if self.states.get(n).state != "wiped" for ln in hb.dhcp_lines]
        return "".join(f"{ln}\n" for ln in lines)

    # -- ASGI --
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self.access_log:
                return await self._logged(scope, receive, send)
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method == "GET" or method == "HEAD":
            hit = self.prepared.get(scope["path"])
            if hit is not None:
                status, headers, body, host, kind, _ = hit
                if kind is not None and host is not None:
                    self.states.served(host, kind)
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body if method == "GET" else b""})
                return
        await self._dispatch(scope, receive, send, method)

    async def _logged(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Our own access log instead of uvicorn's: uvicorn logs query strings, which carry install tokens.
        status = [0]
        t0 = time.monotonic()

        async def logging_send(msg: MutableMapping[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]
            await send(msg)

        try:
            await self._http(scope, receive, logging_send)
        finally:
            client = (scope.get("client") or ("?", 0))[0]
            log.info('%s "%s %s" %d %.1fms', client, scope["method"], loggable(scope["path"]), status[0], (time.monotonic() - t0) * 1000)

    async def _reply(self, send: Send, status: int, body: bytes | dict[str, Any], method: str = "GET") -> None:
        if isinstance(body, dict):
            data, ctype = (json.dumps(body, sort_keys=True) + "\n").encode(), _JSON
        else:
            data, ctype = body, _TEXT
        st, headers, payload, _, _, _ = _prepared(status, data, ctype)
        await send({"type": "http.response.start", "status": st, "headers": headers})
        await send({"type": "http.response.body", "body": payload if method != "HEAD" else b""})

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send, method: str) -> None:
        path: str = scope["path"]
        client = (scope.get("client") or ("?", 0))[0]
        if method in ("GET", "HEAD"):
            if path.startswith("/v1/boot/ipxe/"):
                return await self._unknown(path[len("/v1/boot/ipxe/") :], client, send, method)
            if path.startswith("/assets/"):
                return await self._file(self.asset_root, path[len("/assets/") :], scope, send, method, client)
            if path.startswith("/ipxe/") and self.ipxe_root is not None:
                return await self._file(self.ipxe_root, path[len("/ipxe/") :], scope, send, method, client, follow_file_links=True)
            if path.startswith("/v1/boot/status/"):
                name = path[len("/v1/boot/status/") :]
                if self.host(name) is None and name not in self.states.hosts:
                    return await self._reply(send, 404, {"error": f"unknown host {name!r}"}, method)
                return await self._reply(send, 200, self.states.to_dict(name), method)
            if path.startswith("/v1/boot/iso-url/"):
                return await self._iso_url(path[len("/v1/boot/iso-url/") :], scope, send, method, client)
            if path.startswith("/v1/boot/iso/"):
                return await self._iso(path[len("/v1/boot/iso/") :], query_token(scope), scope, send, method, client)
            if path.startswith("/v1/boot/deploy/"):
                return await self._deploy(path[len("/v1/boot/deploy/") :], query_token(scope), send, method, client)
            if path.startswith("/v1/boot/config/"):
                return await self._config(path[len("/v1/boot/config/") :], "config", query_token(scope), send, method, client)
            if path.startswith("/v1/boot/nocloud/"):
                parts = path[len("/v1/boot/nocloud/") :].split("/")
                if len(parts) == 3:  # <host>/<token>/<file>: cloud-init appends file names to its seed URL
                    return await self._config(parts[0], parts[2], parts[1], send, method, client)
                if len(parts) == 2:
                    return await self._config(parts[0], parts[1], query_token(scope), send, method, client)
            return await self._reply(send, 404, b"not found\n", method)
        if method == "POST":
            if path.startswith("/v1/boot/callback/"):
                return await self._callback(path[len("/v1/boot/callback/") :], scope, receive, send, client)
            if path.startswith("/v1/boot/progress/"):
                return await self._progress(path[len("/v1/boot/progress/") :], scope, receive, send, client)
            if path.startswith("/v1/boot/phone-home/"):
                return await self._phone_home(path[len("/v1/boot/phone-home/") :], scope, receive, send, client)
            if path.startswith("/v1/inspect/"):
                return await self._inspect(path[len("/v1/inspect/") :], scope, receive, send, client)
            for prefix, action in (("/v1/boot/install/", "install"), ("/v1/boot/localboot/", "localboot"), ("/v1/boot/wipe/", "wipe")):
                if path.startswith(prefix):
                    return await self._admin(action, path[len(prefix) :], scope, send, client, receive)
            return await self._reply(send, 404, b"not found\n")
        return await self._reply(send, 405, b"method not allowed\n")

    async def _unknown(self, key: str, client: str, send: Send, method: str) -> None:
        try:
            mac = mac_key(key)
        except ValueError:
            log.warning("iPXE script requested for a malformed MAC %r from %s", key[:64], client, extra={"host": client})
            return await self._reply(send, 400, b"malformed MAC\n", method)
        # counted per MAC, up to MAX_UNKNOWN_MACS of them: anyone on the network can invent MACs
        if mac in self.unknown_macs or len(self.unknown_macs) < MAX_UNKNOWN_MACS:
            self.unknown_macs[mac] = self.unknown_macs.get(mac, 0) + 1
        script, why = self._inspection_script(mac)
        if script is not None:
            log.warning("unknown MAC %s from %s: served the inspection ramdisk (discovery)", mac, client, extra={"host": mac, "event": "inspect.boot"})
            status, headers, body, _, _, _ = _prepared(200, script.encode())
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body if method == "GET" else b""})
            return
        log.warning("unknown MAC %s from %s: served the script that installs nothing%s", mac, client, f" ({why})" if why else "", extra={"host": mac})
        status, headers, body, _, _, _ = self.unknown
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body if method == "GET" else b""})

    def _known(self, mac: str) -> bool:
        """A MAC of a host this agent serves or once served (a wiped host keeps the plain unknown script)."""
        return mac in self.bundle.by_mac or any(mac_key(m) == mac for hb in self.retired.values() for m in hb.macs)

    def _inspection_script(self, mac: str) -> tuple[str | None, str]:
        """The inspection script for `mac` (a mac_key), or None and why the plain unknown script is served."""
        b = self.bundle
        if not b.discovery:
            return None, ""
        if self._known(mac):
            return None, "a MAC of a host of this site: discovery does not boot it"
        if b.inspect is None:
            return None, f"discovery is on but {b.inspect_why}"
        missing = [rel for rel in b.inspect_assets if safe_path(self.asset_root, rel) is None]
        if missing:
            return None, f"discovery is on but this agent does not hold the ramdisk ({', '.join(missing)})"
        return b.inspect.replace(MAC_PLACEHOLDER, mac), ""

    async def _inspect(self, key: str, scope: Scope, receive: Receive, send: Send, client: str) -> None:
        """An unknown machine's inspection report: checked, bounded, kept in the inbox (see the module doc)."""
        if not self.bundle.discovery:
            return await self._reply(send, 404, {"error": "this site does not enroll unknown machines (discovery is off)"})
        try:
            mac = mac_key(key[:64])
        except ValueError:
            return await self._reply(send, 400, {"error": "the path does not end in a MAC address"})
        if self._known(mac):
            log.warning("inspection report for known MAC %s from %s refused", mac, client, extra={"host": mac})
            return await self._reply(send, 409, {"error": "this MAC belongs to a host of the site: a known host is not inspected"})
        if self.inbox is None:
            return await self._reply(send, 503, {"error": "this agent keeps no inspection reports"})
        now = time.monotonic()
        last = self.inspect_times.get(mac)
        if last is not None and now - last < INSPECT_WINDOW:
            return await self._reply(send, 429, {"error": f"one report per machine every {INSPECT_WINDOW:g} s"})
        if self.inbox.full(mac):
            log.warning("inspection report of %s from %s refused: the inbox is full", mac, client, extra={"host": mac})
            return await self._reply(send, 503, {"error": "too many machines' reports are waiting for the controller"})
        declared = header(scope, b"content-length", 20)
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_REPORT_BYTES):
            return await self._reply(send, 413, {"error": f"an inspection report is at most {MAX_REPORT_BYTES} bytes"})
        body = await self._read_body(receive, MAX_REPORT_BYTES)
        if body is None:
            return await self._reply(send, 413, {"error": f"an inspection report is at most {MAX_REPORT_BYTES} bytes"})
        try:
            report = InspectionReport.model_validate_json(body)
        except ValidationError as exc:
            # The reasons name fields and the rule broken; the input values stay out (they are hostile).
            why = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors(include_input=False)[:5])
            log.warning("inspection report of %s from %s refused: %s", mac, client, why[:300], extra={"host": mac})
            return await self._reply(send, 422, {"error": why[:1000]})
        if mac_key(report.boot_mac) != mac:
            return await self._reply(send, 400, {"error": "the report's boot_mac is not the MAC of the path"})
        try:
            self.inbox.put(report)
        except InboxFull as exc:
            return await self._reply(send, 503, {"error": str(exc)})
        if len(self.inspect_times) > 4 * self.inbox.cap:
            self.inspect_times = {m: t for m, t in self.inspect_times.items() if now - t < INSPECT_WINDOW}
        self.inspect_times[mac] = now
        log.info("inspection report of %s from %s kept for enrollment", mac, client, extra={"host": mac, "event": "inspect.report"})
        if self.on_inspection is not None:
            try:
                self.on_inspection()
            except Exception:  # the report is kept: it goes at the next delivery
                log.exception("handing on the inspection report failed; it stays in the inbox", extra={"host": mac})
        return await self._reply(send, 202, {"mac": report.boot_mac, "kept": True})

    async def _file(self, root: Path, rel: str, scope: Scope, send: Send, method: str, client: str, *, follow_file_links: bool = False) -> None:
        if is_escape(rel):
            log.warning("path escape refused: %r from %s", rel, client, extra={"host": client})
            return await self._reply(send, 400, b"bad path\n", method)
        real = safe_path(root, rel, follow_file_links=follow_file_links)
        if real is None:
            log.warning("no such file: %r from %s", rel, client, extra={"host": client})
            return await self._reply(send, 404, b"not found\n", method)
        st = os.stat(real)
        size = st.st_size
        start, end, status = 0, size - 1, 200
        headers: Headers = [
            (b"content-type", b"application/octet-stream"),
            (b"accept-ranges", b"bytes"),
            (b"etag", f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{size:x}"'.encode()),
        ]
        raw_range = header(scope, b"range", MAX_RANGE_HEADER)  # absurd ranges are ignored: the whole file, as RFC 9110 allows
        rng = raw_range.decode("latin-1").strip() if raw_range is not None else None
        if rng is not None:
            m = _RANGE.match(rng)
            if m is None or (not m.group(1) and not m.group(2)):
                m = None  # unsupported (e.g. several ranges): serve the whole file, as RFC 9110 allows
            if m is not None:
                a, b = m.group(1), m.group(2)
                if a:
                    start = int(a)
                    end = min(int(b), size - 1) if b else size - 1
                else:
                    start = max(size - int(b), 0)
                if start >= size or start > end:
                    headers = [(b"content-range", f"bytes */{size}".encode()), (b"content-length", b"0")]
                    await send({"type": "http.response.start", "status": 416, "headers": headers})
                    await send({"type": "http.response.body", "body": b""})
                    return
                status = 206
                headers.append((b"content-range", f"bytes {start}-{end}/{size}".encode()))
        length = end - start + 1 if size else 0
        headers.append((b"content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if method == "HEAD" or length == 0:
            await send({"type": "http.response.body", "body": b""})
            return
        if status == 200 and "http.response.pathsend" in (scope.get("extensions") or {}):
            await send({"type": "http.response.pathsend", "path": str(real)})
            return
        # mmap + memoryview slices: the server writes straight from the page cache, no read() copy.
        # The map is not closed by hand: the transport may still hold slices; GC unmaps it.
        with open(real, "rb") as fh:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        view = memoryview(mm)
        pos, stop = start, end + 1
        while pos < stop:
            nxt = min(pos + CHUNK, stop)
            await send({"type": "http.response.body", "body": view[pos:nxt], "more_body": nxt < stop})
            pos = nxt

    async def _read_body(self, receive: Receive, limit: int) -> bytes | None:
        body = b""
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            body += msg.get("body", b"")
            if len(body) > limit:
                return None
            if not msg.get("more_body", False):
                return body

    async def _refused(self, send: Send, what: str, name: str, token: str | None, client: str, exc: TokenRefused, method: str = "GET") -> None:
        log.warning("%s of %r from %s refused: %s (token %s)", what, name[:64], client, exc, token_hint(token), extra={"host": name[:64]})
        return await self._reply(send, exc.status, {"error": str(exc)}, method)

    async def _config(self, name: str, file: str, token: str | None, send: Send, method: str, client: str) -> None:
        # The token is checked before anything about the host is looked at: no probing of names.
        try:
            self.states.authorize(name, token, client)
        except TokenRefused as exc:
            return await self._refused(send, "config", name, token, client, exc, method)
        hb = self.bundle.hosts.get(name)
        if self.states.get(name).state != "install":  # a wipe's token fetches no config
            hb = None
        if hb is None or hb.config is None or (file != "config" and (hb.config_format != "cloud-init" or file not in _NOCLOUD_FILES)):
            return await self._reply(send, 404, b"not found\n", method)
        assert token is not None  # authorize() refuses a missing token
        config = _with_tokens(hb.config, token, name)
        if file == "config":
            ctype = _CONFIG_TYPES.get(hb.config_format or "", b"text/cloud-config; charset=utf-8")
            status, headers, body, _, _, _ = _prepared(200, config, ctype)
        else:
            data = {"user-data": config, "meta-data": hb.meta_data, "vendor-data": b""}[file]
            status, headers, body, _, _, _ = _prepared(200, data)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body if method == "GET" else b""})

    async def _deploy(self, name: str, token: str | None, send: Send, method: str, client: str) -> None:
        # The token first, as for configs: no probing of host names.
        try:
            self.states.authorize(name, token, client)
        except TokenRefused as exc:
            return await self._refused(send, "deploy instructions", name, token, client, exc, method)
        hb = self.host(name)
        st = self.states.get(name)
        assert token is not None  # authorize() refuses a missing token
        if st.state == "wipe":
            if hb is None or hb.wipe_instructions is None:
                return await self._reply(send, 404, b"not found\n", method)
            # The erase mode was checked when the host was armed, and is checked again here.
            body = with_erase(hb.wipe_instructions, st.erase or "").replace(TOKEN_PLACEHOLDER.encode(), token.encode())
            log.info("wipe instructions served (erase %s)", st.erase, extra={"host": name, "event": "wipe.instructions"})
            return await self._reply(send, 200, body, method)
        if hb is None or hb.deploy is None or name not in self.bundle.hosts:
            return await self._reply(send, 404, b"not found\n", method)
        # Both tokens are URL-safe base64 (TOKEN_RE): nothing to quote in a key='value' line.
        body = _with_tokens(hb.deploy, token, name)
        log.info("deploy instructions served", extra={"host": name, "event": "deploy.instructions"})
        return await self._reply(send, 200, body, method)

    async def _progress(self, name: str, scope: Scope, receive: Receive, send: Send, client: str) -> None:
        token = query_token(scope)
        try:
            self.states.authorize(name, token, client)
        except TokenRefused as exc:
            return await self._refused(send, "deploy progress", name, token, client, exc, "POST")
        now = time.monotonic()
        recent = [t for t in self.progress_times.get(name, []) if now - t < PROGRESS_WINDOW]
        if len(recent) >= PROGRESS_BURST:
            self.progress_times[name] = recent
            return await self._reply(send, 429, {"error": f"more than {PROGRESS_BURST} progress reports in {PROGRESS_WINDOW:g} s"})
        self.progress_times[name] = [*recent, now]
        body = await self._read_body(receive, MAX_PROGRESS)
        if body is None:
            return await self._reply(send, 413, {"error": f"progress report larger than {MAX_PROGRESS} bytes"})
        try:
            event = progress_event(json.loads(body))
        except (json.JSONDecodeError, UnicodeDecodeError):
            event = None
        if event is None:
            log.warning("malformed deploy progress from %s refused", client, extra={"host": name})
            return await self._reply(send, 400, {"error": 'a progress report is {"phase": ..., "bytes": N, "total": N, "disk": "name"}'})
        try:
            self.states.progress(name, event, token, client)
        except TokenRefused as exc:
            return await self._refused(send, "deploy progress", name, token, client, exc, "POST")
        log.info("deploy %s: %s bytes", event["phase"], event.get("bytes", "-"), extra={"host": name, "event": f"deploy.{event['phase']}"})
        return await self._reply(send, 200, {"host": name, "kept": event})

    async def _phone_home(self, name: str, scope: Scope, receive: Receive, send: Send, client: str) -> None:
        token = query_token(scope)
        body = await self._read_body(receive, MAX_CALLBACK)
        try:
            report = json.loads(body) if body and body.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            report = None
        if not isinstance(report, dict):
            return await self._reply(send, 400, {"error": f"a phone-home body is a JSON object of at most {MAX_CALLBACK} bytes"})
        try:
            self.states.phoned_home(name, token, {**report, "_client": client})
        except TokenRefused as exc:
            return await self._refused(send, "phone home", name, token, client, exc, "POST")
        return await self._reply(send, 200, {"host": name, "phoned_home": True})

    async def _iso_url(self, name: str, scope: Scope, send: Send, method: str, client: str) -> None:
        given = bearer(scope)
        if self.admin_token is None or given is None or not hmac.compare_digest(given, self.admin_token.encode()):
            log.warning("boot ISO URL of %r from %s refused: bad or missing token", name[:64], client, extra={"host": name[:64]})
            return await self._reply(send, 401, {"error": "missing or wrong bearer token"}, method)
        hb = self.bundle.hosts.get(name)
        if hb is None or hb.iso_script is None or self.iso_dir is None:
            return await self._reply(send, 404, {"error": f"host {name[:64]!r} has no boot ISO here (boot method virtual_media)"}, method)
        st = self.states.get(name)
        if st.state != "install" or not st.token:
            return await self._reply(send, 409, {"error": f"host {name} is not armed for install: its boot ISO is not served"}, method)
        url = f"{self.bundle.base_url}/v1/boot/iso/{name}.iso?token={iso_token(st.token, name)}"
        return await self._reply(send, 200, {"host": name, "url": url}, method)

    async def _iso(self, file: str, token: str | None, scope: Scope, send: Send, method: str, client: str) -> None:
        name = file[: -len(".iso")] if file.endswith(".iso") else ""
        # The token first, as for configs. Not bound to an address: the BMC fetches the ISO from its
        # own, maybe in ranges while the host already boots from it.
        st = self.states.hosts.get(name)
        armed = st.token if st is not None and st.state == "install" else None
        if not token or not TOKEN_RE.fullmatch(token) or armed is None or not hmac.compare_digest(token, iso_token(armed, name)):
            refused = TokenRefused(401, "missing, malformed or stale boot ISO token")
            return await self._refused(send, "boot ISO", name, token, client, refused, method)
        hb = self.bundle.hosts.get(name)
        if hb is None or hb.iso_script is None or self.iso_dir is None:
            return await self._reply(send, 404, b"not found\n", method)
        try:
            # Built once per content and cached: a thread, so a first build never stalls the boot scripts.
            iso = await asyncio.to_thread(build_iso, name, hb.iso_script, self.iso_dir, base_iso=self.iso_base)
        except IsoError as exc:
            log.error("boot ISO of %s cannot be built: %s", name, exc, extra={"host": name})
            return await self._reply(send, 503, {"error": f"boot ISO of {name} cannot be built"}, method)
        return await self._file(self.iso_dir, iso.name, scope, send, method, client)

    async def _callback(self, name: str, scope: Scope, receive: Receive, send: Send, client: str) -> None:
        token = query_token(scope)
        try:
            # Checked before the body is read; not bound here: a refused callback changes nothing.
            self.states.authorize(name, token, client, bind=False)
        except TokenRefused as exc:
            return await self._refused(send, "callback", name, token, client, exc)
        hb = self.host(name)
        if hb is None:  # armed under an older bundle that no longer has the host
            log.warning("callback from %s refused: the host is not in the bundle served", client, extra={"host": name[:64]})
            return await self._reply(send, 404, {"error": f"unknown host {name[:64]!r}"})
        body = await self._read_body(receive, MAX_CALLBACK)
        if body is None:
            log.warning("callback from %s refused: body missing or larger than %d bytes", client, MAX_CALLBACK, extra={"host": name})
            return await self._reply(send, 413, {"error": f"callback body larger than {MAX_CALLBACK} bytes"})
        try:
            report = json.loads(body) if body.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            log.warning("malformed callback from %s refused: %s", client, exc, extra={"host": name})
            return await self._reply(send, 400, {"error": f"callback body is not JSON: {exc}"})
        if not isinstance(report, dict):
            log.warning("malformed callback from %s refused: not a JSON object", client, extra={"host": name})
            return await self._reply(send, 400, {"error": "callback body must be a JSON object"})
        mac = report.get("mac")
        if mac is not None:
            try:
                own = mac_key(str(mac)[:64]) in {mac_key(m) for m in hb.macs}
            except RenderError:
                own = False
            if not own:
                log.warning("callback from %s refused: MAC %r is not one of the host's", client, str(mac)[:64], extra={"host": name})
                return await self._reply(send, 403, {"error": "the reported MAC is not one of this host's"})
        result = report.get("result", "success")
        if result not in ("success", "failure"):
            return await self._reply(send, 400, {"error": "result must be success or failure"})
        failed = result == "failure"
        if failed:
            # Whatever the installer says, the reason is one bounded line of text.
            report["reason"] = " ".join(str(report.get("reason") or "no reason given").split())[:MAX_REASON]
        report = {**report, "_client": client}
        assert token is not None  # authorize() refused a missing token
        wiping = self.states.get(name).state == "wipe"
        if wiping and not failed:
            zeroed = report.get("bytes_zeroed")
            if not isinstance(zeroed, int) or isinstance(zeroed, bool) or not 0 < zeroed < 1 << 62:
                # A wipe that cannot say what it zeroed did not show it zeroed anything: not a success.
                failed = True
                report["reason"] = "the wipe called back success without a positive bytes_zeroed count"
        phone = phone_home_token(token, name) if hb.phone_home and not wiping else None
        try:
            self.states.installed(name, report, token, client, failed=failed, phone_home=phone)
        except TokenRefused as exc:
            return await self._refused(send, "callback", name, token, client, exc)
        except StateError as exc:
            log.warning("callback from %s refused: %s", client, exc, extra={"host": name})
            return await self._reply(send, 409, {"error": str(exc)})
        self.rebuild(only=name)
        if failed:
            log.error("the installer failed: %s", report["reason"], extra={"host": name, "event": "boot.failed"})
            return await self._reply(send, 200, {"host": name, "state": "failed", "script": "localboot"})
        if wiping:
            self._forget(name)
            return await self._reply(send, 200, {"host": name, "state": "wiped", "script": "none"})
        if self.on_change is not None:
            self.on_change(name)
        return await self._reply(send, 200, {"host": name, "state": "installed", "script": "localboot"})

    def _forget(self, name: str) -> None:
        """A wiped host: no script (already dropped by rebuild), no reservation, no longer retired."""
        self.retired.pop(name, None)
        log.info("host wiped: its DHCP reservation and iPXE script are dropped", extra={"host": name, "event": "boot.dropped"})
        if self.on_dhcp_change is not None:
            try:
                self.on_dhcp_change()
            except Exception:  # the callback was taken; the reservation goes at the next apply
                log.exception("the DHCP reservations could not be re-applied", extra={"host": name})

    async def _wipe_body(self, receive: Receive) -> str | None:
        body = await self._read_body(receive, MAX_ADMIN_BODY)
        try:
            value = json.loads(body) if body else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        erase = value.get("erase") if isinstance(value, dict) else None
        return erase if isinstance(erase, str) and erase in ERASE_MODES else None

    async def _admin(self, action: str, name: str, scope: Scope, send: Send, client: str, receive: Receive | None = None) -> None:
        given = bearer(scope)
        if self.admin_token is None or given is None or not hmac.compare_digest(given, self.admin_token.encode()):
            log.warning("%s of %r from %s refused: bad or missing token", action, name[:64], client, extra={"host": name[:64]})
            return await self._reply(send, 401, {"error": "missing or wrong bearer token"})
        if action in ("wipe", "localboot") and self.host(name) is None and self.states.get(name).state == "wiped":
            # Wiped and forgotten: nothing is served to it any more, which is what both ask for at most.
            return await self._reply(send, 200 if action == "localboot" else 409, self.states.to_dict(name))
        if action == "wipe":
            hb = self.host(name)
            if hb is None:
                log.warning("wipe of unknown host %r from %s refused", name[:64], client, extra={"host": name[:64]})
                return await self._reply(send, 404, {"error": f"unknown host {name[:64]!r}: neither served nor retired here"})
            erase = await self._wipe_body(receive) if receive is not None else None
            if erase is None:
                return await self._reply(send, 400, {"error": f'a wipe needs the body {{"erase": "{ERASE_MODES[0]}"|"{ERASE_MODES[1]}"}}'})
            if hb.wipe is None:
                log.warning("wipe of %s refused: no deploy ramdisk", name, extra={"host": name})
                return await self._reply(send, 409, {"error": f"host {name} cannot be wiped: no image profile in its revision gives a deploy ramdisk to boot"})
            missing = [rel for rel in hb.wipe_assets if safe_path(self.asset_root, rel) is None]
            if missing:
                log.warning("wipe of %s refused: ramdisk files missing: %s", name, ", ".join(missing), extra={"host": name})
                return await self._reply(send, 409, {"error": f"host {name} cannot be wiped: this agent does not hold {', '.join(missing)}"})
            self.states.arm(name, wipe=erase)
            self.rebuild(only=name)
            return await self._reply(send, 200, self.states.to_dict(name))
        if action == "localboot" and name in self.retired:
            if self.states.get(name).state != "wiped":
                self.states.disarm(name)
            self.rebuild(only=name)
            return await self._reply(send, 200, self.states.to_dict(name))
        if name not in self.bundle.hosts:
            log.warning("%s of unknown host %r from %s refused", action, name[:64], client, extra={"host": name[:64]})
            return await self._reply(send, 404, {"error": f"unknown host {name[:64]!r}"})
        if action == "install":
            if self.bundle.hosts[name].install is None:
                log.warning("install of %s refused: no profile", name, extra={"host": name})
                return await self._reply(send, 409, {"error": f"host {name} has no profile to install"})
            if name in self.unready:
                log.warning("install of %s refused: %s", name, self.unready[name], extra={"host": name})
                return await self._reply(send, 409, {"error": f"host {name} cannot be installed: {self.unready[name]}"})
            self.states.arm(name)
        elif self.states.get(name).state != "wiped":  # a wiped host stays unserved until armed for install
            self.states.disarm(name)
        self.rebuild(only=name)
        return await self._reply(send, 200, self.states.to_dict(name))
