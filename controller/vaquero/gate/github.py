"""The one GitHub client: commit statuses, check runs, pull request comments, and the branch, file and
pull request of an enrollment (vaquero.enroll).

POST {api}/repos/{owner}/{repo}/statuses/{sha} with {state, description, context, target_url};
POST/PATCH {api}/repos/{owner}/{repo}/check-runs[/{id}] with {name, head_sha, status, conclusion,
output: {title, summary, annotations}}; POST {api}/repos/{owner}/{repo}/issues/{n}/comments and
PATCH .../issues/comments/{id} with {body}; POST .../git/refs with {ref, sha}, GET/PUT
.../contents/{path} with {message, content (base64), branch, sha}, GET/POST .../pulls.
The token is sent in the Authorization header only; it never enters a log line or an exception.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

log = logging.getLogger("vaquero.gate.github")

STATES = ("pending", "success", "failure", "error")
CHECK_STATUSES = ("queued", "in_progress", "completed")
CONCLUSIONS = ("success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required")
ANNOTATION_LEVELS = ("notice", "warning", "failure")
MAX_ANNOTATIONS = 50  # GitHub takes at most this many annotations per check-run request
MAX_SUMMARY = 65535  # GitHub's limit on output.summary and output.text
MAX_COMMENT = 65536


class Forbidden(Exception):
    """GitHub answered 403: the token lacks the permission (e.g. checks: write is for GitHub Apps only)."""


class GitHubClient:
    def __init__(self, token: str, api_url: str = "https://api.github.com", *, context: str = "vaquero/plan", timeout: float = 10.0) -> None:
        self._token = token
        self.api_url = api_url.rstrip("/")
        self.context = context
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r}, context={self.context!r})"

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "vaquero",
        }

    def send(self, method: str, path: str, body: dict[str, Any] | None = None, *, params: dict[str, str] | None = None) -> tuple[int, Any]:
        """(status, JSON answer) of one request; status 0 when GitHub could not be reached. Nothing is
        logged here and no exception carries the request (its headers hold the token)."""
        headers = self._headers()
        try:
            resp = httpx.request(method, f"{self.api_url}{path}", json=body, params=params, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            return 0, {"message": type(exc).__name__}
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, {}

    def _request(self, method: str, path: str, body: dict[str, Any], what: str, extra: dict[str, Any]) -> dict[str, Any] | None:
        """The JSON answer, None when GitHub could not be reached or refused (logged without the token);
        Forbidden on 403 so a caller can fall back to what the token may do."""
        headers = self._headers()
        try:
            resp = httpx.request(method, f"{self.api_url}{path}", json=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            log.warning("%s not posted: %s", what, type(exc).__name__, extra=extra)
            return None
        if resp.status_code == 403:
            log.warning("%s not posted: GitHub answered 403", what, extra=extra)
            raise Forbidden(what)
        if resp.status_code >= 300:
            log.warning("%s not posted: GitHub answered %s", what, resp.status_code, extra=extra)
            return None
        try:
            answer = resp.json()
        except ValueError:
            answer = {}
        return answer if isinstance(answer, dict) else {}

    def post(self, full_name: str, sha: str, state: str, description: str, target_url: str | None = None, *, plan: str | None = None) -> bool:
        """Post one commit status; returns False (and logs why, without the token) when GitHub refused it."""
        if state not in STATES:
            raise ValueError(f"unknown commit status state {state!r}")
        body: dict[str, str] = {"state": state, "description": description[:140], "context": self.context}
        if target_url:
            body["target_url"] = target_url
        extra = {"sha": sha, "plan": plan}
        try:
            answer = self._request("POST", f"/repos/{full_name}/statuses/{sha}", body, "commit status", extra)
        except Forbidden:
            return False
        if answer is None:
            return False
        log.info("commit status %s posted to %s", state, full_name, extra=extra)
        return True

    def check_run(
        self,
        full_name: str,
        sha: str,
        *,
        run_id: int | None = None,
        status: str,
        conclusion: str | None = None,
        title: str | None = None,
        summary: str | None = None,
        annotations: list[dict[str, Any]] | None = None,
        details_url: str | None = None,
        external_id: str | None = None,
    ) -> int | None:
        """Create (run_id None) or update one check run; returns its id, None when it could not be posted.

        Annotations go out MAX_ANNOTATIONS per request (GitHub appends those of each update).
        Raises Forbidden when the token may not write checks."""
        if status not in CHECK_STATUSES or (status == "completed") != (conclusion is not None) or (conclusion and conclusion not in CONCLUSIONS):
            raise ValueError(f"unusable check run status {status!r} / conclusion {conclusion!r}")
        notes = list(annotations or [])
        for note in notes:
            if note.get("annotation_level") not in ANNOTATION_LEVELS:
                raise ValueError(f"unknown annotation level {note.get('annotation_level')!r}")
        body: dict[str, Any] = {"name": self.context, "head_sha": sha, "status": status}
        if conclusion:
            body["conclusion"] = conclusion
        if details_url:
            body["details_url"] = details_url
        if external_id:
            body["external_id"] = external_id
        output: dict[str, Any] | None = None
        if title is not None:
            output = {"title": title[:255], "summary": (summary or title)[:MAX_SUMMARY]}
        batches = [notes[i : i + MAX_ANNOTATIONS] for i in range(0, len(notes), MAX_ANNOTATIONS)] or [[]]
        extra = {"sha": sha}
        for batch in batches:
            request = dict(body)
            if output is not None:
                request["output"] = output | ({"annotations": batch} if batch else {})
            if run_id is None:
                answer = self._request("POST", f"/repos/{full_name}/check-runs", request, "check run", extra)
                new_id = answer.get("id") if answer else None
                if not isinstance(new_id, int):
                    return None
                run_id = new_id
            elif self._request("PATCH", f"/repos/{full_name}/check-runs/{run_id}", request, "check run", extra) is None:
                return None
        log.info("check run %s (%s) posted to %s", status, conclusion or "-", full_name, extra=extra)
        return run_id

    def comment(self, full_name: str, number: int, body: str, *, comment_id: int | None = None) -> int | None:
        """Create the pull request's comment, or update it in place; returns its id (None when refused)."""
        text = body if len(body) <= MAX_COMMENT else body[: MAX_COMMENT - 20] + "\n\n(truncated)"
        extra: dict[str, Any] = {}
        try:
            if comment_id is not None:
                answer = self._request("PATCH", f"/repos/{full_name}/issues/comments/{comment_id}", {"body": text}, "PR comment", extra)
                if answer is not None:
                    return comment_id
            answer = self._request("POST", f"/repos/{full_name}/issues/{number}/comments", {"body": text}, "PR comment", extra)
        except Forbidden:
            return None
        new_id = answer.get("id") if answer else None
        return new_id if isinstance(new_id, int) else None


# The gate's name for it since commit statuses were all it posted.
StatusReporter = GitHubClient
