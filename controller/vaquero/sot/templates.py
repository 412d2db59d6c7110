"""Jinja2 templates of the SoT (kernel cmdline, cloud-init / Ignition) and the context they see.

One context builder for validation, rendering and the Ansible inventory, so a template that
validates is a template that renders on the agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .models import Cluster, Host, Network, Profile, Site


# Stands for the host's one-time install token in rendered scripts and configs; the agent puts the
# real token in when it arms the host. URL-safe base64 characters only, like the token itself, so
# it needs no quoting in a URL, an iPXE line, a kernel cmdline or YAML.
TOKEN_PLACEHOLDER = "VAQUERO_INSTALL_TOKEN_PLACEHOLDER"


@dataclass(frozen=True)
class BootUrls:
    """Where the agent serves a host's files; validation uses placeholders."""

    base: str = "http://agent.invalid:8080"
    token: str = TOKEN_PLACEHOLDER

    def callback(self, host: Host) -> str:
        return f"{self.base}/v1/boot/callback/{host.name}?token={self.token}"

    def config(self, host: Host) -> str:
        return f"{self.base}/v1/boot/config/{host.name}?token={self.token}"

    def nocloud(self, host: Host) -> str:
        """A NoCloud seed (cloud-init appends the file name, so the token is a path segment)."""
        return f"{self.base}/v1/boot/nocloud/{host.name}/{self.token}/"

    def assets(self) -> str:
        return f"{self.base}/assets"


_env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


def environment() -> ImmutableSandboxedEnvironment:
    # Sandboxed and immutable: templates come from a git repository; they must not reach Python
    # internals nor change the context shared between hosts.
    return _env


def primary_network(site: Site, host: Host) -> Network:
    for net in site.networks:
        if net.name in host.ips:
            return net
    return site.networks[0]


def network_context(net: Network) -> dict[str, Any]:
    return {
        "name": net.name,
        "subnet": str(net.subnet),
        "netmask": str(net.subnet.netmask),
        "prefix": net.subnet.prefixlen,
        "gateway": str(net.gateway) if net.gateway else None,
        "dns": [str(d) for d in net.dns],
        "ntp": [str(n) for n in net.ntp],
        "domain": net.domain,
    }


def host_context(
    site: Site,
    cluster: Cluster,
    host: Host,
    profile: Profile,
    *,
    urls: BootUrls | None = None,
    sha: str | None = None,
    networks: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What a template sees. `networks` memoises network_context per network for callers that loop over hosts."""
    urls = urls or BootUrls()
    net = primary_network(site, host)
    ip = host.ips.get(net.name)
    if networks is None:
        net_ctx = network_context(net)
    else:
        net_ctx = networks.get(id(net)) or networks.setdefault(id(net), network_context(net))
    return {
        "host": {
            "name": host.name,
            "macs": list(host.macs),
            "mac": host.macs[0],
            "uuid": host.uuid,
            "serial": host.serial,
            "asset_tag": host.asset_tag,
            "roles": list(host.roles),
            "ips": {k: str(v) for k, v in host.ips.items()},
            "ip": str(ip) if ip else None,
            "firmware": host.firmware,
            "fqdn": f"{host.name}.{net.domain}" if net.domain else host.name,
        },
        "cluster": {"name": cluster.name},
        "site": {"name": site.name},
        "profile": {"name": profile.name, "version": profile.version},
        "network": net_ctx,
        "vars": {**cluster.vars, **host.vars},
        "urls": {"callback": urls.callback(host), "config": urls.config(host), "assets": urls.assets()},
        "sot": {"sha": sha},
    }


def config_source(root: FsPath, profile: Profile) -> str | None:
    """The text of the profile's config template (inline or a file in the SoT)."""
    if profile.config is None:
        return None
    if profile.config.inline is not None:
        return profile.config.inline
    assert profile.config.template is not None
    return (root / profile.config.template).read_text(encoding="utf-8")
