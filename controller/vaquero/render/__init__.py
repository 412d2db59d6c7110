"""Renderers: DHCP configs (dnsmasq, Kea), iPXE scripts, cloud-init / Ignition, assets.

Pure functions of the SoT (plus atomic file writes); no Ansible, no network except asset
downloads. The agent serves their output; the collection modules write it to disk.
"""

from .assets import AssetError, AssetResult, ensure_asset, sha256_file
from .bundle import HostBoot, SiteBundle, render_site
from .config import meta_data, render_config
from .dhcp import BootServer, render_dhcp, render_dnsmasq, render_kea
from .files import WriteResult, write_file
from .ipxe import chain_script, host_script, install_script, localboot_script, mac_key, unknown_script
from .site import RenderError, SiteHost, asset_relpath, get_site, site_hosts

__all__ = [
    "AssetError",
    "AssetResult",
    "BootServer",
    "HostBoot",
    "RenderError",
    "SiteBundle",
    "SiteHost",
    "WriteResult",
    "asset_relpath",
    "chain_script",
    "ensure_asset",
    "get_site",
    "host_script",
    "install_script",
    "localboot_script",
    "mac_key",
    "meta_data",
    "render_config",
    "render_dhcp",
    "render_dnsmasq",
    "render_kea",
    "render_site",
    "sha256_file",
    "site_hosts",
    "unknown_script",
    "write_file",
]
