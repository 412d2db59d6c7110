"""The gate: every revision is fetched at one SHA, validated and planned; then it waits for approval.

A revision comes from a GitHub push (webhook) or a manual trigger (`vaquero apply`, POST
/v1/revisions). It is recorded as `queued` at once, and one worker thread does the slow part in
arrival order: fetch exactly that commit into the content-addressed cache, load and validate it,
plan it against the current revision (what the hardware runs, `/sites-applied/current`), and
write a plan record: `invalid` (with every error, file/line/field), `pending_approval`, or
`approved` when the SoT policy lets every touched cluster apply by itself. A valid newer plan
supersedes older plans still waiting for approval. Queued revisions survive a restart.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import queue
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..sot import SoT, SoTError, SoTInvalid, SourceError, empty_sot, load
from ..sot.source import check_subdir, checkout, contained, refuse_links, resolve_rev, tree_digest, tree_size
from ..state.store import Store
from . import records as r
from .github import StatusReporter
from .pulls import review_of
from .sandbox import Limits, auto_apply, run_bounded, touched_clusters

__all__ = ["Gate", "GateError", "auto_apply", "check_git_url", "check_rev", "check_subdir_request", "touched_clusters"]

log = logging.getLogger("vaquero.gate")

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_REV_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,254}$")
ZERO_SHA = "0" * 40
# A revision still `fetching` when the controller stopped is tried again at start, this many times in all.
MAX_ATTEMPTS = 3


def _error(message: str) -> dict[str, Any]:
    return {"file": None, "line": None, "field": None, "message": message}


class GateError(Exception):
    """A request the gate refuses: `status` is the HTTP status an API should answer with."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class GateObserver(Protocol):
    def planned(self, state: str, seconds: float) -> None: ...

    def error(self, kind: str) -> None: ...


def check_git_url(url: str) -> str:
    """Refuse URLs git could read as an option, and URLs carrying credentials (they would end up in records)."""
    if not url or url.startswith("-") or any(c in url for c in "\n\r\0 "):
        raise GateError(422, "not a usable git URL")
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc and parts.scheme in ("http", "https", "git", "ftp", "ftps"):
        raise GateError(422, "git URLs must not carry credentials: use a git credential helper or an SSH key")
    return url


def check_rev(rev: str) -> str:
    if not _REV_RE.match(rev) or ".." in rev:
        raise GateError(422, f"not a usable git revision: {rev[:60]!r}")
    return rev


def check_subdir_request(subdir: str) -> str:
    """`subdir` from a request: a relative path inside the repository, or a 422."""
    try:
        return check_subdir(subdir)
    except SourceError as exc:
        raise GateError(422, str(exc)) from None


def snapshot(root: Path, cache: Path) -> tuple[str, Path]:
    """Copy a local SoT folder into the content-addressed cache once; later edits of the folder do not leak in."""
    links = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in (*dirnames, *filenames):
            path = Path(dirpath) / name
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                links.append(path.relative_to(root).as_posix())
    if links:
        raise SoTInvalid([SoTError(rel, 1, (), f"file {rel} is a symlink (or another special file): a SoT must not contain links") for rel in sorted(links)])
    digest = tree_digest(root)
    tree = cache / "trees" / f"local-{digest}"
    if not tree.is_dir():
        tree.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=tree.parent, prefix=".local-"))
        try:
            shutil.copytree(root, tmp / "t", ignore=shutil.ignore_patterns(".git"))
            os.replace(tmp / "t", tree)
        except FileExistsError:
            pass
        except OSError as exc:
            raise GateError(422, f"cannot read the SoT folder: {exc.strerror}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return digest, tree


class Gate:
    def __init__(
        self,
        store: Store,
        *,
        cache: Path,
        reporter: StatusReporter | None = None,
        public_url: str | None = None,
        observer: GateObserver | None = None,
        scrub: Callable[[str], str] = lambda s: s,
        limits: Limits | None = None,
    ) -> None:
        self.store = store
        self.limits = limits or Limits()
        self.cache = cache
        self.reporter = reporter
        self.public_url = public_url.rstrip("/") if public_url else None
        self.observer = observer
        self.scrub = scrub
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._busy = threading.Event()
        self._old: tuple[tuple[str | None, str | None], SoT] | None = None
        self._lock = threading.Lock()  # approve / reject / supersede read-modify-write of plans
        self._git = threading.Lock()  # one git operation at a time on the shared mirrors and trees
        # Commit statuses go out in order on their own thread: a slow GitHub does not delay plans.
        self._statuses = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vaquero-status") if reporter else None
        self._status_futures: list[Future[None]] = []

    # -- lifecycle --
    def start(self) -> None:
        if self._thread is not None:
            return
        for rec in self.store.list("/revisions/"):
            if rec.value.get("state") in (r.QUEUED, r.FETCHING):
                log.info("resuming revision left %s", rec.value["state"], extra={"sha": rec.value.get("sha")})
                self._queue.put(rec.value["id"])
        self._thread = threading.Thread(target=self._work, name="vaquero-gate", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None
        if self._statuses is not None:
            self._statuses.shutdown(wait=True, cancel_futures=False)
            self._statuses = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vaquero-status")

    def idle(self) -> bool:
        self._status_futures = [f for f in self._status_futures if not f.done()]
        return self._queue.unfinished_tasks == 0 and not self._busy.is_set() and not self._status_futures

    def wait_idle(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.01)
        return False

    def _work(self) -> None:
        while True:
            rid = self._queue.get()
            try:
                if rid is None:
                    return
                self._busy.set()
                self.process(rid)
            except Exception as exc:
                log.exception("revision %s could not be processed", rid)
                if self.observer:
                    self.observer.error("gate")
                # Say so on the revision and its plan rather than leave it `fetching` (a restart would retry it).
                with contextlib.suppress(Exception):
                    assert rid is not None
                    message = f"the revision could not be checked ({type(exc).__name__}); see the server log"
                    self._give_up(rid, message)
            finally:
                self._busy.clear()
                self._queue.task_done()

    # -- submitting --
    def submit_git(
        self, url: str, sha: str, *, subdir: str = "", actor: str, github: str | None = None, delivery: str | None = None, received: float | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Queue commit `sha` of `url`; returns (revision record, False when that SHA was already known)."""
        if not SHA_RE.match(sha):
            raise GateError(422, "a revision is a full 40-digit commit SHA")
        subdir = check_subdir_request(subdir)
        value: dict[str, Any] = {
            "id": sha,
            "kind": "git",
            "sha": sha,
            "source": check_git_url(url),
            "subdir": subdir,
            "label": f"{url}@{sha[:12]}",
            "root": None,
            "created": received or time.time(),
            "state": r.QUEUED,
            "actor": actor,
            "github": github,
            "delivery": delivery,
            "plan": None,
            "errors": [],
        }
        return self._queue_revision(value)

    def resolve(self, url: str, rev: str) -> str:
        """A manual trigger names a branch, tag or SHA: resolve it to one commit SHA, once, now."""
        check_git_url(url)
        check_rev(rev)
        try:
            with self._git:
                _, sha = resolve_rev(url, rev, self.cache)
        except SourceError as exc:
            raise GateError(422, self.scrub(str(exc))) from None
        return sha

    def submit_path(self, path: str, *, subdir: str = "", actor: str) -> tuple[dict[str, Any], bool]:
        root = Path(path)
        subdir = check_subdir_request(subdir)
        if not root.is_absolute() or not root.is_dir():
            raise GateError(422, "a local SoT must be an absolute path to a folder on the server")
        try:
            digest, tree = snapshot(root, self.cache)
            sot_root = contained(tree, subdir)
        except SoTInvalid as exc:
            raise GateError(422, "; ".join(str(e) for e in exc.errors[:5])) from None
        except SourceError as exc:
            raise GateError(422, str(exc)) from None
        value: dict[str, Any] = {
            "id": f"local-{digest[:24]}",
            "kind": "path",
            "sha": None,
            "digest": digest,
            "source": str(root),
            "subdir": subdir,
            "label": f"{root} (content {digest[:12]})",
            "root": str(sot_root),
            "tree": str(tree),
            "created": time.time(),
            "state": r.QUEUED,
            "actor": actor,
            "github": None,
            "delivery": None,
            "plan": None,
            "errors": [],
        }
        return self._queue_revision(value)

    def _queue_revision(self, value: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        key = r.revision_key(value["id"])
        if self.store.cas(key, value, expect=0) is None:
            existing = self.store.get(key)
            return (existing.value if existing else value), False
        log.info("revision %s queued from %s", value["id"][:12], value["source"], extra={"sha": value["sha"]})
        self._queue.put(value["id"])
        return value, True

    # -- the work --
    def _update_revision(self, rid: str, **changes: Any) -> dict[str, Any]:
        rec = self.store.get(r.revision_key(rid))
        value = (rec.value if rec else {}) | changes
        self.store.put(r.revision_key(rid), value)
        return value

    def current(self) -> tuple[SoT, str | None]:
        """The revision the hardware runs (empty before the first apply), parsed once per SHA."""
        rec = self.store.get(r.CURRENT_KEY)
        if rec is None or not rec.value.get("root"):
            return empty_sot(), None
        sha, root = rec.value.get("sha"), rec.value["root"]
        if self._old is not None and self._old[0] == (sha, root):
            return self._old[1], sha
        # What the hardware runs was validated when it was applied: parse only.
        old = load(root, sha=sha, label=rec.value.get("label") or (sha or root), semantic=False)
        self._old = ((sha, root), old)
        return old, sha

    def _fetch(self, rev: dict[str, Any]) -> tuple[str | None, str]:
        """The revision's SoT folder, checked again here: inside its fetched tree, through no link."""
        if rev["kind"] == "git":
            with self._git:
                gitdir, sha = resolve_rev(rev["source"], rev["sha"], self.cache)
                if not (self.cache / "trees" / sha).is_dir() and (size := tree_size(gitdir, sha)) > self.limits.tree:
                    raise SourceError(f"commit {sha[:12]} holds {size} bytes of files, more than the {self.limits.tree} a revision may")
                tree = checkout(gitdir, sha, self.cache)
            root = contained(tree, rev.get("subdir") or "")
            refuse_links(tree, root)
            return sha, str(root)
        local = rev.get("tree")
        if local is None:  # recorded before trees were kept: its root was checked at submit
            return None, str(rev["root"])
        return None, str(contained(Path(local), rev.get("subdir") or ""))

    def _current_record(self) -> dict[str, Any] | None:
        rec = self.store.get(r.CURRENT_KEY)
        if rec is None or not rec.value.get("root"):
            return None
        return {k: rec.value.get(k) for k in ("root", "sha", "label")}

    def _evaluate(self, rev: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any]]:
        """(sha, root, answer): fetch, then validate and plan in a bounded child. Never raises."""
        sha, root = rev.get("sha"), rev.get("root")
        try:
            sha, root = self._fetch(rev)
            request = {"root": root, "sha": sha, "label": rev["label"], "current": self._current_record()}
            return sha, root, run_bounded(request, self.limits)
        except SoTInvalid as exc:
            return sha, root, {"errors": [e.to_dict() for e in exc.errors]}
        except SourceError as exc:
            return sha, root, {"errors": [_error(self.scrub(str(exc)))]}
        except Exception as exc:
            log.exception("revision %s could not be checked", rev.get("id"))
            if self.observer:
                self.observer.error("gate")
            return sha, root, {"errors": [_error(f"the revision could not be checked ({type(exc).__name__}); see the server log")]}

    def check_commit(self, url: str, sha: str, *, subdir: str, label: str) -> tuple[str | None, dict[str, Any]]:
        """(SoT folder, answer) of commit `sha`, fetched, validated and planned against the applied
        revision exactly as a pushed revision is (the same sandbox and bounds); nothing is recorded."""
        rev = {"id": sha, "kind": "git", "sha": sha, "source": check_git_url(url), "subdir": check_subdir_request(subdir), "label": label}
        _, root, answer = self._evaluate(rev)
        return root, answer

    def note_review(self, sha: str) -> None:
        """Write on the plan of commit `sha` (if planned) what review_of says about the PR it merged."""
        rec = self.store.get(r.revision_key(sha))
        pid = rec.value.get("plan") if rec else None
        with self._lock:
            plan = self.store.get(r.plan_key(pid)) if pid else None
            if plan is None or plan.value.get("state") == r.INVALID:
                return
            note = review_of(self.store, plan.value)
            if note is not None:
                self.store.cas(plan.key, plan.value | {"reviewed": note}, expect=plan.revision)

    def _give_up(self, rid: str, message: str) -> dict[str, Any] | None:
        """Record revision `rid` as invalid, with an invalid plan saying why (so its plan id answers)."""
        rec = self.store.get(r.revision_key(rid))
        if rec is None:
            return None
        rev = rec.value
        pid = rev.get("plan") or r.new_plan_id()
        value = self._plan_value(pid, rid, rev, rev.get("sha"), rev.get("root"), {"errors": [_error(message)]})
        if self.store.get(r.plan_key(pid)) is None:
            self.store.put(r.plan_key(pid), value)
        self._update_revision(rid, state=r.INVALID, plan=pid, errors=value["errors"])
        return value

    def _plan_value(self, pid: str, rid: str, rev: dict[str, Any], sha: str | None, root: str | None, answer: dict[str, Any]) -> dict[str, Any]:
        value: dict[str, Any] = {
            "id": pid,
            "revision": rid,
            "sha": sha,
            "source": rev["source"],
            "label": rev["label"],
            "root": root,
            "content": rev.get("digest"),
            "created": time.time(),
            "actor": rev.get("actor"),
            "base_sha": None,
            "state": r.INVALID,
            "auto_apply": False,
            "plan": None,
            "text": None,
            "digest": None,
            "errors": answer.get("errors") or [],
            "validation": {k: answer[k] for k in ("seconds", "peak_rss") if k in answer},
            **r.UNDECIDED,
        }
        if value["errors"] or not isinstance(answer.get("plan"), dict):
            if not value["errors"]:
                value["errors"] = [_error("the validation process gave no plan")]
            return value
        auto = bool(answer.get("auto_apply"))
        value |= {"plan": answer["plan"], "text": answer.get("text"), "base_sha": answer.get("base_sha"), "auto_apply": auto}
        value["digest"] = r.plan_digest(value)
        if auto or not answer.get("has_changes"):
            value |= {"state": r.APPROVED, "approved_by": "policy:auto_apply" if auto else "policy:no_changes", "approved_at": time.time()}
        else:
            value["state"] = r.PENDING_APPROVAL
        return value

    def process(self, rid: str) -> dict[str, Any] | None:
        rec = self.store.get(r.revision_key(rid))
        if rec is None or rec.value.get("state") not in (r.QUEUED, r.FETCHING):
            return None
        # The plan id is fixed before any work, so a restart in the middle redoes the same plan, never a second one.
        pid = rec.value.get("plan") or r.new_plan_id()
        done = self.store.get(r.plan_key(pid))
        if done is not None:  # written before a restart: only the revision's own update was lost
            self._update_revision(
                rid, state=r.INVALID if done.value["state"] == r.INVALID else r.PLANNED, root=done.value.get("root"), errors=done.value["errors"]
            )
            return done.value
        attempts = int(rec.value.get("attempts") or 0)
        if rec.value.get("state") == r.FETCHING and attempts >= MAX_ATTEMPTS:
            # The controller stopped while checking this revision, again and again: do not let it wedge the gate.
            log.warning("revision %s given up after %d attempts", rid[:12], attempts, extra={"sha": rec.value.get("sha")})
            return self._give_up(rid, f"checking this revision did not finish in {attempts} attempts (the controller stopped each time)")
        rev = self._update_revision(rid, state=r.FETCHING, plan=pid, attempts=attempts + 1)
        extra: dict[str, Any] = {"sha": rev.get("sha") or rev.get("digest"), "plan": pid}
        self._status(rev, "pending", "Vaquero is validating and planning this revision")
        started = time.monotonic()
        sha, root, answer = self._evaluate(rev)
        value = self._plan_value(pid, rid, rev, sha, root, answer)
        planned = value["state"] != r.INVALID
        with self._lock:
            if planned and (note := review_of(self.store, value)) is not None:
                value["reviewed"] = note
            if value["state"] == r.PENDING_APPROVAL:
                # A small marker per waiting plan (written first: a stale marker is harmless), so superseding
                # never reads every plan body in the Store.
                self.store.put(r.pending_key(pid), {"plan": pid, "created": value["created"]})
            self.store.put(r.plan_key(pid), value)
            if planned:
                self._supersede(pid)
        self._update_revision(rid, state=r.PLANNED if planned else r.INVALID, plan=pid, root=root, errors=value["errors"])
        seconds = time.time() - rev["created"]
        if self.observer:
            self.observer.planned(value["state"], seconds)
        if value["state"] == r.INVALID:
            first = value["errors"][0] if value["errors"] else {}
            where = f"{first.get('file')}:{first.get('line')}: " if first.get("file") else ""
            log.warning("revision invalid: %d error(s), first: %s%s", len(value["errors"]), where, first.get("message"), extra=extra)
            self._status(rev, "failure" if first.get("file") else "error", f"invalid: {where}{first.get('message', '')}", pid)
        else:
            summary = value["plan"]["summary"]
            changes = ", ".join(f"{n} {a}" for a, n in summary.items() if n) or "no changes"
            log.info("plan %s ready (%s) in %.2fs: %s", pid, value["state"], time.monotonic() - started, changes, extra=extra)
            self._status(rev, "success", f"valid; plan {value['state'].replace('_', ' ')}: {changes}", pid)
        return value

    def _status(self, rev: dict[str, Any], state: str, description: str, pid: str | None = None) -> None:
        if self.reporter is None or not rev.get("github") or not rev.get("sha"):
            return
        target = f"{self.public_url}/v1/plans/{pid}" if self.public_url and pid else None
        reporter, observer = self.reporter, self.observer

        def post() -> None:
            if not reporter.post(rev["github"], rev["sha"], state, description, target, plan=pid) and observer:
                observer.error("github_status")

        if self._statuses is not None:
            self._status_futures.append(self._statuses.submit(post))

    def _supersede(self, newest: str) -> None:
        for marker in self.store.list("/plans-pending/"):
            pid = marker.value.get("plan", "")
            if pid == newest:
                continue
            for _ in range(20):
                rec = self.store.get(r.plan_key(pid))
                if rec is None or rec.value.get("state") != r.PENDING_APPROVAL:
                    break
                v = rec.value
                if self.store.cas(rec.key, v | {"state": r.SUPERSEDED, "superseded_by": newest}, expect=rec.revision) is not None:
                    log.info("plan %s superseded by %s", pid, newest, extra={"plan": pid, "sha": v.get("sha")})
                    break
            self.store.delete(marker.key)

    # -- decisions --
    def _decide(self, pid: str, allowed: tuple[str, ...], change: Callable[[dict[str, Any]], dict[str, Any]], verb: str) -> dict[str, Any]:
        key = r.plan_key(pid)
        for _ in range(20):
            rec = self.store.get(key)
            if rec is None:
                raise GateError(404, f"no plan {pid}")
            state = rec.value.get("state")
            if state not in allowed:
                hint = f" (superseded by {rec.value.get('superseded_by')})" if state == r.SUPERSEDED else ""
                raise GateError(409, f"plan {pid} is {state}{hint}: it cannot be {verb}")
            value = change(dict(rec.value))
            if self.store.cas(key, value, expect=rec.revision) is not None:
                if state == r.PENDING_APPROVAL and value.get("state") != r.PENDING_APPROVAL:
                    self.store.delete(r.pending_key(pid))
                return value
        raise GateError(409, f"plan {pid} keeps changing: try again")

    def approve(self, pid: str, who: str, comment: str = "", *, digest: str) -> dict[str, Any]:
        """Approve plan `pid` as the approver read it: `digest` must be the plan's digest (409 otherwise)."""
        change = {"state": r.APPROVED, "approved_by": who, "approved_at": time.time(), "approval_comment": comment or None}

        def bind(v: dict[str, Any]) -> dict[str, Any]:
            if not v.get("digest") or not hmac.compare_digest(str(v["digest"]), digest) or r.plan_digest(v) != digest:
                raise GateError(409, f"plan {pid} is not the plan you approved: its digest is {v.get('digest')}; read it again")
            return v | change

        with self._lock:
            value = self._decide(pid, (r.PENDING_APPROVAL,), bind, "approved")
        log.info("plan %s approved by %s", pid, who, extra={"plan": pid, "sha": value.get("sha")})
        return value

    def reject(self, pid: str, who: str, comment: str = "") -> dict[str, Any]:
        change = {"state": r.REJECTED, "rejected_by": who, "rejected_at": time.time(), "rejection_comment": comment or None}
        with self._lock:
            value = self._decide(pid, (r.PENDING_APPROVAL,), lambda v: v | change, "rejected")
        log.info("plan %s rejected by %s", pid, who, extra={"plan": pid, "sha": value.get("sha")})
        return value

    def cancel(self, pid: str, who: str, comment: str = "") -> dict[str, Any]:
        value = self._decide(pid, (r.APPROVED, r.RUNNING), lambda v: v | {"cancel_requested": True, "cancel_requested_by": who}, "cancelled")
        log.info("cancel of plan %s requested by %s", pid, who, extra={"plan": pid, "sha": value.get("sha"), "run": value.get("run")})
        return value
