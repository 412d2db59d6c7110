"""The hosts a site serves, with their profile and network: what every renderer iterates over."""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from vaquero.sot import SoT
from vaquero.sot.models import Asset, Cluster, Host, Network, Profile, Site
from vaquero.sot.templates import primary_network


class RenderError(ValueError):
    """The SoT cannot be rendered as asked (unknown site, missing profile, bad template...)."""


# What a value may look like when it is written into a config file or script. These checks do
# not trust the models: a SoT built without validation (model_construct, an old pickle, a
# future field) must still not write a line the renderer did not mean. None of these let
# through white space, a control character, '#', quotes, backslash or '$'.
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_RULES: dict[str, re.Pattern[str]] = {
    "name": re.compile(_LABEL),
    "domain": re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*"),
    "interface": re.compile(r"(?!\.{1,2}\Z)[A-Za-z0-9_.:@-]{1,15}"),
    "mac": re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}"),
    "ipv4": re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}"),
    "subnet": re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}"),
    "lease": re.compile(r"[0-9]+[smhd]?|infinite"),
    "version": re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~:-]{0,63}"),
    # A file name iPXE, TFTP and dnsmasq see as one token.
    "file": re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+~@=-]{0,254}"),
    # URLs we write into dnsmasq, Kea and iPXE: no ',' (a dnsmasq field separator), no '$'
    # (iPXE expands ${...}), no '#' (comment in both), no space, quote or backslash.
    "url": re.compile(r"https?://[A-Za-z0-9._~:/?=&%@+!*\[\]-]+"),
    "path": re.compile(r"/[A-Za-z0-9._~:/?=&%@+!*-]*"),
}


def safe(value: object, rule: str, where: str) -> str:
    """`value` as text when it matches `rule`; a RenderError naming `where` otherwise."""
    text = str(value)
    if not _RULES[rule].fullmatch(text):
        raise RenderError(f"{where}: {text!r} is not a valid {rule}: refused")
    return text


@dataclass(frozen=True)
class SiteHost:
    cluster: Cluster
    host: Host
    profile: Profile | None
    network: Network

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def ip(self) -> IPv4Address | None:
        return self.host.ips.get(self.network.name)


def get_site(sot: SoT, name: str | None = None) -> Site:
    if name is None:
        if len(sot.sites) != 1:
            raise RenderError(f"the SoT has {len(sot.sites)} sites: name one ({', '.join(sorted(sot.sites))})")
        return next(iter(sot.sites.values()))
    try:
        return sot.sites[name]
    except KeyError:
        raise RenderError(f"unknown site {name!r} (known: {', '.join(sorted(sot.sites)) or 'none'})") from None


def site_hosts(sot: SoT, site: Site) -> list[SiteHost]:
    out = []
    for cluster, _, host in sot.hosts():
        if cluster.site != site.name:
            continue
        out.append(SiteHost(cluster=cluster, host=host, profile=sot.profile_of(cluster, host), network=primary_network(site, host)))
    return sorted(out, key=lambda h: h.name)


def asset_name(asset: Asset) -> str:
    """The file name of an asset (last path segment of its url or path)."""
    src = asset.path if asset.path is not None else urlsplit(asset.url or "").path
    name = PurePosixPath(src).name
    if not name or name in (".", ".."):
        raise RenderError(f"asset {asset.url or asset.path!r} has no file name")
    return name


def asset_relpath(profile: Profile, asset: Asset) -> str:
    """Where an asset lives under the agent's asset root: <profile>/<file name>."""
    where = f"profile {profile.name}: asset {asset.url or asset.path!r}"
    return f"{safe(profile.name, 'name', f'{where}: profile name')}/{safe(asset_name(asset), 'file', f'{where}: file name')}"


def profile_assets(profile: Profile) -> list[Asset]:
    """The files the agent keeps in its asset root for `profile`. An image with an http(s) URL is not
    one of them: the deploy ramdisk streams it from there and checks its sha256 itself."""
    image = profile.image
    agent_image = image is not None and (image.url is None or urlsplit(image.url).scheme not in ("http", "https"))
    return [profile.kernel, *profile.initrd, *([image] if image is not None and agent_image else [])]


def server_address(site: Site, agent: str | None = None) -> str:
    """The agent's address as hosts see it (next-server, TFTP), from the site's agent URL."""
    if not site.agents:
        raise RenderError(f"site {site.name} has no agents: cannot tell hosts where to boot from")
    chosen = site.agents[0] if agent is None else next((a for a in site.agents if a.name == agent), None)
    if chosen is None:
        raise RenderError(f"site {site.name} has no agent {agent!r}")
    host = urlsplit(chosen.url).hostname
    if not host:
        raise RenderError(f"agent {chosen.name} URL {chosen.url!r} has no host")
    return host


def agent_url(site: Site, agent: str | None = None) -> str:
    chosen = site.agents[0] if agent is None else next((a for a in site.agents if a.name == agent), None)
    if chosen is None:
        raise RenderError(f"site {site.name} has no agent {agent or ''!r}")
    return chosen.url.rstrip("/")
