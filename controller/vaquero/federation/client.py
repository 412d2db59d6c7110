"""The agent side of the federation link: pull and cache the site bundle, push queued events.

    client = FederationClient(ClientConfig(controller="https://ctl:8443", agent="east-agent-1", token=..., state_dir=...))
    client.wait_for_bundle()          # the cached bundle at once, or the controller's first one
    client.start()                    # background sync: pull (If-None-Match), push events, heartbeat
    client.queue.put({"host": "h1", "state": "installing", "reason": "installer called back"})

Everything the agent needs to keep working while the controller is unreachable is on disk,
under STATE_DIR/federation/:

    bundle.json         the last bundle, written atomically (temp file, fsync, rename)
    sot/<version>/      its SoT folder, what the boot services load (`--sot`)
    events.sqlite       the event queue: an event leaves it only once the controller answered
                        for its id (applied, duplicate or refused), so a restart loses nothing
    fence.json          the controller store's identity and the highest leader fence accepted from it:
                        a bundle of that store with a lower fence is refused (built from older state
                        by, or for, a deposed leader); a new store identity is accepted with a warning

While the controller is unreachable the loop backs off exponentially with jitter (up to
`backoff_max` seconds) and keeps the queue; when it answers again the queue is replayed in
order. The controller applies each event id once, so sending a batch twice is harmless.
The token goes only into the Authorization header: never into a log line or an exception.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import random
import re
import shutil
import sqlite3
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from vaquero import __version__
from vaquero.render.files import fsync_dir, write_file

from .tokens import TokenError, read_token

log = logging.getLogger("vaquero.federation")

TOKEN_ENV = "VAQUERO_CONTROLLER_TOKEN"
FORMAT = 1
STORE_ID = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
MAX_FENCE = (1 << 63) - 1  # etcd revisions are int64


class FederationError(Exception):
    """The controller answered, but not with what the agent needs (auth refused, bad bundle, 5xx)."""


# -- the durable event queue -----------------------------------------------------------------


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


# -- the bundle cache ------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    write_file(path, data, mode=mode)


def _safe_rel(rel: str) -> PurePosixPath:
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or "\\" in rel or "\x00" in rel or any(part in ("", ".", "..") for part in rel.split("/")):
        raise FederationError(f"bundle file name {rel[:100]!r} is not a plain relative path")
    return p


def _dir_name(version: str) -> str:
    return "".join(c if c.isalnum() or c in "+-_." else "_" for c in version)[:200]


class BundleCache:
    """The last bundle on disk, and its SoT folder. Survives restarts; a torn write is impossible."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.path = self.dir / "bundle.json"

    def load(self) -> dict[str, Any] | None:
        try:
            bundle: dict[str, Any] = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("cached bundle %s unreadable (%s): waiting for the controller", self.path, exc)
            return None
        if not self.sot_path(bundle).is_dir():
            try:
                self._materialize(bundle)
            except (OSError, FederationError) as exc:
                log.error("cached bundle's SoT folder cannot be rebuilt: %s", exc)
                return None
        return bundle

    def sot_path(self, bundle: dict[str, Any]) -> Path:
        return self.dir / "sot" / _dir_name(str(bundle["version"]))

    def _materialize(self, bundle: dict[str, Any]) -> Path:
        final = self.sot_path(bundle)
        if final.is_dir():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
        try:
            for rel, content in sorted(bundle.get("files", {}).items()):
                target = tmp.joinpath(*_safe_rel(rel).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                data = content["text"].encode("utf-8") if "text" in content else base64.b64decode(content["b64"])
                target.write_bytes(data)
            os.replace(tmp, final)
            fsync_dir(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def stage(self, bundle: dict[str, Any]) -> Path:
        """Write the bundle's SoT folder (atomically: a temp folder renamed); bundle.json still names the old one."""
        return self._materialize(bundle)

    def commit(self, bundle: dict[str, Any]) -> Path:
        """bundle.json now names this bundle (the commit point); older folders are pruned, the previous one kept."""
        previous = self.load_quiet()
        folder = self._materialize(bundle)
        _atomic_write(self.path, json.dumps(bundle, sort_keys=True).encode())
        keep = {folder.name} | ({self.sot_path(previous).name} if previous else set())
        for child in (self.dir / "sot").iterdir():
            if child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)
        return folder

    def save(self, bundle: dict[str, Any]) -> Path:
        self.stage(bundle)
        return self.commit(bundle)

    def load_quiet(self) -> dict[str, Any] | None:
        try:
            value: dict[str, Any] = json.loads(self.path.read_bytes())
            return value
        except (OSError, ValueError):
            return None


# -- the fence mark ---------------------------------------------------------------------------


def bundle_fence(bundle: dict[str, Any]) -> tuple[str, int | None]:
    """(store_id, fence) of a bundle, typed; FederationError when either is missing or malformed."""
    sid, fence = bundle.get("store_id"), bundle.get("fence")
    if not isinstance(sid, str) or not STORE_ID.match(sid):
        raise FederationError("bundle: no valid store_id (a controller too old to fence, or a forged bundle)")
    if fence is not None and (isinstance(fence, bool) or not isinstance(fence, int) or not 0 <= fence <= MAX_FENCE):
        raise FederationError("bundle: fence is not a revision (a non-negative integer or null)")
    return sid, fence


class FenceMark:
    """The highest leader fence accepted, for one store identity, on disk (fence.json, atomic writes)."""

    def __init__(self, path: Path, cached: dict[str, Any] | None) -> None:
        self.path = path
        self.store_id: str | None = None
        self.fence: int | None = None
        try:
            raw = json.loads(path.read_bytes())
            self.store_id, self.fence = bundle_fence(raw if isinstance(raw, dict) else {})
        except FileNotFoundError:
            pass
        except (OSError, ValueError, FederationError) as exc:
            log.error("fence mark %s unreadable (%s): the cached bundle's fence stands in", path, exc)
        if cached is not None:  # bundle.json may be newer than fence.json (crash between the two writes)
            try:
                sid, fence = bundle_fence(cached)
            except FederationError:
                return
            if self.store_id is None or (sid == self.store_id and self._lower(self.fence, fence)):
                self.store_id, self.fence = sid, fence

    @staticmethod
    def _lower(a: int | None, b: int | None) -> bool:
        """a < b, with null (built while no controller led) below every token."""
        return b is not None and (a is None or a < b)

    def refusal(self, store_id: str, fence: int | None) -> str | None:
        """Why a bundle (store_id, fence) must be refused, or None."""
        if self.store_id is None or store_id != self.store_id:
            return None
        if self._lower(fence, self.fence):
            got = "no leader (null)" if fence is None else str(fence)
            return f"stale leader fence: this bundle was built under fence {got}, a bundle of the same store under fence {self.fence} was accepted"
        return None

    def accept(self, store_id: str, fence: int | None) -> None:
        if self.store_id is not None and store_id != self.store_id:
            # A rebuilt store is an operator act (docs/ha.md): its fences start again, so the old mark cannot hold.
            log.warning("bundle from a new controller store %s (was %s, fence %s): fence mark reset to %s", store_id, self.store_id, self.fence, fence)
        elif not self._lower(self.fence, fence) and self.store_id is not None:
            return  # equal fence (same leader): nothing new to persist
        _atomic_write(self.path, json.dumps({"store_id": store_id, "fence": fence, "time": time.time()}, sort_keys=True).encode())
        self.store_id, self.fence = store_id, fence


# -- the sync loop ---------------------------------------------------------------------------


@dataclass
class ClientConfig:
    controller: str
    agent: str
    token: str = field(repr=False)
    state_dir: Path
    ca_file: str | None = None
    interval: float = 10.0  # seconds between syncs while connected
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    timeout: float = 10.0
    batch: int = 200
    insecure_http: bool = False  # lab only: allow http://, the token then crosses the network in clear


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d], d = min(cap, base * 2**(failures-1))."""
    d = min(cap, base * (2 ** max(0, failures - 1)))
    return (rng or random).uniform(d / 2, d)


class FederationClient:
    def __init__(
        self,
        cfg: ClientConfig,
        on_bundle: Callable[[dict[str, Any], Path], None] | None = None,
        check: Callable[[dict[str, Any], Path], None] | None = None,
    ) -> None:
        """`check(bundle, folder)` raises to refuse a bundle before it is cached (the agent keeps the one it has);
        `on_bundle(bundle, folder)` applies a cached one."""
        if not cfg.controller.startswith(("https://", "http://")):
            raise ValueError("--controller wants an https:// URL")
        if cfg.controller.startswith("http://"):
            if not cfg.insecure_http:
                raise ValueError("--controller is http://: the agent's token would cross in clear; give an https:// URL (or --insecure-http in a lab)")
            log.warning("--insecure-http: this agent's token goes to %s in clear (isolated labs only)", cfg.controller)
        self.cfg = cfg
        self.on_bundle = on_bundle
        self.check = check
        self.rejected: str | None = None  # the last bundle version `check` refused, and why
        self.rejected_why: str | None = None
        self.report: Callable[[], dict[str, Any]] | None = None  # more for the heartbeat (the boot server's armed hosts)
        self.dir = Path(cfg.state_dir) / "federation"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.queue = EventQueue(self.dir / "events.sqlite")
        self.cache = BundleCache(self.dir)
        self.bundle: dict[str, Any] | None = self.cache.load()
        self.mark = FenceMark(self.dir / "fence.json", self.bundle)
        self.started = time.time()
        self.failures = 0
        self.connected = False
        self.last_error: str | None = None
        self.last_sync: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http: httpx.Client | None = None
        if self.bundle is not None:
            log.info("serving the cached bundle %s until the controller answers", self.bundle["version"], extra=self._ctx())

    def _ctx(self, **more: Any) -> dict[str, Any]:
        b = self.bundle or {}
        return {"site": b.get("site"), "sha": b.get("sha"), **more}

    @property
    def version(self) -> str | None:
        return str(self.bundle["version"]) if self.bundle else None

    @property
    def sot_path(self) -> Path | None:
        return self.cache.sot_path(self.bundle) if self.bundle else None

    # -- HTTP --
    def _client(self) -> httpx.Client:
        if self._http is None:
            verify: Any = ssl.create_default_context(cafile=self.cfg.ca_file) if self.cfg.ca_file else True
            self._http = httpx.Client(
                base_url=self.cfg.controller.rstrip("/"),
                headers={"Authorization": f"Bearer {self.cfg.token}", "User-Agent": f"vaquero-agent/{__version__}"},
                verify=verify,
                timeout=self.cfg.timeout,
            )
        return self._http

    def _reset_http(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _check(self, resp: httpx.Response, what: str) -> None:
        if resp.status_code in (401, 403):
            raise FederationError(f"{what}: the controller refused this agent's token (HTTP {resp.status_code})")
        if resp.status_code >= 400:
            detail = ""
            try:
                detail = str(resp.json().get("detail"))[:300]
            except ValueError:
                pass
            raise FederationError(f"{what}: HTTP {resp.status_code} {detail}".rstrip())

    def pull(self) -> bool:
        """Fetch the bundle unless the controller says ours is current. True when a new one was cached."""
        path = f"/v1/agents/{self.cfg.agent}/bundle"
        headers, params = {}, {}
        if self.version:
            headers["If-None-Match"] = f'"{self.version}"'
            params["have"] = self.version
        resp = self._client().get(path, headers=headers, params=params)
        if resp.status_code == 304:
            return False
        if resp.status_code == 404:
            log.info("the controller has no bundle for this agent yet: %s", resp.json().get("detail") if resp.content else "", extra=self._ctx())
            return False
        self._check(resp, "bundle")
        bundle = resp.json()
        if not isinstance(bundle, dict) or bundle.get("format") != FORMAT or bundle.get("agent") != self.cfg.agent or not bundle.get("version"):
            raise FederationError("bundle: the controller sent a bundle for another agent or in an unknown format")
        version = str(bundle["version"])
        if version == self.rejected:
            return False
        try:
            store_id, fence = bundle_fence(bundle)
            why = self.mark.refusal(store_id, fence)
        except FederationError as exc:
            why = str(exc)
        if why is not None:
            self.rejected, self.rejected_why = version, why[:500]
            log.error(
                "bundle %s (site %s, sha %s) refused: %s; still serving %s",
                version,
                bundle.get("site"),
                bundle.get("sha"),
                why,
                self.version,
                extra=self._ctx(refused_sha=bundle.get("sha"), refused_site=bundle.get("site")),
            )
            return False
        folder = self.cache.stage(bundle)
        if self.check is not None:
            try:
                self.check(bundle, folder)
            except Exception as exc:
                self.rejected, self.rejected_why = version, f"{type(exc).__name__}: {exc}"[:500]
                log.error("bundle %s refused: %s; still serving %s", version, self.rejected_why, self.version, extra=self._ctx())
                return False
        self.mark.accept(store_id, fence)  # before bundle.json: a crash in between leaves the mark high, never low
        self.cache.commit(bundle)
        old = self.version
        self.bundle = bundle
        log.info("bundle %s cached (was %s)", bundle["version"], old, extra=self._ctx())
        if self.on_bundle is not None:
            try:
                self.on_bundle(bundle, folder)
            except Exception:
                log.exception("applying the new bundle failed; the boot services keep the previous one", extra=self._ctx())
        return True

    def _post_events(self, batch: list[dict[str, Any]]) -> list[str]:
        """POST one batch; the ids the controller answered for. A batch it cannot parse (422) is split, and
        an event it cannot parse on its own is dropped with an error: one bad event never blocks the queue."""
        resp = self._client().post(f"/v1/agents/{self.cfg.agent}/events", json={"events": batch})
        if resp.status_code in (413, 422):  # too large for the controller's body cap, or unparseable: split
            if len(batch) > 1:
                return [i for ev in batch for i in self._post_events([ev])]
            ev = batch[0]
            log.error(
                "the controller cannot take event %s (%s); dropped", ev.get("id"), resp.text[:300], extra=self._ctx(host=ev.get("host"), event=ev.get("state"))
            )
            return [str(ev.get("id"))]
        self._check(resp, "events")
        answer = resp.json()
        refused: dict[str, str] = answer.get("refused") or {}
        for eid, why in refused.items():
            ev = next((e for e in batch if e.get("id") == eid), {})
            log.warning("the controller refused event %s: %s", eid, why, extra=self._ctx(host=ev.get("host"), event=ev.get("state")))
        return [*answer.get("applied", []), *answer.get("duplicates", []), *refused]

    def push(self) -> int:
        """Send queued events in batches, oldest first; remove the ones the controller answered for."""
        done = 0
        while True:
            batch = self.queue.peek(self.cfg.batch)
            if not batch:
                return done
            answered = self._post_events(batch)
            sent = {e["id"] for e in batch}
            acked = self.queue.ack(i for i in answered if i in sent)
            done += acked
            if acked == 0:
                raise FederationError("events: the controller answered for none of the events sent")

    def heartbeat(self) -> str | None:
        b = self.bundle or {}
        body = {"version": b.get("version"), "sha": b.get("sha"), "queued": len(self.queue), "started": self.started, "agent_version": __version__}
        if self.rejected is not None:
            body.update(rejected=self.rejected, rejected_why=self.rejected_why)
        if self.report is not None:
            body.update(self.report())
        resp = self._client().post(f"/v1/agents/{self.cfg.agent}/heartbeat", json=body)
        self._check(resp, "heartbeat")
        latest = resp.json().get("version")
        return str(latest) if latest else None

    def sync_once(self) -> None:
        """One round: push events, pull the bundle, heartbeat. Raises when the controller cannot be reached."""
        self.push()
        self.pull()
        latest = self.heartbeat()
        if latest and latest != self.version:
            self.pull()  # changed while we were talking to it

    # -- the loop --
    def _round(self) -> bool:
        try:
            self.sync_once()
        except (httpx.HTTPError, FederationError, ValueError, OSError) as exc:
            self.failures += 1
            self.connected = False
            # httpx messages name the URL, never the headers; the token is only in the Authorization header.
            self.last_error = f"{type(exc).__name__}: {exc}".replace(self.cfg.token, "***")
            self._reset_http()
            level = logging.WARNING if self.failures <= 3 or self.failures % 20 == 0 else logging.DEBUG
            log.log(
                level,
                "controller unreachable (attempt %d): %s; serving bundle %s, %d event(s) queued",
                self.failures,
                self.last_error,
                self.version,
                len(self.queue),
                extra=self._ctx(),
            )
            return False
        if not self.connected:
            log.info("controller reachable: bundle %s, queue empty=%s", self.version, len(self.queue) == 0, extra=self._ctx())
        self.failures = 0
        self.connected = True
        self.last_error = None
        self.last_sync = time.time()
        return True

    def run(self) -> None:
        while not self._stop.is_set():
            ok = self._round()
            delay = self.cfg.interval if ok else backoff_delay(self.failures, self.cfg.backoff_base, self.cfg.backoff_max)
            deadline = time.monotonic() + delay
            while not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                # A new event wakes a connected loop at once; a partitioned one keeps its backoff.
                if self.queue.added.wait(min(left, 0.5)) and ok:
                    self.queue.added.clear()
                    break

    def wait_for_bundle(self, timeout: float | None = None) -> dict[str, Any]:
        """The cached bundle if there is one (at once: the sync loop talks to the controller later; a partition
        that drops packets would otherwise hold the boot services back for a connect timeout), else retry until
        the controller sends one."""
        if self.bundle is not None:
            return self.bundle
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._round()
            if self.bundle is not None:
                return self.bundle
            if deadline is not None and time.monotonic() >= deadline:
                raise FederationError("no bundle: the controller did not send one and none is cached")
            delay = backoff_delay(max(self.failures, 1), self.cfg.backoff_base, self.cfg.backoff_max)
            if self._stop.wait(delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))):
                raise FederationError("stopped before a bundle arrived")

    def start(self) -> threading.Thread:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=f"federation-{self.cfg.agent}", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self.queue.added.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._reset_http()

    def close(self) -> None:
        self.stop()
        self.queue.close()

    def status(self) -> dict[str, Any]:
        return {
            "controller": self.cfg.controller,
            "connected": self.connected,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_sync": self.last_sync,
            "version": self.version,
            "sha": (self.bundle or {}).get("sha"),
            "queued": len(self.queue),
        }

    def enqueue(self, host: str, state: str, reason: str, **more: Any) -> str:
        """Queue a host event carrying the host's SoT SHA, plan and attempt as the bundle has them, so the
        event moves the host without rewriting which plan and attempt it belongs to (the boot intent's identity)."""
        b = self.bundle or {}
        h = (b.get("hosts") or {}).get(host) or {}
        ev = {"host": host, "state": state, "reason": reason, "sha": h.get("sha") or b.get("sha"), "plan": h.get("plan"), "attempt": h.get("attempt")}
        return self.queue.put({**ev, **more})


# -- command line ----------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `vaquero agent` for a federated agent (it already has --agent and --state-dir)."""
    g = p.add_argument_group("federation (an agent managed by a controller)")
    g.add_argument("--controller", help="the controller's URL (https://...): pull the site bundle from it instead of reading --sot")
    g.add_argument("--controller-token-file", help=f"file holding this agent's token (default: ${TOKEN_ENV})")
    g.add_argument("--ca-file", help="CA certificate(s) that signed the controller's TLS certificate (default: the system CAs)")
    g.add_argument("--sync-interval", type=float, default=10.0, help="seconds between syncs while connected (default 10)")
    g.add_argument("--insecure-http", action="store_true", help="allow an http:// --controller (the token crosses in clear; isolated labs only)")
    g.add_argument("--sync-backoff-max", type=float, default=30.0, help="longest wait between attempts while partitioned (default 30)")


def config_from_args(args: argparse.Namespace) -> ClientConfig:
    if not getattr(args, "agent", None):
        raise SystemExit("vaquero agent --controller: --agent NAME is needed (the agent's name in its Site document)")
    try:
        token = read_token(getattr(args, "controller_token_file", None), TOKEN_ENV)
    except TokenError as exc:
        raise SystemExit(f"vaquero agent: {exc}") from None
    if not token:
        raise SystemExit(f"vaquero agent --controller: give --controller-token-file or set ${TOKEN_ENV}")
    return ClientConfig(
        controller=args.controller,
        agent=args.agent,
        token=token,
        state_dir=Path(args.state_dir),
        ca_file=getattr(args, "ca_file", None),
        interval=getattr(args, "sync_interval", 10.0),
        backoff_max=getattr(args, "sync_backoff_max", 30.0),
        insecure_http=getattr(args, "insecure_http", False),
    )
