#!/usr/bin/env python3
"""Controller speed: webhook-to-plan latency and GET /v1/hosts throughput, as ratios to baselines.

1. webhook -> plan ready, for a change to a 1,000-host SoT (20 clusters; every revision changes
   the first host of each cluster), against the bare `vaquero plan OLD NEW --repo URL` doing the
   same work (fetch the new commit into a warm git mirror, parse the current revision, validate
   the new one, plan, render). The server runs on loopback (uvicorn, in this process), the
   current revision is applied (`/sites-applied/current`); the time runs from sending the signed
   push to the plan record being written (`pending_approval`). Target: ratio <= 1.5.
   Caches, the same on both sides and printed: the git mirror and the current revision's
   checked-out tree are warm on both (round 0, not counted, fills them); the parsed current
   revision is cold on both: the gate and `vaquero plan` each validate and plan in a fresh
   bounded child process (gate/sandbox.py) that parses the current revision again. The gate's
   own parsed-revision cache (Gate.current) serves the hosts list, not planning; the plan record's
   `validation.peak_rss` (written only by the child) is checked each round. Both plans must be
   equal (the plan JSON, labels aside), else the run fails.
2. GET /v1/hosts with 10,000 hosts in the Store (and in the current revision), requests per
   second measured with wrk, server and wrk pinned to different cores. The headline peer is a
   plain FastAPI endpoint returning the same bytes pre-encoded: Vaquero serves the list from a
   cache keyed by Store revision, so both send a ready body. Target: >= 0.5. A secondary figure
   is against a FastAPI endpoint that re-encodes the same data (Python objects) on every request:
   more work than Vaquero does with a warm cache, so it flatters Vaquero and is not the headline.
   A third figure has a host changing state 10 times a second during the run, so most of
   Vaquero's requests rebuild the list; it is against the re-encoding peer (both build the body
   per request). Every peer's body is checked equal to Vaquero's; any wrk socket error or
   non-2xx answer fails the run.

Ends with one line per figure: `<figure name> ratio <value>` and the raw numbers beside it.
Usage: benchmarks/controller.py [--repeat N] [--duration S] [--hosts N]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SECRET = "bench-webhook-secret-0123456789"
TOKEN = "bench-token-read-0123456789abcdef"


def git(cwd: Path, *args: str) -> str:
    cfg = ["-c", "user.email=bench@example.invalid", "-c", "user.name=bench", "-c", "init.defaultBranch=main"]
    return subprocess.run(["git", *cfg, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_for(data: Path, repo_url: str | None):
    from vaquero.api.settings import Settings, Tokens

    return Settings(data_dir=data, tokens=Tokens.parse(f"bench:read:{TOKEN}", "bench"), webhook_secret=SECRET, repo_url=repo_url, repo_name="bench/sot")


def start_uvicorn(app, port: int):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread


# -- 1. webhook -> plan ready --------------------------------------------------------------------


def revision(work: Path, i: int) -> None:
    for path in (work / "clusters").glob("*.yaml"):
        text = path.read_text()
        # The first host of each cluster carries a non-zero reinstall counter: set it to i.
        path.write_text(re.sub(r"(?m)^(\s+reinstall: )[1-9]\d*$", lambda m: m.group(1) + str(i), text))


def bench_latency(tmp: Path, hosts: int, repeat: int) -> tuple[float, float]:
    import httpx
    from plan_scale import generate

    from vaquero.api.app import create_app
    from vaquero.cli import build_parser
    from vaquero.state.sqlite import SQLiteStore

    bare, work = tmp / "sot.git", tmp / "work"
    git(tmp, "init", "-q", "--bare", str(bare))
    git(tmp, "clone", "-q", str(bare), str(work))
    generate(work, 1, 20, hosts, changed=False)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "base")
    git(work, "push", "-q", "origin", "HEAD:main")
    base = git(work, "rev-parse", "HEAD")
    generate(work, 1, 20, hosts, changed=True)  # first host of every cluster: reinstall: 1
    url = f"file://{bare}"

    store = SQLiteStore(tmp / "data" / "store.sqlite")
    app = create_app(settings_for(tmp / "data", url), store)
    port = free_port()
    server, thread = start_uvicorn(app, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)

    def push(sha: str, before: str) -> tuple[float, dict]:
        body = json.dumps(
            {"ref": "refs/heads/main", "before": before, "after": sha, "deleted": False, "repository": {"full_name": "bench/sot", "clone_url": url}}
        )
        data = body.encode()
        sig = "sha256=" + hmac.new(SECRET.encode(), data, hashlib.sha256).hexdigest()
        headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": f"d-{sha}", "X-Hub-Signature-256": sig, "Content-Type": "application/json"}
        t0 = time.perf_counter()
        assert client.post("/v1/webhooks/github", content=data, headers=headers).status_code == 202
        while True:
            rec = store.get(f"/revisions/{sha}")
            if rec and rec.value["state"] in ("planned", "invalid"):
                elapsed = time.perf_counter() - t0
                if rec.value["state"] != "planned":
                    raise RuntimeError(f"revision {sha[:12]}: {rec.value['state']}: {rec.value.get('errors')}")
                plan = store.get(f"/plans/{rec.value['plan']}").value
                if "peak_rss" not in plan["validation"]:
                    raise RuntimeError(f"revision {sha[:12]} was not planned in a fresh child (validation: {plan['validation']})")
                return elapsed, plan["plan"]
            time.sleep(0.002)

    # The base revision is what the hardware runs (a runner would write this when it succeeded).
    push(base, "0" * 40)
    plan = store.get(f"/plans/{store.get(f'/revisions/{base}').value['plan']}").value
    store.put("/sites-applied/current", {"sha": base, "root": plan["root"], "plan": plan["id"]})

    bare_cache = tmp / "cli-cache"

    def bare_plan(sha: str) -> tuple[float, dict]:
        os.environ["VAQUERO_CACHE"] = str(bare_cache)
        args = build_parser().parse_args(["plan", "--repo", url, base, sha, "--format", "json"])
        out = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(out):
            rc = args.func(args)
        elapsed = time.perf_counter() - t0
        if rc != 2:
            raise RuntimeError(f"vaquero plan {base[:12]} {sha[:12]}: exit status {rc}, expected 2 (changes)")
        return elapsed, json.loads(out.getvalue())

    def same_plan(a: dict, b: dict) -> bool:
        # The labels name the source as each side was given it (a URL@sha, a revision id): not part of the plan.
        def strip(p: dict) -> dict:
            return {k: v for k, v in p.items() if k not in ("old", "new")} | {"shas": (p["old"]["sha"], p["new"]["sha"])}

        return strip(a) == strip(b)

    server_times: list[float] = []
    bare_times: list[float] = []
    for i in range(repeat + 1):
        revision(work, i + 1)
        git(work, "commit", "-qam", f"change {i}")
        git(work, "push", "-q", "origin", "HEAD:main")
        sha = git(work, "rev-parse", "HEAD")
        # Alternate which goes first: whoever fetches second finds nothing new to fetch... so each
        # gets its own mirror (the server's cache and the CLI's are separate) and fetches the commit.
        if i % 2:
            (b, bare_result), (s, server_result) = bare_plan(sha), push(sha, base)
        else:
            (s, server_result), (b, bare_result) = push(sha, base), bare_plan(sha)
        if not same_plan(server_result, bare_result) or not server_result["has_changes"]:
            summaries = f"{server_result['summary']} vs {bare_result['summary']}"
            raise RuntimeError(f"round {i}: the server's plan and `vaquero plan`'s differ, or plan nothing: {summaries}")
        if i:  # the first round warms both caches (mirror clone, imports)
            server_times.append(s)
            bare_times.append(b)
    client.close()
    server.should_exit = True
    thread.join(10)
    store.close()
    return statistics.median(server_times), statistics.median(bare_times)


# -- 2. GET /v1/hosts throughput -----------------------------------------------------------------


def serve(kind: str, data: str, port: int) -> None:
    """Child process: one uvicorn server (httptools + uvloop), no access log."""
    import uvicorn
    from fastapi import FastAPI, Response

    if kind == "vaquero":
        from vaquero.api.app import create_app
        from vaquero.state.sqlite import SQLiteStore

        store = SQLiteStore(Path(data) / "store.sqlite")
        app = create_app(settings_for(Path(data), None), store)
    else:
        raw = Path(data).read_bytes()
        parsed = json.loads(raw)
        app = FastAPI()
        if kind == "plain":

            @app.get("/v1/hosts")
            def hosts() -> dict:
                return parsed

        else:

            @app.get("/v1/hosts")
            def hosts_bytes() -> Response:
                return Response(raw, media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def wrk(port: int, duration: float, core: str | None) -> float:
    cmd = ["wrk", "-t1", "-c8", f"-d{duration:.0f}s", "-H", f"Authorization: Bearer {TOKEN}", f"http://127.0.0.1:{port}/v1/hosts"]
    if core is not None:
        cmd = ["taskset", "-c", core, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    # Only complete, good answers count: any socket error (connect, read, write, timeout) or non-2xx fails the run.
    if not m or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk against port {port}: {out}")
    return float(m.group(1))


def run_server(kind: str, data: Path, core: str | None) -> tuple[subprocess.Popen[bytes], int]:
    import httpx

    port = free_port()
    cmd = [sys.executable, __file__, "--serve", kind, "--data", str(data), "--port", str(port)]
    if core is not None:
        cmd = ["taskset", "-c", core, *cmd]
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/hosts", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60).status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"{kind} server did not start")
        time.sleep(0.2)


def bench_hosts(tmp: Path, hosts: int, duration: float) -> tuple[float, float, float, float, int]:
    import httpx
    from plan_scale import generate

    from vaquero.gate.core import Gate
    from vaquero.state.sqlite import SQLiteStore

    data = tmp / "hosts-data"
    sot = tmp / "hosts-sot"
    generate(sot, 5, 200, hosts, changed=False)
    store = SQLiteStore(data / "store.sqlite")
    gate = Gate(store, cache=data / "cache")
    rec, _ = gate.submit_path(str(sot), actor="bench")
    gate.process(rec["id"])
    plan_id = store.get(f"/revisions/{rec['id']}").value["plan"]
    store.put("/sites-applied/current", {"sha": None, "root": store.get(f"/plans/{plan_id}").value["root"], "plan": plan_id})
    states = ("ready", "installing", "failed", "netbooting")
    now = time.time()
    for i, (_, _, h) in enumerate(gate.current()[0].hosts()):
        state = states[i % len(states)]
        store.put(
            f"/hosts/{h.name}",
            {"name": h.name, "state": state, "since": now - i, "reason": f"bench {state}", "actor": "bench", "sha": None, "plan": plan_id,
             "run": "run1", "step": "install" if state == "failed" else None, "attempt": 1 if state == "failed" else None, "last_event": f"e{i}"},
        )  # fmt: skip
    store.close()

    cores = ("0", "1") if (os.cpu_count() or 1) >= 2 and shutil.which("taskset") else (None, None)
    proc, port = run_server("vaquero", data, cores[0])
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/v1/hosts", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60).content
        count = json.loads(body)["count"]
        wrk(port, 1, cores[1])  # warm-up
        vaquero_rps = wrk(port, duration, cores[1])
        # The same while a host changes state 10 times a second (a run in progress): the cache misses.
        writer = SQLiteStore(data / "store.sqlite")
        stop = threading.Event()

        def churn() -> None:
            i = 0
            while not stop.wait(0.1):
                i += 1
                writer.put("/hosts/c0-h0", {"name": "c0-h0", "state": "installing", "since": time.time(), "reason": f"churn {i}"})

        churner = threading.Thread(target=churn, daemon=True)
        churner.start()
        try:
            changing_rps = wrk(port, duration, cores[1])
        finally:
            stop.set()
            churner.join()
            writer.close()
    finally:
        proc.terminate()
        proc.wait(10)
    (tmp / "hosts.json").write_bytes(body)
    results = {}
    for kind in ("plain", "bytes"):
        proc, port = run_server(kind, tmp / "hosts.json", cores[0])
        try:
            got = httpx.get(f"http://127.0.0.1:{port}/v1/hosts", timeout=60).content
            if json.loads(got) != json.loads(body):
                raise RuntimeError(f"the {kind} peer answers other JSON than Vaquero's /v1/hosts")
            wrk(port, 1, cores[1])
            results[kind] = wrk(port, duration, cores[1])
        finally:
            proc.terminate()
            proc.wait(10)
    return vaquero_rps, results["plain"], results["bytes"], changing_rps, count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="webhook rounds (median), default 5")
    ap.add_argument("--duration", type=float, default=5, help="seconds per wrk run, default 5")
    ap.add_argument("--hosts", type=int, default=10_000, help="hosts for the throughput figure, default 10000")
    ap.add_argument("--plan-hosts", type=int, default=1_000, help="hosts for the latency figure, default 1000")
    ap.add_argument("--serve", choices=["vaquero", "plain", "bytes"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.data, args.port)
        return 0
    if shutil.which("wrk") is None:
        print("wrk is needed for the throughput figure (apt-get install wrk)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "latency").mkdir()
        try:
            server_s, bare_s = bench_latency(Path(tmp) / "latency", args.plan_hosts, args.repeat)
            vaquero_rps, plain_rps, bytes_rps, changing_rps, count = bench_hosts(Path(tmp), args.hosts, args.duration)
        except RuntimeError as exc:
            print(f"controller benchmark FAILED: {exc}", file=sys.stderr)
            return 1
    print(
        f"webhook to plan ready ({args.plan_hosts} hosts): server {server_s * 1000:.0f} ms, bare vaquero plan {bare_s * 1000:.0f} ms (median of {args.repeat})"
    )
    print(
        "# caches, webhook figure: git mirror and current tree warm on both sides; parsed current revision cold on both "
        "(each plans in a fresh bounded child that parses it again); plans checked equal every round"
    )
    print(
        f"# GET /v1/hosts ({count} hosts): vaquero {vaquero_rps:.1f} req/s (list cached by Store revision), FastAPI pre-encoded bytes "
        f"{bytes_rps:.1f} req/s, FastAPI re-encoding per request {plain_rps:.1f} req/s; bodies checked equal"
    )
    print("# logging, every server: uvicorn at warning, no access log")
    print(f"webhook_to_plan_ready ratio {server_s / bare_s:.2f} (server_ms={server_s * 1000:.0f} bare_plan_ms={bare_s * 1000:.0f}; both cold; target <= 1.5)")
    print(f"hosts_list_throughput ratio {vaquero_rps / bytes_rps:.2f} (vaquero_rps={vaquero_rps:.1f} preencoded_fastapi_rps={bytes_rps:.1f}; target >= 0.5)")
    print(
        f"hosts_list_throughput_vs_reencoding_fastapi ratio {vaquero_rps / plain_rps:.2f} (vaquero_rps={vaquero_rps:.1f} "
        f"reencoding_fastapi_rps={plain_rps:.1f}; secondary: the peer encodes per request, Vaquero from its cache)"
    )
    changing = f"vaquero_rps={changing_rps:.1f} host_changes_per_s=10 reencoding_fastapi_rps={plain_rps:.1f}"
    print(f"hosts_list_throughput_while_changing_vs_reencoding_fastapi ratio {changing_rps / plain_rps:.2f} ({changing})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
