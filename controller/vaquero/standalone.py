"""`vaquero standalone`: the controller and the site agent in one process, with SQLite.

For a lab or a single small site: the SoT comes from a folder or a git repository
(``--sot PATH`` or ``--sot REPO@REV``), the gate validates and plans it, the plan waits for an
approval (``vaquero run approve``, the API, or ``--approve`` on the command line for the plan of
the revision given at start), and the run worker applies it with the collection's playbooks
while the agent serves DHCP, TFTP, HTTP boot files and the install callbacks.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api.cli import listen_address
from .logs import register_secret
from .runner.cli import DEFAULT_DATA_DIR
from .sot.source import split_spec
from .state.store import Store

log = logging.getLogger("vaquero.standalone")


@dataclass
class Standalone:
    sot: str
    data_dir: Path
    subdir: str = ""
    listen: tuple[str, int] = ("127.0.0.1", 8000)
    approve: bool = False
    agent: bool = True
    token: str | None = None
    drift_interval: float = 0.0  # seconds between the drift observer's rounds; 0: not started
    store: Store | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    closers: list[Any] = field(default_factory=list)

    def open_store(self) -> Store:
        from .state.sqlite import SQLiteStore

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = SQLiteStore(self.data_dir / "state.db")
        return self.store

    def admin_token(self) -> str:
        """The API token of this standalone: given, or made once and kept in <data_dir>/token (0600)."""
        if self.token:
            return self.token
        path = self.data_dir / "token"
        if path.is_file():
            return path.read_text().strip()
        token = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        return token

    def build(self) -> Any:
        """The FastAPI app (gate + runner router), the run worker and the agent; nothing listens yet."""
        from .api.app import create_app
        from .api.settings import Settings, Token, Tokens
        from .runner.worker import RunWorker

        store = self.store or self.open_store()
        import hashlib

        token = self.admin_token()
        register_secret(token)
        tokens = Tokens([Token("standalone", "admin", hashlib.sha256(token.encode()).digest())])
        # The SoT given at start is the one source this standalone takes revisions from (API and CLI).
        url, _rev = split_spec(self.sot)
        source = os.path.abspath(url) if os.path.isdir(url) else url
        # With a webhook secret ($VAQUERO_WEBHOOK_SECRET), pushes to that repository's branch are planned
        # too, exactly as `vaquero server` does (the runner's routes come with create_app).
        secret = os.environ.get("VAQUERO_WEBHOOK_SECRET") or None
        branch = _rev if _rev and not re.fullmatch(r"[0-9a-f]{7,40}", _rev) else "main"
        settings = Settings(
            data_dir=self.data_dir,
            tokens=tokens,
            allowed_sources=[source],
            webhook_secret=secret,
            repo_url=source if secret and _rev is not None else None,
            branch=branch,
            subdir=self.subdir,
        )
        app = create_app(settings, store)
        self.app = app
        self.worker = RunWorker(store, self.data_dir, before_run=self.before_run)
        return app

    def submit(self) -> str | None:
        """Queue the SoT given at start; returns the revision id."""
        gate = self.app.state.gate
        url, rev = split_spec(self.sot)
        if rev is None:
            record, _ = gate.submit_path(os.path.abspath(self.sot), subdir=self.subdir, actor="standalone")
        else:
            if os.path.isdir(url):
                url = os.path.abspath(url)
            sha = gate.resolve(url, rev)
            record, _ = gate.submit_git(url, sha, subdir=self.subdir, actor="standalone")
        rid: str = record["id"]
        log.info("SoT %s queued as revision %s", self.sot, rid[:12])
        return rid

    def approve_when_planned(self, rid: str, timeout: float = 120) -> None:
        """--approve: the operator approved the plan of this revision on the command line."""
        gate = self.app.state.gate
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rev = self.app.state.store.get(f"/revisions/{rid}")
            pid = rev.value.get("plan") if rev else None
            if pid:
                plan = self.app.state.store.get(f"/plans/{pid}")
                state = plan.value.get("state") if plan else None
                if state == "pending_approval":
                    # The operator approved what `vaquero plan` showed for this revision: bind to this plan's digest.
                    gate.approve(pid, "standalone --approve", digest=plan.value["digest"])
                    log.info("plan %s approved (--approve)", pid, extra={"plan": pid})
                    return
                if state == "invalid":
                    log.error("revision %s is invalid: %s", rid[:12], plan.value.get("errors") if plan else None)
                    return
                if state is not None:
                    log.info("plan %s is %s: nothing to approve", pid, state, extra={"plan": pid})
                    return
            time.sleep(0.2)
        log.error("revision %s was not planned within %ss", rid[:12], timeout)

    def start_agent(self) -> None:
        """The site agent's boot services (DHCP, TFTP, HTTP, callbacks) in this process.

        It listens where the site's agent URL says (e.g. http://10.90.0.1:8080) and only ever
        serves a revision that was approved: the last applied one, then the SoT of each approved
        plan just before it runs. Until a first plan is approved it serves no host and no DHCP:
        every machine that asks gets the script that installs nothing.
        """
        import uvicorn

        from .agent.fasthttp import AGENT_LIMITS, BootHttpProtocol
        from .agent.service import Agent, AgentConfig
        from .callback import AGENT_TOKEN_ENV
        from .httpserver import server_config
        from .render.site import get_site
        from .sot import load_spec

        sot = load_spec(self.sot, subdir=self.subdir, semantic=False)
        site = get_site(sot, None)
        if not site.agents:
            raise SystemExit(f"site {site.name} has no agent: standalone cannot serve its boot files")
        from urllib.parse import urlsplit

        url = urlsplit(site.agents[0].url)
        token = os.environ.get(AGENT_TOKEN_ENV) or secrets.token_urlsafe(24)
        os.environ[AGENT_TOKEN_ENV] = token  # the playbooks' boot_mode module reads it at use time
        register_secret(token)
        applied = self.applied_root()
        cfg = AgentConfig(
            sot=applied or self.site_only(site),
            dhcp=applied is not None,
            listen=url.hostname or "0.0.0.0",
            http_port=url.port or 80,
            asset_root=self.data_dir / "assets",
            state_dir=self.data_dir / "agent",
            admin_token=token,
            ipv6_ra=True,
        )
        agent = Agent(cfg)
        agent.prepare()
        agent.start_boot_services()
        assert agent.app is not None
        agent.app.on_inspection = self.store_inspections
        server = uvicorn.Server(
            server_config(
                agent.app,
                host=cfg.listen,
                port=cfg.http_port,
                protocol=BootHttpProtocol,
                limits=AGENT_LIMITS,
                lifespan="off",
                access_log=False,
                log_config=None,
            )
        )
        t = threading.Thread(target=server.run, name="vaquero-agent-http", daemon=True)
        t.start()
        self.threads.append(t)
        self.agent_service = agent

        class _Closer:
            def close(self) -> None:
                server.should_exit = True
                agent.stop()

        self.closers.append(_Closer())
        self.store_inspections()  # what the agent accepted before a restart
        log.info("agent for site %s on %s (HTTP %d, TFTP 69, DHCP)", site.name, cfg.listen, cfg.http_port)

    def store_inspections(self) -> None:
        """Discovery: move the reports the agent accepted into this controller's store (/inspections/<mac>),
        where the gate proposes them; a report stays in the agent's inbox until it is stored."""
        from .inspect.inbox import Refused, deliver
        from .inspect.records import TooManyInspections, record_inspection

        agent = getattr(self, "agent_service", None)
        if agent is None or agent.app is None or agent.inbox is None or self.store is None:
            return
        bundle, store = agent.app.bundle, self.store

        def store_one(report: Any) -> None:
            if not bundle.discovery:
                raise Refused(f"site {bundle.site.name} no longer enrolls unknown machines")
            record_inspection(store, report, site=bundle.site.name, agent=bundle.site.agents[0].name)

        try:
            deliver(agent.inbox, store_one)
        except TooManyInspections as exc:
            log.warning("inspection reports stay with the agent: %s", exc)

    def applied_root(self) -> str | None:
        """The tree of the last applied revision, if there is one and it is still in the cache."""
        assert self.store is not None
        rec = self.store.get("/sites-applied/current")
        root = rec.value.get("root") if rec else None
        return root if root and Path(root).is_dir() else None

    def site_only(self, site: Any) -> str:
        """A SoT of the site alone (its name, agent and networks; no host, profile or credential) for an
        agent that has no approved revision yet: it knows where to listen and serves nothing else."""
        import yaml

        folder = self.data_dir / "agent" / "unapproved-site"
        (folder / "sites").mkdir(parents=True, exist_ok=True)
        doc = site.model_dump(mode="json", by_alias=True, exclude_none=True)
        doc.pop("credentials", None)
        doc.pop("discovery", None)  # names a cluster this SoT has not; and nothing is enrolled before a first approval
        (folder / "sites" / "site.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        return str(folder)

    def before_run(self, plan: dict[str, Any]) -> None:
        """Serve the SoT of the plan about to run: re-render the site bundle and swap it in."""
        agent = getattr(self, "agent_service", None)
        if agent is None or not plan.get("root"):
            return
        agent.cfg.sot = plan["root"]
        old_app = agent.app
        agent.prepare()
        if old_app is not None and agent.app is not None and old_app is not agent.app:
            old_app.unready = agent.app.unready
            # Hosts the new revision no longer has stay served (retired) until they are wiped.
            old_app.set_bundle(agent.app.bundle)
            agent.app = old_app
        if agent.dnsmasq is not None and agent.bundle is not None:
            agent.dnsmasq.apply(agent.bundle.dhcp, agent.dhcp_hosts())
            agent.dnsmasq.reload()
        elif agent.bundle is not None:
            # The first approved revision: DHCP starts now, with its networks.
            from .agent.dnsmasq import Dnsmasq

            agent.cfg.dhcp = True
            agent.dnsmasq = Dnsmasq(agent.cfg.state_dir / "dnsmasq", site=agent.bundle.site.name)
            agent.dnsmasq.apply(agent.bundle.dhcp, agent.dhcp_hosts())
            agent.dnsmasq.start()
        log.info("agent now serves the SoT of plan %s (%s)", plan.get("id"), str(plan.get("sha"))[:12], extra={"plan": plan.get("id"), "sha": plan.get("sha")})

    def start_background(self) -> None:
        self.worker.start()
        self.start_proposer()
        self.start_drift()
        if self.agent:
            self.start_agent()

        def kickoff() -> None:
            rid = self.submit()
            if rid and self.approve:
                self.approve_when_planned(rid)

        t = threading.Thread(target=kickoff, name="vaquero-standalone-submit", daemon=True)
        t.start()
        self.threads.append(t)

    def start_proposer(self) -> None:
        """Discovery: reported machines become patch files under the data folder (no GitHub token here)."""
        from .enroll.proposer import Proposer, Target

        settings = self.app.state.settings
        url, _rev = split_spec(self.sot)
        target = Target(data_dir=self.data_dir, repo_url=os.path.abspath(url) if os.path.isdir(url) else url, subdir=self.subdir, cache=settings.cache)
        assert self.store is not None
        self.closers.append(Proposer(self.store, target).start())

    def start_drift(self) -> None:
        """The drift observer (docs/api.md, GET /v1/drift): the only controller here, so no leadership;
        its BMC reads go through the fleet's shared guard folder, as the playbooks' calls do."""
        if self.drift_interval <= 0:
            return
        from .bmc import Guard
        from .drift.observer import DriftObserver

        assert self.store is not None
        self.closers.append(DriftObserver(self.store, Guard(guard_dir="auto"), interval=self.drift_interval).start())

    def close(self) -> None:
        self.worker.stop()
        for c in reversed(self.closers):
            try:
                c.close()
            except Exception:
                log.exception("closing %r failed", c)
        if self.store is not None:
            self.store.close()

    def serve(self) -> int:
        import uvicorn

        from .httpserver import server_config

        app = self.build()
        host, port = self.listen
        config = server_config(app, host=host, port=port, log_config=None, log_level=logging.getLogger().getEffectiveLevel(), server_header=False)
        server = uvicorn.Server(config)
        log.info("standalone: API on http://%s:%d (token in %s), data in %s", host, port, self.data_dir / "token", self.data_dir)

        def later() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.1)
            try:
                self.start_background()
            except BaseException as exc:
                details = "; ".join(str(e) for e in getattr(exc, "errors", []))
                log.exception("standalone: start-up failed%s", f": {details}" if details else "")
                server.should_exit = True

        threading.Thread(target=later, name="vaquero-standalone-start", daemon=True).start()
        try:
            server.run()
        finally:
            self.close()
        return 0


def cmd_standalone(args: argparse.Namespace) -> int:
    token = None
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    app = Standalone(
        sot=args.sot,
        data_dir=Path(args.data_dir),
        subdir=args.subdir,
        listen=args.listen,
        approve=args.approve,
        agent=not args.no_agent,
        token=token,
        drift_interval=args.drift_interval,
    )
    return app.serve()


def add_parser(sub: Any) -> None:
    p = sub.add_parser("standalone", help="controller + agent in one process with SQLite: apply a SoT to a lab or a small site")
    p.add_argument("--sot", required=True, help="a SoT folder, or REPO@REVISION (a local git repository path or a URL)")
    p.add_argument("--subdir", default="", help="the SoT's folder inside the git repository")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="SQLite store, run folders, API token (default %(default)s)")
    p.add_argument("--listen", type=listen_address, default=("127.0.0.1", 8000), help="API address HOST:PORT (default 127.0.0.1:8000)")
    p.add_argument("--approve", action="store_true", help="approve the plan of the revision given with --sot (you read it with `vaquero plan` first)")
    p.add_argument("--token-file", help="API admin token (default: made once in DATA_DIR/token)")
    p.add_argument("--no-agent", action="store_true", help="do not start the boot services (an agent runs elsewhere)")
    p.add_argument(
        "--drift-interval",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="read every ready host's BMC and its agent boot state this often and record drift from the applied revision (GET /v1/drift; default 0: off)",
    )
    p.set_defaults(func=cmd_standalone)
