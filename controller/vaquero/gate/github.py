"""GitHub commit statuses: tell the pull request / commit page what the gate made of a revision.

POST {api}/repos/{owner}/{repo}/statuses/{sha} with {state, description, context, target_url}.
The token is sent in the Authorization header only; it never enters a log line or an exception.
"""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger("vaquero.gate.github")

STATES = ("pending", "success", "failure", "error")


class StatusReporter:
    def __init__(self, token: str, api_url: str = "https://api.github.com", *, context: str = "vaquero/plan", timeout: float = 10.0) -> None:
        self._token = token
        self.api_url = api_url.rstrip("/")
        self.context = context
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"StatusReporter(api_url={self.api_url!r}, context={self.context!r})"

    def post(self, full_name: str, sha: str, state: str, description: str, target_url: str | None = None, *, plan: str | None = None) -> bool:
        """Post one status; returns False (and logs why, without the token) when GitHub refused it."""
        if state not in STATES:
            raise ValueError(f"unknown commit status state {state!r}")
        body: dict[str, str] = {"state": state, "description": description[:140], "context": self.context}
        if target_url:
            body["target_url"] = target_url
        url = f"{self.api_url}/repos/{full_name}/statuses/{sha}"
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "vaquero",
        }
        try:
            resp = httpx.post(url, json=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            log.warning("commit status not posted: %s", type(exc).__name__, extra={"sha": sha, "plan": plan})
            return False
        if resp.status_code >= 300:
            log.warning("commit status not posted: GitHub answered %s", resp.status_code, extra={"sha": sha, "plan": plan})
            return False
        log.info("commit status %s posted to %s", state, full_name, extra={"sha": sha, "plan": plan})
        return True
