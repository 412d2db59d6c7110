"""Per-host boot state on the agent: which script a host gets, and what its installer reported.

    none       never armed: the host is served `localboot` (an agent never installs by surprise)
    install    armed: the next netboot installs the host's profile
    installed  the installer called back: `localboot` from now on, until armed again
    failed     the installer called back a failure (a deploy ramdisk: digest mismatch, download
               cut short...): `localboot`, the reason in `report`, until armed again
    wipe       armed for a wipe (decommission): the next netboot boots the deploy ramdisk, which
               zeroes the disks (`erase` signatures | full) and calls back
    wiped      the wipe called back success: the agent serves the host nothing from now on (the
               unknown-MAC script, no DHCP reservation), until armed for install again

Arming mints a one-time install token (secrets.token_urlsafe) for that host. The install script
and config carry it; the installer shows it to fetch its config and to call back. It binds to the
address that first uses it, and the callback consumes it, so a replayed or stolen token changes
nothing. Tokens are kept only in the state file (0600) and never logged: logs name a short hash.

The file is rewritten atomically on every change, so a restart keeps every host's state.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from vaquero.render.files import write_file

log = logging.getLogger(__name__)

State = Literal["none", "install", "installed", "failed", "wipe", "wiped"]
STATES: tuple[str, ...] = ("none", "install", "installed", "failed", "wipe", "wiped")
ERASE_MODES = ("signatures", "full")
# Deploy progress reports kept per install (the first and the latest): bounded whatever the ramdisk sends.
MAX_DEPLOY_EVENTS = 64


# token_urlsafe(32) gives 43 chars; the bounds refuse absurd input before it is hashed or compared.
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,128}")


class StateError(ValueError):
    """A transition that is not allowed (e.g. a callback for a host that is not installing)."""


class TokenRefused(StateError):
    """An install token that is missing, unknown, used, another host's or shown from another address."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def token_hint(token: str | None) -> str:
    """What logs may say about a token: a short hash, enough to correlate, useless to replay."""
    return hashlib.sha256(token.encode()).hexdigest()[:8] if token else "-"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass
class HostState:
    state: State = "none"
    since: float = field(default_factory=time.time)
    attempt: int = 0
    report: dict[str, Any] | None = None
    last_script: str | None = None
    last_script_at: float | None = None
    scripts_served: int = 0
    token: str | None = None  # the one-time install token while armed
    token_ip: str | None = None  # the address that first used it
    deploy: list[dict[str, Any]] = field(default_factory=list)  # a deploy ramdisk's progress reports, oldest first
    phone_home: str | None = None  # sha256 (hex) of the installed OS's one-time phone-home token
    phoned_home_at: float | None = None
    erase: str | None = None  # a wipe's erase mode while armed for it (ERASE_MODES)

    @property
    def mode(self) -> str:
        """What the host is served: install, wipe, none (wiped: the unknown-MAC script) or localboot."""
        return {"install": "install", "wipe": "wipe", "wiped": "none"}.get(self.state, "localboot")

    @property
    def armed(self) -> bool:
        return self.state in ("install", "wipe")


class BootStates:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.hosts: dict[str, HostState] = {}
        if path is not None and path.is_file():
            raw = json.loads(path.read_text())
            for name, st in raw.get("hosts", {}).items():
                self.hosts[name] = HostState(**st)
        # A host armed by an older agent (no token yet) gets one, so its installer can still call back.
        missing = [n for n, st in self.hosts.items() if st.armed and not st.token]
        for name in missing:
            self.hosts[name].token = secrets.token_urlsafe(32)
        self._by_digest: dict[bytes, str] = {_digest(st.token): n for n, st in self.hosts.items() if st.token}
        if missing:
            self._save()

    def get(self, host: str) -> HostState:
        return self.hosts.get(host) or HostState(since=0.0)

    def _save(self) -> None:
        if self.path is None:
            return
        data = {"hosts": {n: asdict(s) for n, s in sorted(self.hosts.items())}}
        write_file(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n", mode=0o600)

    def arm(self, host: str, *, wipe: str | None = None) -> HostState:
        """Arm `host` for install, or (`wipe`: an erase mode) for a wipe of its disks."""
        if wipe is not None and wipe not in ERASE_MODES:
            raise StateError(f"erase mode {str(wipe)[:40]!r} is not one of {', '.join(ERASE_MODES)}")
        with self._lock:
            st = self.get(host)
            new = HostState(
                state="wipe" if wipe is not None else "install",
                attempt=st.attempt + 1,
                last_script=st.last_script,
                last_script_at=st.last_script_at,
                scripts_served=st.scripts_served,
                token=secrets.token_urlsafe(32),
                erase=wipe,
            )
            self._set(host, new)
        what = f"a wipe (erase {wipe})" if wipe is not None else "install"
        log.info("host armed for %s (attempt %d, token %s)", what, new.attempt, token_hint(new.token), extra={"host": host, "event": "boot.armed"})
        return new

    def disarm(self, host: str) -> HostState:
        with self._lock:
            st = self.get(host)
            new = HostState(
                state="none",
                attempt=st.attempt,
                report=st.report,
                last_script=st.last_script,
                last_script_at=st.last_script_at,
                scripts_served=st.scripts_served,
            )
            self._set(host, new)
        log.info("host disarmed: localboot", extra={"host": host, "event": "boot.disarmed"})
        return new

    def _set(self, host: str, new: HostState) -> None:
        old = self.hosts.get(host)
        if old is not None and old.token:
            self._by_digest.pop(_digest(old.token), None)
        self.hosts[host] = new
        if new.token:
            self._by_digest[_digest(new.token)] = host
        self._save()

    def _check(self, host: str, token: str | None, client: str) -> HostState:
        if not token or not TOKEN_RE.fullmatch(token):
            raise TokenRefused(401, "missing or malformed install token")
        # A dict lookup by SHA-256 leaks nothing usable about the tokens; compare_digest then confirms.
        owner = self._by_digest.get(_digest(token))
        st = self.hosts.get(owner) if owner is not None else None
        if st is None or st.token is None or not hmac.compare_digest(st.token, token):
            raise TokenRefused(401, "unknown or already used install token")
        if owner != host:
            raise TokenRefused(403, "install token of another host")
        if st.token_ip is not None and st.token_ip != client:
            raise TokenRefused(403, "install token bound to another address")
        return st

    def authorize(self, host: str, token: str | None, client: str, *, bind: bool = True) -> HostState:
        """Check an install token for `host`; its first use (with `bind`) binds it to `client`. Raises TokenRefused."""
        with self._lock:
            st = self._check(host, token, client)
            if bind and st.token_ip is None:
                st.token_ip = client
                self._save()
        return st

    def installed(
        self,
        host: str,
        report: dict[str, Any],
        token: str | None = None,
        client: str = "?",
        *,
        check_token: bool = True,
        failed: bool = False,
        phone_home: str | None = None,
    ) -> HostState:
        """The callback: checks and consumes the install token (check_token=False only for trusted local callers).

        `failed`: the installer reported a failure (state failed, never installed). `phone_home`: the
        installed OS's own one-time token, kept (as a digest) for `phoned_home`."""
        with self._lock:
            st = self.get(host)
            if check_token:
                st = self._check(host, token, client)
            if not st.armed:
                raise StateError(f"host {host} is not installing (state {st.state})")
            wiping = st.state == "wipe"
            new = HostState(
                state="failed" if failed else ("wiped" if wiping else "installed"),
                attempt=st.attempt,
                report=report,
                last_script=st.last_script,
                last_script_at=st.last_script_at,
                scripts_served=st.scripts_served,
                deploy=st.deploy,
                phone_home=hashlib.sha256(phone_home.encode()).hexdigest() if phone_home and not failed and not wiping else None,
                erase=st.erase,
            )
            self._set(host, new)
        if wiping and not failed:
            log.info("the wipe called back: host wiped, served nothing from now on", extra={"host": host, "event": "boot.wiped"})
        elif failed:
            log.warning("installer called back a failure: host failed, now localboot", extra={"host": host, "event": "boot.failed"})
        else:
            log.info("installer called back: host installed, now localboot", extra={"host": host, "event": "boot.installed"})
        return new

    def progress(self, host: str, event: dict[str, Any], token: str | None, client: str) -> HostState:
        """A deploy ramdisk's progress report (install token, not consumed), kept in memory: the first
        report and the latest ones, MAX_DEPLOY_EVENTS in all. Saved with the next state change."""
        with self._lock:
            st = self._check(host, token, client)
            if st.token_ip is None:
                st.token_ip = client
            if len(st.deploy) >= MAX_DEPLOY_EVENTS:
                del st.deploy[1]
            st.deploy.append({**event, "time": time.time()})
        return st

    def phoned_home(self, host: str, token: str | None, report: dict[str, Any]) -> HostState:
        """The installed OS's phone home: its one-time token (not bound to an address: the OS may
        lease another one than its installer did), once, after the install callback."""
        with self._lock:
            st = self.hosts.get(host)
            if not token or not TOKEN_RE.fullmatch(token) or st is None or st.phone_home is None:
                raise TokenRefused(401, "missing, malformed, unknown or already used phone-home token")
            if not hmac.compare_digest(st.phone_home, hashlib.sha256(token.encode()).hexdigest()):
                raise TokenRefused(401, "missing, malformed, unknown or already used phone-home token")
            st.phone_home = None
            st.phoned_home_at = time.time()
            st.report = {**(st.report or {}), "phone_home": report}
            self._save()
        log.info("the installed OS phoned home", extra={"host": host, "event": "boot.phoned_home"})
        return st

    def served(self, host: str, script: str) -> None:
        # In memory only: served scripts are frequent and not worth a disk write each.
        st = self.hosts.setdefault(host, HostState(since=0.0))  # as get() reports a host never armed
        st.last_script = script
        st.last_script_at = time.time()
        st.scripts_served += 1

    def token(self, host: str) -> str | None:
        return self.get(host).token

    def to_dict(self, host: str) -> dict[str, Any]:
        st = self.get(host)
        data = asdict(st)
        data.pop("token")
        data.pop("phone_home")
        return {"host": host, **data, "script": st.mode}
