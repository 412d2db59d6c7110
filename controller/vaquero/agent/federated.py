"""`vaquero agent --controller URL`: the boot services fed by the controller's bundle.

The agent is fed by a bundle source, the federation client (:mod:`vaquero.federation.client`),
built from the ClientConfig the command line (:mod:`vaquero.agent.cli`) hands over: the federation
knows nothing of the agent.

The agent starts from the cached bundle when there is one (so a restart during a partition
serves at once), else waits for the controller's first bundle. A newer bundle is rendered
and swapped into the running boot server (and dnsmasq); an installer's callback becomes a
queued `installing` event for the controller.

Boot intents: a host the bundle marks `install` (the controller moved it to netbooting or
installing) is armed once per intent, where an intent is the host's plan and attempt (or, with
no plan, the time its state began). The intents already armed are kept on disk, so neither a
bundle that still says `install` after the installer called back (the event is queued, not yet
applied) nor an agent restart sends a host back into its installer. A host armed here that the
controller has since moved to ready, failed, pending, enrolled or removed is disarmed. The hosts
armed are reported in each heartbeat (`GET /v1/agents`).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaquero.federation.client import ClientConfig, FederationClient
from vaquero.render.files import write_file

log = logging.getLogger("vaquero.federation")

DISARM_STATES = frozenset({"ready", "failed", "pending", "enrolled", "removed"})


def intent_id(host: dict[str, Any]) -> str:
    """Which install a bundle's `install` intent stands for: the same one across netbooting -> installing."""
    if host.get("plan"):
        return f"plan:{host['plan']}:{host.get('attempt')}"
    return f"since:{host.get('since')}"


class IntentLog:
    """host -> the intent id it was last armed for; on disk (atomic writes), so restarts keep it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.armed: dict[str, str] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.armed = {}

    def record(self, host: str, intent: str | None) -> None:
        if intent is None:
            self.armed.pop(host, None)
        else:
            self.armed[host] = intent
        write_file(self.path, json.dumps(self.armed, sort_keys=True).encode(), mode=0o600)


class FederatedAgent:
    """An `agent.service.Agent` whose SoT comes from the bundle cache, and a sync loop beside it."""

    def __init__(self, client: FederationClient, agent_cfg: Any) -> None:
        from .service import Agent

        self.client = client
        self.agent = Agent(agent_cfg)
        self.intents = IntentLog(client.dir / "intents.json")
        client.on_bundle = self.swap
        client.report = self.report

    def prepare(self) -> Any:
        app = self.agent.prepare()
        app.on_change = self.installed
        # Inspection reports go with the events: kept in the agent's inbox, forwarded by the sync loop,
        # which a new report wakes as a new event does.
        self.client.inbox = app.inbox
        app.on_inspection = self.client.queue.added.set
        if self.client.bundle is not None:
            self.apply_intents(self.client.bundle)
        return app

    def report(self) -> dict[str, Any]:
        return {"armed": sorted(h for h, st in self.agent.states.hosts.items() if st.state == "install")}

    def apply_intents(self, bundle: dict[str, Any]) -> list[str]:
        """Arm the hosts the controller wants installed (once per intent); disarm abandoned ones. Returns the hosts changed."""
        a = self.agent
        if a.bundle is None:
            return []
        changed = []
        for name, h in sorted((bundle.get("hosts") or {}).items()):
            hb = a.bundle.hosts.get(name)
            if hb is None:
                continue
            local = a.states.get(name).state
            if h.get("intent") == "install":
                iid = intent_id(h)
                if self.intents.armed.get(name) == iid:
                    continue
                if local == "install":  # armed already (by hand, or before a restart): this intent is served
                    self.intents.record(name, iid)
                    continue
                if hb.install is None or name in a.unready:
                    log.error("the controller wants this host installed, but it cannot be: %s", a.unready.get(name, "no profile"), extra={"host": name})
                    continue
                a.states.arm(name)
                self.intents.record(name, iid)
                changed.append(name)
            elif local == "install" and name in self.intents.armed and h.get("state") in DISARM_STATES:
                a.states.disarm(name)
                self.intents.record(name, None)
                changed.append(name)
        if a.app is not None:
            for name in changed:
                a.app.rebuild(only=name)
        return changed

    def installed(self, host: str) -> None:
        """The boot server's callback hook: the installer reported; tell the controller (queued, durable).

        The event says `installing` (the install ran), what the install playbook also reports once it
        has seen the callback: the same state again is allowed, so the two never conflict, and an event
        that arrives late (after the host moved on to rebooting) is refused and dropped, harmlessly.
        The installer's report is not forwarded (it is the host's free-form JSON)."""
        st = self.agent.states.get(host)
        self.client.enqueue(host, "installing", "installer called back", detail={"boot_attempt": st.attempt})

    def swap(self, bundle: dict[str, Any], folder: Path) -> None:
        """A new bundle arrived: render it and swap it into the running boot server."""
        from vaquero.render.bundle import render_site
        from vaquero.sot import load

        a = self.agent
        if a.app is None:
            return
        cfg = a.cfg
        sot = load(folder, sha=bundle.get("sha"), label=bundle.get("sha") or str(folder))
        rendered = render_site(
            sot,
            cfg.site,
            agent=cfg.agent,
            base_url=cfg.base_url,
            log_dhcp=cfg.log_dhcp,
            hosts_file=str(cfg.state_dir / "dnsmasq" / "dnsmasq.hosts"),
            ipv6_ra=cfg.ipv6_ra,
        )
        a.sot, a.bundle, cfg.sot = sot, rendered, str(folder)
        if cfg.fetch_assets:
            a.unready.clear()
            a._assets()
        a.app.bundle = rendered
        a.app.rebuild()
        if a.dnsmasq is not None:
            a.dnsmasq.apply(rendered.dhcp, rendered.dhcp_hosts)
        self.apply_intents(bundle)
        log.info("now serving bundle %s", bundle.get("version"), extra={"sha": bundle.get("sha"), "site": bundle.get("site")})


def bundle_check(site: str | None, agent: str | None) -> Any:
    """A `check` for FederationClient: the bundle's SoT loads, validates and renders for this agent."""

    def check(bundle: dict[str, Any], folder: Path) -> None:
        from vaquero.render.bundle import render_site
        from vaquero.sot import SoTInvalid, load

        try:
            sot = load(folder, sha=bundle.get("sha"), label=bundle.get("sha") or str(folder))
        except SoTInvalid as exc:
            raise ValueError("; ".join(str(e) for e in exc.errors[:5])) from None
        rendered = render_site(sot, site or bundle.get("site"), agent=agent)
        if rendered.site.name != bundle.get("site"):
            raise ValueError(f"the bundle is for site {bundle.get('site')}, this agent serves {rendered.site.name}")

    return check


def start_client(cfg: ClientConfig, *, site: str | None = None, wait: float | None = None) -> FederationClient:
    client = FederationClient(cfg, check=bundle_check(site, cfg.agent))
    client.wait_for_bundle(wait)
    return client


def run_federated(args: argparse.Namespace, client_cfg: ClientConfig, agent_config: Callable[[argparse.Namespace, str], Any]) -> int:
    """Serve the bundle's SoT from the controller `client_cfg` names; `agent_config(args, sot)` is the command line's AgentConfig builder."""
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from vaquero.httpserver import server_config
    from vaquero.logs import setup_logging

    from .fasthttp import AGENT_LIMITS, BootHttpProtocol
    from .service import terminate_on_signals

    setup_logging(args.log_level)
    terminate_on_signals()
    client = start_client(client_cfg, site=args.site)
    assert client.sot_path is not None
    fa = FederatedAgent(client, agent_config(args, str(client.sot_path)))
    app = fa.prepare()
    fa.agent.start_boot_services()
    client.start()
    cfg = fa.agent.cfg
    config = server_config(
        app,
        host=cfg.listen,
        port=cfg.http_port,
        protocol=BootHttpProtocol if not cfg.access_log else HttpToolsProtocol,
        limits=AGENT_LIMITS,
        loop="uvloop",
        lifespan="off",
        log_config=None,
        backlog=4096,
        **fa.agent.server_options(),
    )
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
        fa.agent.stop()
    return 0
