"""Waiting for a netbooting host's install callback, through the site agent's boot status.

Two things can be waited for (``wait_for``): ``install``, the installer's (or deploy ramdisk's)
callback; ``phone_home``, the installed OS's own report after it booted from its disk (image
profiles: ``vaquero-booted.service`` posts to the agent's one-time phone-home URL)."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from typing import Any

from vaquero.sot.loader import SoT

# Fields of the agent's status document that may carry when the callback arrived.
_TIME_FIELDS = ("callback_at", "installed_at", "time", "updated", "since")
WAIT_FOR = ("install", "phone_home")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CallbackError(Exception):
    pass


class AgentRefused(CallbackError):
    """The agent answered with an HTTP error status (``code``)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def status_url(sot: SoT, host: str) -> str:
    found = sot.host(host)
    if found is None:
        raise CallbackError(f"host {host} is not in the SoT at {sot.root}")
    cluster, _ = found
    site = sot.sites.get(cluster.site)
    if site is None or not site.agents:
        raise CallbackError(f"site {cluster.site} has no agent to ask about {host}")
    return f"{site.agents[0].url.rstrip('/')}/v1/boot/status/{host}"


# Agents are reached directly, never through the proxy the environment names (http_proxy,
# https_proxy): the admin calls carry the agent's bearer token, which no proxy is to see.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(req: str | urllib.request.Request, timeout: float = 5) -> tuple[int, str]:
    """(HTTP status, body) of one request; an error answer is returned too, not raised. URLError or
    OSError when no answer came."""
    try:
        with _DIRECT.open(req, timeout=timeout) as resp:
            return resp.status, resp.read(65536).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(2048).decode(errors="replace")


def _answer(req: str | urllib.request.Request, timeout: float, refused: str, unreachable: str) -> str:
    """The body of a successful answer; CallbackError starting with ``refused`` for an HTTP error,
    with ``unreachable`` when no answer came."""
    try:
        code, body = _get(req, timeout)
    except (urllib.error.URLError, OSError) as exc:
        raise CallbackError(f"{unreachable}: {getattr(exc, 'reason', exc)}") from None
    if not 200 <= code < 300:
        raise AgentRefused(f"{refused}: HTTP {code}: {body[:300]}", code)
    return body


def phoned_home(status: dict[str, Any], since: float) -> bool:
    """True when the status says the installed OS phoned home at or after `since`."""
    at = status.get("phoned_home_at")
    return isinstance(at, int | float) and not isinstance(at, bool) and float(at) >= since


def reached(status: dict[str, Any], since: float, wait_for: str = "install") -> bool:
    """`installed` or `phoned_home`, as `wait_for` says."""
    return phoned_home(status, since) if wait_for == "phone_home" else installed(status, since)


def image_report_error(status: dict[str, Any], sha256: str) -> str | None:
    """Why the deploy ramdisk's callback does not prove the image was written, else None: it must
    say ``result: success`` and the sha256 of the bytes it streamed must be the SoT's."""
    report = status.get("report")
    host = status.get("host", "the host")
    if not isinstance(report, dict):
        return f"the deploy callback of {host} has no report"
    if report.get("result") != "success":
        return f"the deploy callback of {host} says result {str(report.get('result'))[:40]!r}, not 'success'"
    got = report.get("sha256")
    if not isinstance(got, str) or not _SHA256.fullmatch(got):
        return f"the deploy callback of {host} reports no sha256 of the image it wrote"
    if got != sha256:
        return f"the deploy ramdisk of {host} wrote an image with sha256 {got}, the SoT's image has {sha256}"
    return None


def installed(status: dict[str, Any], since: float) -> bool:
    """True when the status says the install callback came, at or after `since`."""
    state = status.get("state") or status.get("mode") or status.get("status")
    if state not in ("installed", "localboot"):
        return False
    if not since:
        return True
    for key in _TIME_FIELDS:
        value = status.get(key)
        if isinstance(value, int | float):
            return float(value) >= since
    cb = status.get("callback")
    if isinstance(cb, dict):
        for key in _TIME_FIELDS:
            value = cb.get(key)
            if isinstance(value, int | float):
                return float(value) >= since
    return True  # no time reported: the install mode set before the power cycle makes it this install


def failure(status: dict[str, Any], since: float) -> str | None:
    """The reason when the status says the installer called back a failure at or after `since` (a
    deploy ramdisk that could not write its image), else None."""
    if status.get("state") != "failed":
        return None
    at = status.get("since")
    if since and isinstance(at, int | float) and float(at) < since:
        return None
    report = status.get("report")
    reason = str((report.get("reason") if isinstance(report, dict) else None) or "no reason given")[:500]
    return f"the installer of {status.get('host', 'the host')} reported a failure: {reason}"


def wait_for_callback(
    url: str, *, since: float = 0, timeout: float = 900, interval: float = 1, wait_for: str = "install", image_sha256: str | None = None
) -> dict[str, Any]:
    """Poll the boot status at `url` until `wait_for` (install or phone_home) happened at or after
    `since`. A failure the installer reported ends the wait at once (CallbackError, its reason), and
    so does, with `image_sha256` (image profiles), a callback that does not report that image."""
    if wait_for not in WAIT_FOR:
        raise CallbackError(f"wait_for must be one of {', '.join(WAIT_FOR)}, not {wait_for!r}")
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        try:
            code, body = _get(url)
            if code == 200:
                try:
                    status = json.loads(body)
                except ValueError:
                    status = {"state": "installed"} if "installed" in body else {"raw": body[:200]}
                if isinstance(status, dict) and reached(status, since, wait_for):
                    if image_sha256 is not None and wait_for == "install" and (bad := image_report_error(status, image_sha256)) is not None:
                        raise CallbackError(bad)
                    return status
                if isinstance(status, dict) and (why := failure(status, since)) is not None:
                    raise CallbackError(why)
                last = f"status {body[:200]}"
            else:
                last = f"HTTP {code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() >= deadline:
            what = "phone home from the installed OS" if wait_for == "phone_home" else "install callback"
            raise CallbackError(f"no {what} within {timeout:g}s ({url}: {last})")
        time.sleep(interval)


AGENT_TOKEN_ENV = "VAQUERO_AGENT_TOKEN"


def agent_url(sot: SoT, host: str) -> str:
    return status_url(sot, host).rsplit("/v1/boot/status/", 1)[0]


def read_status(url: str, timeout: float = 10) -> dict[str, Any]:
    """One read of a boot status URL (no token needed); CallbackError when the agent does not answer
    with a JSON object. For read-before-write and for a check-mode look without waiting."""
    body = _answer(url, timeout, f"no boot status at {url}", f"agent unreachable at {url}")
    try:
        value = json.loads(body)
    except ValueError:
        raise CallbackError(f"the boot status at {url} is not JSON: {body[:200]!r}") from None
    if not isinstance(value, dict):
        raise CallbackError(f"the boot status at {url} is not an object: {body[:200]!r}")
    return value


def boot_status(base: str, host: str, timeout: float = 10) -> dict[str, Any]:
    """The agent's boot state of ``host`` (GET /v1/boot/status/<host>)."""
    return read_status(f"{base.rstrip('/')}/v1/boot/status/{host}", timeout)


def _admin_json(base: str, path: str, method: str, token: str | None, timeout: float, refused: str, payload: dict[str, Any] | None = None) -> Any:
    """One call of the agent's admin API (``payload`` sent as JSON): the answer's JSON ({"raw": <start of
    the body>} when it is not JSON). ``refused`` starts the AgentRefused error of an HTTP error answer."""
    data = json.dumps(payload).encode() if payload is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(f"{base.rstrip('/')}{path}", data=data, method=method)
    if payload is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    body = _answer(req, timeout, refused, f"agent {base} unreachable")
    try:
        return json.loads(body)
    except ValueError:
        return {"raw": body[:200]}


def set_boot_mode(base: str, host: str, mode: str, token: str | None, timeout: float = 10) -> dict[str, Any]:
    """Arm a host for install (``install``) or serve it ``localboot``, through the agent's admin API."""
    if mode not in ("install", "localboot"):
        raise CallbackError(f"unknown boot mode {mode!r} (install or localboot)")
    value = _admin_json(base, f"/v1/boot/{mode}/{host}", "POST", token, timeout, f"agent refused {mode} for {host}")
    return value if isinstance(value, dict) else {"value": value}


def arm_wipe(base: str, host: str, erase: str, token: str | None, timeout: float = 10) -> dict[str, Any]:
    """Arm a host for a wipe (decommission) through the agent's admin API. AgentRefused with code 409
    when the agent cannot arm it (no ramdisk files, or a host it already wiped and no longer serves)."""
    if erase not in ("signatures", "full"):
        raise CallbackError(f"unknown erase mode {erase!r} (signatures or full)")
    value = _admin_json(base, f"/v1/boot/wipe/{host}", "POST", token, timeout, f"agent refused to arm {host} for a wipe", payload={"erase": erase})
    return value if isinstance(value, dict) else {"value": value}


def boot_iso_url(base: str, host: str, token: str | None, timeout: float = 10) -> str:
    """The URL of an armed virtual_media host's boot ISO, as its BMC must fetch it (admin API).

    The URL carries the ISO's own token (a capability for the ISO only): callers mask it in output."""
    value = _admin_json(base, f"/v1/boot/iso-url/{host}", "GET", token, timeout, f"agent gave no boot ISO for {host}")
    url = value.get("url") if isinstance(value, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise CallbackError(f"agent answered no boot ISO URL for {host}")
    return url
