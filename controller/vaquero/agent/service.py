"""The agent's boot services for one site: HTTP (uvicorn + BootApp), TFTP, supervised dnsmasq."""

from __future__ import annotations

import logging
import os
import secrets
import signal
from dataclasses import dataclass, field
from pathlib import Path

from vaquero.inspect.inbox import InspectionInbox
from vaquero.render.assets import AssetError, ensure_asset
from vaquero.render.bundle import SiteBundle, render_site
from vaquero.render.site import asset_relpath, profile_assets
from vaquero.sot import SoT, load_spec

from .dnsmasq import Dnsmasq
from .fasthttp import BootHttpProtocol
from .http import BootApp
from .state import BootStates
from .tftp import TftpServer, default_root

log = logging.getLogger(__name__)


@dataclass
class AgentConfig:
    sot: str
    site: str | None = None
    agent: str | None = None
    listen: str = "0.0.0.0"
    http_port: int = 8080
    tftp_port: int = 69
    tftp_root: str | None = None
    asset_root: Path = Path("/var/lib/vaquero/assets")
    state_dir: Path = Path("/var/lib/vaquero/agent")
    base_url: str | None = None
    dhcp: bool = True
    log_dhcp: bool = False
    fetch_assets: bool = True
    admin_token: str | None = None  # None: made once and kept in <state_dir>/admin-token (0600)
    install: list[str] = field(default_factory=list)
    access_log: bool = False
    ipv6_ra: bool = False
    efi_file: str = "ipxe.efi"
    tls_cert: Path | None = None
    tls_key: Path | None = None


ADMIN_TOKEN_FILE = "admin-token"


def admin_token(cfg: AgentConfig) -> str:
    """The admin token: given, or made once and kept in the state folder (0600); only its path is logged.

    The admin routes are never open: an agent without a configured token makes one rather than
    serving them to anyone (deny by default)."""
    if cfg.admin_token:
        return cfg.admin_token
    path = cfg.state_dir / ADMIN_TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)  # someone widened it: narrow it again before reading
        token = path.read_text().strip()
        if len(token) < 16:
            raise SystemExit(f"vaquero agent: {path} holds no usable admin token (remove it to make a new one)") from None
        log.info("admin token read from %s", path)
        return token
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    log.warning("no admin token given ($VAQUERO_AGENT_TOKEN): made one in %s (mode 0600)", path)
    return token


class Agent:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.sot: SoT | None = None
        self.bundle: SiteBundle | None = None
        self.states = BootStates(cfg.state_dir / "boot-states.json")
        self.tftp: TftpServer | None = None
        self.dnsmasq: Dnsmasq | None = None
        self.app: BootApp | None = None
        self.unready: dict[str, str] = {}  # host -> why it cannot be installed
        self.inbox: InspectionInbox | None = None  # discovery: reports accepted, not yet handed on

    def prepare(self) -> BootApp:
        cfg = self.cfg
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.sot = load_spec(cfg.sot)
        dns_dir = cfg.state_dir / "dnsmasq"
        self.bundle = render_site(
            self.sot,
            cfg.site,
            agent=cfg.agent,
            base_url=cfg.base_url,
            log_dhcp=cfg.log_dhcp,
            hosts_file=str(dns_dir / "dnsmasq.hosts"),
            ipv6_ra=cfg.ipv6_ra,
            efi_file=cfg.efi_file,
        )
        site = self.bundle.site.name
        if cfg.fetch_assets:
            self._assets()
        for name in cfg.install:
            if name not in self.bundle.hosts:
                raise SystemExit(f"--install {name}: no such host in site {site}")
            if name in self.unready:
                raise SystemExit(f"--install {name}: {self.unready[name]}")
            self.states.arm(name)
        ipxe_root = default_root(cfg.tftp_root)
        if self.inbox is None:
            self.inbox = InspectionInbox(cfg.state_dir / "inspections.sqlite")
        self.app = BootApp(
            self.bundle,
            self.states,
            asset_root=cfg.asset_root,
            ipxe_root=ipxe_root,
            admin_token=admin_token(cfg),
            access_log=cfg.access_log,
            iso_dir=cfg.state_dir / "iso",
            inbox=self.inbox,
        )
        self.app.unready = self.unready
        self.app.on_dhcp_change = self.apply_dhcp
        log.info("site %s: %d hosts, %d assets, serving %s", site, len(self.bundle.hosts), len(self.bundle.assets), self.bundle.base_url, extra={"site": site})
        return self.app

    def _assets(self) -> None:
        assert self.bundle is not None and self.sot is not None
        failed: dict[str, str] = {}
        for rel, asset in sorted(self.bundle.assets.items()):
            source = asset.url or asset.path or ""
            try:
                ensure_asset(source, self.cfg.asset_root / rel, asset.sha256, base=self.sot.root)
            except AssetError as exc:
                failed[rel] = str(exc)
        for name, hb in self.bundle.hosts.items():
            profile = self.sot.profiles.get(hb.profile or "")
            if profile is None:
                continue
            bad = [rel for rel in (asset_relpath(profile, a) for a in profile_assets(profile)) if rel in failed]
            if bad:
                self.unready[name] = f"assets not ready: {'; '.join(failed[r] for r in bad)}"
                log.error("host cannot be installed: %s", self.unready[name], extra={"host": name})
        # Files no host installs from (the deploy ramdisk a wipe or an inspection boots): the hosts stay
        # ready, but a decommission of theirs will be refused, and unknown machines not inspected, until
        # the files are here; say so now.
        own = {asset_relpath(p, a) for hb in self.bundle.hosts.values() if (p := self.sot.profiles.get(hb.profile or "")) for a in profile_assets(p)}
        for rel in sorted(set(failed) - own):
            log.warning(
                "ramdisk for wipes and discovery not ready (decommissions refused, unknown machines not inspected): %s",
                failed[rel],
                extra={"site": self.bundle.site.name},
            )

    def start_boot_services(self) -> None:
        assert self.bundle is not None
        cfg = self.cfg
        if cfg.tftp_port:
            self.tftp = TftpServer(default_root(cfg.tftp_root))
            self.tftp.start((cfg.listen, cfg.tftp_port))
        if cfg.dhcp:
            self.dnsmasq = Dnsmasq(cfg.state_dir / "dnsmasq", site=self.bundle.site.name)
            self.dnsmasq.apply(self.bundle.dhcp, self.dhcp_hosts())
            self.dnsmasq.start()

    def dhcp_hosts(self) -> str:
        """The reservations served: the app's (no wiped host, the retired ones kept), else the bundle's."""
        assert self.bundle is not None
        return self.app.dhcp_hosts() if self.app is not None else self.bundle.dhcp_hosts

    def apply_dhcp(self) -> None:
        """Re-apply the reservations (a host was wiped: its reservation goes) and have dnsmasq re-read them."""
        if self.dnsmasq is not None and self.bundle is not None and self.app is not None:
            self.dnsmasq.apply(self.app.bundle.dhcp, self.app.dhcp_hosts())
            self.dnsmasq.reload()

    def stop(self) -> None:
        if self.dnsmasq is not None:
            self.dnsmasq.stop()
        if self.tftp is not None:
            self.tftp.stop()

    def server_options(self) -> dict[str, object]:
        """uvicorn options of the agent's own: TLS, and no uvicorn access log (it would log install tokens; BootApp logs instead)."""
        cfg = self.cfg
        opts: dict[str, object] = {"access_log": False}
        if cfg.tls_cert is not None or cfg.tls_key is not None:
            if cfg.tls_cert is None or cfg.tls_key is None:
                raise SystemExit("vaquero agent: give both --tls-cert and --tls-key")
            opts.update(ssl_certfile=str(cfg.tls_cert), ssl_keyfile=str(cfg.tls_key))
        return opts

    def run(self) -> int:
        import uvicorn
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        from vaquero.httpserver import server_config

        from .fasthttp import AGENT_LIMITS

        app = self.prepare()
        self.start_boot_services()
        config = server_config(
            app,
            host=self.cfg.listen,
            port=self.cfg.http_port,
            protocol=BootHttpProtocol if not self.cfg.access_log else HttpToolsProtocol,
            limits=AGENT_LIMITS,
            loop="uvloop",
            lifespan="off",
            log_config=None,
            backlog=4096,
            **self.server_options(),
        )
        server = uvicorn.Server(config)
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
        return 0


def terminate_on_signals() -> None:
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
