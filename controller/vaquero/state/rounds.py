"""What the leader's background loops share (the drift observer, the enrollment proposer): a thread
that runs a round every interval until stopped, where a lost leadership ends a round quietly and any
other error is logged and the loop goes on; and the applied SoT revision, parsed once per revision.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable
from typing import Any, Self

from ..sot import SoT, load
from .leader import NotLeader
from .store import FenceLost, Store

# Where the gate records the revision applied last (vaquero.gate.records re-exports it).
CURRENT_KEY = "/sites-applied/current"


class AppliedSoT:
    """The applied revision of ``store``, parsed once per (sha, root). It was validated when it was
    applied: it is parsed only, never validated again."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cached: tuple[tuple[Any, Any], SoT] | None = None

    def get(self) -> tuple[SoT, dict[str, Any]] | None:
        """(the SoT, the current record's value), or None before a first revision is applied."""
        rec = self.store.get(CURRENT_KEY)
        if rec is None or not rec.value.get("root"):
            return None
        sha, root = rec.value.get("sha"), rec.value["root"]
        if self._cached is None or self._cached[0] != (sha, root):
            self._cached = ((sha, root), load(root, sha=sha, label=rec.value.get("label") or (sha or root), semantic=False))
        return self._cached[1], rec.value


class RoundLoop(abc.ABC):
    """A daemon thread calling :meth:`run_once` every ``interval`` seconds until :meth:`stop`."""

    name = "vaquero-rounds"  # the thread's name, and what the log lines start with
    interval: float
    leader: Callable[[], object] | None = None  # the elector's check: raises unless this process leads
    _log: logging.Logger

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abc.abstractmethod
    def run_once(self) -> int: ...

    def leading(self) -> bool:
        """Whether this process may do a round now (always, without a leader check)."""
        if self.leader is None:
            return True
        try:
            self.leader()
        except Exception as exc:
            self._log.info("%s: no round, this process does not lead: %s", self.name, exc)
            return False
        return True

    def stop_timeout(self) -> float:
        """How long :meth:`stop` waits for a round under way by default."""
        return 30.0

    def start(self) -> Self:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.stop_timeout() if timeout is None else timeout)
            self._thread = None

    close = stop  # what the standalone's closers call

    def before_round(self) -> None:  # noqa: B027 - optional, most loops need nothing here
        """Called at the start of every round of the thread (not by a direct run_once)."""

    def wait(self) -> None:
        """Between rounds: the interval, or less when stopped."""
        self._stop.wait(self.interval)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.before_round()
                self.run_once()
            except (NotLeader, FenceLost) as exc:
                self._log.info("%s: round stopped, leadership lost: %s", self.name, exc)
            except Exception:
                self._log.exception("%s: round failed; next round in %.0fs", self.name, self.interval)
            self.wait()
