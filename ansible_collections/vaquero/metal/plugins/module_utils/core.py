# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one door from the collection into the vaquero package, and the one module prologue.

Every plugin takes vaquero's names from here, so the collection depends on a single list of
imports (and a move inside vaquero is a change of one line here). ``vaquero_module`` builds the
AnsibleModule and fails it with missing_required_lib when vaquero cannot be imported.
"""

from __future__ import annotations

import re
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from vaquero.bmc import BmcError, BmcUnsupported, Endpoint, GuardPolicy, Secret, open_bmc
    from vaquero.bmc.actions import ensure_boot, ensure_power
    from vaquero.bmc.virtual_media import VirtualMedia, VirtualMediaError, mask_url
    from vaquero.render import AssetError, RenderError, asset_relpath, ensure_asset, mac_key, render_dhcp, render_site, site_hosts, unknown_script, write_file
    from vaquero.render.dhcp import render_dnsmasq, render_dnsmasq_hosts
    from vaquero.render.dhcp_check import DhcpConfigError, DhcpDaemonMissing, check_dhcp_config
    from vaquero.render.site import profile_assets
    from vaquero.sot import SoTError, SoTInvalid, load
    from vaquero.sot.templates import primary_network

    from vaquero.callback import (
        AGENT_TOKEN_ENV,
        AgentRefused,
        CallbackError,
        agent_url,
        arm_wipe,
        boot_iso_url,
        boot_status,
        installed,
        read_status,
        set_boot_mode,
        status_url,
        wait_for_callback,
    )
    from vaquero.hooks import HookError, run_hook
    from vaquero.hostkeys import HostKeyError, host_keys, known_hosts
    from vaquero.secretref import SecretMissing, resolve_secret

    HAS_VAQUERO = True
    VAQUERO_IMPORT_ERROR = None
except ImportError:
    HAS_VAQUERO = False
    VAQUERO_IMPORT_ERROR = traceback.format_exc()

    # Stand-ins so the plugins import (and their except clauses resolve) without vaquero; no code
    # path reaches them, since vaquero_module fails first.
    class BmcError(Exception):
        pass

    class BmcUnsupported(BmcError):
        pass

    class VirtualMediaError(BmcError):
        pass

    class RenderError(Exception):
        pass

    class AssetError(Exception):
        pass

    class DhcpConfigError(Exception):
        pass

    class DhcpDaemonMissing(DhcpConfigError):
        pass

    class SoTError(Exception):
        pass

    class SoTInvalid(SoTError):
        pass

    class CallbackError(Exception):
        pass

    class AgentRefused(CallbackError):
        code = 0

    class HookError(Exception):
        pass

    class HostKeyError(ValueError):
        pass

    class SecretMissing(Exception):
        pass

    # Names the plugins import; unusable without vaquero, and never called then.
    Endpoint = None
    GuardPolicy = None
    Secret = None
    open_bmc = None
    ensure_boot = None
    ensure_power = None
    VirtualMedia = None
    mask_url = None
    asset_relpath = None
    ensure_asset = None
    mac_key = None
    render_dhcp = None
    render_site = None
    site_hosts = None
    unknown_script = None
    write_file = None
    render_dnsmasq = None
    render_dnsmasq_hosts = None
    check_dhcp_config = None
    profile_assets = None
    load = None
    primary_network = None
    AGENT_TOKEN_ENV = None
    agent_url = None
    arm_wipe = None
    boot_iso_url = None
    boot_status = None
    installed = None
    read_status = None
    set_boot_mode = None
    status_url = None
    wait_for_callback = None
    run_hook = None
    host_keys = None
    known_hosts = None
    resolve_secret = None


# The SoT's host name rule and an agent base URL, checked before either goes into a URL a module
# requests (the host name is a path segment; the base URL gets paths appended, never a query).
HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
AGENT_BASE_URL = re.compile(r"^https?://[A-Za-z0-9._:\[\]-]+(/[A-Za-z0-9._~/-]*)?$")

__all__ = [
    "AGENT_BASE_URL",
    "AGENT_TOKEN_ENV",
    "AgentRefused",
    "AssetError",
    "BmcError",
    "BmcUnsupported",
    "CallbackError",
    "DhcpConfigError",
    "DhcpDaemonMissing",
    "Endpoint",
    "GuardPolicy",
    "HAS_VAQUERO",
    "HOST_NAME",
    "HookError",
    "HostKeyError",
    "RenderError",
    "Secret",
    "SecretMissing",
    "SoTError",
    "SoTInvalid",
    "VAQUERO_IMPORT_ERROR",
    "VirtualMedia",
    "VirtualMediaError",
    "agent_url",
    "arm_wipe",
    "asset_relpath",
    "boot_iso_url",
    "boot_status",
    "check_dhcp_config",
    "ensure_asset",
    "ensure_boot",
    "ensure_power",
    "host_keys",
    "installed",
    "known_hosts",
    "load",
    "mac_key",
    "mask_url",
    "open_bmc",
    "primary_network",
    "read_status",
    "profile_assets",
    "render_dhcp",
    "render_dnsmasq",
    "render_dnsmasq_hosts",
    "render_site",
    "require_vaquero",
    "resolve_secret",
    "run_hook",
    "set_boot_mode",
    "site_hosts",
    "status_url",
    "unknown_script",
    "vaquero_module",
    "wait_for_callback",
    "write_file",
]


def require_vaquero(module):
    """Fail ``module`` when the vaquero package cannot be imported."""
    if not HAS_VAQUERO:
        module.fail_json(msg=missing_required_lib("vaquero"), exception=VAQUERO_IMPORT_ERROR)


def vaquero_module(argument_spec, supports_check_mode=True, **kwargs):
    """The module prologue: the AnsibleModule for ``argument_spec``, vaquero known to be importable."""
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=supports_check_mode, **kwargs)
    require_vaquero(module)
    return module
