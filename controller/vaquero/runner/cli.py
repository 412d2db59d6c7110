"""`vaquero run ...` (list, show, steps, approve, pause, resume, abort): a client of the API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = os.environ.get("VAQUERO_DATA_DIR") or os.path.join(os.path.expanduser("~"), ".local", "share", "vaquero")


def _token(args: argparse.Namespace) -> str:
    if os.environ.get("VAQUERO_TOKEN"):
        return os.environ["VAQUERO_TOKEN"]
    path = Path(args.token_file) if args.token_file else Path(args.data_dir) / "token"
    if path.is_file():
        return path.read_text().strip()
    raise SystemExit(f"vaquero run: no API token (set VAQUERO_TOKEN, --token-file, or run standalone with --data-dir {args.data_dir})")


def _call(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    import httpx

    url = args.server.rstrip("/") + path
    verify: Any = True
    if args.cacert:
        import ssl

        verify = ssl.create_default_context(cafile=args.cacert)
    resp = httpx.request(method, url, headers={"Authorization": f"Bearer {_token(args)}"}, json=body, timeout=30, verify=verify)
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail")
        except ValueError:
            detail = resp.text
        raise SystemExit(f"vaquero run: {method} {path}: HTTP {resp.status_code}: {detail}")
    return resp.json()


def cmd_run(args: argparse.Namespace) -> int:
    verb = args.verb
    if verb == "list":
        data = _call(args, "GET", "/v1/runs")
        rows = data.get("runs", data) if isinstance(data, dict) else data
        for run in rows:
            print(f"{run.get('id')}  {run.get('state'):<10} sha {str(run.get('sha'))[:12]}  wave {run.get('wave')}  {run.get('error') or ''}")
        return 0
    if not args.id:
        raise SystemExit(f"vaquero run {verb}: give a run (plan) id")
    if verb == "show":
        print(json.dumps(_call(args, "GET", f"/v1/runs/{args.id}"), indent=2))
    elif verb == "steps":
        for s in _call(args, "GET", f"/v1/runs/{args.id}/steps")["steps"]:
            print(f"wave {s.get('wave')}  {s['host']:<20} {s.get('action'):<10} {s.get('state'):<10} attempt {s.get('attempt')}  {s.get('error') or ''}")
    elif verb == "approve":
        # An approval binds to the plan as read: its digest (a plan that changed in between gets a 409).
        # --digest binds to what the approver read earlier (`vaquero run show` / the API print it);
        # without it, the plan text this approval binds to is printed first, on stderr.
        digest = args.digest
        if not digest:
            plan = _call(args, "GET", f"/v1/plans/{args.id}")
            digest = plan.get("digest") or ""
            print(plan.get("text") or "(no plan text)", file=sys.stderr)
            print(f"approving plan {args.id} with digest {digest}", file=sys.stderr)
        print(json.dumps(_call(args, "POST", f"/v1/plans/{args.id}/approve", {"digest": digest}), indent=2))
    elif verb in ("pause", "resume", "abort"):
        run = _call(args, "POST", f"/v1/runs/{args.id}/{verb}")
        print(f"run {args.id}: {verb} requested (state {run.get('state')}, paused {run.get('paused')})")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="runs of approved plans: list, show, steps, approve, pause, resume, abort")
    p.add_argument("verb", choices=["list", "show", "steps", "approve", "pause", "resume", "abort"])
    p.add_argument("id", nargs="?", help="the run id (= the plan id)")
    p.add_argument("--server", default=os.environ.get("VAQUERO_SERVER", "http://127.0.0.1:8000"))
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="where standalone keeps its API token")
    p.add_argument("--token-file", help="file with an API token (else VAQUERO_TOKEN or DATA_DIR/token)")
    p.add_argument("--cacert", help="CA certificate (PEM) to verify an https --server with")
    p.add_argument("--digest", help="approve: the digest of the plan you read (refused with 409 if the plan changed since)")
    p.set_defaults(func=cmd_run)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
