"""The proposal with a GitHub token: branch ``vaquero/enroll-<mac hex>`` at the applied commit, the host
file committed on it, and a pull request into the configured branch. Each step may be repeated after a
failure: an existing branch is reused, a file already there is updated, an open pull request from the
branch is found instead of opened twice."""

from __future__ import annotations

import base64
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..gate.github import GitHubClient

NOTHING_INSTALLED = "Nothing is installed until this is merged and its plan approved."


class PullFailed(Exception):
    """A GitHub step failed; the message names the step and GitHub's status, never the token."""


@dataclass(frozen=True)
class Pull:
    number: int
    url: str
    branch: str
    path: str


def branch_of(mac: str) -> str:
    return "vaquero/enroll-" + mac.replace(":", "")


def markdown_text(value: str) -> str:
    """A report string shown in Markdown as text: every ASCII punctuation character backslash-escaped
    (CommonMark: no link, emphasis, HTML or table cell break survives), so it reads as it was sent."""
    return "".join("\\" + ch if ch in string.punctuation else ch for ch in value)


def body_of(facts: list[tuple[str, str]], *, host: str, path: str, site: str, address: str, network: str) -> str:
    rows = "\n".join(f"| {markdown_text(label)} | {markdown_text(value)} |" for label, value in facts)
    return (
        f"A machine the SoT does not know netbooted at site {markdown_text(site)} and its inspection ramdisk reported it.\n"
        f"This pull request adds it as host `{host}` (`{path}`), address {address} on network {markdown_text(network)}.\n\n"
        "It has no BMC yet: add one to the file if the host is to be power-managed.\n\n"
        f"| reported | value (as claimed, JSON) |\n|---|---|\n{rows}\n\n**{NOTHING_INSTALLED}**\n"
    )


def _fail(step: str, status: int, answer: Any) -> PullFailed:
    said = answer.get("message") if isinstance(answer, dict) else None
    why = f"GitHub answered {status}" if status else f"GitHub could not be reached ({said})"
    if status and isinstance(said, str):
        why += f": {said[:200]}"
    return PullFailed(f"{step}: {why}")


def open_pull(client: GitHubClient, repo: str, *, base: str, sha: str, mac: str, path: str, text: str, title: str, body: str, message: str) -> Pull:
    """Branch at ``sha``, ``text`` at ``path`` on it, a pull request into ``base``: the steps, each idempotent."""
    branch = branch_of(mac)
    status, answer = client.send("POST", f"/repos/{repo}/git/refs", {"ref": f"refs/heads/{branch}", "sha": sha})
    exists = status == 422 and isinstance(answer, dict) and "already exists" in str(answer.get("message", "")).lower()
    if status != 201 and not exists:
        raise _fail("creating the branch", status, answer)
    where = f"/repos/{repo}/contents/{quote(path)}"
    put: dict[str, Any] = {"message": message, "content": base64.b64encode(text.encode()).decode(), "branch": branch}
    if exists:  # a round that failed later left the branch: its file, if there, is replaced by this one
        status, answer = client.send("GET", where, params={"ref": branch})
        if status == 200 and isinstance(answer, dict) and isinstance(answer.get("sha"), str):
            put["sha"] = answer["sha"]
        elif status != 404:
            raise _fail("reading the branch's file", status, answer)
    status, answer = client.send("PUT", where, put)
    if status not in (200, 201):
        raise _fail("committing the host file", status, answer)
    owner = repo.split("/", 1)[0]
    status, answer = client.send("POST", f"/repos/{repo}/pulls", {"title": title, "head": branch, "base": base, "body": body})
    if status == 422:  # already open from an earlier round
        status, answer = client.send("GET", f"/repos/{repo}/pulls", params={"head": f"{owner}:{branch}", "state": "open"})
        found = answer[0] if status == 200 and isinstance(answer, list) and answer else None
        if not isinstance(found, dict):
            raise _fail("opening the pull request", 422, {"message": "refused, and no open pull request from the branch"})
        answer, status = found, 201
    if status != 201 or not isinstance(answer, dict) or not isinstance(answer.get("number"), int):
        raise _fail("opening the pull request", status, answer)
    return Pull(number=answer["number"], url=str(answer.get("html_url") or ""), branch=branch, path=path)
