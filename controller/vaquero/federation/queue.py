"""The agent's durable event queue (STATE_DIR/federation/events.sqlite).

An event leaves the queue only once the controller answered for its id (applied, duplicate or
refused), so an agent restart or a partition loses nothing; the controller applies each id once,
so replaying a batch is harmless.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("vaquero.federation")


class EventQueue:
    """Append-only queue of host events in SQLite (synchronous=FULL); each event has a unique id.

    `put` returns once the event is on disk. `ack(ids)` removes events the controller answered
    for. `peek` returns the oldest events first.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS queue (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, body TEXT NOT NULL)")
        self.added = threading.Event()  # set by put: the sync loop pushes without waiting for its interval

    def put(self, event: dict[str, Any]) -> str:
        """Queue an event ({host, state, reason, ...}); gives it an id and a time when it has none. Returns the id."""
        if not isinstance(event.get("host"), str) or not isinstance(event.get("state"), str):
            raise ValueError("an event needs a host and a state")
        ev = dict(event)
        ev.setdefault("id", uuid.uuid4().hex)
        ev.setdefault("time", time.time())
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO queue (id, body) VALUES (?, ?)", (ev["id"], json.dumps(ev, sort_keys=True, default=str)))
        self.added.set()
        log.info("event queued: host -> %s", ev["state"], extra={"host": ev["host"], "event": ev["state"], "sha": ev.get("sha")})
        return str(ev["id"])

    def peek(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM queue ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def ack(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        if not ids:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            n = 0
            for i in ids:
                n += self._db.execute("DELETE FROM queue WHERE id = ?", (i,)).rowcount
            self._db.execute("COMMIT")
        return n

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
