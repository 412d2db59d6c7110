#!/usr/bin/env python3
"""Plans on pull requests: webhook to check run posted, for a 1,000-host change, vs the bare
`vaquero plan` of the same change, in one run.

The SoT is plan_scale's generator (one site, 20 clusters, 1,000 hosts) in a real bare git
repository; its base revision is pushed through the webhook, planned and recorded as applied
(`/sites-applied/current`, the runner's part). Each round opens a new pull request whose head
bumps the profile every host uses (`version`), so all 1,000 hosts are to be upgraded; the head is
pushed where GitHub keeps it (refs/pull/<n>/head). Timed:

  server: from sending the signed `pull_request` opened delivery (GitHub's own body, as in
          tests/api) to the GitHub API stand-in (tests/api/github_standin.py, the same process,
          on loopback) holding the completed check run: the controller fetches the head at its
          SHA, validates and plans it against the applied revision in its bounded child, posts
          the check run in progress, then completed with the plan text.
  bare:   `vaquero plan --repo URL BASE HEAD` (text output), called in-process (no CLI process
          start: the stronger peer), which fetches the commit into its own mirror, validates and
          plans in the same bounded child and prints the plan.

Counted: only a completed, successful check run whose summary holds the plan's count line
("1000 to upgrade"), and only when its plan text equals the bare plan's (the first line, which
names each side's source, aside). Caches, the same on both sides: git mirror and the applied
revision's checked-out tree warm (round 0 fills them and is not counted); the PR head is a new
commit every round (fetched and checked out by both); the SoT is parsed cold on both (each
validates in a fresh child process). Order alternates per round.
Ends with `pr_plan_latency ratio <v>` and the raw numbers. Target: <= 1.5.
Usage: benchmarks/pr_plan.py [--hosts N] [--clusters N] [--repeat N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# plan_scale's generator and controller.py's server helpers; the tests' webhook bodies, signing and GitHub stand-in.
sys.path[:0] = [str(HERE), str(ROOT / "tests" / "api")]


def bump(version: int):
    def edit(work: Path) -> None:
        path = work / "profiles" / "linux.yaml"
        path.write_text(re.sub(r"(?m)^version: .*$", f"version: '{version}'", path.read_text()))

    return edit


def body_of(text: str) -> list[str]:
    return text.split("\n")[1:]  # line 0 names the source as each side was given it


def bench(tmp: Path, hosts: int, clusters: int, repeat: int) -> tuple[list[float], list[float], str]:
    import httpx
    from api_helpers import GITHUB_TOKEN, SotRepo, git, make_settings, push_body, webhook_headers
    from github_standin import GitHubStandIn
    from plan_scale import generate
    from pr_helpers import HOOK, pr_body, pr_head

    from controller import free_port, start_uvicorn
    from vaquero.api.app import create_app
    from vaquero.cli import build_parser
    from vaquero.state.sqlite import SQLiteStore

    bare, work = tmp / "remote" / "sot.git", tmp / "work"
    bare.parent.mkdir()
    git(tmp, "init", "-q", "--bare", str(bare))
    git(tmp, "clone", "-q", str(bare), str(work))
    generate(work, 1, clusters, hosts, changed=False)
    repo = SotRepo(bare, work)
    base = repo.commit("base")

    github = GitHubStandIn()
    api = github.start()
    settings = make_settings(tmp, repo.url, github_token=GITHUB_TOKEN, github_api=api, public_url="https://vaquero.example.invalid")
    store = SQLiteStore(tmp / "data" / "store.sqlite")
    app = create_app(settings, store)
    port = free_port()
    server, thread = start_uvicorn(app, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    count_line = f"{hosts} to upgrade"

    def wait(what: str, found: Any, timeout: float = 300) -> Any:
        deadline = time.monotonic() + timeout
        while (value := found()) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {what} within {timeout:g}s")
            time.sleep(0.002)
        return value

    try:
        # The base revision is what the hardware runs (a runner would write this when it succeeded).
        body = push_body(repo.url, base)
        if client.post(HOOK, content=body, headers=webhook_headers(body, "push")).status_code != 202:
            raise RuntimeError("the push of the base revision was not accepted")
        rev = wait("plan of the base revision", lambda: r.value if (r := store.get(f"/revisions/{base}")) and r.value["state"] == "planned" else None)
        plan = store.get(f"/plans/{rev['plan']}").value  # type: ignore[union-attr]
        store.put("/sites-applied/current", {"sha": base, "root": plan["root"], "plan": plan["id"]})

        def server_side(number: int, head: str) -> tuple[float, str]:
            body = pr_body("opened", number, head)
            headers = webhook_headers(body, "pull_request")

            def posted() -> dict[str, Any] | None:
                for run in list(github.runs.values()):
                    summary = (run.get("output") or {}).get("summary") or ""
                    if run.get("head_sha") == head and run.get("status") == "completed" and count_line in summary:
                        return run
                return None

            t0 = time.perf_counter()
            if client.post(HOOK, content=body, headers=headers).status_code != 202:
                raise RuntimeError(f"pull request #{number} was not queued")
            try:
                run = wait(f"completed check run of pull request #{number} whose summary says {count_line!r}", posted)
            except RuntimeError:
                pull = store.get(f"/pulls/{number}")
                runs = [(r.get("status"), r.get("conclusion"), (r.get("output") or {}).get("title")) for r in github.runs.values() if r.get("head_sha") == head]
                raise RuntimeError(f"pull request #{number}: {pull.value['state'] if pull else 'no record'}; check runs {runs}") from None
            elapsed = time.perf_counter() - t0
            if run["conclusion"] != "success":
                raise RuntimeError(f"pull request #{number}: check run {run['conclusion']}: {run['output']['title']}")
            app.state.pulls.wait_idle(60)  # the record's last write (reported_via) is not part of the figure
            return elapsed, store.get(f"/pulls/{number}").value["text"]  # type: ignore[union-attr]

        def bare_side(head: str) -> tuple[float, str]:
            os.environ["VAQUERO_CACHE"] = str(tmp / "cli-cache")  # its own mirror, as a user's machine has
            args = build_parser().parse_args(["plan", "--repo", repo.url, base, head])
            out = io.StringIO()
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(out):
                rc = args.func(args)
            elapsed = time.perf_counter() - t0
            if rc != 2 or count_line not in out.getvalue():
                raise RuntimeError(f"vaquero plan {base[:12]} {head[:12]}: exit status {rc} (expected 2), or no {count_line!r} in its plan")
            return elapsed, out.getvalue()

        server_times: list[float] = []
        bare_times: list[float] = []
        for i in range(repeat + 1):
            number = 100 + i
            head = pr_head(repo, number, f"profile linux version {i + 2}", bump(i + 2))
            if i % 2:
                (b, bare_text), (s, server_text) = bare_side(head), server_side(number, head)
            else:
                (s, server_text), (b, bare_text) = server_side(number, head), bare_side(head)
            if body_of(server_text) != body_of(bare_text):
                raise RuntimeError(f"round {i}: the check run's plan and `vaquero plan`'s differ")
            print(f"round {i}{' (warm-up, not counted)' if i == 0 else ''}: server {s * 1000:.0f} ms, bare {b * 1000:.0f} ms", flush=True)
            if i:
                server_times.append(s)
                bare_times.append(b)
        if github.problems:
            raise RuntimeError(f"the GitHub stand-in refused requests: {github.problems[:3]}")
        return server_times, bare_times, count_line
    finally:
        client.close()
        server.should_exit = True
        thread.join(10)
        github.stop()
        store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=1_000)
    ap.add_argument("--clusters", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5, help="counted rounds (median), default 5")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            server_times, bare_times, count_line = bench(Path(tmp), args.hosts, args.clusters, args.repeat)
        except RuntimeError as exc:
            print(f"pr_plan benchmark FAILED: {exc}", file=sys.stderr)
            return 1
    s, b = statistics.median(server_times), statistics.median(bare_times)
    print(f"hosts {args.hosts}, clusters {args.clusters}, change: profile version bump ({count_line}), rounds {args.repeat} (+1 warm-up)")
    print(f"server per round (ms): {' '.join(f'{t * 1000:.0f}' for t in server_times)}")
    print(f"bare per round (ms):   {' '.join(f'{t * 1000:.0f}' for t in bare_times)}")
    print(
        "# caches: git mirror and applied tree warm on both; PR head fetched and checked out by both each round; SoT parsed cold on both "
        "(a fresh validation child each); check runs counted only completed, successful, summary holding the count, plan equal to the bare one"
    )
    print(f"pr_plan_latency ratio {s / b:.2f} (server_ms={s * 1000:.0f} bare_plan_ms={b * 1000:.0f}; median of {args.repeat}; both cold; target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
