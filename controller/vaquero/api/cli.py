"""`vaquero server` (the controller API) and `vaquero apply` (its client for a manual trigger)."""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..sot.source import split_spec

DEFAULT_DATA_DIR = os.environ.get("VAQUERO_DATA_DIR") or os.path.join(os.path.expanduser("~"), ".local", "share", "vaquero")


class ScrubFilter(logging.Filter):
    """Last line of defence: a configured secret never leaves in a log line."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            text = record.getMessage()
            clean = text
            for s in self._secrets:
                clean = clean.replace(s, "***")
            if clean != text:
                record.msg, record.args = clean, None
        return True


def listen_address(value: str) -> tuple[str, int]:
    """argparse type of --listen: HOST:PORT (IPv6 in brackets; an empty host is loopback)."""
    host, _, port = value.rpartition(":")
    try:
        return (host.strip("[]") or "127.0.0.1"), int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--listen wants HOST:PORT, not {value!r}") from None


def _interval(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not (seconds == 0 or 0.05 <= seconds <= 86400):
        raise argparse.ArgumentTypeError("0 (off) or 0.05 to 86400 seconds")
    return seconds


def build_settings(args: argparse.Namespace) -> Any:
    from ..gate.core import GateError, check_git_url
    from .settings import Settings, Tokens, read_secret

    tokens = Tokens.load(args.tokens_file)
    secret = read_secret(args.webhook_secret_file, "webhook secret") if args.webhook_secret_file else os.environ.get("VAQUERO_WEBHOOK_SECRET") or None
    gh_token = read_secret(args.github_token_file, "GitHub token") if args.github_token_file else os.environ.get("VAQUERO_GITHUB_TOKEN") or None
    if args.repo:
        try:
            check_git_url(args.repo)
        except GateError as exc:
            raise SystemExit(f"vaquero server: --repo: {exc.message}") from None
    return Settings(
        data_dir=Path(args.data_dir),
        tokens=tokens,
        webhook_secret=secret,
        repo_url=args.repo,
        repo_name=args.repo_name,
        branch=args.branch,
        subdir=args.subdir,
        github_token=gh_token,
        github_api=args.github_api,
        public_url=args.public_url,
        allowed_sources=list(args.allow_source or []),
    )


def cmd_server(args: argparse.Namespace) -> int:
    import uvicorn

    from ..httpserver import server_config
    from ..state import open_store
    from ..state.sqlite import SQLiteStore
    from ..state.store import StoreUnavailable
    from .app import create_app
    from .settings import SettingsError

    log = logging.getLogger("vaquero.api")
    try:
        settings = build_settings(args)
    except SettingsError as exc:
        print(f"vaquero server: {exc}", file=sys.stderr)
        return 2
    if bool(args.cert) != bool(args.key):
        print("vaquero server: --cert and --key go together", file=sys.stderr)
        return 2
    if not len(settings.tokens):
        log.warning("no API tokens configured (--tokens-file or VAQUERO_API_TOKENS): every authenticated endpoint will answer 401")
    # HTTP client internals log request details at debug level: keep them out whatever --log-level says.
    for name in ("httpx", "httpcore", "hpack", "h11"):
        logging.getLogger(name).setLevel(logging.WARNING)
    scrub = ScrubFilter([s for s in (settings.webhook_secret, settings.github_token) if s])
    for handler in logging.getLogger().handlers:
        handler.addFilter(scrub)
    spec = args.store or "sqlite://"
    try:
        # A plain path is an SQLite file; otherwise a store URL (sqlite:///file, etcd://h1:2379,h2:2379/prefix).
        store = open_store(spec, data_dir=args.data_dir) if "://" in spec else SQLiteStore(spec)
    except (ValueError, StoreUnavailable) as exc:
        print(f"vaquero server: --store: {exc}", file=sys.stderr)
        return 2
    # The gate (validate + plan of revisions) runs only on the leader, started and stopped with the run worker.
    app = create_app(settings, store, start_gate=False)
    from ..federation import server as federation
    from .auth import require

    try:
        # Agent tokens: their own file, or the `agent` lines of the API tokens file.
        federation.include(app, store, settings, args.agent_tokens_file or args.tokens_file, operator_auth=require)
    except SettingsError as exc:
        print(f"vaquero server: {exc}", file=sys.stderr)
        return 2
    elector = (
        _run_worker_when_leader(
            store,
            args.data_dir,
            app.state.gate,
            drift_interval=args.drift_interval,
            drift_correct=args.drift_correct,
            enroll=(settings, args.enroll_interval),
        )
        if not args.no_worker
        else None
    )
    if elector is not None:
        _resign_on_shutdown(app, elector)
    host, port = args.listen
    level = logging.getLogger().getEffectiveLevel()
    config = server_config(
        app,
        host=host,
        port=port,
        ssl_certfile=args.cert,
        ssl_keyfile=args.key,
        log_config=None,
        log_level=level,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,  # event streams never end by themselves: do not wait for them forever
    )
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        pass
    if elector is not None:
        elector.stop()
    store.close()
    return 0


def _run_worker_when_leader(
    store: Any, data_dir: str, gate: Any, *, drift_interval: float = 0.0, drift_correct: bool = False, enroll: tuple[Any, float] | None = None
) -> Any:
    """Plan revisions and apply approved plans in exactly one controller: the one holding the leader lease.

    Several `vaquero server` processes may share an etcd Store (HA): each serves the API, only the
    leader runs the gate and the plans. A controller that loses the lease stops its worker and its
    gate before another can gain it (see docs/ha.md); the worker is bound to the fencing token it
    started under (its writes and its playbooks' BMC calls are refused once that leadership is over);
    the new leader's worker resumes the runs that were in progress, and its gate picks up the
    revisions queued through any controller's API. The drift observer (``drift_interval`` > 0) runs
    on the leader too, its BMC reads fenced by the guard and its records by the fencing token, and so
    does the enrollment proposer (``enroll``: the settings and its interval, 0 off), its records fenced.
    """
    from ..runner.worker import RunWorker
    from ..state.leader import LeaderElector

    log = logging.getLogger("vaquero.api")
    worker: list[RunWorker] = []
    observers: list[Any] = []
    feeders: list[threading.Event] = []
    gate_lock = threading.Lock()  # the feeder never starts the gate after `lost` stopped it

    def gained(token: int) -> None:
        log.info("leader (fencing token %s): starting the run worker and the gate", token)
        worker.append(RunWorker(store, data_dir, elector=elector).start())
        # The gate starts from its own thread: its first store calls may fail and must be retried
        # without holding up the election's callbacks.
        stop = threading.Event()
        feeders.append(stop)
        threading.Thread(target=_feed_gate, args=(store, gate, stop, gate_lock), name="vaquero-gate-feed", daemon=True).start()
        if drift_interval > 0:
            observers.append(_drift_observer(store, elector, drift_interval, correct=drift_correct).start())
        if enroll is not None and enroll[1] > 0:
            observers.append(_proposer(store, elector, *enroll).start())

    def lost(reason: str) -> None:
        log.warning("lost leadership (%s): stopping the run worker and the gate", reason)
        while feeders:
            feeders.pop().set()
        while observers:
            observers.pop().stop()
        while worker:
            worker.pop().stop()
        with gate_lock:
            gate.stop()
        log.info("run worker and gate stopped")

    elector = LeaderElector(store, on_gain=gained, on_loss=lost)
    return elector.start()


def _drift_observer(store: Any, elector: Any, interval: float, *, correct: bool = False) -> Any:
    """The leader's drift observer: its own guard on the fleet's shared guard folder (the same locks,
    limit and breakers as playbooks and `vaquero power`), fenced by this leadership. With ``correct``,
    power drift becomes a plan through the gate (approved only as the clusters' policy says)."""
    from ..bmc import Guard
    from ..drift.observer import DriftObserver
    from ..gate.drift_plans import propose
    from ..state.store import FencedStore

    guard = Guard(guard_dir="auto")
    guard.fence = elector.check
    fenced = FencedStore(store, elector.fence)
    planner = (lambda sot, found: propose(fenced, sot, found)) if correct else None
    return DriftObserver(fenced, guard, interval=interval, leader=elector.check, correct=planner)


def _proposer(store: Any, elector: Any, settings: Any, interval: float) -> Any:
    """The leader's enrollment proposer: pull requests on the configured repository with the GitHub
    token, else patch files in the data folder (docs/enrollment.md); its record writes are fenced."""
    from ..enroll.proposer import Proposer, Target
    from ..gate.github import GitHubClient
    from ..state.store import FencedStore

    token = settings.github_token
    target = Target(
        data_dir=settings.data_dir,
        client=GitHubClient(token, settings.github_api) if token else None,
        repo=settings.repo_name,
        repo_url=settings.repo_url,
        branch=settings.branch,
        subdir=settings.subdir,
        cache=settings.cache,
        secrets=tuple(s for s in (token, settings.webhook_secret) if s),
    )
    return Proposer(FencedStore(store, elector.fence), target, interval=interval, leader=elector.check)


def _resign_on_shutdown(app: Any, elector: Any) -> None:
    """Stop the worker and the gate and give the lease up when the app shuts down.

    uvicorn re-raises SIGTERM/SIGINT once it has shut down, so code after the server's run() never
    runs on a signal: without this, a stopped leader would neither cancel its playbooks nor resign
    (the next leader would wait out the lease).
    """
    import contextlib

    from starlette.concurrency import run_in_threadpool

    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> Any:
        async with inner(a) as state:
            yield state
        await run_in_threadpool(elector.stop)

    app.router.lifespan_context = lifespan


def _feed_gate(store: Any, gate: Any, stop: threading.Event, lock: threading.Lock) -> None:
    """Start the leader's gate, then hand it the revisions other controllers' APIs queue (their gates do not run)."""
    from ..state.store import StoreUnavailable, WatchCompacted

    log = logging.getLogger("vaquero.api")
    enqueue = getattr(gate, "enqueue", None) or gate._queue.put
    started = False
    since: int | None = None
    while not stop.is_set():
        try:
            if not started:
                with lock:
                    if stop.is_set():
                        return
                    gate.start()  # takes the revisions already queued
                started = True
            if since is None:
                since = store.revision()
                for rec in store.list("/revisions/"):  # queued while no gate ran: a repeat is skipped by the gate
                    if rec.value.get("state") == "queued" and rec.value.get("id"):
                        enqueue(rec.value["id"])
            for event in store.watch("/revisions/", since=since, timeout=1.0):
                since = event.revision
                if stop.is_set():
                    return
                if event.type == "put" and event.value and event.value.get("state") == "queued" and event.value.get("id"):
                    enqueue(event.value["id"])
        except WatchCompacted:
            since = None
        except StoreUnavailable as exc:
            log.info("gate feed: store unavailable: %s", exc)
            stop.wait(1.0)
        except Exception:
            log.exception("gate feed failed; retrying")
            stop.wait(1.0)


def cmd_apply(args: argparse.Namespace) -> int:
    import httpx

    token = os.environ.get("VAQUERO_TOKEN")
    if not token:
        print("vaquero apply: set VAQUERO_TOKEN to an API token with the approve or admin role", file=sys.stderr)
        return 2
    spec = args.spec
    if split_spec(spec)[1] is None and os.path.isdir(spec):
        spec = os.path.abspath(spec)
    verify: Any = ssl.create_default_context(cafile=args.cacert) if args.cacert else True
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=args.server.rstrip("/"), headers=headers, verify=verify, timeout=300) as client:
            resp = client.post("/v1/revisions", json={"source": spec, "subdir": args.subdir})
            if resp.status_code >= 300:
                print(f"vaquero apply: {resp.status_code}: {_detail(resp)}", file=sys.stderr)
                return 2
            revision = resp.json()["revision"]
            print(f"revision {revision['id']} {'queued' if resp.json()['created'] else 'already known'}: {revision['label']}", file=sys.stderr)
            if args.no_wait:
                return 0
            deadline = time.monotonic() + args.timeout
            while revision.get("state") in ("queued", "fetching"):
                if time.monotonic() > deadline:
                    print(f"vaquero apply: no plan after {args.timeout:.0f}s; see GET /v1/revisions/{revision['id']}", file=sys.stderr)
                    return 2
                time.sleep(0.2)
                revision = client.get(f"/v1/revisions/{revision['id']}").raise_for_status().json()
            plan = client.get(f"/v1/plans/{revision['plan']}").raise_for_status().json()
            text = client.get(f"/v1/plans/{revision['plan']}/text").raise_for_status().text
    except httpx.HTTPError as exc:
        print(f"vaquero apply: {args.server}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    print(f"plan {plan['id']}: {plan['state']}", file=sys.stderr)
    return 1 if plan["state"] == "invalid" else 0


def _detail(resp: Any) -> str:
    try:
        return str(resp.json().get("detail"))
    except ValueError:
        return resp.text[:200]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("server", help="run the controller API: webhook, revisions, plans, approvals, hosts")
    p.add_argument("--listen", type=listen_address, default=("127.0.0.1", 8080), metavar="HOST:PORT", help="default 127.0.0.1:8080")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help=f"state and git cache (default {DEFAULT_DATA_DIR}, or $VAQUERO_DATA_DIR)")
    from ..federation.server import add_arguments as add_federation_arguments

    add_federation_arguments(p)
    p.add_argument(
        "--drift-interval",
        type=_interval,
        default=60.0,
        metavar="SECONDS",
        help="the leader reads every ready host's BMC this often and records drift from the applied revision (0: off; default 60)",
    )
    p.add_argument(
        "--drift-correct",
        action="store_true",
        help="power drift becomes a plan through the gate: it waits for approval unless every cluster it touches has policy.auto_apply",
    )
    p.add_argument(
        "--enroll-interval",
        type=_interval,
        default=30.0,
        metavar="SECONDS",
        help="the leader proposes machines reported by sites with discovery on (a pull request, or a patch without a GitHub token)"
        " this often and whenever a report arrives (0: off; default 30)",
    )
    p.add_argument("--no-worker", action="store_true", help="serve the API only (no election): the leader (another controller) plans and applies")
    p.add_argument(
        "--store",
        help="the Store: an SQLite file, sqlite:///path, or etcd://host:2379,host:2379[/prefix] for HA (default DATA_DIR/store.sqlite)",
    )
    p.add_argument("--tokens-file", help="API tokens, lines name:role:token (roles read|approve|admin); also $VAQUERO_API_TOKENS")
    p.add_argument("--webhook-secret-file", help="the GitHub webhook secret (or $VAQUERO_WEBHOOK_SECRET)")
    p.add_argument("--github-token-file", help="a GitHub token to post commit statuses (or $VAQUERO_GITHUB_TOKEN)")
    p.add_argument("--github-api", default="https://api.github.com", help="GitHub API base URL (GitHub Enterprise: https://HOST/api/v3)")
    p.add_argument("--repo", help="the SoT repository's git URL: pushes to it are fetched from here")
    p.add_argument("--repo-name", help="OWNER/NAME on GitHub (default: from --repo)")
    p.add_argument("--branch", default="main", help="the branch whose pushes are planned (default main)")
    p.add_argument("--subdir", default="", help="the SoT's folder inside the repository")
    p.add_argument(
        "--allow-source",
        action="append",
        metavar="URL-PREFIX|DIR",
        help="besides --repo, what `vaquero apply` may name: a git URL, a URL prefix ending in / (all repositories under it), "
        "or a server folder (SoT folders and local repositories under it); repeatable",
    )
    p.add_argument("--public-url", help="this API's URL as people reach it (links in commit statuses)")
    p.add_argument("--cert", help="TLS certificate (PEM): serve HTTPS")
    p.add_argument("--key", help="TLS private key (PEM)")
    p.add_argument("--log-level", default=argparse.SUPPRESS, choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_server)

    p = sub.add_parser("apply", help="send a SoT revision to a server to validate and plan it (token in $VAQUERO_TOKEN)")
    p.add_argument("spec", help="GIT-URL@REVISION, or a SoT folder (read on the server)")
    p.add_argument(
        "--server", default=os.environ.get("VAQUERO_SERVER", "http://127.0.0.1:8080"), help="API URL (default $VAQUERO_SERVER or http://127.0.0.1:8080)"
    )
    p.add_argument("--subdir", default="", help="the SoT's folder inside the repository")
    p.add_argument("--cacert", help="CA certificate to verify the server's HTTPS certificate")
    p.add_argument("--no-wait", action="store_true", help="return once the revision is queued")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the plan (default 300)")
    p.add_argument("--log-level", default=argparse.SUPPRESS, choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_apply)
