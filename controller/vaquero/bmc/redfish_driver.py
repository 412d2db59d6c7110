"""Redfish driver over the DMTF ``redfish`` client.

The client is configured on purpose (LAB.md): it has no default timeout (we pass one), retries
10 times by itself (we pass ``max_retry=0``: the guard retries, with backoff and jitter) and skips
TLS verification unless given a CA file (we always give one: the endpoint's, else the bundle
requests trusts; only an explicit ``verify=False`` skips it, with a warning).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from vaquero.bmc.base import Bmc
from vaquero.bmc.errors import BmcAuthError, BmcError, BmcProtocolError, BmcServerError, BmcTimeout, BmcUnreachable, BmcUnsupported
from vaquero.bmc.guard import Guard, GuardPolicy
from vaquero.bmc.values import BootDevice, BootMode, BootSetting, Endpoint, Inventory, PowerAction, PowerState

log = logging.getLogger("vaquero.bmc.redfish")


class BmcTlsError(BmcUnreachable):
    """The TLS handshake or the certificate check failed (not retried: it will not get better)."""

    kind = "tls"
    retryable = False


_TARGET = {
    BootDevice.PXE: "Pxe",
    BootDevice.DISK: "Hdd",
    BootDevice.CDROM: "Cd",
    BootDevice.HTTP: "UefiHttp",
    BootDevice.BIOS_SETUP: "BiosSetup",
    BootDevice.NONE: "None",
}
_FROM_TARGET = {v: k for k, v in _TARGET.items()}
# PoweringOn/PoweringOff: the request is being carried out, the host is in neither state yet (taking
# PoweringOn for Off made "power on" report "off -> off")
_POWER = {
    "On": PowerState.ON,
    "Paused": PowerState.ON,
    "Off": PowerState.OFF,
    "PoweringOn": PowerState.POWERING_ON,
    "PoweringOff": PowerState.POWERING_OFF,
}
# preferred ResetType values per action, first allowed one wins
_RESET = {
    PowerAction.ON: ("On", "ForceOn"),
    PowerAction.FORCE_OFF: ("ForceOff",),
    PowerAction.OFF: ("GracefulShutdown",),
    PowerAction.CYCLE: ("PowerCycle", "ForceRestart"),
    PowerAction.RESET: ("ForceRestart", "GracefulRestart"),
}


class RedfishBmc(Bmc):
    supports_http_boot = True

    def __init__(
        self,
        endpoint: Endpoint,
        guard: Guard | None = None,
        policy: GuardPolicy | None = None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        task_timeout: float = 60.0,
    ) -> None:
        super().__init__(endpoint, guard, policy)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.task_timeout = task_timeout
        self._client: Any = None
        self._system_path: str | None = None
        self.auth_method: str | None = None
        if not endpoint.verify:
            log.warning("redfish TLS verification is OFF for this BMC (insecure flag set)", extra={"host": endpoint.host})

    # connection ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        ep = self.endpoint
        addr = f"[{ep.address}]" if ":" in ep.address else ep.address
        return f"{ep.scheme}://{addr}" + (f":{ep.port}" if ep.port else "")

    def _cafile(self) -> str | None:
        ep = self.endpoint
        if ep.scheme == "http" or not ep.verify:
            return None
        if ep.ca_file:
            return ep.ca_file
        import requests.certs

        return str(requests.certs.where())

    def _timeouts(self) -> tuple[float, float]:
        """(connect, read) as requests applies them to each request. Kept under the guard's attempt
        budget (80% of it) so that a stuck request ends here, where connect and read are told apart,
        and the error names the budget that really ran out, not the guard's cruder "no answer"."""
        cap = 0.8 * (self.policy or self.guard.policy).attempt_timeout
        return min(self.connect_timeout, cap), min(self.read_timeout, cap)

    def _map_transport(self, exc: BaseException, what: str) -> BmcError:
        import requests

        chain = _causes(exc)
        cause = next((c for c in chain if isinstance(c, requests.RequestException)), None)
        where = f"{self.base_url} ({what})"
        connect_t, read_t = self._timeouts()
        if isinstance(cause, requests.exceptions.SSLError):
            return BmcTlsError(self.host, f"TLS failure talking to {where}: {_short(cause)}")
        if isinstance(cause, requests.exceptions.ConnectTimeout):
            return BmcUnreachable(self.host, f"TCP connect to {where} timed out after {connect_t:.1f}s (connect timeout): nothing sent")
        if isinstance(cause, requests.exceptions.ReadTimeout):
            return BmcTimeout(self.host, f"connected to {where}, request sent, no answer within {read_t:.1f}s (read timeout)", maybe_applied=True)
        if isinstance(cause, requests.exceptions.ConnectionError):
            if any(isinstance(c, _not_connected()) for c in chain):
                return BmcUnreachable(self.host, f"cannot connect to {where}: {_short(_innermost(chain))}")
            # connected, then the peer went away: the request may have reached the BMC
            text = f"{where}: the connection was closed after the request was sent, before an answer: {_short(_innermost(chain))}"
            return BmcUnreachable(self.host, text, maybe_applied=True)
        return BmcProtocolError(self.host, f"{where}: {type(exc).__name__}: {_short(exc)}", maybe_applied=True)

    def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        import redfish
        from redfish.rest import v1 as rv1

        ep = self.endpoint
        timeout = self._timeouts()
        try:
            client = redfish.redfish_client(
                base_url=self.base_url,
                username=ep.username,
                password=ep.password.reveal(),
                cafile=self._cafile(),
                timeout=timeout,
                max_retry=0,
                check_connectivity=True,
            )
        except rv1.ServerDownOrUnreachableError as exc:
            raise self._status_error(getattr(exc, "response", None), "service root") from None
        except rv1.JsonDecodingError:
            raise BmcProtocolError(self.host, f"{self.base_url}: the service root is not JSON: not a Redfish service?") from None
        except rv1.RetriesExhaustedError as exc:
            raise self._map_transport(exc, "service root") from None
        # prefer a session; fall back to basic auth (some BMCs and sushy-emulator have no sessions)
        try:
            client.login(auth=rv1.AuthMethod.SESSION)
            self.auth_method = "session"
        except rv1.RetriesExhaustedError as exc:
            raise self._map_transport(exc, "login") from None
        except Exception as exc:
            log.info("redfish session login failed (%s), trying basic auth", type(exc).__name__, extra={"host": self.host})
            try:
                client.login(auth=rv1.AuthMethod.BASIC)
                self.auth_method = "basic"
            except rv1.InvalidCredentialsError:
                raise BmcAuthError(self.host, f"{self.base_url}: credentials refused (HTTP 401) for user {ep.username!r}") from None
            except rv1.RetriesExhaustedError as exc2:
                raise self._map_transport(exc2, "login") from None
        self._client = client
        return client

    def _status_error(self, resp: Any, what: str) -> BmcError:
        status = getattr(resp, "status", None)
        msg = f"{self.base_url} ({what}): HTTP {status}{_message(resp)}"
        if status in (401, 403):
            return BmcAuthError(self.host, msg)
        if status in (404, 405, 501):
            return BmcUnsupported(self.host, msg)
        if status is None or status >= 500:
            return BmcServerError(self.host, msg, maybe_applied=True)
        return BmcProtocolError(self.host, msg, maybe_applied=True)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None, *, relogin: bool = True) -> Any:
        from redfish.rest import v1 as rv1

        client = self._connect()
        try:
            if method == "GET":
                resp = client.get(path, headers=headers)
            elif method == "PATCH":
                resp = client.patch(path, body=body, headers=headers)
            elif method == "POST":
                resp = client.post(path, body=body, headers=headers)
            elif method == "DELETE":
                resp = client.delete(path, headers=headers)
            else:  # pragma: no cover - programming error
                raise ValueError(method)
        except rv1.RetriesExhaustedError as exc:
            self._client = None
            raise self._map_transport(exc, f"{method} {path}") from None
        if resp.status == 401 and relogin and self.auth_method == "session":
            # the session expired: log in again once
            self._client = None
            return self._request(method, path, body, headers, relogin=False)
        if resp.status >= 400:
            raise self._status_error(resp, f"{method} {path}")
        if resp.status == 202:
            return self._wait_task(resp, f"{method} {path}")
        return resp

    def _wait_task(self, resp: Any, what: str) -> Any:
        """Follow a task monitor (HTTP 202 + Location) until the task ends or ``task_timeout``."""
        monitor = resp.getheader("Location") or resp.task_location
        if not monitor:
            return resp  # accepted, nothing to follow
        end = time.monotonic() + self.task_timeout
        client = self._connect()
        while True:
            r = client.get(monitor)
            if r.status == 202:
                if time.monotonic() >= end:
                    raise BmcTimeout(self.host, f"{what}: task {monitor} still running after {self.task_timeout:.0f}s", maybe_applied=True)
                try:
                    delay = float(r.getheader("Retry-After") or 0.5)
                except ValueError:
                    delay = 0.5
                time.sleep(min(max(delay, 0.1), 5.0, max(0.0, end - time.monotonic())))
                continue
            if r.status >= 400:
                raise self._status_error(r, f"{what}: task {monitor}")
            body = _json(r)
            state = body.get("TaskState")
            if state in ("Exception", "Killed", "Cancelled") or body.get("TaskStatus") == "Critical":
                raise BmcServerError(self.host, f"{what}: task {monitor} ended {state}{_message(r)}", maybe_applied=True)
            return r

    def _system(self) -> str:
        """The path of this host's System: by the SoT's ``system`` (an Id or its ``@odata.id``), else the only one, else by UUID."""
        if self._system_path:
            return self._system_path
        root = _json(self._request("GET", "/redfish/v1/"))
        systems = (root.get("Systems") or {}).get("@odata.id")
        if not systems:
            raise BmcUnsupported(self.host, "the service root has no Systems collection")
        members = [str(m["@odata.id"]) for m in _json(self._request("GET", systems)).get("Members", []) if isinstance(m, dict) and "@odata.id" in m]
        ids = [_member_id(m) for m in members]
        want = self.endpoint.system_id
        if want:
            # the SoT may name the System by its Id or by its @odata.id (the form the docs show)
            key = want.rstrip("/")
            chosen = [m for m in members if (m.rstrip("/") == key if key.startswith("/") else _member_id(m) == key)]
            if not chosen:
                raise BmcProtocolError(self.host, f"no System {want!r} (the SoT's bmc `system`) on this BMC; its Systems' Ids: {ids}")
            self._system_path = chosen[0]
        elif len(members) == 1:
            self._system_path = members[0]
        elif not members:
            raise BmcProtocolError(self.host, "the Systems collection is empty")
        else:
            self._system_path = self._system_by_uuid(members, ids)
        return self._system_path

    def _system_by_uuid(self, members: list[str], ids: list[str]) -> str:
        uuid = (self.endpoint.system_uuid or "").strip().lower()
        hint = "set `system` in the host's bmc entry of the SoT to one of these Ids"
        if not uuid:
            raise BmcProtocolError(self.host, f"{len(members)} Systems on this BMC and the SoT gives neither `system` nor the host's `uuid`: {hint}: {ids}")
        matches = [m for m in members if str(_json(self._request("GET", m)).get("UUID") or "").strip().lower() == uuid]
        if len(matches) != 1:
            found = "none of" if not matches else f"{len(matches)} of"
            raise BmcProtocolError(self.host, f"{found} the {len(members)} Systems on this BMC have the SoT's UUID {uuid}: {hint}: {ids}")
        return matches[0]

    # operations ----------------------------------------------------------------------------
    def _raw_get_power(self) -> PowerState:
        state = _json(self._request("GET", self._system())).get("PowerState")
        power = _POWER.get(state) if isinstance(state, str) else None
        if power is None:
            raise BmcProtocolError(self.host, f"unknown PowerState {state!r}")
        return power

    def _reset_action(self) -> tuple[str, list[str] | None]:
        system = _json(self._request("GET", self._system()))
        action = (system.get("Actions") or {}).get("#ComputerSystem.Reset")
        if not action or "target" not in action:
            raise BmcUnsupported(self.host, "the System has no ComputerSystem.Reset action")
        allowed = action.get("ResetType@Redfish.AllowableValues")
        if allowed is None and action.get("@Redfish.ActionInfo"):
            try:
                info = _json(self._request("GET", action["@Redfish.ActionInfo"]))
                for p in info.get("Parameters", []):
                    if p.get("Name") == "ResetType":
                        allowed = p.get("AllowableValues")
            except BmcUnsupported:
                allowed = None
        return action["target"], allowed

    def _raw_power(self, action: PowerAction) -> None:
        target, allowed = self._reset_action()
        prefs = _RESET[action]
        choice = next((v for v in prefs if allowed is None or v in allowed), None)
        if choice is None:
            raise BmcUnsupported(self.host, f"power {action.value}: none of {list(prefs)} in the BMC's allowed ResetType values {allowed}")
        self._request("POST", target, {"ResetType": choice})

    def _raw_set_boot(self, device: BootDevice, persistent: bool, mode: BootMode | None) -> None:
        path = self._system()
        resp = self._request("GET", path)
        system = _json(resp)
        boot = self._boot_object(system)
        value = _TARGET[device]
        allowed = boot.get("BootSourceOverrideTarget@Redfish.AllowableValues")
        if allowed is not None and value not in allowed:
            raise BmcUnsupported(self.host, f"boot device {device.value} ({value}) not in the BMC's allowed values {allowed}")
        patch: dict[str, Any] = {"BootSourceOverrideTarget": value, "BootSourceOverrideEnabled": "Continuous" if persistent else "Once"}
        if device == BootDevice.NONE:
            patch["BootSourceOverrideEnabled"] = "Disabled"
        allowed_enabled = boot.get("BootSourceOverrideEnabled@Redfish.AllowableValues")
        if allowed_enabled is not None and patch["BootSourceOverrideEnabled"] not in allowed_enabled:
            raise BmcUnsupported(self.host, f"BootSourceOverrideEnabled={patch['BootSourceOverrideEnabled']} not in {allowed_enabled}")
        if mode is not None:
            mvalue = "UEFI" if mode == BootMode.UEFI else "Legacy"
            allowed_modes = boot.get("BootSourceOverrideMode@Redfish.AllowableValues")
            if "BootSourceOverrideMode" not in boot and allowed_modes is None:
                raise BmcUnsupported(self.host, "this BMC does not expose BootSourceOverrideMode (BIOS/UEFI)")
            if allowed_modes is not None and mvalue not in allowed_modes:
                raise BmcUnsupported(self.host, f"boot mode {mvalue} not in {allowed_modes}")
            patch["BootSourceOverrideMode"] = mvalue
        headers = {}
        etag = resp.getheader("ETag") or system.get("@odata.etag")
        if etag:
            headers["If-Match"] = etag
        self._request("PATCH", path, {"Boot": patch}, headers=headers or None)

    def _raw_get_boot(self) -> BootSetting:
        boot = self._boot_object(_json(self._request("GET", self._system())))
        enabled = boot.get("BootSourceOverrideEnabled", "Disabled")
        target = boot.get("BootSourceOverrideTarget", "None")
        device = _FROM_TARGET.get(target)
        if device is None:
            raise BmcUnsupported(self.host, f"boot target {target!r} has no Vaquero name")
        if enabled == "Disabled":
            device = BootDevice.NONE
        mode_v = boot.get("BootSourceOverrideMode")
        mode = BootMode.UEFI if mode_v == "UEFI" else BootMode.BIOS if mode_v == "Legacy" else None
        return BootSetting(device, persistent=enabled == "Continuous", mode=mode)

    def _boot_object(self, system: dict[str, Any]) -> dict[str, Any]:
        # No Boot object means no boot override on this System (a SmartNIC SoC, some blades): reading
        # "none" there and PATCHing anyway would report a setting the BMC never had.
        boot = system.get("Boot")
        if not isinstance(boot, dict):
            raise BmcUnsupported(self.host, f"this System ({self._system()}) has no Boot object: its BMC offers no boot override")
        return boot

    def _raw_inventory(self) -> Inventory:
        system = _json(self._request("GET", self._system()))
        ps = system.get("PowerState")
        return Inventory(
            manufacturer=system.get("Manufacturer"),
            model=system.get("Model"),
            serial=system.get("SerialNumber"),
            uuid=system.get("UUID"),
            macs=self._macs(system),
            power_state=_POWER.get(ps) if isinstance(ps, str) else None,
            extra={"redfish_system": self._system(), "auth": self.auth_method},
        )

    def _raw_identity(self) -> Inventory:
        # GETs only: the System (its UUID) and its EthernetInterfaces (the host's MACs)
        system = _json(self._request("GET", self._system()))
        return Inventory(uuid=system.get("UUID"), macs=self._macs(system), extra={"redfish_system": self._system()})

    def _macs(self, system: dict[str, Any]) -> tuple[str, ...]:
        """The MACAddress of each of the System's EthernetInterfaces; none when it has no such collection."""
        macs: list[str] = []
        nics = (system.get("EthernetInterfaces") or {}).get("@odata.id")
        if nics:
            try:
                for m in _json(self._request("GET", nics)).get("Members", []):
                    mac = _json(self._request("GET", m["@odata.id"])).get("MACAddress")
                    if mac:
                        macs.append(str(mac).lower())
            except BmcUnsupported:
                pass
        return tuple(macs)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except Exception:  # best effort: the session times out on the BMC anyway
                log.debug("redfish logout failed", extra={"host": self.host}, exc_info=True)
        super().close()


def _not_connected() -> tuple[type[BaseException], ...]:
    import socket

    from urllib3.exceptions import NameResolutionError, NewConnectionError

    return (NewConnectionError, NameResolutionError, ConnectionRefusedError, socket.gaierror)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps: causes, contexts, urllib3's ``reason`` and exceptions passed as arguments."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 32:
        e = todo.pop(0)
        if any(e is s for s in seen):
            continue
        seen.append(e)
        nested = [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
        todo.extend(n for n in nested if isinstance(n, BaseException))
    return seen


def _innermost(chain: list[BaseException]) -> BaseException:
    return chain[-1]


def _member_id(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _json(resp: Any) -> dict[str, Any]:
    try:
        data = resp.dict
    except Exception:
        data = None
    return data if isinstance(data, dict) else {}


def _message(resp: Any) -> str:
    body = _json(resp) if resp is not None else {}
    err = body.get("error") if isinstance(body.get("error"), dict) else None
    if not err:
        return ""
    info = err.get("@Message.ExtendedInfo") or []
    text = info[0].get("Message") if info and isinstance(info[0], dict) else err.get("message")
    return f": {text}" if text else ""


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."
