"""Plans on pull requests: what a PR would do, shown on the PR before anyone merges it.

A PR's head is fetched from the configured repository at its SHA (GitHub keeps every PR head,
forks' too, under refs/pull/), validated and planned against the applied revision in the same
sandbox as a pushed revision (`Gate.check_commit`), and the result goes to the PR: a check run
(title, summary with the plan text, one annotation per error at file:line) or, when the token
may not write checks (403: checks are for GitHub Apps), a commit status and one comment updated
in place. The record, `/pulls/<number>`, lives in the gate's Store. A PR plan is never applied:
merging pushes a commit, which the gate plans like any other; that plan then says whether it is
the one reviewed (`review_of`). Closing a PR without merging drops its record.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..sot.source import tree_digest
from ..state.store import Store
from . import records as r
from .github import Forbidden, GitHubClient

if TYPE_CHECKING:
    from .core import Gate

log = logging.getLogger("vaquero.gate.pulls")

QUEUED = "queued"
PLANNING = "planning"
PLANNED = "planned"
INVALID = "invalid"
MERGED = "merged"
MAX_PLAN_TEXT = 60000  # of the summary GitHub takes (65535), the rest is the frame around it


def change_digest(plan: dict[str, Any] | None, text: str | None, base_sha: str | None) -> str | None:
    """What a plan would do, without the name of the commit it was made from: equal for a PR head and
    its merge commit when they change the same things from the same applied revision."""
    if plan is None:
        return None
    body = {k: v for k, v in plan.items() if k != "new"}
    lines = (text or "").split("\n")[1:]  # the first line names the commit
    canonical = json.dumps({"plan": body, "text": lines, "base": base_sha}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def fence(text: str) -> str:
    """`text` as a Markdown code block whose fence no run of backticks in it can close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}text\n{text}\n{ticks}"


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit]


def annotations_of(errors: list[dict[str, Any]], subdir: str) -> list[dict[str, Any]]:
    """One failure annotation per error that points at a file and line (paths from the repository root)."""
    prefix = subdir.strip("/") + "/" if subdir.strip("/") else ""
    notes = []
    for err in errors:
        line = err.get("line")
        if not err.get("file") or not isinstance(line, int) or line < 1:
            continue
        note = {
            "path": prefix + str(err["file"]),
            "start_line": line,
            "end_line": line,
            "annotation_level": "failure",
            "message": _one_line(err.get("message") or "invalid", 2000),
        }
        if err.get("field"):
            note["title"] = _one_line(err["field"], 250)
        notes.append(note)
    return notes


def _changes(value: dict[str, Any]) -> str:
    summary = (value.get("plan") or {}).get("summary") or {}
    return ", ".join(f"{n} {a}" for a, n in summary.items() if n) or "no changes"


def report_text(value: dict[str, Any]) -> tuple[str, str]:
    """(title, Markdown summary) of a PR plan record, for a check run or a comment."""
    head = value["head_sha"]
    base = value.get("base_sha")
    against = f"the applied revision `{base[:12]}`" if base else "nothing applied yet (an empty SoT)"
    lines = [f"Vaquero plan of `{head[:12]}` against {against}."]
    if value.get("fork"):
        lines.append("This pull request comes from a fork: it is planned for review, never applied from here.")
    lines.append("Merging applies nothing by itself: the merge commit is planned again and waits for approval like any push.")
    if value["state"] == INVALID:
        errors = value.get("errors") or []
        title = f"invalid: {len(errors)} error(s)"
        listed = []
        for err in errors[:200]:
            where = f"{err['file']}:{err['line']}: " if err.get("file") else ""
            field = f"{err['field']}: " if err.get("field") else ""
            listed.append(_one_line(where + field + str(err.get("message", "")), 1000))
        if len(errors) > 200:
            listed.append(f"... and {len(errors) - 200} more")
        # In a code block: an error quotes the SoT, which must not become Markdown or HTML on the PR.
        lines += ["", f"**{len(errors)} error(s)**:", "", fence("\n".join(listed))]
    else:
        title = f"valid: {_changes(value)}"
        text = value.get("text") or ""
        if len(text) > MAX_PLAN_TEXT:
            # The totals are the plan's last line: the reviewer of a big change still sees how many hosts it touches.
            totals = text.rstrip("\n").rsplit("\n", 1)[-1]
            kept = text[:MAX_PLAN_TEXT].rsplit("\n", 1)[0]
            text = f"{kept}\n... (truncated; the whole plan is in the controller's record of this PR)\n{totals}"
        lines += ["", fence(text)]
    return title, "\n".join(lines)


class PullPlanner:
    """Plans pull requests one at a time on its own thread; the webhook only queues them."""

    def __init__(self, gate: Gate, client: GitHubClient | None = None, *, public_url: str | None = None) -> None:
        self.gate = gate
        self.store: Store = gate.store
        self.client = client
        self.public_url = public_url.rstrip("/") if public_url else None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vaquero-pulls")
        self._futures: list[Future[None]] = []
        self._lock = threading.Lock()
        self._started = False
        # Learnt from the first 403: a token (not a GitHub App) may not write checks; then statuses and a comment.
        self.checks_forbidden = False

    def start(self) -> None:
        """Plan from now on, beginning with the PRs left queued or planning when the controller stopped.

        It needs no leadership: a PR plan writes only its own record and is never applied, so every
        controller plans the deliveries it receives."""
        self._started = True
        for rec in self.store.list("/pulls/"):
            value = rec.value
            if value.get("state") in (QUEUED, PLANNING) and isinstance(value.get("number"), int) and isinstance(value.get("head_sha"), str):
                log.info("resuming pull request #%d left %s", value["number"], value["state"], extra={"sha": value["head_sha"]})
                self._schedule(value["number"], value["head_sha"])

    def stop(self) -> None:
        self._started = False
        self._pool.shutdown(wait=True, cancel_futures=False)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vaquero-pulls")

    def idle(self) -> bool:
        with self._lock:  # webhook threads append while a waiter prunes
            self._futures = [f for f in self._futures if not f.done()]
            return not self._futures

    def _schedule(self, number: int, head_sha: str) -> None:
        with self._lock:
            self._futures.append(self._pool.submit(self._plan_safely, number, head_sha))

    def wait_idle(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.01)
        return False

    # -- from the webhook --
    def submit(
        self, *, github: str, url: str, subdir: str, number: int, head_sha: str, fork: bool, action: str, delivery: str, force: bool = False
    ) -> tuple[dict[str, Any], bool]:
        """Queue a plan of PR `number` at `head_sha`; (record, False) when that head is already planned
        against the same applied revision and `force` (a re-run asked for) is not set."""
        key = r.pull_key(number)
        applied = self._applied_sha()
        value: dict[str, Any] = {}
        for _ in range(20):
            rec = self.store.get(key)
            old = rec.value if rec else {}
            same = old.get("head_sha") == head_sha and old.get("state") in (QUEUED, PLANNING, PLANNED, INVALID)
            if same and not force and (old.get("state") in (QUEUED, PLANNING) or old.get("base_sha") == applied):
                return old, False
            value = {
                "number": number,
                "github": github,
                "source": url,
                "subdir": subdir,
                "head_sha": head_sha,
                "fork": fork,
                "state": QUEUED,
                "action": action,
                "delivery": delivery,
                "created": time.time(),
                "base_sha": None,
                "content": None,
                "plan": None,
                "text": None,
                "digest": None,
                "errors": [],
                # The comment is updated in place for the life of the PR.
                "comment": old.get("comment"),
                "check_run": None,
                "reported_via": None,
            }
            if self.store.cas(key, value, expect=rec.revision if rec else 0) is not None:
                break
        else:
            return value, False
        log.info("pull request #%d queued at %s", number, head_sha[:12], extra={"sha": head_sha})
        if self._started:
            self._schedule(number, head_sha)
        return value, True

    def closed(self, number: int, *, merged: bool, merge_sha: str | None) -> str:
        """Closed without merging: its plan is dropped. Merged: kept, and linked to the merge commit."""
        key = r.pull_key(number)
        rec = self.store.get(key)
        if rec is None:
            return "no plan of this pull request was kept"
        if not merged or merge_sha is None:
            self.store.delete(key)
            log.info("pull request #%d closed: its plan is dropped", number)
            return "closed without merging: its plan is dropped"
        self.store.put(key, rec.value | {"state": MERGED, "merged_sha": merge_sha, "plan_state": rec.value.get("state")})
        self.store.put(r.merged_key(merge_sha), {"number": number})
        log.info("pull request #%d merged as %s", number, merge_sha[:12], extra={"sha": merge_sha})
        # The push of the merge commit may have been planned already: say there what was reviewed.
        self.gate.note_review(merge_sha)
        return "merged: the merge commit's plan is compared with the reviewed one"

    def _applied_sha(self) -> str | None:
        rec = self.store.get(r.CURRENT_KEY)
        return rec.value.get("sha") if rec else None

    # -- the work --
    def _plan_safely(self, number: int, head_sha: str) -> None:
        try:
            self._plan(number, head_sha)
        except Exception:
            log.exception("pull request #%d could not be planned", number, extra={"sha": head_sha})

    def _current(self, number: int, head_sha: str) -> tuple[dict[str, Any], int] | None:
        rec = self.store.get(r.pull_key(number))
        if rec is None or rec.value.get("head_sha") != head_sha or rec.value.get("state") == MERGED:
            return None  # closed, or a newer head came in
        return rec.value, rec.revision

    def _update(self, number: int, head_sha: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        for _ in range(20):
            now = self._current(number, head_sha)
            if now is None:
                return None
            value = now[0] | changes
            if self.store.cas(r.pull_key(number), value, expect=now[1]) is not None:
                return value
        return None

    def _plan(self, number: int, head_sha: str) -> None:
        now = self._current(number, head_sha)
        if now is None:
            return
        pr = self._update(number, head_sha, {"state": PLANNING})
        if pr is None:
            return
        run_id = self._start_report(pr)
        label = f"{pr['source']}@{head_sha[:12]} (pull request #{number})"
        root, answer = self.gate.check_commit(pr["source"], head_sha, subdir=pr["subdir"], label=label)
        errors = answer.get("errors") or []
        plan = answer.get("plan") if not errors and isinstance(answer.get("plan"), dict) else None
        if not errors and plan is None:
            errors = [{"file": None, "line": None, "field": None, "message": "the validation process gave no plan"}]
        changes: dict[str, Any] = {
            "state": INVALID if errors else PLANNED,
            "errors": errors,
            "plan": plan,
            "text": answer.get("text") if plan else None,
            "base_sha": answer.get("base_sha") if plan else self._applied_sha(),
            "content": tree_digest(Path(root)) if root and plan else None,
            "check_run": run_id,
            "planned_at": time.time(),
        }
        changes["digest"] = change_digest(plan, changes["text"], changes["base_sha"])
        value = self._update(number, head_sha, changes)
        if value is None:
            log.info("pull request #%d moved on while it was planned: result dropped", number, extra={"sha": head_sha})
            self._abandon(pr, run_id)
            return
        log.info("pull request #%d %s: %s", number, value["state"], _changes(value) if plan else f"{len(errors)} error(s)", extra={"sha": head_sha})
        via, ids = self._finish_report(value)
        self._update(number, head_sha, {"reported_via": via} | ids)

    # -- telling GitHub --
    def _details(self, number: int) -> str | None:
        return f"{self.public_url}/v1/pulls/{number}" if self.public_url else None

    def _start_report(self, pr: dict[str, Any]) -> int | None:
        if self.client is None:
            return None
        if not self.checks_forbidden:
            try:
                return self.client.check_run(
                    pr["github"], pr["head_sha"], status="in_progress", details_url=self._details(pr["number"]), external_id=f"pr-{pr['number']}"
                )
            except Forbidden:
                self.checks_forbidden = True
        self.client.post(pr["github"], pr["head_sha"], "pending", "Vaquero is validating and planning this pull request", self._details(pr["number"]))
        return None

    def _abandon(self, pr: dict[str, Any], run_id: int | None) -> None:
        """Close the check run of a head that is no longer the PR's (a newer push, or closed) instead of leaving it in progress."""
        if self.client is None or run_id is None or self.checks_forbidden:
            return
        title = "not planned: the pull request moved on (a newer head, or closed)"
        try:
            self.client.check_run(pr["github"], pr["head_sha"], run_id=run_id, status="completed", conclusion="cancelled", title=title)
        except Forbidden:
            self.checks_forbidden = True

    def _finish_report(self, value: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        if self.client is None:
            return None, {}
        title, summary = report_text(value)
        ok = value["state"] == PLANNED
        if not self.checks_forbidden:
            try:
                run_id = self.client.check_run(
                    value["github"],
                    value["head_sha"],
                    run_id=value.get("check_run"),
                    status="completed",
                    conclusion="success" if ok else "failure",
                    title=title,
                    summary=summary,
                    annotations=annotations_of(value.get("errors") or [], value.get("subdir") or ""),
                    details_url=self._details(value["number"]),
                    external_id=f"pr-{value['number']}",
                )
                return "check_run", {"check_run": run_id}
            except Forbidden:
                self.checks_forbidden = True
        state = "success" if ok else ("failure" if any(e.get("file") for e in value.get("errors") or []) else "error")
        self.client.post(value["github"], value["head_sha"], state, title, self._details(value["number"]))
        comment = self.client.comment(value["github"], value["number"], f"### Vaquero plan: {title}\n\n{summary}", comment_id=value.get("comment"))
        return "status", {"comment": comment if comment is not None else value.get("comment")}


def review_of(store: Store, plan: dict[str, Any]) -> dict[str, Any] | None:
    """For the plan of a merge commit: the PR reviewed before it and whether this is the same plan
    (same SoT content, or the same changes from the same applied revision) or what differs."""
    sha = plan.get("sha")
    link = store.get(r.merged_key(sha)) if sha else None
    if link is None:
        return None
    rec = store.get(r.pull_key(int(link.value.get("number", 0))))
    if rec is None:
        return None
    pr = rec.value
    mine = change_digest(plan.get("plan"), plan.get("text"), plan.get("base_sha"))
    content = tree_digest(Path(plan["root"])) if plan.get("root") and Path(plan["root"]).is_dir() else None
    note: dict[str, Any] = {
        "pull_request": pr["number"],
        "head_sha": pr["head_sha"],
        "reviewed_digest": pr.get("digest"),
        "reviewed_base_sha": pr.get("base_sha"),
    }
    same_tree = content is not None and content == pr.get("content")
    same_plan = mine is not None and mine == pr.get("digest")
    if pr.get("plan_state") != PLANNED:
        note |= {"same": False, "why": "the pull request's head was not a valid plan when it was reviewed"}
    elif same_plan:
        why = "the merge commit's SoT is the reviewed head's" if same_tree else "the same changes from the same applied revision"
        note |= {"same": True, "why": f"this is the plan reviewed on pull request #{pr['number']}: {why}"}
    else:
        moved = pr.get("base_sha") != plan.get("base_sha")
        why = "the applied revision moved since the review" if moved else "the merge commit changes other things than the reviewed head"
        old = (pr.get("text") or "").split("\n")[1:]
        new = (plan.get("text") or "").split("\n")[1:]
        diff = "\n".join(difflib.unified_diff(old, new, f"reviewed {pr['head_sha'][:12]}", f"merged {str(sha)[:12]}", lineterm=""))
        note |= {"same": False, "why": f"planned again: {why}", "diff": diff}
    return note
