"""A local stand-in for the parts of GitHub's REST API the controller writes to (GitHub cannot be
reached from here): commit statuses, check runs, issue comments. It records every request and
checks it against what GitHub requires, answering 422 (and noting the problem) when it does not."""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
    requests: list[Request] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1000))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                code, payload = standin.answer(self.command, self.path, self.headers.get("Authorization"), body)
                self._answer(code, payload)

            do_POST = _handle
            do_PATCH = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, method: str, path: str, authorization: str | None, body: Any) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if not isinstance(body, dict):
                self.problems.append(f"{method} {path}: body is not a JSON object")
                return 400, {"message": "Problems parsing JSON"}
            self.requests.append(Request(method, path, authorization, body))
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
