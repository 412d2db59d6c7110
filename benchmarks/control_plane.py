#!/usr/bin/env python3
"""Control plane at scale: a 10,000-host, 100-site, 100-agent SoT served by a real `vaquero server`.

The controller is the real CLI (`vaquero server`, a child process, leader worker on) over a real
store: an SQLite file, then a 3-member etcd cluster on loopback (Debian etcd-server, started the
way tests/state starts it). The SoT is plan_scale's generator with one site (and one agent) per
100 hosts, committed to a real bare git repository the server fetches from. Figures:

1. bundle_build: every agent's bundle built by federation.bundle.BundleBuilder from the store the
   controller wrote (cold: a new builder, as after a new applied revision; warm: the SoT part
   cached, the hosts' states read again), vs json.dumps of the same 100 bundles (the bytes an
   agent receives: nothing can send them without at least encoding them). Size per agent:
   median and max bytes of that JSON.
2. event_ingest_<store>: 100 agents at once (asyncio, one HTTP client and token each) post their
   hosts' events through POST /v1/agents/<agent>/events in batches of 200 (the agent client's
   batch), each host walking the lifecycle (pending -> powering_off -> netbooting ...), vs raw
   puts of the same events (one record per event) into a fresh store of the same kind and
   durability (the same Store class: SQLite WAL synchronous=NORMAL; etcd's own fsync) from 100
   threads. A secondary figure compares with the three writes `transition` makes per event (host
   record, event, event id) done raw. Counted: only events read back from the store afterwards
   (event id and event record both present, host states as the last event says).
3. gate_under_pushes: PUSHES a minute (default 10) for MINUTES (default 1): a real commit pushed to
   the bare repository and a webhook body built from the octokit push fixture, signed with the
   secret, posted to /v1/webhooks/github. Each push's latency runs from the POST to its plan
   record (every push must be planned). The bound: the bare `vaquero plan --repo URL BASE SHA`
   of each same change afterwards, one at a time. Caches on both sides: git mirror and checked-out
   current revision warm, parsed revisions cold (each plans in a fresh bounded child process).
   SQLite store only (the gate's work does not depend on the store).
4. controller_rss: peak RSS (VmHWM) of the server process over its whole run (bundles, ingest,
   pushes; the gate's planning children are separate processes and report their own peak_rss),
   vs a budget of 500 MB.

Ends with one line per figure: `<figure name> ratio <value>` and the raw numbers beside it.
Usage: benchmarks/control_plane.py [--minutes N] [--pushes-per-minute N] [--events-per-host N] [--stores sqlite,etcd]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import hashlib
import hmac
import importlib.util
import io
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
ROOT = HERE.parent
FIXTURE = Path("/work/shared/fixtures/github-webhooks/push/payload.json")
LIFECYCLE = ("pending", "powering_off", "netbooting", "installing", "rebooting", "validating", "ready")
REPO_NAME = "bench/sot"
BATCH = 200  # the agent client's batch (federation.client.ClientConfig.batch)


def vaquero_bin() -> str:
    found = Path(sys.executable).parent / "vaquero"
    return str(found) if found.exists() else "vaquero"


# -- the peers: git repository, controller process, etcd cluster -----------------------------------


def setup_repo(tmp: Path, sites: int, clusters: int, hosts: int) -> tuple[str, str, Path]:
    """A bare repository holding the base revision; the work tree left at the changed one (uncommitted)."""
    from plan_scale import generate

    from controller import git

    bare, work = tmp / "sot.git", tmp / "work"
    git(tmp, "init", "-q", "--bare", str(bare))
    git(tmp, "clone", "-q", str(bare), str(work))
    generate(work, sites, clusters, hosts, changed=False)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "base")
    git(work, "push", "-q", "origin", "HEAD:main")
    base = git(work, "rev-parse", "HEAD")
    generate(work, sites, clusters, hosts, changed=True)  # first host of every cluster: reinstall: 1
    return f"file://{bare}", base, work


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: a benchmark killed mid-run leaves no controller behind using the cores.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class Controller:
    """`vaquero server` in a child process; its peak RSS read from /proc before it stops."""

    def __init__(self, tmp: Path, name: str, store_url: str, repo_url: str, tokens_file: Path, secret: str) -> None:
        from controller import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = tmp / f"ctl-{name}"
        data.mkdir()
        self.log = data / "server.log"
        env = {**os.environ, "VAQUERO_WEBHOOK_SECRET": secret, "PYTHONPATH": str(ROOT / "controller")}
        cmd = [vaquero_bin(), "--log-level", "warning", "server", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(data),
               "--store", store_url, "--repo", repo_url, "--repo-name", REPO_NAME, "--tokens-file", str(tokens_file),
               # The lab has no BMCs at the SoT's addresses: drift would time out on 10,000 of them.
               "--drift-interval", "0"]  # fmt: skip
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz/ready", timeout=5).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the controller did not become ready:\n{self.log.read_text()[-3000:]}")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc/<pid>/status")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@contextlib.contextmanager
def etcd_cluster(tmp: Path) -> Iterator[Any]:
    """The test suite's 3-member cluster (tests/state/conftest.py: EtcdCluster), reused, not copied."""
    sys.path.insert(0, str(ROOT / "tests"))
    spec = importlib.util.spec_from_file_location("vq_state_conftest", ROOT / "tests" / "state" / "conftest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if mod.ETCD is None:
        raise RuntimeError("etcd is not installed (apt-get install etcd-server)")
    base = tmp / "etcd"
    base.mkdir()
    cluster = mod.EtcdCluster(base)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


# -- the SoT's base revision, applied --------------------------------------------------------------


def signed_push(secret: str, repo_url: str, before: str, after: str) -> tuple[bytes, dict[str, str]]:
    """A push webhook as GitHub sends it: the octokit fixture, pointed at our repository and commit."""
    payload = json.loads(FIXTURE.read_text())
    payload.update(ref="refs/heads/main", before=before, after=after, created=False, deleted=False, forced=False, base_ref=None)
    payload["repository"].update(full_name=REPO_NAME, name=REPO_NAME.split("/")[1], clone_url=repo_url)
    if isinstance(payload.get("head_commit"), dict):
        payload["head_commit"]["id"] = after
    body = json.dumps(payload).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": sig, "Content-Type": "application/json"}
    return body, headers


def wait_planned(ctl: Controller, store: Any, sha: str, timeout: float = 600) -> tuple[float, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ctl.proc.poll() is not None:
            raise RuntimeError(f"the controller exited ({ctl.proc.returncode}) before {sha[:12]} was planned:\n{ctl.log.read_text()[-3000:]}")
        rec = store.get(f"/revisions/{sha}")
        if rec and rec.value["state"] in ("planned", "invalid"):
            done = time.perf_counter()
            if rec.value["state"] != "planned":
                raise RuntimeError(f"revision {sha[:12]}: {rec.value['state']}: {rec.value.get('errors')}\n{ctl.log.read_text()[-3000:]}")
            plan = store.get(f"/plans/{rec.value['plan']}")
            assert plan is not None
            return done, plan.value
        time.sleep(0.005)
    raise RuntimeError(f"revision {sha[:12]} not planned after {timeout:.0f}s")


def apply_base(ctl: Controller, store: Any, secret: str, repo_url: str, base: str) -> dict[str, Any]:
    import httpx

    body, headers = signed_push(secret, repo_url, "0" * 40, base)
    resp = httpx.post(f"{ctl.url}/v1/webhooks/github", content=body, headers=headers, timeout=60)
    if resp.status_code != 202:
        raise RuntimeError(f"base push: {resp.status_code} {resp.text}")
    _, plan = wait_planned(ctl, store, base)
    # What a runner writes when the hardware runs the revision: bundles and events are judged against it.
    current = {"sha": base, "root": plan["root"], "plan": plan["id"]}
    store.put("/sites-applied/current", current)
    return current


# -- 1. bundles --------------------------------------------------------------------------------------


def fetch_bundles(ctl: Controller, agents: dict[str, str], hosts_per_agent: int) -> None:
    """Every agent GETs its bundle over HTTP (what an agent does on start), checked complete."""
    import httpx

    def one(agent: str) -> None:
        r = httpx.get(f"{ctl.url}/v1/agents/{agent}/bundle", headers={"Authorization": f"Bearer {agents[agent]}"}, timeout=300)
        if r.status_code != 200 or len(r.json()["hosts"]) != hosts_per_agent:
            raise RuntimeError(f"bundle of {agent}: {r.status_code} {r.text[:300]}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, agents))


def bench_bundles(store: Any, agents: list[str]) -> dict[str, Any]:
    from vaquero.federation.bundle import BundleBuilder

    builder = BundleBuilder(store)
    t = time.perf_counter()
    bundles = [builder.build(a) for a in agents]
    cold = time.perf_counter() - t
    t = time.perf_counter()
    again = [builder.build(a) for a in agents]
    warm = time.perf_counter() - t
    t = time.perf_counter()
    encoded = [json.dumps(b) for b in bundles]
    dumps = time.perf_counter() - t
    if [b["version"] for b in again] != [b["version"] for b in bundles]:
        raise RuntimeError("a warm bundle differs from the cold one under the same state")
    sizes = [len(e.encode()) for e in encoded]
    return {"cold": cold, "warm": warm, "dumps": dumps, "median": statistics.median(sizes), "max": max(sizes), "total": sum(sizes)}


# -- 2. event ingest ---------------------------------------------------------------------------------


def agent_events(agent: str, hosts: list[str], steps: int, sha: str) -> list[dict[str, Any]]:
    """An agent's queue: every host's k-th event before any host's (k+1)-th, as hosts progress together."""
    now = time.time()
    return [
        {"id": f"{agent}.{host}.{k}", "host": host, "state": LIFECYCLE[k], "reason": f"bench step {k}", "time": now + k, "sha": sha}
        for k in range(steps)
        for host in hosts
    ]


async def post_all(ctl_url: str, agents: dict[str, str], events: dict[str, list[dict[str, Any]]]) -> tuple[float, int]:
    """(seconds, batches sent again). A 503 (store unavailable) is retried after the agent client's
    backoff, as agents do; the events are idempotent by id, so a resent batch applies each once."""
    import httpx

    from vaquero.federation.backoff import backoff_delay

    retried = 0

    async def agent(name: str) -> None:
        nonlocal retried
        async with httpx.AsyncClient(base_url=ctl_url, headers={"Authorization": f"Bearer {agents[name]}"}, timeout=600) as client:
            queue = events[name]
            for i in range(0, len(queue), BATCH):
                batch = queue[i : i + BATCH]
                for failures in range(1, 11):
                    r = await client.post(f"/v1/agents/{name}/events", json={"events": batch})
                    if r.status_code != 503:
                        break
                    retried += 1
                    await asyncio.sleep(backoff_delay(failures, 0.5, 30.0))
                if r.status_code != 200:
                    raise RuntimeError(f"agent {name}: {r.status_code} {r.text[:300]}")
                answer = r.json()
                done = len(answer["applied"]) + len(answer["duplicates"])
                if done != len(batch) or answer["refused"]:
                    raise RuntimeError(f"agent {name}: {done} of {len(batch)} applied, refused {list(answer['refused'].items())[:3]}")

    t = time.perf_counter()
    await asyncio.gather(*(agent(a) for a in agents))
    return time.perf_counter() - t, retried


def verify_ingest(store: Any, events: dict[str, list[dict[str, Any]]]) -> int:
    """Events found in the store: their id recorded and their timeline record present; host states checked."""
    seen = {r.key.rsplit("/", 1)[1] for r in store.list("/event-ids/")}
    recorded = {r.value["id"] for r in store.list("/events/")}
    last: dict[str, str] = {}
    for queue in events.values():
        for ev in queue:
            last[ev["host"]] = ev["state"]
    states = {r.value["name"]: r.value["state"] for r in store.list("/hosts/")}
    wrong = [h for h, s in last.items() if states.get(h) != s]
    if wrong:
        raise RuntimeError(f"{len(wrong)} hosts not in the state of their last event, e.g. {wrong[:3]}")
    return sum(1 for q in events.values() for ev in q if ev["id"] in seen and ev["id"] in recorded)


def raw_inserts(store: Any, events: dict[str, list[dict[str, Any]]], writes: str) -> tuple[float, int]:
    """The same events put straight into the store from one thread per agent: no HTTP, no checks, no reads.
    writes='event': one record per event; 'transition': the host record, the event and its id, as transition does."""

    from vaquero.federation.backoff import backoff_delay
    from vaquero.state.store import StoreUnavailable

    def put(key: str, value: dict[str, Any]) -> None:
        # Retried like the agents' 503s: the same key and value again, so a put that did land changes nothing.
        for failures in range(1, 11):
            try:
                store.put(key, value)
                return
            except StoreUnavailable:
                time.sleep(backoff_delay(failures, 0.5, 30.0))
        raise RuntimeError(f"raw put {key}: store unavailable 10 times")

    def agent(queue: list[dict[str, Any]]) -> None:
        for ev in queue:
            put(f"/raw-{writes}/events/{ev['host']}/{ev['id']}", ev)
            if writes == "transition":
                put(f"/raw-{writes}/hosts/{ev['host']}", {"name": ev["host"], "state": ev["state"], "last_event": ev["id"]})
                put(f"/raw-{writes}/event-ids/{ev['id']}", {"host": ev["host"]})

    t = time.perf_counter()
    with ThreadPoolExecutor(len(events)) as pool:
        list(pool.map(agent, events.values()))
    elapsed = time.perf_counter() - t
    found = {r.value["id"] for r in store.list(f"/raw-{writes}/events/")}
    if writes == "transition":
        found &= {r.key.rsplit("/", 1)[1] for r in store.list(f"/raw-{writes}/event-ids/")}
    return elapsed, sum(1 for q in events.values() for ev in q if ev["id"] in found)


# -- 3. pushes -------------------------------------------------------------------------------------


def bench_pushes(ctl: Controller, store: Any, secret: str, repo_url: str, base: str, work: Path, minutes: float, rate: float) -> dict[str, Any]:
    import httpx

    from controller import git, revision

    n = max(1, round(minutes * rate))
    sent: dict[str, float] = {}
    shas: list[str] = []
    t0 = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        for i in range(n):
            # On the schedule, not after the previous plan: pushes arrive whether the gate keeps up or not.
            delay = t0 + i * 60 / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            revision(work, i + 2)
            git(work, "commit", "-qam", f"change {i}")
            git(work, "push", "-q", "origin", "HEAD:main")
            sha = git(work, "rev-parse", "HEAD")
            body, headers = signed_push(secret, repo_url, shas[-1] if shas else base, sha)
            sent[sha] = time.perf_counter()
            r = client.post(f"{ctl.url}/v1/webhooks/github", content=body, headers=headers)
            if r.status_code != 202 or r.json().get("status") != "queued":
                raise RuntimeError(f"push {i}: {r.status_code} {r.text[:300]}")
            shas.append(sha)
    latencies, plans = [], {}
    for sha in shas:  # the gate plans in order: waiting in order loses no precision beyond the poll
        done, plan = wait_planned(ctl, store, sha)
        if "peak_rss" not in plan["validation"] or not plan["plan"]["has_changes"]:
            raise RuntimeError(f"push {sha[:12]}: not planned in a fresh child, or planned no change: {plan['validation']}")
        latencies.append(done - sent[sha])
        plans[sha] = plan["plan"]
    return {"shas": shas, "latencies": latencies, "plans": plans, "span": time.perf_counter() - t0}


def bare_plans(tmp: Path, repo_url: str, base: str, shas: list[str], plans: dict[str, Any]) -> list[float]:
    from vaquero.cli import build_parser

    os.environ["VAQUERO_CACHE"] = str(tmp / "cli-cache")

    def run(sha: str) -> tuple[float, dict[str, Any]]:
        args = build_parser().parse_args(["plan", "--repo", repo_url, base, sha, "--format", "json"])
        out = io.StringIO()
        t = time.perf_counter()
        with contextlib.redirect_stdout(out):
            rc = args.func(args)
        elapsed = time.perf_counter() - t
        if rc != 2:
            raise RuntimeError(f"vaquero plan {base[:12]} {sha[:12]}: exit status {rc}, expected 2 (changes)")
        return elapsed, json.loads(out.getvalue())

    def strip(p: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in p.items() if k not in ("old", "new")} | {"shas": (p["old"]["sha"], p["new"]["sha"])}

    run(shas[0])  # fills the CLI's git mirror and checkout of the base, as the server's were by the base push
    times = []
    for sha in shas:
        elapsed, plan = run(sha)
        if strip(plan) != strip(plans[sha]):
            raise RuntimeError(f"{sha[:12]}: the server's plan and `vaquero plan`'s differ")
        times.append(elapsed)
    return times


# -- the run ---------------------------------------------------------------------------------------


def run_store(kind: str, tmp: Path, args: argparse.Namespace, repo: tuple[str, str, Path], out: dict[str, Any], etcd: Any) -> None:
    from vaquero.state import open_store

    repo_url, base, work = repo
    secret = secrets.token_hex(24)
    agents = {f"agent{s}": secrets.token_hex(24) for s in range(args.sites)}
    tokens_file = tmp / f"tokens-{kind}"
    tokens_file.write_text(f"bench:admin:{secrets.token_hex(24)}\n" + "".join(f"{a}:agent:{t}\n" for a, t in agents.items()))
    tokens_file.chmod(0o600)
    if kind == "sqlite":
        url, raw_url = f"sqlite://{tmp}/store-sqlite/store.sqlite", f"sqlite://{tmp}/store-sqlite-raw/store.sqlite"
    else:
        url, raw_url = etcd.url("/vq-bench-ctl"), etcd.url("/vq-bench-raw")
    store = open_store(url)
    ctl = Controller(tmp, kind, url, repo_url, tokens_file, secret)
    try:
        if kind == "sqlite":
            out["current"] = apply_base(ctl, store, secret, repo_url, base)
        else:
            # The base revision's first plan (10,000 hosts added) is larger than etcd accepts in one
            # request (1.5 MiB by default): the revision the SQLite controller checked out is applied
            # here directly, as a runner records it. Nothing below plans on etcd.
            store.put("/sites-applied/current", out["current"])
        hosts_per_agent = args.hosts // args.sites
        fetch_bundles(ctl, agents, hosts_per_agent)
        from vaquero.federation.bundle import BundleBuilder

        builder = BundleBuilder(store)
        site_hosts = {a: sorted(builder.site_hosts(a)[2]) for a in agents}
        events = {a: agent_events(a, site_hosts[a], args.events_per_host, base) for a in agents}
        total = sum(len(q) for q in events.values())
        took, retried = asyncio.run(post_all(ctl.url, agents, events))
        ok = verify_ingest(store, events)
        raw_store = open_store(raw_url)
        try:
            raw_t, raw_ok = raw_inserts(raw_store, events, "event")
            raw3_t, raw3_ok = raw_inserts(raw_store, events, "transition")
        finally:
            raw_store.close()
        if ok != total or raw_ok != total or raw3_ok != total:
            raise RuntimeError(f"{kind}: read back {ok} / raw {raw_ok} / raw x3 {raw3_ok} of {total} events")
        out[f"ingest_{kind}"] = {"events": total, "vaquero": took, "raw": raw_t, "raw3": raw3_t, "retried": retried}
        if kind == "sqlite":
            out["bundle"] = bench_bundles(store, list(agents))
            pushes = bench_pushes(ctl, store, secret, repo_url, base, work, args.minutes, args.pushes_per_minute)
            pushes["bare"] = bare_plans(tmp, repo_url, base, pushes["shas"], pushes["plans"])
            out["pushes"] = pushes
        out[f"rss_{kind}"] = ctl.peak_rss_mb()
    finally:
        ctl.stop()
        store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--sites", type=int, default=100, help="sites, one agent each (default 100)")
    ap.add_argument("--clusters", type=int, default=200)
    ap.add_argument("--events-per-host", type=int, default=2, choices=range(1, len(LIFECYCLE) + 1), metavar="1-7")
    ap.add_argument("--minutes", type=float, default=1.0, help="how long the pushes go on (default 1)")
    ap.add_argument("--pushes-per-minute", type=float, default=10.0)
    ap.add_argument("--stores", default="sqlite,etcd", help="comma-separated: sqlite, etcd (default both)")
    ap.add_argument("--rss-budget-mb", type=float, default=500.0)
    args = ap.parse_args()
    kinds = [k for k in args.stores.split(",") if k]
    if "sqlite" not in kinds:
        print("the sqlite store is needed (bundles and pushes run on it)", file=sys.stderr)
        return 1
    out: dict[str, Any] = {}
    failed = None
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vq-bench-cp-") as name:
        tmp = Path(name)
        try:
            repo = setup_repo(tmp, args.sites, args.clusters, args.hosts)
            with etcd_cluster(tmp) if "etcd" in kinds else contextlib.nullcontext() as etcd:
                for kind in kinds:
                    try:
                        run_store(kind, tmp, args, repo, out, etcd)
                    except Exception as exc:
                        if kind == "sqlite":
                            raise RuntimeError(f"{type(exc).__name__}: {exc}") from exc
                        # The SQLite figures are complete: print them, then fail.
                        failed = f"{kind}: {exc}"
                        kinds = [k for k in kinds if k != kind]
        except RuntimeError as exc:
            print(f"control_plane benchmark FAILED: {exc}", file=sys.stderr)
            return 1
    load_after = os.getloadavg()
    b = out["bundle"]
    p = out["pushes"]
    lat, bare = statistics.median(p["latencies"]), statistics.median(p["bare"])
    print(f"# {args.hosts} hosts, {args.clusters} clusters, {args.sites} sites/agents; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"# bundles: cold {b['cold']:.2f}s, warm {b['warm']:.2f}s, json.dumps {b['dumps']:.3f}s for {args.sites}; "
          f"bytes per agent median {b['median']:.0f}, max {b['max']}, all {b['total']}")  # fmt: skip
    print(f"# pushes: {len(p['shas'])} in {p['span']:.0f}s, all planned; latency per push (s): {' '.join(f'{x:.2f}' for x in p['latencies'])}")
    print(f"# bare vaquero plan per push (s): {' '.join(f'{x:.2f}' for x in p['bare'])}")
    print("# caches, pushes: git mirror and current checkout warm on both sides; parsed revisions cold on both (fresh child per plan); plans checked equal")
    print(f"bundle_build ratio {b['cold'] / b['dumps']:.1f} (cold build {b['cold']:.2f}s vs json.dumps {b['dumps']:.3f}s of the same {args.sites} bundles)")
    print(f"bundle_build_warm ratio {b['warm'] / b['dumps']:.1f} (warm build {b['warm']:.2f}s vs json.dumps {b['dumps']:.3f}s)")
    print(f"bundle_size ratio {b['max'] / b['median']:.2f} (max {b['max']} bytes vs median {b['median']:.0f} bytes per agent)")
    for kind in kinds:
        i = out[f"ingest_{kind}"]
        ev = i["events"]
        vq_rate, raw_rate = ev / i["vaquero"], ev / i["raw"]
        print(f"event_ingest_{kind} ratio {i['raw'] / i['vaquero']:.3f} (vaquero {vq_rate:.0f} events/s, {ev} events in {i['vaquero']:.1f}s over HTTP "
              f"from {args.sites} agents, {args.events_per_host} per host, {i['retried']} batches resent after a 503; "
              f"raw puts {raw_rate:.0f} events/s in {i['raw']:.1f}s; all read back)")  # fmt: skip
        print(f"event_ingest_{kind}_vs_transition_writes ratio {i['raw3'] / i['vaquero']:.3f} (vaquero {ev / i['vaquero']:.0f} events/s; "
              f"raw host+event+id puts {ev / i['raw3']:.0f} events/s in {i['raw3']:.1f}s)")  # fmt: skip
    print(f"gate_under_pushes ratio {lat / bare:.2f} (median push-to-plan {lat:.2f}s, max {max(p['latencies']):.2f}s; "
          f"median bare vaquero plan {bare:.2f}s; {len(p['shas'])} pushes at {args.pushes_per_minute:g}/min; state cold)")  # fmt: skip
    rss = max(out[f"rss_{k}"] for k in kinds)
    each = ", ".join(f"{k} {out[f'rss_{k}']:.0f} MB" for k in kinds)
    print(f"controller_rss ratio {rss / args.rss_budget_mb:.2f} (peak {rss:.0f} MB of a {args.rss_budget_mb:.0f} MB budget; {each})")
    if failed:
        print(f"control_plane benchmark FAILED on {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
