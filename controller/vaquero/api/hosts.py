"""Host views: the list (by cluster and state), one host with "why is it stuck", its timeline.

Which cluster and site a host belongs to comes from the current revision (what the hardware
runs); its state from the Store (`/hosts/<name>`, written through the state machine).

The list is what pollers hit, with 10,000 hosts: while the app runs, a follower thread keeps the
host records in memory by watching the Store (it lags the Store by the watch's poll interval,
~50 ms with SQLite) and keeps each host's JSON encoded once per change, so a request costs a
join of ready-made fragments, or nothing when nothing changed. Without the follower (an app used
without its lifespan) the list is built from the Store, cached by Store revision.
One host (`detail`, `timeline`) is always read from the Store directly.

Every method here may call the Store (even a cache hit checks which revision is current), and with
etcd that is a network round trip that can take as long as the Store's timeout: call them from a
thread (the routes run them in the thread pool), never on the event loop.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from ..gate.core import Gate
from ..state.machine import current, timeline
from ..state.store import Store

_FIELDS = ("state", "since", "reason", "step", "attempt", "plan", "run", "sha", "actor")


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


class HostFollower:
    """/hosts/* in memory, following the Store's watch; entries are [value, encoded row or None, index key]."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.entries: dict[str, list[Any]] = {}
        self.version = 0
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="vaquero-hosts", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.ready.clear()

    def _run(self) -> None:
        since = -1
        while not self._stop.is_set():
            try:
                if since < 0:
                    # The store revision before listing, not the newest host's: quiet hosts must not make
                    # the watch start from history that compaction may already have dropped.
                    start = self.store.revision()
                    records = self.store.list("/hosts/")
                    with self.lock:
                        self.entries = {r.key[len("/hosts/") :]: [r.value, None, None] for r in records}
                        self.version += 1
                    since = start
                    self.ready.set()
                for ev in self.store.watch("/hosts/", since=since, timeout=0.5):
                    name = ev.key[len("/hosts/") :]
                    with self.lock:
                        if ev.type == "delete" or ev.value is None:
                            self.entries.pop(name, None)
                        else:
                            self.entries[name] = [ev.value, None, None]
                        self.version += 1
                    since = ev.revision
                    if self._stop.is_set():
                        return
            except Exception:
                # The Store is unreachable: serve the direct path until a fresh load succeeds.
                self.ready.clear()
                since = -1
                self._stop.wait(1.0)


class HostViews:
    def __init__(self, store: Store, gate: Gate) -> None:
        self.store = store
        self.gate = gate
        self.follower = HostFollower(store)
        self._index: tuple[str | None, dict[str, tuple[str, str]]] = ("", {})
        self._cache: dict[tuple[Any, ...], bytes] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        self.follower.start()

    def stop(self) -> None:
        self.follower.stop()

    def index(self) -> dict[str, tuple[str, str]]:
        """host -> (cluster, site) in the current revision."""
        return self._index_with_key()[1]

    def _index_with_key(self) -> tuple[str | None, dict[str, tuple[str, str]]]:
        rec = self.store.get("/sites-applied/current")
        key = f"{rec.value.get('sha')}:{rec.value.get('root')}" if rec else None
        if self._index[0] == key:
            return self._index
        try:
            sot, _ = self.gate.current()
            mapping = {h.name: (c.name, c.site) for c, _, h in sot.hosts()}
        except Exception:
            mapping = {}
        self._index = (key, mapping)
        return self._index

    def _followed(self, cluster: str | None, state: str | None) -> bytes:
        idx_key, idx = self._index_with_key()
        f = self.follower
        with f.lock:
            cache_key = ("followed", f.version, idx_key, cluster, state)
            hit = self._cache.get(cache_key)
            if hit is not None:
                return hit
            parts: list[bytes] = []
            for name in sorted(f.entries.keys() | idx.keys()):
                entry = f.entries.get(name)
                value: dict[str, Any] = entry[0] if entry else {}
                c, s = idx.get(name, (value.get("cluster"), value.get("site")))
                if (cluster is not None and c != cluster) or (state is not None and value.get("state") != state):
                    continue
                if entry is not None and entry[1] is not None and entry[2] == idx_key:
                    parts.append(entry[1])
                    continue
                frag = json.dumps({"name": name, "cluster": c, "site": s} | {k: value.get(k) for k in _FIELDS}, separators=(",", ":")).encode()
                if entry is not None:
                    entry[1], entry[2] = frag, idx_key
                parts.append(frag)
            body = b'{"count":%d,"hosts":[' % len(parts) + b",".join(parts) + b"]}"
            self._cache = {k: v for k, v in self._cache.items() if k[:3] == cache_key[:3]} if len(self._cache) < 64 else {}
            self._cache[cache_key] = body
        return body

    def _rows(self, cluster: str | None, state: str | None) -> list[dict[str, Any]]:
        idx = self.index()
        rows: dict[str, dict[str, Any]] = {}
        for rec in self.store.list("/hosts/"):
            v = rec.value
            name = v.get("name") or rec.key.rsplit("/", 1)[-1]
            c, s = idx.get(name, (v.get("cluster"), v.get("site")))
            rows[name] = {"name": name, "cluster": c, "site": s} | {f: v.get(f) for f in _FIELDS}
        for name, (c, s) in idx.items():
            if name not in rows:
                rows[name] = {"name": name, "cluster": c, "site": s} | dict.fromkeys(_FIELDS)
        out = []
        for name in sorted(rows):
            row = rows[name]
            if cluster is not None and row["cluster"] != cluster:
                continue
            if state is not None and row["state"] != state:
                continue
            out.append(row)
        return out

    def _revision(self) -> int | None:
        revision_of = getattr(self.store, "revision", None)
        rev = revision_of() if callable(revision_of) else None
        return rev if isinstance(rev, int) else None

    def list_json(self, cluster: str | None, state: str | None) -> bytes:
        if self.follower.ready.is_set():
            return self._followed(cluster, state)
        rev = self._revision()
        if rev is not None:
            cached = self._cache.get((rev, cluster, state))
            if cached is not None:
                return cached
        rows = self._rows(cluster, state)
        body = json.dumps({"count": len(rows), "hosts": rows}, separators=(",", ":")).encode()
        if rev is not None:
            with self._lock:
                self._cache = {k: v for k, v in self._cache.items() if k[0] == rev} if len(self._cache) < 64 else {}
                self._cache[(rev, cluster, state)] = body
        return body

    def detail(self, name: str) -> dict[str, Any] | None:
        rec = current(self.store, name)
        cluster, site = self.index().get(name, (None, None))
        if rec is None and cluster is None:
            return None
        out: dict[str, Any] = {"name": name, "cluster": cluster, "site": site} | {f: (rec or {}).get(f) for f in _FIELDS}
        if rec is None:
            out |= {"since_seconds": None, "why": "in the current SoT revision but no event yet: nothing has acted on it", "failure": None, "last_event": None}
            return out
        events = timeline(self.store, name)
        last = events[-1] if events else None
        age = time.time() - float(rec.get("since") or time.time())
        state = rec.get("state")
        step = f" at step {rec['step']}" if rec.get("step") else ""
        attempt = f" (attempt {rec['attempt']})" if rec.get("attempt") else ""
        failure = None
        if state == "failed":
            failure = {"step": rec.get("step"), "reason": rec.get("reason"), "attempt": rec.get("attempt")}
            why = f"failed{step}{attempt} {_age(age)} ago: {rec.get('reason')}"
        elif state in ("ready", "enrolled", "removed"):
            why = f"{state} since {_age(age)} ago: nothing in progress"
        else:
            why = f"{state}{step}{attempt} for {_age(age)}; last event: {rec.get('reason')}"
        out |= {"since_seconds": round(age, 3), "why": why, "failure": failure, "last_event": last, "events": len(events)}
        return out

    def timeline(self, name: str) -> list[dict[str, Any]] | None:
        events = timeline(self.store, name)
        if not events and current(self.store, name) is None and name not in self.index():
            return None
        return events
