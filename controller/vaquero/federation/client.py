"""The agent side of the federation link: the sync loop that pulls the site bundle and pushes queued events.

    client = FederationClient(ClientConfig(controller="https://ctl:8443", agent="east-agent-1", token=..., state_dir=...))
    client.wait_for_bundle()          # the cached bundle at once, or the controller's first one
    client.start()                    # background sync: pull (If-None-Match), push events, heartbeat
    client.queue.put({"host": "h1", "state": "installing", "reason": "installer called back"})

What the agent keeps on disk to work on while the controller is unreachable: the event queue
(`queue.py`), the bundle cache and the fence mark (`cache.py`).

While the controller is unreachable the loop backs off exponentially with jitter (`backoff.py`, up
to `backoff_max` seconds) and keeps the queue; when it answers again the queue is replayed in
order. The token goes only into the Authorization header: never into a log line or an exception.
The command line that builds a ClientConfig is the agent's (`vaquero.agent.cli`).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from vaquero import __version__
from vaquero.inspect.inbox import InspectionInbox, Refused, deliver
from vaquero.inspect.report import InspectionReport

from .backoff import backoff_delay
from .cache import BundleCache, FenceMark, bundle_fence
from .errors import FederationError
from .queue import EventQueue

log = logging.getLogger("vaquero.federation")

FORMAT = 1


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
        self.inbox: InspectionInbox | None = None  # the boot server's inspection reports, forwarded each round
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

    def _post_inspection(self, report: InspectionReport) -> None:
        resp = self._client().post(f"/v1/agents/{self.cfg.agent}/inspections", content=report.model_dump_json(), headers={"Content-Type": "application/json"})
        if resp.status_code in (404, 409, 422):  # the controller will never store it: kept, it would block nothing but come back forever
            raise Refused(f"the controller refused it: HTTP {resp.status_code} {resp.text[:300]}")
        self._check(resp, "inspection report")

    def push_inspections(self) -> int:
        """Forward the inspection reports the boot server holds; each leaves the inbox once the controller stored it."""
        if self.inbox is None or not len(self.inbox):
            return 0
        done = deliver(self.inbox, self._post_inspection)
        if done:
            log.info("%d inspection report(s) forwarded to the controller", done, extra=self._ctx())
        return done

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
        self.push_inspections()
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
