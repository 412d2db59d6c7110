"""A local stand-in for the parts of GitHub's REST API the controller writes to (GitHub cannot be
reached from here): commit statuses, check runs, issue comments, and (given the bare repository it
stands for) branches, file contents and pull requests, written as real git objects and refs there
(a pull request's head under refs/pull/<n>/head, as GitHub keeps it). It records every request and
checks it against what GitHub requires, answering 422 (and noting the problem) when it does not."""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import os
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

SHA = re.compile(r"^[0-9a-f]{40}$")
STATUS_STATES = {"pending", "success", "failure", "error"}
CHECK_STATUSES = {"queued", "in_progress", "completed"}
CONCLUSIONS = {"success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required"}
LEVELS = {"notice", "warning", "failure"}


@dataclass
class Request:
    method: str
    path: str
    authorization: str | None
    body: dict[str, Any]


def _check_output(output: Any) -> list[str]:
    if not isinstance(output, dict):
        return ["output is not an object"]
    problems = []
    if not isinstance(output.get("title"), str) or not output["title"]:
        problems.append("output.title missing")
    if not isinstance(output.get("summary"), str) or not output["summary"] or len(output["summary"]) > 65535:
        problems.append("output.summary missing or longer than 65535")
    notes = output.get("annotations", [])
    if not isinstance(notes, list) or len(notes) > 50:
        problems.append("more than 50 annotations in one request")
        return problems
    for note in notes:
        for name in ("path", "message", "annotation_level"):
            if not isinstance(note.get(name), str) or not note[name]:
                problems.append(f"annotation without {name}")
        start, end = note.get("start_line"), note.get("end_line")
        if not isinstance(start, int) or not isinstance(end, int) or start < 1 or end < start:
            problems.append(f"annotation lines {start!r}..{end!r}")
        if note.get("annotation_level") not in LEVELS:
            problems.append(f"annotation_level {note.get('annotation_level')!r}")
    return problems


def _check_run(body: dict[str, Any], create: bool) -> list[str]:
    problems = []
    if create and (not isinstance(body.get("name"), str) or not body["name"]):
        problems.append("check run without name")
    if create and not SHA.match(str(body.get("head_sha"))):
        problems.append("check run without a head_sha")
    status = body.get("status", "queued")
    if status not in CHECK_STATUSES:
        problems.append(f"status {status!r}")
    conclusion = body.get("conclusion")
    if status == "completed" and conclusion not in CONCLUSIONS:
        problems.append(f"completed without a valid conclusion: {conclusion!r}")
    if conclusion is not None and conclusion not in CONCLUSIONS:
        problems.append(f"conclusion {conclusion!r}")
    if "output" in body:
        problems += _check_output(body["output"])
    return problems


@dataclass
class GitHubStandIn:
    forbid_checks: bool = False  # as GitHub answers a personal or fine-grained token: checks are for Apps
    bare: Path | None = None  # the repository that refs, contents and pulls write to
    fail: dict[str, int] = field(default_factory=dict)  # "POST git/refs": answer 500 this many times
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    _numbers: Any = field(default_factory=lambda: itertools.count(31))
    requests: list[Request] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1000))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, code: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw or self.command != "GET" else {}
                except ValueError:
                    body = None
                code, payload = standin.answer(self.command, self.path, self.headers.get("Authorization"), body)
                self._answer(code, payload)

            do_POST = _handle
            do_PATCH = _handle
            do_PUT = _handle
            do_GET = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, method: str, target: str, authorization: str | None, body: Any) -> tuple[int, Any]:
        with self._lock:
            if not isinstance(body, dict):
                self.problems.append(f"{method} {target}: body is not a JSON object")
                return 400, {"message": "Problems parsing JSON"}
            self.requests.append(Request(method, target, authorization, body))
            split = urlsplit(target)
            path, query = split.path, {k: v[0] for k, v in parse_qs(split.query).items()}
            for step, left in self.fail.items():
                if left > 0 and re.fullmatch(rf"/repos/[^/]+/[^/]+/{step.split(' ', 1)[1]}(/.*)?", path) and method == step.split(" ", 1)[0]:
                    self.fail[step] = left - 1
                    return 500, {"message": "Server Error"}
            if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/(git/refs|contents/.+|pulls)", path):
                return self._repo(method, m.group(1), m.group(2), query, body)
            problems: list[str] = []
            if m := re.fullmatch(r"/repos/[^/]+/[^/]+/statuses/([0-9a-f]{40})", path):
                if method != "POST" or body.get("state") not in STATUS_STATES or not isinstance(body.get("context"), str):
                    problems.append(f"status {body}")
                answer: tuple[int, dict[str, Any]] = (201, {"id": next(self._ids), "state": body.get("state")})
            elif re.fullmatch(r"/repos/[^/]+/[^/]+/check-runs(/\d+)?", path):
                if self.forbid_checks:
                    return 403, {"message": "Resource not accessible by personal access token"}
                run_id = int(path.rsplit("/", 1)[1]) if path.rsplit("/", 1)[1].isdigit() else None
                problems += _check_run(body, create=run_id is None)
                if run_id is None and method == "POST":
                    run_id = next(self._ids)
                    self.runs[run_id] = {"annotations": []}
                elif run_id not in self.runs or method != "PATCH":
                    return 404, {"message": "Not Found"}
                run = self.runs[run_id]
                run.update({k: v for k, v in body.items() if k != "output"})
                if "output" in body:
                    run["output"] = {k: v for k, v in body["output"].items() if k != "annotations"}
                    run["annotations"] += body["output"].get("annotations", [])  # GitHub appends them
                answer = (201 if method == "POST" else 200, {"id": run_id})
            elif m := re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)/comments", path):
                if method != "POST" or not isinstance(body.get("body"), str) or len(body["body"]) > 65536:
                    problems.append("comment without a body of at most 65536 characters")
                cid = next(self._ids)
                self.comments[cid] = {"issue": int(m.group(1)), "body": body.get("body"), "updates": 0}
                answer = (201, {"id": cid})
            elif m := re.fullmatch(r"/repos/[^/]+/[^/]+/issues/comments/(\d+)", path):
                cid = int(m.group(1))
                if cid not in self.comments or method != "PATCH":
                    return 404, {"message": "Not Found"}
                self.comments[cid] |= {"body": body.get("body"), "updates": self.comments[cid]["updates"] + 1}
                answer = (200, {"id": cid})
            else:
                return 404, {"message": "Not Found"}
            if problems:
                self.problems += [f"{method} {path}: {p}" for p in problems]
                return 422, {"message": "Validation Failed"}
            return answer

    # -- the repository side: real refs, blobs and commits in `bare` --
    def _git(self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> str:
        assert self.bare is not None, "the stand-in was started without a repository"
        ident = {
            "GIT_AUTHOR_NAME": "GitHub",
            "GIT_AUTHOR_EMAIL": "noreply@example.invalid",
            "GIT_COMMITTER_NAME": "GitHub",
            "GIT_COMMITTER_EMAIL": "noreply@example.invalid",
        }
        done = subprocess.run(["git", *args], cwd=self.bare, input=stdin, capture_output=True, check=True, env={**os.environ, **ident, **(env or {})})
        return done.stdout.decode().strip()

    def _ref(self, ref: str) -> str | None:
        try:
            return self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except subprocess.CalledProcessError:
            return None

    def _blob(self, branch: str, path: str) -> str | None:
        try:
            return self._git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}:{path}")
        except subprocess.CalledProcessError:
            return None

    def _commit_file(self, branch: str, path: str, content: bytes, message: str) -> tuple[str, str]:
        parent = self._ref(f"refs/heads/{branch}")
        assert parent is not None
        blob = self._git("hash-object", "-w", "--stdin", stdin=content)
        with tempfile.TemporaryDirectory() as tmp:
            index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self._git("read-tree", parent, env=index)
            self._git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
            tree = self._git("write-tree", env=index)
        commit = self._git("commit-tree", tree, "-p", parent, "-m", message)
        self._git("update-ref", f"refs/heads/{branch}", commit, parent)
        return commit, blob

    def _repo(self, method: str, repo: str, what: str, query: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        def bad(problem: str) -> tuple[int, Any]:
            self.problems.append(f"{method} {what}: {problem}")
            return 422, {"message": "Validation Failed"}

        if what == "git/refs" and method == "POST":
            ref, sha = body.get("ref"), body.get("sha")
            if not isinstance(ref, str) or not re.fullmatch(r"refs/heads/[A-Za-z0-9._/-]+", ref) or not SHA.match(str(sha)):
                return bad(f"ref {ref!r} / sha {sha!r}")
            if self._ref(str(sha)) is None:
                return 422, {"message": "Object does not exist"}
            if self._ref(ref) is not None:
                return 422, {"message": "Reference already exists"}
            self._git("update-ref", ref, str(sha), "0" * 40)
            return 201, {"ref": ref, "object": {"sha": sha, "type": "commit"}}
        if what.startswith("contents/") and method in ("GET", "PUT"):
            path = unquote(what[len("contents/") :])
            branch = query.get("ref") if method == "GET" else body.get("branch")
            if not isinstance(branch, str) or self._ref(f"refs/heads/{branch}") is None:
                return 404, {"message": "No commit found for the ref"}
            blob = self._blob(branch, path)
            if method == "GET":
                if blob is None:
                    return 404, {"message": "Not Found"}
                content = base64.b64encode(self._git("cat-file", "blob", blob).encode()).decode()
                return 200, {"type": "file", "path": path, "sha": blob, "content": content, "encoding": "base64"}
            message, encoded = body.get("message"), body.get("content")
            if not isinstance(message, str) or not message or not isinstance(encoded, str):
                return bad("contents without a message or content")
            try:
                content = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                return bad("content is not base64")
            if blob is not None and body.get("sha") != blob:
                return 422, {"message": '"sha" wasn\'t supplied.'}
            commit, new_blob = self._commit_file(branch, path, content, message)
            return (200 if blob else 201), {"content": {"path": path, "sha": new_blob}, "commit": {"sha": commit}}
        if what == "pulls" and method == "GET":
            owner_head = query.get("head", "")
            found = [p for p in self.pulls.values() if p["state"] == query.get("state", "open") and f"{repo.split('/')[0]}:{p['head']['ref']}" == owner_head]
            return 200, found
        if what == "pulls" and method == "POST":
            title, head, base = body.get("title"), body.get("head"), body.get("base")
            if not isinstance(title, str) or not title or not isinstance(head, str) or not isinstance(base, str) or not isinstance(body.get("body", ""), str):
                return bad("a pull request needs title, head and base")
            head_sha = self._ref(f"refs/heads/{head}")
            if head_sha is None or self._ref(f"refs/heads/{base}") is None:
                return bad(f"head {head!r} or base {base!r} is not a branch")
            if any(p["head"]["ref"] == head and p["state"] == "open" for p in self.pulls.values()):
                return 422, {"message": "Validation Failed", "errors": [{"message": f"A pull request already exists for {head}."}]}
            number = next(self._numbers)
            self._git("update-ref", f"refs/pull/{number}/head", head_sha)
            pull = {
                "number": number,
                "state": "open",
                "title": title,
                "body": body.get("body", ""),
                "html_url": f"https://github.example.invalid/{repo}/pull/{number}",
                "head": {"ref": head, "sha": head_sha},
                "base": {"ref": base},
            }
            self.pulls[number] = pull
            return 201, pull
        return 404, {"message": "Not Found"}
