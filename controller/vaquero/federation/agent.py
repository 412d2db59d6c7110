"""`vaquero agent --controller URL`: the boot services fed by the controller's bundle.

The lead wires it into agent/cli.py:

    from vaquero.federation.client import add_arguments      # in add_arguments(p); make --sot optional
    if args.controller:                                       # first thing in run(args)
        from vaquero.federation.agent import run_federated
        return run_federated(args)

The agent starts from the cached bundle when there is one (so a restart during a partition
serves at once), else waits for the controller's first bundle. A newer bundle is rendered
and swapped into the running boot server (and dnsmasq); an installer's callback becomes a
queued `rebooting` event for the controller.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from .client import ClientConfig, FederationClient, config_from_args

log = logging.getLogger("vaquero.federation")


def agent_config(args: argparse.Namespace, sot: Path) -> Any:
    from vaquero.agent.service import AgentConfig

    return AgentConfig(
        sot=str(sot),
        site=args.site,
        agent=args.agent,
        listen=args.listen,
        http_port=args.http_port,
        tftp_port=args.tftp_port,
        tftp_root=args.tftp_root,
        asset_root=args.asset_root,
        state_dir=args.state_dir,
        base_url=args.base_url,
        dhcp=not args.no_dhcp,
        log_dhcp=args.log_dhcp,
        fetch_assets=not args.no_fetch_assets,
        admin_token=os.environ.get("VAQUERO_AGENT_TOKEN") or None,
        install=args.install,
        access_log=args.access_log,
        ipv6_ra=args.ipv6_ra,
    )


class FederatedAgent:
    """An `agent.service.Agent` whose SoT comes from the bundle cache, and a sync loop beside it."""

    def __init__(self, client: FederationClient, agent_cfg: Any) -> None:
        from vaquero.agent.service import Agent

        self.client = client
        self.agent = Agent(agent_cfg)
        client.on_bundle = self.swap

    def prepare(self) -> Any:
        app = self.agent.prepare()
        app.on_change = self.installed
        return app

    def installed(self, host: str) -> None:
        """The boot server's callback hook: the installer reported; tell the controller (queued, durable)."""
        st = self.agent.states.get(host)
        self.client.enqueue(host, "rebooting", "installer called back", detail={"attempt": st.attempt}, attempt=st.attempt)

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
        log.info("now serving bundle %s", bundle.get("version"), extra={"sha": bundle.get("sha"), "site": bundle.get("site")})


def start_client(cfg: ClientConfig, *, wait: float | None = None) -> FederationClient:
    client = FederationClient(cfg)
    client.wait_for_bundle(wait)
    return client


def run_federated(args: argparse.Namespace) -> int:
    import uvicorn

    from vaquero.agent.fasthttp import BootHttpProtocol
    from vaquero.agent.service import terminate_on_signals
    from vaquero.logs import setup_logging

    setup_logging(args.log_level)
    terminate_on_signals()
    client = start_client(config_from_args(args))
    assert client.sot_path is not None
    fa = FederatedAgent(client, agent_config(args, client.sot_path))
    app = fa.prepare()
    fa.agent.start_boot_services()
    client.start()
    cfg = fa.agent.cfg
    config = uvicorn.Config(
        app,
        host=cfg.listen,
        port=cfg.http_port,
        loop="uvloop",
        http=BootHttpProtocol if not cfg.access_log else "httptools",
        lifespan="off",
        access_log=cfg.access_log,
        log_config=None,
        backlog=4096,
        timeout_keep_alive=30,
    )
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
        fa.agent.stop()
    return 0
