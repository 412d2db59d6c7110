"""The embedded Store: one SQLite file in WAL mode, for standalone and single-controller set-ups."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .store import FenceLost, Lease, LeaseExpired, Record, Store, StoreUnavailable, WatchCompacted, WatchEvent

SCHEMA_VERSION = 1
_MIGRATIONS = [
    # 1: keys with a global revision counter (like etcd), a change log for watch, leases.
    """
    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, revision INTEGER NOT NULL, lease INTEGER);
    CREATE TABLE changes (revision INTEGER PRIMARY KEY, type TEXT NOT NULL, key TEXT NOT NULL, value TEXT);
    CREATE TABLE leases (id INTEGER PRIMARY KEY AUTOINCREMENT, ttl REAL NOT NULL, expires REAL NOT NULL);
    CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO meta VALUES ('revision', 0);
    """,
]
_KEEP_CHANGES = 100_000  # watch history kept; older revisions are compacted away


class SQLiteStore(Store):
    keep_changes = _KEEP_CHANGES

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._migrate()

    # -- plumbing --
    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                self._db.executescript("BEGIN;" + script + f"PRAGMA user_version={number}; COMMIT;")

    def _tx(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def _bump(self, db: sqlite3.Connection, kind: str, key: str, value: str | None) -> int:
        rev: int = db.execute("UPDATE meta SET value = value + 1 WHERE name='revision' RETURNING value").fetchone()[0]
        db.execute("INSERT INTO changes VALUES (?, ?, ?, ?)", (rev, kind, key, value))
        if rev % min(1000, self.keep_changes) == 0:
            db.execute("DELETE FROM changes WHERE revision <= ?", (rev - self.keep_changes,))
        return rev

    def _expire(self, db: sqlite3.Connection) -> None:
        now = time.time()
        dead = [r[0] for r in db.execute("SELECT id FROM leases WHERE expires < ?", (now,))]
        for lease_id in dead:
            for (key,) in db.execute("SELECT key FROM kv WHERE lease = ?", (lease_id,)).fetchall():
                db.execute("DELETE FROM kv WHERE key = ?", (key,))
                self._bump(db, "delete", key, None)
            db.execute("DELETE FROM leases WHERE id = ?", (lease_id,))

    def _write(self, fn: Any) -> Any:
        with self._lock:
            try:
                db = self._tx()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"sqlite {self.path}: {exc}") from None
            try:
                self._expire(db)
                result = fn(db)
                db.execute("COMMIT")
                return result
            except BaseException:
                db.execute("ROLLBACK")
                raise

    @staticmethod
    def _check_lease(db: sqlite3.Connection, lease: Lease | None) -> None:
        # Like etcd: a key attached to a lease that is gone would otherwise never expire.
        if lease is not None and db.execute("SELECT 1 FROM leases WHERE id = ?", (lease.id,)).fetchone() is None:
            raise LeaseExpired(f"lease {lease.id} expired or was revoked")

    def _read(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            self._write(lambda db: None)  # applies lease expiry before reads, like etcd would have
            return self._db.execute(sql, args).fetchall()

    # -- Store --
    def get(self, key: str) -> Record | None:
        rows = self._read("SELECT key, value, revision FROM kv WHERE key = ?", (key,))
        return Record(rows[0][0], json.loads(rows[0][1]), rows[0][2]) if rows else None

    def put(self, key: str, value: dict[str, Any], *, lease: Lease | None = None) -> int:
        data = json.dumps(value, separators=(",", ":"))

        def op(db: sqlite3.Connection) -> int:
            self._check_lease(db, lease)
            rev = self._bump(db, "put", key, data)
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?)", (key, data, rev, lease.id if lease else None))
            return rev

        result: int = self._write(op)
        return result

    def cas(self, key: str, value: dict[str, Any], *, expect: int, lease: Lease | None = None) -> int | None:
        data = json.dumps(value, separators=(",", ":"))

        def op(db: sqlite3.Connection) -> int | None:
            row = db.execute("SELECT revision FROM kv WHERE key = ?", (key,)).fetchone()
            if (row[0] if row else 0) != expect:
                return None
            self._check_lease(db, lease)
            rev = self._bump(db, "put", key, data)
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?)", (key, data, rev, lease.id if lease else None))
            return rev

        result: int | None = self._write(op)
        return result

    def fenced_write(self, key: str, value: dict[str, Any] | None, *, expect: int | None, fence: tuple[str, int]) -> int | None:
        data = json.dumps(value, separators=(",", ":")) if value is not None else None
        fence_key, token = fence

        def op(db: sqlite3.Connection) -> int | None:
            row = db.execute("SELECT revision FROM kv WHERE key = ?", (fence_key,)).fetchone()
            if (row[0] if row else 0) != token:
                raise FenceLost(f"{key}: not written: {fence_key} is no longer at revision {token}")
            row = db.execute("SELECT revision FROM kv WHERE key = ?", (key,)).fetchone()
            if expect is not None and (row[0] if row else 0) != expect:
                return None
            if data is None:
                if row is None:
                    return None
                db.execute("DELETE FROM kv WHERE key = ?", (key,))
                return self._bump(db, "delete", key, None)
            rev = self._bump(db, "put", key, data)
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?)", (key, data, rev, None))
            return rev

        result: int | None = self._write(op)
        return result

    def delete(self, key: str) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            if db.execute("DELETE FROM kv WHERE key = ?", (key,)).rowcount == 0:
                return False
            self._bump(db, "delete", key, None)
            return True

        result: bool = self._write(op)
        return result

    def list(self, prefix: str) -> list[Record]:
        # substr, not `key < prefix || '\uffff'`: keys may hold characters above U+FFFF.
        rows = self._read("SELECT key, value, revision FROM kv WHERE key >= ? AND substr(key, 1, ?) = ? ORDER BY key", (prefix, len(prefix), prefix))
        return [Record(k, json.loads(v), r) for k, v, r in rows]

    def revision(self) -> int:
        return int(self._read("SELECT value FROM meta WHERE name='revision'", ())[0][0])

    def watch(self, prefix: str, *, since: int, timeout: float) -> Iterator[WatchEvent]:
        deadline = time.monotonic() + timeout
        last = since
        while time.monotonic() < deadline:
            oldest, newest = self._read("SELECT (SELECT MIN(revision) FROM changes), (SELECT value FROM meta WHERE name='revision')", ())[0]
            if (oldest is None and newest > last) or (oldest is not None and oldest > last + 1):
                raise WatchCompacted(since, oldest or newest + 1)
            rows = self._read(
                "SELECT revision, type, key, value FROM changes WHERE revision > ? AND key >= ? AND substr(key, 1, ?) = ? ORDER BY revision",
                (last, prefix, len(prefix), prefix),
            )
            for rev, kind, key, value in rows:
                last = rev
                deadline = time.monotonic() + timeout
                yield WatchEvent(kind, key, json.loads(value) if value else None, rev)
            if not rows:
                time.sleep(0.05)

    def grant(self, ttl: float) -> Lease:
        def op(db: sqlite3.Connection) -> int:
            return int(db.execute("INSERT INTO leases (ttl, expires) VALUES (?, ?) RETURNING id", (ttl, time.time() + ttl)).fetchone()[0])

        return Lease(self._write(op), ttl)

    def refresh(self, lease: Lease) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            return db.execute("UPDATE leases SET expires = ? WHERE id = ?", (time.time() + lease.ttl, lease.id)).rowcount == 1

        result: bool = self._write(op)
        return result

    def revoke(self, lease: Lease) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute("UPDATE leases SET expires = 0 WHERE id = ?", (lease.id,))
            self._expire(db)

        self._write(op)

    def ready(self) -> bool:
        try:
            with self._lock:
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
            return bool(version == SCHEMA_VERSION)
        except sqlite3.Error:
            return False

    def close(self) -> None:
        with self._lock:
            self._db.close()
