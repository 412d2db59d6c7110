"""`vaquero agent`: the boot services of one site (DHCP via dnsmasq, TFTP, HTTP, callbacks)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

# The controller's token for this agent, when no --controller-token-file is given.
CONTROLLER_TOKEN_ENV = "VAQUERO_CONTROLLER_TOKEN"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sot", help="SoT folder or URL@REV to serve directly (without --controller)")
    p.add_argument("--site", help="site to serve (default: the only one)")
    p.add_argument("--agent", help="agent name in the site (default: the first)")
    p.add_argument("--listen", default="0.0.0.0", help="address for HTTP and TFTP (default 0.0.0.0)")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--tftp-port", type=int, default=69, help="0 disables TFTP")
    p.add_argument("--tftp-root", help="folder of iPXE binaries (default /usr/lib/ipxe)")
    p.add_argument("--asset-root", type=Path, default=Path("/var/lib/vaquero/assets"))
    p.add_argument("--state-dir", type=Path, default=Path("/var/lib/vaquero/agent"))
    p.add_argument("--base-url", help="URL hosts use to reach this agent (default: the site's agent URL)")
    p.add_argument("--no-dhcp", action="store_true", help="do not run dnsmasq")
    p.add_argument("--log-dhcp", action="store_true", help="dnsmasq logs every DHCP exchange")
    p.add_argument("--no-fetch-assets", action="store_true", help="serve the asset root as it is")
    p.add_argument("--install", action="append", default=[], metavar="HOST", help="arm HOST for install at start (repeatable)")
    p.add_argument("--ipv6-ra", action="store_true", help="dnsmasq sends IPv6 router adverts from the interface's prefix (isolated labs)")
    p.add_argument("--efi-file", default="ipxe.efi", choices=["ipxe.efi", "snponly.efi"], help="iPXE binary for UEFI PXE clients")
    p.add_argument("--access-log", action="store_true", help="log every HTTP request (slows a boot storm)")
    p.add_argument("--tls-cert", type=Path, help="serve HTTP over TLS with this certificate (PEM, chain included)")
    p.add_argument("--tls-key", type=Path, help="the TLS certificate's private key (PEM)")
    p.add_argument("--log-level", default="info")


def add_federation_arguments(p: argparse.ArgumentParser) -> None:
    """Options of a federated agent, one the controller feeds (--agent and --state-dir are shared)."""
    g = p.add_argument_group("federation (an agent managed by a controller)")
    g.add_argument("--controller", help="the controller's URL (https://...): pull the site bundle from it instead of reading --sot")
    g.add_argument("--controller-token-file", help=f"file holding this agent's token (default: ${CONTROLLER_TOKEN_ENV})")
    g.add_argument("--ca-file", help="CA certificate(s) that signed the controller's TLS certificate (default: the system CAs)")
    g.add_argument("--sync-interval", type=float, default=10.0, help="seconds between syncs while connected (default 10)")
    g.add_argument("--insecure-http", action="store_true", help="allow an http:// --controller (the token crosses in clear; isolated labs only)")
    g.add_argument("--sync-backoff-max", type=float, default=30.0, help="longest wait between attempts while partitioned (default 30)")


def client_config_from_args(args: argparse.Namespace) -> Any:
    """The federation ClientConfig the command line describes; exits with a message when --agent or the token is missing."""
    from vaquero.federation.client import ClientConfig
    from vaquero.federation.tokens import TokenError, read_token

    if not getattr(args, "agent", None):
        raise SystemExit("vaquero agent --controller: --agent NAME is needed (the agent's name in its Site document)")
    try:
        token = read_token(getattr(args, "controller_token_file", None), CONTROLLER_TOKEN_ENV)
    except TokenError as exc:
        raise SystemExit(f"vaquero agent: {exc}") from None
    if not token:
        raise SystemExit(f"vaquero agent --controller: give --controller-token-file or set ${CONTROLLER_TOKEN_ENV}")
    return ClientConfig(
        controller=args.controller,
        agent=args.agent,
        token=token,
        state_dir=Path(args.state_dir),
        ca_file=getattr(args, "ca_file", None),
        interval=getattr(args, "sync_interval", 10.0),
        backoff_max=getattr(args, "sync_backoff_max", 30.0),
        insecure_http=getattr(args, "insecure_http", False),
    )


def config_from_args(args: argparse.Namespace, sot: str) -> Any:
    """The AgentConfig the command line describes, serving the SoT at `sot`."""
    from .service import AgentConfig

    return AgentConfig(
        sot=sot,
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
        efi_file=args.efi_file,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )


def run(args: argparse.Namespace) -> int:
    if getattr(args, "controller", None):
        if not args.controller.startswith("https://") and not getattr(args, "insecure_http", False):
            raise SystemExit(
                f"vaquero agent: --controller {args.controller.split('://', 1)[0]}://... would send the agent's token in clear; "
                "give an https:// URL (or --insecure-http, for isolated labs only)"
            )
        # Federated: the SoT comes from the controller's bundle (cached on disk), not from --sot.
        from .federated import run_federated

        return run_federated(args, client_config_from_args(args), config_from_args)
    if not args.sot:
        raise SystemExit("vaquero agent: give --sot (serve a SoT directly) or --controller (follow a controller)")
    from vaquero.logs import setup_logging

    from .service import Agent, terminate_on_signals

    setup_logging(args.log_level)
    terminate_on_signals()
    cfg = config_from_args(args, args.sot)
    return Agent(cfg).run()


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "agent",
        help="serve a site's netboot: DHCP (dnsmasq), TFTP, HTTP scripts, assets, callbacks",
        description=(
            "The admin routes (arm, disarm) always need a bearer token: $VAQUERO_AGENT_TOKEN, or else one the agent makes "
            "at first start in <state-dir>/admin-token (mode 0600; only its path is logged). Installers fetch their config "
            "and call back with the one-time token their install script carries."
        ),
    )
    add_arguments(p)
    add_federation_arguments(p)
    p.set_defaults(func=run)
