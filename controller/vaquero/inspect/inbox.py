"""The agent's inspection inbox: reports it accepted and the controller has not stored yet.

One SQLite file (synchronous=FULL), one row per boot MAC: a machine that reports again replaces
its row. A report is acknowledged to the ramdisk once it is on disk here, and leaves only when the
controller stored it (or refused it for good), so an agent restart or a partition loses none. At
most ``cap`` machines are held: an unauthenticated network cannot fill the agent's disk.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from .report import InspectionReport

log = logging.getLogger(__name__)

MAX_HELD = 256


class InboxFull(Exception):
    """The inbox holds `cap` other machines' reports already."""


class Refused(Exception):
    """The controller will never take this report (its site does not enroll, the MAC is known...): drop it."""


class InspectionInbox:
    def __init__(self, path: str | Path, cap: int = MAX_HELD) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.cap = cap
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS inbox (mac TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL)")
        self.added = threading.Event()

    def put(self, report: InspectionReport) -> None:
        """Keep `report` (on disk when this returns); raises InboxFull when `cap` other machines wait."""
        body = report.model_dump_json()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                held = self._db.execute("SELECT COUNT(*), SUM(mac = ?) FROM inbox", (report.boot_mac,)).fetchone()
                if held[0] >= self.cap and not held[1]:
                    raise InboxFull(f"{self.cap} machines' reports are waiting for the controller already")
                seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM inbox").fetchone()[0]
                self._db.execute("INSERT OR REPLACE INTO inbox (mac, seq, body) VALUES (?, ?, ?)", (report.boot_mac, seq, body))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        self.added.set()

    def full(self, mac: str) -> bool:
        """Whether a report of `mac` would be refused for want of room."""
        with self._lock:
            held = self._db.execute("SELECT COUNT(*), SUM(mac = ?) FROM inbox", (mac,)).fetchone()
        return bool(held[0] >= self.cap and not held[1])

    def peek(self, limit: int = 64) -> list[tuple[int, InspectionReport]]:
        """The oldest reports first, with the sequence number `ack` wants."""
        with self._lock:
            rows = self._db.execute("SELECT seq, body FROM inbox ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(int(seq), InspectionReport.model_validate_json(body)) for seq, body in rows]

    def ack(self, mac: str, seq: int) -> bool:
        """Drop the report `seq` of `mac`; a newer report of the same machine that came meanwhile stays."""
        with self._lock:
            return self._db.execute("DELETE FROM inbox WHERE mac = ? AND seq = ?", (mac, seq)).rowcount > 0

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def deliver(inbox: InspectionInbox, send: Callable[[InspectionReport], None]) -> int:
    """Hand the held reports to `send`, oldest first; each one `send` returns from (stored) or refuses
    with Refused (never to be stored) leaves the inbox. Any other exception stops the round, the rest
    stay for the next. Returns how many were stored."""
    stored = 0
    for seq, report in inbox.peek():
        try:
            send(report)
        except Refused as exc:
            log.error("inspection report of %s dropped: %s", report.boot_mac, exc, extra={"host": report.boot_mac})
            inbox.ack(report.boot_mac, seq)
            continue
        inbox.ack(report.boot_mac, seq)
        stored += 1
    return stored
