"""Rules that need the whole SoT: references, duplicates, addresses, cycles, templates, policy."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jinja2

from .errors import SoTError
from .models import PHASES, Cluster, Host, Policy, Profile, Site, boot_method, cloud_config_error, cmdline_error, normalize_cmdline, preseed_error
from .templates import PHONE_HOME_PLACEHOLDER, config_source, environment, host_context, primary_network

if TYPE_CHECKING:  # annotations only: the loader runs these checks, so it is the one that imports
    from .loader import SoT


def resolve_count(value: int | str, total: int) -> int:
    """'50%' of 5 hosts -> 3 (rounded up: a safety floor is never rounded away); 2 -> 2."""
    if isinstance(value, int):
        return value
    pct = int(value.rstrip("%"))
    return -(-pct * total // 100)


def check(sot: SoT) -> list[SoTError]:
    errors: list[SoTError] = []
    errors += _check_sites(sot)
    errors += _check_hooks(sot)
    errors += _check_profiles(sot)
    errors += _check_clusters(sot)
    errors += _check_hosts(sot)
    errors += _check_cycles(sot)
    errors += _check_templates(sot)
    return errors


def _missing(sot: SoT, kind: str, name: str, table: dict[str, Any]) -> bool:
    """True when `name` is not defined; a document that failed to load counts as defined."""
    return name not in table and (kind, name) not in sot.broken


def _check_sites(sot: SoT) -> list[SoTError]:
    errors = []
    for site in sot.sites.values():
        seen: set[str] = set()
        for i, net in enumerate(site.networks):
            at = ("networks", i)
            if net.name in seen:
                errors.append(sot.error("Site", site.name, (*at, "name"), f"duplicate network name {net.name!r}"))
            seen.add(net.name)
            if net.gateway is not None and net.gateway not in net.subnet:
                errors.append(sot.error("Site", site.name, (*at, "gateway"), f"gateway {net.gateway} is outside subnet {net.subnet}"))
            rng = net.dhcp.range
            if rng is not None:
                if net.dhcp.mode == "proxy":
                    errors.append(sot.error("Site", site.name, (*at, "dhcp", "range"), "a proxy-mode network hands out no addresses: remove the range"))
                for j, addr in enumerate(rng):
                    if addr not in net.subnet:
                        errors.append(sot.error("Site", site.name, (*at, "dhcp", "range", j), f"{addr} is outside subnet {net.subnet}"))
                if rng[0] > rng[1]:
                    errors.append(sot.error("Site", site.name, (*at, "dhcp", "range"), f"range start {rng[0]} is after its end {rng[1]}"))
        seen_agents: set[str] = set()
        for i, agent in enumerate(site.agents):
            if agent.name in seen_agents:
                errors.append(sot.error("Site", site.name, ("agents", i, "name"), f"duplicate agent name {agent.name!r}"))
            seen_agents.add(agent.name)
        disc = site.discovery
        if disc is not None:
            cluster = sot.clusters.get(disc.cluster)
            if cluster is None:
                if ("Cluster", disc.cluster) not in sot.broken:
                    errors.append(sot.error("Site", site.name, ("discovery", "cluster"), f"unknown cluster {disc.cluster!r}"))
            elif cluster.site != site.name:
                errors.append(
                    sot.error("Site", site.name, ("discovery", "cluster"), f"cluster {disc.cluster!r} belongs to site {cluster.site!r}, not this one")
                )
            if disc.network is not None and disc.network not in seen:
                errors.append(
                    sot.error("Site", site.name, ("discovery", "network"), f"unknown network {disc.network!r} (this site's: {', '.join(sorted(seen))})")
                )
    return errors


def _safe_relpath(value: str) -> bool:
    p = PurePosixPath(value)
    return not p.is_absolute() and ".." not in p.parts


def _check_repo_file(sot: SoT, kind: str, name: str, path: tuple[str | int, ...], value: str) -> list[SoTError]:
    if not _safe_relpath(value):
        return [sot.error(kind, name, path, f"{value!r} must be a relative path inside the SoT repository")]
    if any((sot.root / PurePosixPath(*PurePosixPath(value).parts[: i + 1])).is_symlink() for i in range(len(PurePosixPath(value).parts))):
        return [sot.error(kind, name, path, f"file {value} is a symlink: a SoT must not contain links")]
    if not (sot.root / value).is_file():
        return [sot.error(kind, name, path, f"file {value!r} does not exist in the SoT repository")]
    return []


def _check_hooks(sot: SoT) -> list[SoTError]:
    errors = []
    for hook in sot.hooks.values():
        if hook.file is not None:
            errors += _check_repo_file(sot, "Hook", hook.name, ("file",), hook.file)
        if hook.url is not None and not hook.url.startswith(("http://", "https://")):
            errors.append(sot.error("Hook", hook.name, ("url",), f"{hook.url!r} is not an http(s) URL"))
    return errors


def _check_profiles(sot: SoT) -> list[SoTError]:
    errors = []
    for profile in sot.profiles.values():
        assets: list[tuple[tuple[str | int, ...], Any]] = [(("kernel",), profile.kernel)]
        assets += [(("initrd", i), a) for i, a in enumerate(profile.initrd)]
        if profile.image is not None:
            assets.append((("image",), profile.image))
        for path, asset in assets:
            if asset.path is not None and not asset.path.startswith("/"):
                errors += _check_repo_file(sot, "Profile", profile.name, (*path, "path"), asset.path)
        if profile.config is not None and profile.config.template is not None:
            errors += _check_repo_file(sot, "Profile", profile.name, ("config", "template"), profile.config.template)
        errors += _check_image(sot, profile)
    return errors


# What a file name says about its bytes, against what the image says: a mismatch writes garbage.
_SUFFIX_COMPRESSION = {".gz": "gzip", ".xz": "xz"}
_IMAGE_URL = re.compile(r"https?://[A-Za-z0-9._~:/?=&%@+!*-]{1,2040}")  # what the deploy ramdisk accepts
_NOT_RAW = (".qcow2", ".qcow", ".vmdk", ".vdi", ".vhd", ".vhdx", ".zst", ".bz2")


def _check_image(sot: SoT, profile: Profile) -> list[SoTError]:
    """An image profile boots the deploy ramdisk (its kernel and initrd) which writes `image` to `disk`."""
    image = profile.image
    if image is None:
        if profile.disk is not None:
            return [sot.error("Profile", profile.name, ("disk",), "disk only applies to a profile with an image: add image or remove disk")]
        return []
    errors = []
    if not profile.initrd:
        errors.append(
            sot.error(
                "Profile",
                profile.name,
                ("initrd",),
                "an image profile boots the deploy ramdisk: give its initrd (built by `vaquero image ramdisk`) and its kernel",
            )
        )
    if image.url is not None and image.url.startswith(("http://", "https://")) and not _IMAGE_URL.fullmatch(image.url):
        # The deploy ramdisk gets this URL in its instructions: URL-safe characters only, nothing a shell
        # or a key='value' line could read (quotes, '$', backquote, ';', '|', '<', '>', spaces, '#').
        errors.append(
            sot.error(
                "Profile",
                profile.name,
                ("image", "url"),
                f"{image.url[:200]!r} holds characters an image URL may not (quote, $, ;, |, <, >, #, backquote, space...)",
            )
        )
    name = PurePosixPath(urlsplit(image.url).path if image.url is not None else image.path or "").name.lower()
    for suffix in _NOT_RAW:
        if name.endswith(suffix):
            field = "url" if image.url else "path"
            why = f"{name!r} is not a raw image ({suffix}): convert to raw, compressed with gzip or xz if wanted"
            errors.append(sot.error("Profile", profile.name, ("image", field), why))
    said = next((c for sfx, c in _SUFFIX_COMPRESSION.items() if name.endswith(sfx)), None)
    if said is not None and said != image.compression:
        errors.append(
            sot.error(
                "Profile",
                profile.name,
                ("image", "compression"),
                f"compression is {image.compression} but the file name {name!r} says {said}: the ramdisk would write the wrong bytes",
            )
        )
    return errors


def _check_policy(sot: SoT, cluster: Cluster) -> list[SoTError]:
    errors = []
    policy: Policy = cluster.policy
    size = len(cluster.hosts)
    names = {h.name for h in cluster.hosts}
    need = resolve_count(policy.min_available, size)
    if size and need >= size:
        errors.append(
            sot.error(
                "Cluster",
                cluster.name,
                ("policy", "min_available"),
                f"min_available {policy.min_available} keeps all {size} host(s) up: no host could ever be rebooted",
            )
        )
    for i, first in enumerate(policy.first):
        if first not in names:
            errors.append(sot.error("Cluster", cluster.name, ("policy", "first", i), f"unknown host {first!r} in this cluster"))
    roles = {r for h in cluster.hosts for r in h.roles}
    for i, stage in enumerate(policy.stages):
        for j, role in enumerate(stage.roles):
            if role not in roles:
                errors.append(sot.error("Cluster", cluster.name, ("policy", "stages", i, "roles", j), f"no host in this cluster has role {role!r}"))
    return errors


def _check_hook_refs(sot: SoT, cluster: Cluster, base: tuple[str | int, ...], hooks: Mapping[Any, list[str]]) -> list[SoTError]:
    errors = []
    for phase in PHASES:
        for i, name in enumerate(hooks.get(phase, [])):
            if _missing(sot, "Hook", name, sot.hooks):
                errors.append(sot.error("Cluster", cluster.name, (*base, "hooks", phase, i), f"unknown hook {name!r}"))
    return errors


def _check_clusters(sot: SoT) -> list[SoTError]:
    errors = []
    for cluster in sot.clusters.values():
        if _missing(sot, "Site", cluster.site, sot.sites):
            errors.append(sot.error("Cluster", cluster.name, ("site",), f"unknown site {cluster.site!r}"))
        if _missing(sot, "Profile", cluster.profile, sot.profiles):
            errors.append(sot.error("Cluster", cluster.name, ("profile",), f"unknown profile {cluster.profile!r}"))
        for i, dep in enumerate(cluster.depends_on):
            if dep == cluster.name:
                errors.append(sot.error("Cluster", cluster.name, ("depends_on", i), "a cluster cannot depend on itself"))
            elif _missing(sot, "Cluster", dep, sot.clusters):
                errors.append(sot.error("Cluster", cluster.name, ("depends_on", i), f"unknown cluster {dep!r}"))
        errors += _check_hook_refs(sot, cluster, (), cluster.hooks)
        errors += _check_policy(sot, cluster)
        errors += _check_in_place(sot, cluster)
    return errors


def _check_in_place(sot: SoT, cluster: Cluster) -> list[SoTError]:
    """Packages a reboot upgrade must install need a way in: without upgrade.ssh they would be skipped."""
    if cluster.upgrade.strategy != "reboot" or cluster.upgrade.ssh is not None:
        return []
    names = {cluster.profile, *(h.profile for h in cluster.hosts if h.profile is not None)}
    with_packages = sorted(n for n in names if (p := sot.profiles.get(n)) is not None and p.packages)
    if not with_packages:
        return []
    why = f"profile {with_packages[0]} lists packages, which upgrade.strategy reboot installs over SSH: give upgrade.ssh (user, key)"
    return [sot.error("Cluster", cluster.name, ("upgrade",), why)]


def _dupes(sot: SoT, what: str, items: Iterable[tuple[Any, Cluster, tuple[str | int, ...]]]) -> list[SoTError]:
    errors = []
    first: dict[Any, tuple[Cluster, tuple[str | int, ...]]] = {}
    for key, cluster, path in items:
        if key in first:
            other, other_path = first[key]
            merged = sot.host_origins.get((other.name, int(other_path[1])))
            where = f"cluster {other.name}, hosts[{other_path[1]}]" if merged is None else f"{merged.file}, cluster {other.name}"
            errors.append(sot.error("Cluster", cluster.name, path, f"duplicate {what} {key} (also used by {where})"))
        else:
            first[key] = (cluster, path)
    return errors


def _check_hosts(sot: SoT) -> list[SoTError]:
    errors: list[SoTError] = []
    names, macs, uuids, ips = [], [], [], []
    for cluster, i, host in sot.hosts():
        at: tuple[str | int, ...] = ("hosts", i)
        names.append((host.name, cluster, (*at, "name")))
        macs += [(m, cluster, (*at, "macs", j)) for j, m in enumerate(host.macs)]
        if host.uuid:
            uuids.append((host.uuid, cluster, (*at, "uuid")))
        ips += [(ip, cluster, (*at, "ips", net)) for net, ip in host.ips.items()]
        errors += _check_host(sot, cluster, at, host)
    errors += _dupes(sot, "host name", names)
    errors += _dupes(sot, "MAC", macs)
    errors += _dupes(sot, "UUID", uuids)
    errors += _dupes(sot, "IP", ips)
    return errors


def _check_host(sot: SoT, cluster: Cluster, at: tuple[str | int, ...], host: Host) -> list[SoTError]:
    errors = []
    site = sot.sites.get(cluster.site)
    if host.profile is not None and _missing(sot, "Profile", host.profile, sot.profiles):
        errors.append(sot.error("Cluster", cluster.name, (*at, "profile"), f"unknown profile {host.profile!r}"))
    errors += _check_hook_refs(sot, cluster, at, host.hooks)
    if site is None:
        return errors
    if host.bmc is not None and host.bmc.credential not in site.credentials:
        errors.append(sot.error("Cluster", cluster.name, (*at, "bmc", "credential"), f"unknown credential {host.bmc.credential!r} in site {site.name}"))
    nets = {n.name: n for n in site.networks}
    for net_name, ip in host.ips.items():
        path = (*at, "ips", net_name)
        net = nets.get(net_name)
        if net is None:
            errors.append(sot.error("Cluster", cluster.name, path, f"unknown network {net_name!r} in site {site.name}"))
            continue
        errors += _check_ip(sot, cluster, path, ip, net)
    errors += _check_boot(sot, cluster, at, host, site)
    return errors


def _check_boot(sot: SoT, cluster: Cluster, at: tuple[str | int, ...], host: Host, site: Site) -> list[SoTError]:
    """virtual_media and http are set through a Redfish BMC; virtual_media boots with no DHCP, so it needs a static address."""
    method = boot_method(site, host)
    if method == "pxe":
        return []
    path = (*at, "boot") if host.boot is not None else (*at, "bmc")
    if host.bmc is None or host.bmc.type != "redfish":
        return [sot.error("Cluster", cluster.name, path, f"boot method {method} is set through a Redfish BMC: host {host.name} has none")]
    if method == "http" and host.firmware != "uefi":
        return [sot.error("Cluster", cluster.name, (*at, "firmware"), "boot method http (UEFI HTTP boot) needs firmware: uefi")]
    if method == "virtual_media" and primary_network(site, host).name not in host.ips:
        return [sot.error("Cluster", cluster.name, (*at, "ips"), f"virtual_media boots without DHCP: host {host.name} needs a static address in ips")]
    return []


def _check_ip(sot: SoT, cluster: Cluster, path: tuple[str | int, ...], ip: IPv4Address, net: Any) -> list[SoTError]:
    if ip not in net.subnet:
        return [sot.error("Cluster", cluster.name, path, f"{ip} is outside subnet {net.subnet} of network {net.name}")]
    if net.subnet.prefixlen < 31 and ip in (net.subnet.network_address, net.subnet.broadcast_address):
        return [sot.error("Cluster", cluster.name, path, f"{ip} is the network or broadcast address of {net.subnet}")]
    if net.gateway is not None and ip == net.gateway:
        return [sot.error("Cluster", cluster.name, path, f"{ip} is the gateway of network {net.name}")]
    rng = net.dhcp.range
    if rng is not None and rng[0] <= ip <= rng[1]:
        return [sot.error("Cluster", cluster.name, path, f"{ip} is inside the dynamic DHCP range {rng[0]}-{rng[1]} of network {net.name}")]
    return []


def _check_cycles(sot: SoT) -> list[SoTError]:
    """Report each dependency cycle once, at the cluster where the walk closes it."""
    errors = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    reported: set[frozenset[str]] = set()

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        stack.append(name)
        for i, dep in enumerate(sot.clusters[name].depends_on):
            if dep not in sot.clusters or dep == name:
                continue
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    errors.append(sot.error("Cluster", name, ("depends_on", i), "dependency cycle: " + " -> ".join(cycle)))
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[name] = 2

    for name in sorted(sot.clusters):
        if name not in state:
            visit(name, [])
    return errors


def _check_templates(sot: SoT) -> list[SoTError]:
    """Render each profile's templates for every host that uses it, as the agent will."""
    errors: list[SoTError] = []
    env = environment()
    compiled: dict[str, tuple[jinja2.Template | None, jinja2.Template | None]] = {}
    failed: set[tuple[str, str]] = set()  # one error per profile and template, not one per host
    networks: dict[int, dict[str, Any]] = {}
    for profile in sot.profiles.values():
        if profile.phone_home and profile.image is None and profile.config is None:
            errors.append(
                sot.error("Profile", profile.name, ("phone_home",), "phone_home is true but the profile has no config to tell the OS urls.phone_home")
            )
        try:
            cmdline = env.from_string(profile.cmdline) if profile.cmdline else None
        except jinja2.TemplateSyntaxError as exc:
            errors.append(sot.error("Profile", profile.name, ("cmdline",), f"template syntax error: {exc.message}"))
            continue
        try:
            source = config_source(sot.root, profile)
            config = env.from_string(source) if source is not None else None
        except OSError:
            config = None  # already reported as a missing file
        except jinja2.TemplateSyntaxError as exc:
            if profile.config and profile.config.template is not None:
                # The mistake is in the template file: point there, at its line.
                errors.append(SoTError(profile.config.template, exc.lineno or 1, ("config", "template"), f"template syntax error: {exc.message}"))
                continue
            errors.append(sot.error("Profile", profile.name, ("config", "inline"), f"template syntax error (line {exc.lineno}): {exc.message}"))
            continue
        compiled[profile.name] = (cmdline, config)
    for cluster, _, host in sot.hosts():
        site = sot.sites.get(cluster.site)
        used = sot.profile_of(cluster, host)
        if site is None or used is None or used.name not in compiled:
            continue
        profile = used
        cmdline, config = compiled[profile.name]
        ctx = host_context(site, cluster, host, profile, sha=sot.sha, networks=networks)
        for field, template in (("cmdline", cmdline), ("config", config)):
            if template is None or (profile.name, field) in failed:
                continue
            try:
                out = template.render(ctx)
            except jinja2.TemplateError as exc:
                failed.add((profile.name, field))
                errors.append(sot.error("Profile", profile.name, (field,), f"template does not render for host {host.name} (cluster {cluster.name}): {exc}"))
                continue
            if field == "cmdline" and (why := cmdline_error(normalize_cmdline(out))) is not None:
                # Checked on the rendered text: a host var or a network value lands in it too.
                failed.add((profile.name, field))
                errors.append(sot.error("Profile", profile.name, ("cmdline",), f"for host {host.name} (cluster {cluster.name}): {why}"))
                continue
            if field == "config" and profile.config is not None and profile.config.format == "cloud-init" and (why := cloud_config_error(out)):
                failed.add((profile.name, field))
                errors.append(sot.error("Profile", profile.name, ("config",), f"for host {host.name} (cluster {cluster.name}): {why}"))
                continue
            if field == "config" and profile.config is not None and profile.config.format == "ignition":
                try:
                    json.loads(out)
                except ValueError as exc:
                    failed.add((profile.name, field))
                    errors.append(sot.error("Profile", profile.name, ("config",), f"Ignition config for host {host.name} is not JSON: {exc}"))
                    continue
            if field == "config" and profile.config is not None and profile.config.format == "preseed" and (why := preseed_error(out)):
                failed.add((profile.name, field))
                errors.append(sot.error("Profile", profile.name, ("config",), f"for host {host.name} (cluster {cluster.name}): {why}"))
                continue
            if field == "config" and profile.phone_home and profile.image is None and PHONE_HOME_PLACEHOLDER not in out:
                # The install would wait for a report nothing was told where to send.
                failed.add((profile.name, field))
                errors.append(
                    sot.error("Profile", profile.name, ("phone_home",), f"phone_home is true but the config for host {host.name} never uses urls.phone_home")
                )
    return errors
