"""Everything an agent serves for one site, rendered once from one SoT revision."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vaquero.sot import SoT
from vaquero.sot.models import Asset, Site, boot_method
from vaquero.sot.templates import BootUrls, host_context

from .boot_iso import static_net, static_script
from .config import meta_data, render_config
from .deploy import deploy_instructions, wipe_instructions, wipe_profile
from .dhcp import BootServer, Flavor, dnsmasq_host_lines, render_dhcp, render_dnsmasq, render_dnsmasq_hosts
from .ipxe import chain_script, inspect_script, install_script, localboot_script, mac_key
from .site import RenderError, SiteHost, agent_url, asset_relpath, get_site, profile_assets, server_address, site_hosts


@dataclass
class HostBoot:
    name: str
    cluster: str
    macs: tuple[str, ...]
    firmware: str
    profile: str | None
    install: str | None
    localboot: str
    config_format: str | None = None
    config: bytes | None = None
    meta_data: bytes = b""
    context: dict[str, Any] = field(default_factory=dict, repr=False)
    boot_method: str = "pxe"
    iso_script: str | None = None  # virtual_media: the script of the host's boot ISO (render.boot_iso)
    deploy: bytes | None = None  # image profiles: the deploy ramdisk's instructions (render.deploy), tokens as placeholders
    # The installed OS reports itself at urls.phone_home (image profiles, and installer profiles that say phone_home).
    phone_home: bool = False
    # Decommission: the iPXE script that boots the deploy ramdisk to wipe the host's disks and its
    # wipe instructions (render.deploy.wipe_instructions); None when the SoT has no image profile.
    wipe: str | None = None
    wipe_instructions: bytes | None = None
    wipe_assets: tuple[str, ...] = ()  # the ramdisk's kernel and initrd under the agent's asset root
    dhcp_lines: tuple[str, ...] = ()  # the host's reservation lines of the dhcp-hostsfile


@dataclass
class SiteBundle:
    site: Site
    sha: str | None
    base_url: str
    server: BootServer
    hosts: dict[str, HostBoot]
    by_mac: dict[str, str]
    chain: str
    dhcp: str
    dhcp_hosts: str  # dhcp-hostsfile contents (used when dhcp refers to a hosts file)
    assets: dict[str, Asset]  # relpath under the asset root -> asset
    # Discovery (site.discovery.enabled): the script an unknown MAC gets (render.ipxe.inspect_script,
    # MAC as a placeholder) and the ramdisk files it boots; None with the reason when it cannot be had.
    inspect: str | None = None
    inspect_assets: tuple[str, ...] = ()
    inspect_why: str = "discovery is not enabled for this site"

    @property
    def discovery(self) -> bool:
        return self.site.discovery is not None and self.site.discovery.enabled

    def host_for_mac(self, mac: str) -> HostBoot | None:
        try:
            name = self.by_mac.get(mac_key(mac))
        except RenderError:
            return None
        return self.hosts.get(name) if name else None


def method_is_pxe(site: Site, h: SiteHost) -> bool:
    """A wipe boots over the network (pxe or UEFI HTTP): a virtual_media host gets no wipe script."""
    return boot_method(site, h.host) != "virtual_media"


def _add_asset(assets: dict[str, Asset], rel: str, asset: Asset) -> None:
    if rel in assets and assets[rel].sha256 != asset.sha256:
        raise RenderError(f"asset {rel} is given twice with different sha256")
    assets[rel] = asset


def render_site(
    sot: SoT,
    site_name: str | None = None,
    *,
    agent: str | None = None,
    base_url: str | None = None,
    flavor: Flavor = "dnsmasq",
    log_dhcp: bool = False,
    hosts_file: str | None = None,
    ipv6_ra: bool = False,
    efi_file: str = "ipxe.efi",
) -> SiteBundle:
    site = get_site(sot, site_name)
    base = (base_url or agent_url(site, agent)).rstrip("/")
    server = BootServer(address=server_address(site, agent), http_base=base, log_dhcp=log_dhcp, ipv6_ra=ipv6_ra, efi_file=efi_file)
    urls = BootUrls(base=base)
    hosts = site_hosts(sot, site)
    out: dict[str, HostBoot] = {}
    by_mac: dict[str, str] = {}
    assets: dict[str, Asset] = {}
    for h in hosts:
        install = None
        ctx: dict[str, Any] = {}
        cfg = None
        deploy = None
        if h.profile is not None:
            ctx = host_context(site, h.cluster, h.host, h.profile, urls=urls, sha=sot.sha)
            install = install_script(h.name, h.host.firmware, h.profile, ctx, urls)
            cfg = render_config(sot.root, h.profile, ctx)
            if h.profile.image is not None:
                deploy = deploy_instructions(h.name, h.profile, urls).encode()
            for a in profile_assets(h.profile):
                _add_asset(assets, asset_relpath(h.profile, a), a)
        wipe = None
        wipe_assets: tuple[str, ...] = ()
        ramdisk = wipe_profile(h.profile, sot.profiles) if method_is_pxe(site, h) else None
        if ramdisk is not None:
            wipe_ctx = ctx if ramdisk is h.profile else host_context(site, h.cluster, h.host, ramdisk, urls=urls, sha=sot.sha)
            wipe = install_script(h.name, h.host.firmware, ramdisk, wipe_ctx, urls)
            # The agent fetches the ramdisk for every host it may have to wipe, installed from an
            # image or not (a site retires hosts of every kind). A ramdisk it cannot fetch does not
            # make the host unready (agent.service checks the host's own profile only); the agent
            # refuses to arm a wipe whose files it does not hold (agent.http).
            wipe_assets = tuple(asset_relpath(ramdisk, a) for a in (ramdisk.kernel, *ramdisk.initrd))
            for rel, a in zip(wipe_assets, (ramdisk.kernel, *ramdisk.initrd), strict=True):
                _add_asset(assets, rel, a)
        method = boot_method(site, h.host)
        iso_script = static_script(static_net(h, base)) if method == "virtual_media" else None
        out[h.name] = HostBoot(
            name=h.name,
            cluster=h.cluster.name,
            macs=tuple(h.host.macs),
            firmware=h.host.firmware,
            profile=h.profile.name if h.profile else None,
            install=install,
            localboot=localboot_script(h.name, h.host.firmware),
            config_format=cfg[0] if cfg else None,
            config=cfg[1] if cfg else None,
            meta_data=meta_data(h.name, f"{h.name}-{h.host.reinstall}-{(sot.sha or 'local')[:12]}"),
            context=ctx,
            boot_method=method,
            iso_script=iso_script,
            deploy=deploy,
            phone_home=h.profile is not None and h.profile.expects_phone_home,
            wipe=wipe,
            wipe_assets=wipe_assets,
            wipe_instructions=wipe_instructions(h.name, urls).encode() if wipe is not None else None,
            dhcp_lines=tuple(dnsmasq_host_lines([h])),
        )
        for mac in h.host.macs:
            by_mac[mac_key(mac)] = h.name
    inspect: str | None = None
    inspect_assets: tuple[str, ...] = ()
    inspect_why = "discovery is not enabled for this site"
    if site.discovery is not None and site.discovery.enabled:
        ramdisk = wipe_profile(None, sot.profiles)
        if ramdisk is None:
            inspect_why = "no image profile in the SoT gives a deploy ramdisk to boot"
        else:
            inspect = inspect_script(ramdisk, urls)
            inspect_assets = tuple(asset_relpath(ramdisk, a) for a in (ramdisk.kernel, *ramdisk.initrd))
            for rel, a in zip(inspect_assets, (ramdisk.kernel, *ramdisk.initrd), strict=True):
                _add_asset(assets, rel, a)
            inspect_why = ""
    return SiteBundle(
        site=site,
        sha=sot.sha,
        base_url=base,
        server=server,
        hosts=out,
        by_mac=by_mac,
        chain=chain_script(base),
        dhcp=render_dnsmasq(site, hosts, server, hosts_file=hosts_file) if flavor == "dnsmasq" else render_dhcp(flavor, site, hosts, server),
        dhcp_hosts=render_dnsmasq_hosts(hosts),
        assets=assets,
        inspect=inspect,
        inspect_assets=inspect_assets,
        inspect_why=inspect_why,
    )
