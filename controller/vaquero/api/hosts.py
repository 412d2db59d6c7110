"""Host views: the list (by cluster and state), one host with "why is it stuck", its timeline.

Which cluster and site a host belongs to comes from the current revision (what the hardware
runs); its state from the Store (`/hosts/<name>`, written through the state machine). The list
is served from a cache keyed by the Store revision when the Store offers one, so a poller of
10,000 hosts costs one JSON encoding per change, not per request.
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


class HostViews:
    def __init__(self, store: Store, gate: Gate) -> None:
        self.store = store
        self.gate = gate
        self._index: tuple[str | None, dict[str, tuple[str, str]]] = ("", {})
        self._cache: dict[tuple[int, str | None, str | None], bytes] = {}
        self._lock = threading.Lock()

    def index(self) -> dict[str, tuple[str, str]]:
        """host -> (cluster, site) in the current revision."""
        rec = self.store.get("/sites-applied/current")
        key = f"{rec.value.get('sha')}:{rec.value.get('root')}" if rec else None
        if self._index[0] == key:
            return self._index[1]
        try:
            sot, _ = self.gate.current()
            mapping = {h.name: (c.name, c.site) for c, _, h in sot.hosts()}
        except Exception:
            mapping = {}
        self._index = (key, mapping)
        return mapping

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

    def cached(self, cluster: str | None, state: str | None) -> bytes | None:
        """The encoded list when nothing changed in the Store since it was made (a cheap check)."""
        rev = self._revision()
        return self._cache.get((rev, cluster, state)) if rev is not None else None

    def list_json(self, cluster: str | None, state: str | None) -> bytes:
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
