"""Per-host boot state on the agent: which script a host gets, and what its installer reported.

    none       never armed: the host is served `localboot` (an agent never installs by surprise)
    install    armed: the next netboot installs the host's profile
    installed  the installer called back: `localboot` from now on, until armed again

The file is rewritten atomically on every change, so a restart keeps every host's state.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from vaquero.render.files import write_file

log = logging.getLogger(__name__)

State = Literal["none", "install", "installed"]
STATES: tuple[str, ...] = ("none", "install", "installed")


class StateError(ValueError):
    """A transition that is not allowed (e.g. a callback for a host that is not installing)."""


@dataclass
class HostState:
    state: State = "none"
    since: float = field(default_factory=time.time)
    attempt: int = 0
    report: dict[str, Any] | None = None
    last_script: str | None = None
    last_script_at: float | None = None
    scripts_served: int = 0

    @property
    def mode(self) -> str:
        return "install" if self.state == "install" else "localboot"


class BootStates:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.hosts: dict[str, HostState] = {}
        if path is not None and path.is_file():
            raw = json.loads(path.read_text())
            for name, st in raw.get("hosts", {}).items():
                self.hosts[name] = HostState(**st)

    def get(self, host: str) -> HostState:
        return self.hosts.get(host) or HostState(since=0.0)

    def _save(self) -> None:
        if self.path is None:
            return
        data = {"hosts": {n: asdict(s) for n, s in sorted(self.hosts.items())}}
        write_file(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n", mode=0o600)

    def arm(self, host: str) -> HostState:
        with self._lock:
            st = self.get(host)
            new = HostState(
                state="install", attempt=st.attempt + 1, last_script=st.last_script, last_script_at=st.last_script_at, scripts_served=st.scripts_served
            )
            self.hosts[host] = new
            self._save()
        log.info("host armed for install (attempt %d)", new.attempt, extra={"host": host, "event": "boot.armed"})
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
            self.hosts[host] = new
            self._save()
        log.info("host disarmed: localboot", extra={"host": host, "event": "boot.disarmed"})
        return new

    def installed(self, host: str, report: dict[str, Any]) -> HostState:
        with self._lock:
            st = self.get(host)
            if st.state != "install":
                raise StateError(f"host {host} is not installing (state {st.state})")
            new = HostState(
                state="installed",
                attempt=st.attempt,
                report=report,
                last_script=st.last_script,
                last_script_at=st.last_script_at,
                scripts_served=st.scripts_served,
            )
            self.hosts[host] = new
            self._save()
        log.info("installer called back: host installed, now localboot", extra={"host": host, "event": "boot.installed"})
        return new

    def served(self, host: str, script: str) -> None:
        # In memory only: served scripts are frequent and not worth a disk write each.
        st = self.hosts.setdefault(host, HostState())
        st.last_script = script
        st.last_script_at = time.time()
        st.scripts_served += 1

    def to_dict(self, host: str) -> dict[str, Any]:
        st = self.get(host)
        return {"host": host, **asdict(st), "script": st.mode}
