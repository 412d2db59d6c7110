"""What an image is made of: the recipes `vaquero image build NAME` knows.

A recipe is data only (no I/O), so the cache key over it is a pure function: change a package,
an mmdebstrap option, the partition layout or the builder's version and the key changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Bump when the builder changes what it writes into an image (files, layout, boot code), so
# images cached by an older builder are not handed out for a newer recipe.
BUILDER_VERSION = "4"

MIB = 1024 * 1024


@dataclass(frozen=True)
class Layout:
    """The GPT layout: BIOS boot, ESP, then the root file system LAST, so growpart can grow it."""

    bios_boot_mib: int = 1
    esp_mib: int = 64
    # The root file system gets the tree's size plus this much (and a fraction, see build.root_size).
    root_headroom_mib: int = 256
    root_label: str = "vaquero-root"
    esp_label: str = "VQ-ESP"
    sector: int = 512


@dataclass(frozen=True)
class Recipe:
    name: str
    suite: str
    variant: str
    packages: tuple[str, ...]
    # dpkg path filters (what minbase would install but a server image does not need)
    dpkg_options: tuple[str, ...] = ()
    # systemd units enabled in the image besides what the packages enable
    enable: tuple[str, ...] = ()
    kernel_cmdline: str = ""
    layout: Layout = field(default_factory=Layout)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["builder_version"] = BUILDER_VERSION
        return data


DEBIAN_12 = Recipe(
    name="debian-12",
    suite="bookworm",
    variant="minbase",
    packages=(
        "systemd-sysv",
        "udev",
        # the cloud flavour: small, virtio and NVMe built in; boots under SeaBIOS and OVMF
        "linux-image-cloud-amd64",
        "initramfs-tools",
        "cloud-init",
        "cloud-guest-utils",
        "openssh-server",
        # cloud-init 22.4 on Debian renders NoCloud network config for ifupdown first ("eni"),
        # and depends on isc-dhcp-client anyway
        "ifupdown",
        "isc-dhcp-client",
        "python3",
        # Ansible's apt and package_facts modules (the in-place upgrade over SSH) need python3-apt
        "python3-apt",
        "sudo",
        # hostnamectl (cloud-init's set-hostname on systemd) talks to systemd-hostnamed over D-Bus
        "dbus",
    ),
    dpkg_options=(
        "path-exclude=/usr/share/man/*",
        "path-exclude=/usr/share/info/*",
        "path-exclude=/usr/share/doc/*",
        "path-include=/usr/share/doc/*/copyright",
        "path-exclude=/usr/share/locale/*",
        "path-include=/usr/share/locale/locale.alias",
        "path-exclude=/usr/share/lintian/*",
    ),
    enable=("vaquero-booted.service",),
    kernel_cmdline="ro console=tty0 console=ttyS0,115200n8",
)

RECIPES: dict[str, Recipe] = {DEBIAN_12.name: DEBIAN_12}
