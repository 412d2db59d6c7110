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

from vaquero.sot.models import Profile
from vaquero.sot.templates import BootUrls, environment

from .site import RenderError, asset_name, asset_relpath

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
    base = http_base.rstrip("/")
    return f"#!ipxe\nchain --autofree {base}/v1/boot/ipxe/${{netX/mac:hexhyp}} || chain --autofree {base}/v1/boot/ipxe/${{mac:hexhyp}}\n"


def _safe(text: str) -> str:
    # One iPXE line: no newlines, no command separators smuggled in from a template.
    if "\n" in text or "\r" in text:
        raise RenderError("kernel command line must be one line")
    return text


def render_cmdline(profile: Profile, context: dict[str, Any]) -> str:
    if not profile.cmdline:
        return ""
    try:
        text = environment().from_string(profile.cmdline).render(context)
    except jinja2.TemplateError as exc:
        raise RenderError(f"profile {profile.name}: cmdline template: {exc}") from exc
    return " ".join(text.split())


def install_script(host: str, firmware: str, profile: Profile, context: dict[str, Any], urls: BootUrls) -> str:
    assets = urls.assets().rstrip("/")
    cmdline = _safe(render_cmdline(profile, context))
    # initrd=<name> lets an EFI-stub kernel find its initrds in iPXE's image list; a BIOS boot ignores it.
    initrd_args = "".join(f" initrd={asset_name(a)}" for a in profile.initrd)
    lines = [
        "#!ipxe",
        f"echo Vaquero: installing {host} with {profile.name} {profile.version}",
        f"kernel --name {asset_name(profile.kernel)} {assets}/{asset_relpath(profile, profile.kernel)}{initrd_args} {cmdline}".rstrip(),
    ]
    for a in profile.initrd:
        lines.append(f"initrd --name {asset_name(a)} {assets}/{asset_relpath(profile, a)}")
    lines.append("boot")
    return "\n".join(lines) + "\n"


def localboot_script(host: str, firmware: str) -> str:
    lines = ["#!ipxe", f"echo Vaquero: {host} is installed, booting from local disk"]
    if firmware == "bios":
        lines.append("sanboot --no-describe --drive 0x80 || exit")
    else:
        lines.append("exit")
    return "\n".join(lines) + "\n"


def unknown_script() -> str:
    return "#!ipxe\necho Vaquero: unknown MAC ${netX/mac}, nothing to install here\nexit\n"


def host_script(mode: BootMode, host: str, firmware: str, profile: Profile | None, context: dict[str, Any] | None, urls: BootUrls) -> str:
    if mode == "localboot":
        return localboot_script(host, firmware)
    if mode == "install":
        if profile is None or context is None:
            raise RenderError(f"host {host} has no profile: cannot render an install script")
        return install_script(host, firmware, profile, context, urls)
    raise RenderError(f"unknown boot mode {mode!r} (install or localboot)")
