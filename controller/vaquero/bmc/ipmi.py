"""IPMI 2.0 (RMCP+) driver over pyghmi."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from vaquero.bmc.base import Bmc
from vaquero.bmc.errors import BmcAuthError, BmcError, BmcProtocolError, BmcServerError, BmcTimeout, BmcUnreachable, BmcUnsupported
from vaquero.bmc.guard import Guard, GuardPolicy
from vaquero.bmc.values import BootDevice, BootMode, BootSetting, Endpoint, Inventory, PowerAction, PowerState

log = logging.getLogger("vaquero.bmc.ipmi")
T = TypeVar("T")

# chassis control directives (IPMI 2.0 table 28-4)
_DIRECTIVE = {PowerAction.FORCE_OFF: 0, PowerAction.ON: 1, PowerAction.CYCLE: 2, PowerAction.RESET: 3, PowerAction.OFF: 5}
_TO_PYGHMI = {BootDevice.PXE: "network", BootDevice.DISK: "hd", BootDevice.CDROM: "optical", BootDevice.BIOS_SETUP: "setup", BootDevice.NONE: "default"}
_FROM_PYGHMI = {"network": BootDevice.PXE, "hd": BootDevice.DISK, "optical": BootDevice.CDROM, "setup": BootDevice.BIOS_SETUP, "default": BootDevice.NONE}
# a few IANA enterprise numbers seen on BMCs
_VENDORS = {2: "IBM", 674: "Dell", 10876: "Supermicro", 11: "HPE", 19046: "Lenovo", 343: "Intel", 7244: "Quanta", 41631: "Vaquero emulated"}

_AUTH_WORDS = ("password", "unauthorized", "unknown user", "privilege", "authentication", "rakp")


_PATCHED = False
_REVIVE = threading.Lock()
_POLL = 0.02


def _patch_pyghmi() -> None:
    """Make pyghmi's one I/O thread per process safe to depend on, once per process.

    1. Waits are capped at 20 ms and bounded. pyghmi's I/O thread can take in an answer just before
       a caller registers to wait for it; the caller then sleeps until its retransmit deadline
       (0.5-1 s) with the answer already queued (measured: 1 login in 25 took ~0.7 s with no packet
       lost). Waking every 20 ms to look at the queue turns that into at most 20 ms; the waits'
       deadlines, hence pyghmi's retries, are unchanged. pyghmi's own wait has no timeout (it
       relies on the I/O thread to wake it), so a waiter the I/O thread lost would sleep forever.
    2. The I/O thread survives an exception. Its packet dispatch looks a session up twice while
       another thread's logout may delete it in between (KeyError); the thread then ended, and
       with it every IPMI session of the process: each later login waited for answers nobody read
       (seen in CI: every IPMI test after one failure on that worker). A packet lost that way is
       retransmitted by pyghmi like any lost packet.
    3. A session breakdown keeps its reason (see mark_broken).
    """
    global _PATCHED
    if _PATCHED:
        return
    from pyghmi.ipmi.private import session as psession

    def bounded_wait(timeout: float | None, myaddr: Any = None, evq: Any = None) -> None:
        wait = min(timeout, _POLL) if timeout is not None else _POLL
        evt = threading.Event()
        if evq is not None:
            evq.append(evt)
        deadline = psession._monotonic_time() + wait
        psession.ioqueue.append((deadline, evt, myaddr))
        if deadline < psession.selectdeadline:  # wake the I/O thread's select to take the new deadline
            sock = psession.iosockets[0]
            sock.sendto(b"\x01", (psession.myself, sock.getsockname()[1]))
        evt.wait(wait)

    psession._io_wait = bounded_wait

    orig_define = psession.define_worker

    def define_worker() -> type:
        base: Any = orig_define()

        class KeptWorker(base):  # type: ignore[misc,valid-type]
            def run(self) -> None:
                while True:
                    try:
                        base.run(self)
                        return  # join() asked it to stop
                    except Exception:
                        if not self.running:
                            return
                        log.warning("pyghmi I/O thread failed; it goes on", exc_info=True)
                        time.sleep(_POLL)  # a failure that repeats must not spin a core

        return KeptWorker

    psession.define_worker = define_worker

    # pyghmi's _mark_broken logs the session out (which sets ``broken`` and clears ``logging``)
    # before it sets ``errormsg``: a login waiting in another thread sees the broken session in
    # that window and raises IpmiException(self.errormsg) -> AttributeError, losing the reason
    # (a refused Kg read as a protocol error). Setting the message first closes the window.
    orig_mark = psession.Session._mark_broken

    def mark_broken(self: Any, error: Any = None) -> None:
        self.errormsg = error
        orig_mark(self, error)

    psession.Session._mark_broken = mark_broken
    _PATCHED = True


def _revive_io_thread() -> None:
    """Start a new pyghmi I/O thread if the one this process has is gone (one started before
    :func:`_patch_pyghmi`, or ended by something an Exception handler cannot catch)."""
    from pyghmi.ipmi.private import session as psession

    with _REVIVE:
        old = psession.iothread
        if old is None or old.is_alive():
            return
        log.warning("pyghmi I/O thread had ended; starting a new one")
        worker = psession.define_worker()()
        worker.daemon = True
        psession.iothread = worker
        worker.start()


class IpmiBmc(Bmc):
    """A BMC driven over IPMI (lanplus). UEFI HTTP boot does not exist in IPMI: ``http`` is unsupported."""

    supports_http_boot = False

    def __init__(self, endpoint: Endpoint, guard: Guard | None = None, policy: GuardPolicy | None = None) -> None:
        super().__init__(endpoint, guard, policy)
        self._cmd: Any = None

    @property
    def _where(self) -> str:
        return f"{self.endpoint.address}:{self.endpoint.port or 623}/udp"

    # connection ----------------------------------------------------------------------------
    def _wrap(self, fn: Callable[[], T]) -> T:
        """The IPMI session is kept between operations (pyghmi keeps it alive) and logged out by
        :meth:`close`. Logging in and out for every operation trips pyghmi's session handling under
        concurrency (lost answers); a session that failed is dropped so the next call logs in anew."""
        try:
            return fn()
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        cmd, self._cmd = self._cmd, None
        sess = getattr(cmd, "ipmi_session", None)
        if sess is not None and not getattr(sess, "broken", True):
            from pyghmi.ipmi.private import session as psession

            # no logout (the BMC may be gone): mark it broken so pyghmi's session cache will not
            # hand it out again, and stop its keepalives
            sess.broken = True
            psession.Session.keepalive_sessions.pop(sess, None)

    def _command(self) -> Any:
        if self._cmd is not None and not getattr(self._cmd.ipmi_session, "broken", False):
            return self._cmd
        from pyghmi import exceptions as pexc
        from pyghmi.ipmi import command

        _patch_pyghmi()
        _revive_io_thread()
        ep = self.endpoint
        from pyghmi.ipmi.private import session as psession

        # pyghmi 1.6 files a session as "initting" under str credentials but removes it under
        # bytes ones, so it never leaves, and the next login (after a success or a failure) picks
        # up that stale session. Remove it once the login attempt is over.
        kg = ep.kg.reveal() if ep.kg is not None else None
        if kg is not None and not 0 < len(kg.encode("utf-8")) <= 20:
            # IPMI 2.0 keys are 20 bytes at most; never name the key itself
            raise BmcAuthError(self.host, "the IPMI BMC key (Kg) must be 1 to 20 bytes")
        key = (ep.address, ep.username, ep.password.reveal(), ep.port or 623, kg)
        self.phase = f"cannot connect: no answer to the IPMI session set-up (RMCP+ open session, RAKP) from {self._where}"
        started = time.monotonic()
        try:
            self._cmd = command.Command(bmc=ep.address, userid=ep.username, password=ep.password.reveal(), port=ep.port or 623, kg=kg, keepalive=True)
        except pexc.IpmiException as exc:
            self._cmd = None
            raise self._map(exc, connecting=True, waited=time.monotonic() - started) from None
        except OSError as exc:
            self._cmd = None
            raise BmcUnreachable(self.host, f"cannot connect to {self._where}: {exc.strerror or exc}") from None
        finally:
            self.phase = None
            psession.Session.initting_sessions.pop(key, None)
        return self._cmd

    def _map(self, exc: Exception, *, connecting: bool = False, waited: float = 0.0, what: str = "") -> BmcError:
        text = str(exc.args[0]) if getattr(exc, "args", None) and exc.args[0] is not None else ""
        low = text.lower()
        ep = self.endpoint
        if any(w in low for w in _AUTH_WORDS):
            return BmcAuthError(self.host, f"IPMI login refused by {ep.address}:{ep.port or 623}: {text}")
        detail = f" ({text})" if text else ""
        if connecting:
            # nothing was asked of the chassis yet: the login itself got no (usable) answer
            return BmcUnreachable(
                self.host, f"cannot connect: no answer to the IPMI session set-up (RMCP+ open session, RAKP) from {self._where} in {waited:.1f}s{detail}"
            )
        if not text or "timeout" in low or "session no longer connected" in low or "unable to" in low:
            return BmcTimeout(self.host, f"connected to {self._where}, {what or 'request'} sent, no answer in {waited:.1f}s{detail}", maybe_applied=True)
        code = getattr(exc, "ipmicode", None)
        if code in (0xC1, 0xCC, 0x80):
            return BmcUnsupported(self.host, f"IPMI command not supported: {text}")
        return BmcServerError(self.host, f"IPMI error: {text}", maybe_applied=True)

    def _raw(self, netfn: int, command: int, data: tuple[int, ...] | list[int] = ()) -> dict[str, Any]:
        from pyghmi import exceptions as pexc

        cmd = self._command()
        what = f"request netfn {netfn:#x} cmd {command:#x}"
        self.phase = f"connected to {self._where}, {what} sent, no answer"
        started = time.monotonic()
        try:
            rsp: dict[str, Any] = cmd.raw_command(netfn=netfn, command=command, data=data)
        except pexc.IpmiException as exc:
            self._cmd = None
            raise self._map(exc, waited=time.monotonic() - started, what=what) from None
        finally:
            self.phase = None
        if "error" in rsp:
            err = str(rsp["error"])
            code = rsp.get("code")
            if code is None or "timeout" in err.lower() or "session" in err.lower():
                self._cmd = None
                waited = time.monotonic() - started
                raise BmcTimeout(self.host, f"connected to {self._where}, {what} sent, no answer in {waited:.1f}s ({err})", maybe_applied=True)
            if code in (0xC1, 0xC2, 0xCC, 0x80):
                raise BmcUnsupported(self.host, f"IPMI netfn {netfn:#x} cmd {command:#x} refused (code {code:#x}): {err}")
            raise BmcServerError(self.host, f"IPMI netfn {netfn:#x} cmd {command:#x} failed (code {code:#x}): {err}", maybe_applied=True)
        return rsp

    # operations ----------------------------------------------------------------------------
    def _raw_get_power(self) -> PowerState:
        rsp = self._raw(0x00, 0x01)
        data = rsp.get("data") or b"\x00"
        return PowerState.ON if data[0] & 1 else PowerState.OFF

    def _raw_power(self, action: PowerAction) -> None:
        self._raw(0x00, 0x02, [_DIRECTIVE[action]])

    def _raw_set_boot(self, device: BootDevice, persistent: bool, mode: BootMode | None) -> None:
        if device == BootDevice.HTTP:
            raise BmcUnsupported(self.host, "IPMI has no UEFI HTTP boot device")
        num = {"network": 4, "hd": 8, "optical": 0x14, "setup": 0x18, "default": 0}[_TO_PYGHMI[device]]
        flags = 0x80 | (0x40 if persistent else 0) | (0x20 if mode == BootMode.UEFI else 0)
        if num == 0:
            flags = 0
        # clear the boot-info acknowledge bits / disable the 60 s timer, then set the flags
        self._raw(0x00, 0x08, (3, 8))
        self._raw(0x00, 0x08, (5, flags, num, 0, 0, 0))

    def _raw_get_boot(self) -> BootSetting:
        rsp = self._raw(0x00, 0x09, (5, 0, 0))
        data = rsp.get("data") or b""
        if len(data) < 4:
            raise BmcProtocolError(self.host, "short answer to get system boot options")
        if data[1] & 0x80 or not data[2] & 0x80:
            return BootSetting(BootDevice.NONE, persistent=True, mode=None)
        num = (data[3] >> 2) & 0xF
        names = {1: "network", 2: "hd", 5: "optical", 6: "setup", 0: "default"}
        dev = _FROM_PYGHMI.get(names.get(num, ""))
        if dev is None:
            raise BmcUnsupported(self.host, f"boot device selector {num} has no Vaquero name")
        return BootSetting(dev, persistent=bool(data[2] & 0x40), mode=BootMode.UEFI if data[2] & 0x20 else BootMode.BIOS)

    def _raw_inventory(self) -> Inventory:
        dev = self._raw(0x06, 0x01).get("data") or b""
        mfg = prod = None
        if len(dev) >= 11:
            mfg = int.from_bytes(bytes(dev[6:9]), "little")
            prod = int.from_bytes(bytes(dev[9:11]), "little")
        sys_uuid, alternates = self._system_guid()
        fru = self._fru()
        return Inventory(
            manufacturer=fru.get("manufacturer") or (_VENDORS.get(mfg, f"IANA {mfg}") if mfg is not None else None),
            model=fru.get("model") or (f"product {prod:#06x}" if prod is not None else None),
            serial=fru.get("serial"),
            uuid=sys_uuid,
            macs=(),
            power_state=self._raw_get_power(),
            extra={"ipmi_manufacturer_id": mfg, "ipmi_product_id": prod, "uuid_alternates": alternates},
        )

    def _raw_identity(self) -> Inventory:
        # IPMI has no command for the host's NIC MACs (only the BMC's own LAN MAC): the GUID is all
        sys_uuid, alternates = self._system_guid()
        return Inventory(uuid=sys_uuid, extra={"uuid_alternates": alternates})

    def _system_guid(self) -> tuple[str | None, list[str]]:
        """Get System GUID (App netfn, cmd 0x37) as (SMBIOS reading, the other readings BMCs use).

        The 16 bytes come in SMBIOS order (time_low, time_mid, time_hi little-endian, the rest as
        is), which is what dmidecode prints on the host and pyghmi's decode_wireformat_uuid gives;
        some BMCs send them reversed (the IPMI spec's order, what ipmitool shows as "IPMI"
        encoding) or in RFC 4122 order, so both other readings are returned too.
        """
        import uuid

        try:
            raw = bytes(self._raw(0x06, 0x37).get("data") or b"")
        except BmcUnsupported:
            return None, []
        if len(raw) != 16:
            return None, []
        return str(uuid.UUID(bytes_le=raw)), [str(uuid.UUID(bytes=raw[::-1])), str(uuid.UUID(bytes=raw))]

    def _fru(self) -> dict[str, str]:
        """The System FRU (manufacturer, model, serial) when the BMC has one; empty otherwise."""
        from pyghmi import exceptions as pexc

        try:
            inv = self._command().get_inventory_of_component("System") or {}
        except (pexc.IpmiException, KeyError, TypeError, ValueError, AttributeError):
            return {}
        except Exception:  # FRU parsing in pyghmi can fail in many ways on odd BMCs
            log.debug("ipmi FRU read failed", extra={"host": self.host}, exc_info=True)
            return {}
        out = {
            "manufacturer": inv.get("Manufacturer") or inv.get("Board manufacturer"),
            "model": inv.get("Product name") or inv.get("Model"),
            "serial": inv.get("Serial Number") or inv.get("Board serial number"),
        }
        return {k: str(v) for k, v in out.items() if v}

    def close(self) -> None:
        cmd, self._cmd = self._cmd, None
        if cmd is not None:
            try:
                cmd.ipmi_session.logout()
            except Exception:  # best effort
                log.debug("ipmi logout failed", extra={"host": self.host}, exc_info=True)
        super().close()
