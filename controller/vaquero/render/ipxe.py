"""iPXE scripts: the chain script every iPXE client gets from DHCP, one script per host, and
the script for unknown MACs (which never installs anything).

A host's script follows its boot state: `install` (kernel + initrds + cmdline carrying the
callback and config URLs) or `localboot` (boot the local disk). The callback moves a host to
`localboot`, so a host never loops back into its installer.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import jinja2

from vaquero.sot.models import Asset, Profile, cmdline_error, normalize_cmdline
from vaquero.sot.templates import BootUrls, environment

from .deploy import deploy_url
from .site import RenderError, asset_name, safe

BootMode = Literal["install", "localboot"]
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def mac_key(mac: str) -> str:
    """52:54:00:AA:bb:01 or 52-54-00-aa-bb-01 -> 52-54-00-aa-bb-01 (iPXE's ${mac:hexhyp})."""
    norm = mac.strip().lower().replace("-", ":")
    if not _MAC.match(norm):
        raise RenderError(f"{mac!r} is not a MAC address")
    return norm.replace(":", "-")


def chain_script(http_base: str) -> str:
    """What DHCP hands iPXE: fetch this host's own script, keyed by the MAC that booted."""
    base = safe(http_base.rstrip("/"), "url", "agent base URL")
    return f"#!ipxe\nchain --autofree {base}/v1/boot/ipxe/${{netX/mac:hexhyp}} || chain --autofree {base}/v1/boot/ipxe/${{mac:hexhyp}}\n"


def render_cmdline(profile: Profile, context: dict[str, Any], *, host: str | None = None) -> str:
    """The rendered kernel command line, refused unless every token follows the grammar of
    vaquero.sot.models.cmdline_error (what iPXE and Linux read as plain key=value)."""
    where = f"host {host}: profile {profile.name}: cmdline" if host else f"profile {profile.name}: cmdline"
    if not profile.cmdline:
        return ""
    try:
        text = environment().from_string(profile.cmdline).render(context)
    except jinja2.TemplateError as exc:
        raise RenderError(f"{where}: template: {exc}") from exc
    text = normalize_cmdline(text)
    why = cmdline_error(text)
    if why is not None:
        raise RenderError(f"{where}: {why}")
    return text


def _script(lines: list[str], host: str) -> str:
    # Each line was built from checked tokens; this only proves that none became two lines.
    for line in lines:
        if any(ch in line for ch in "\n\r\0\x0b\x0c\x85\u2028\u2029"):
            raise RenderError(f"host {host}: iPXE script line {line!r} holds a line break: refused")
    return "\n".join(lines) + "\n"


def install_script(host: str, firmware: str, profile: Profile, context: dict[str, Any], urls: BootUrls) -> str:
    name = safe(host, "name", f"host {host!r}: name")
    where = f"host {name}: profile {profile.name}"
    assets = safe(urls.assets().rstrip("/"), "url", f"{where}: asset URL")
    prof = safe(profile.name, "name", f"{where}: name")
    # `echo` expands ${...} like any iPXE command; the version rule has no '$' (nor space).
    version = safe(profile.version, "version", f"{where}: version")
    cmdline = render_cmdline(profile, context, host=name)
    if profile.image is not None:
        # An image profile boots the deploy ramdisk: it finds its instructions (and the host's
        # install token) here. Checked as one cmdline again: the profile's own tokens plus these.
        cmdline = f"{cmdline} vaquero.host={name} vaquero.deploy={deploy_url(urls, name)}".strip()
        why = cmdline_error(cmdline)
        if why is not None:
            raise RenderError(f"{where}: cmdline with the deploy URL: {why}")

    def file(a: Asset, field: str) -> str:
        return safe(asset_name(a), "file", f"{where}: {field}")

    kernel = file(profile.kernel, "kernel")
    initrds = [file(a, f"initrd[{i}]") for i, a in enumerate(profile.initrd)]
    # initrd=<name> lets an EFI-stub kernel find its initrds in iPXE's image list; a BIOS boot ignores it.
    initrd_args = "".join(f" initrd={n}" for n in initrds)
    lines = [
        "#!ipxe",
        f"echo Vaquero: installing {name} with {prof} {version}",
        f"kernel --name {kernel} {assets}/{prof}/{kernel}{initrd_args} {cmdline}".rstrip(),
    ]
    for n in initrds:
        lines.append(f"initrd --name {n} {assets}/{prof}/{n}")
    lines.append("boot")
    return _script(lines, name)


def localboot_script(host: str, firmware: str) -> str:
    host = safe(host, "name", f"host {host!r}: name")
    lines = ["#!ipxe", f"echo Vaquero: {host} is installed, booting from local disk"]
    if firmware == "bios":
        lines.append("sanboot --no-describe --drive 0x80 || exit")
    else:
        lines.append("exit")
    return _script(lines, host)


def unknown_script() -> str:
    return "#!ipxe\necho Vaquero: unknown MAC ${netX/mac}, nothing to install here\nexit\n"


# Stands for the MAC of the machine that asks; the agent puts in the MAC of the request's path
# (checked by mac_key, so hex digits and hyphens only) when it serves the inspection script.
MAC_PLACEHOLDER = "VAQUERO_MAC_PLACEHOLDER"


def inspect_url(base: str, mac: str) -> str:
    return f"{base}/v1/inspect/{mac}"


def inspect_script(ramdisk: Profile, urls: BootUrls) -> str:
    """Discovery: the script an unknown MAC gets when its site enrolls unknown machines. It boots the
    deploy ramdisk (an image profile's kernel and initrd) in inspection mode, which reports the machine
    to the agent and powers off; it installs nothing. The MAC is MAC_PLACEHOLDER."""
    where = f"discovery: profile {ramdisk.name}"
    assets = safe(urls.assets().rstrip("/"), "url", f"{where}: asset URL")
    prof = safe(ramdisk.name, "name", f"{where}: name")
    try:
        # The profile's own words (a console, say) when they need no host to render.
        own = render_cmdline(ramdisk, {})
    except RenderError:
        own = ""
    cmdline = f"{own} vaquero.inspect={inspect_url(urls.base, MAC_PLACEHOLDER)}".strip()
    why = cmdline_error(cmdline)
    if why is not None:
        raise RenderError(f"{where}: cmdline with the inspection URL: {why}")
    kernel = safe(asset_name(ramdisk.kernel), "file", f"{where}: kernel")
    initrds = [safe(asset_name(a), "file", f"{where}: initrd[{i}]") for i, a in enumerate(ramdisk.initrd)]
    initrd_args = "".join(f" initrd={n}" for n in initrds)
    lines = [
        "#!ipxe",
        "echo Vaquero: unknown MAC ${netX/mac}, booting the inspection ramdisk to report this machine for enrollment",
        f"kernel --name {kernel} {assets}/{prof}/{kernel}{initrd_args} {cmdline}",
        *(f"initrd --name {n} {assets}/{prof}/{n}" for n in initrds),
        "boot",
    ]
    return _script(lines, "(unknown)")


def host_script(mode: BootMode, host: str, firmware: str, profile: Profile | None, context: dict[str, Any] | None, urls: BootUrls) -> str:
    if mode == "localboot":
        return localboot_script(host, firmware)
    if mode == "install":
        if profile is None or context is None:
            raise RenderError(f"host {host} has no profile: cannot render an install script")
        return install_script(host, firmware, profile, context, urls)
    raise RenderError(f"unknown boot mode {mode!r} (install or localboot)")
