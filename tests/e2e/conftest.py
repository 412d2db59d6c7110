"""End-to-end netboot tests: network namespaces, dnsmasq, the agent, QEMU (TCG).

They need root and the Debian packages scripts/setup.sh installs. A missing prerequisite is a
failure, not a skip: CI runs as root after setup.sh, so a skip would hide a broken set-up.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from vaquero.lab.harness import Lab, lab_assets
from vaquero.lab.qemu import OVMF

TOOLS = ("ip", "dnsmasq", "kea-dhcp4", "qemu-system-x86_64", "busybox", "cpio", "depmod", "apt-get", "dpkg", "curl")


def _missing() -> list[str]:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not any(Path(p).is_file() for p in OVMF):
        missing.append("OVMF (package ovmf)")
    if not Path("/usr/lib/ipxe/ipxe.efi").exists():
        missing.append("/usr/lib/ipxe/ipxe.efi (package ipxe)")
    if not Path("/dev/net/tun").exists():
        missing.append("/dev/net/tun")
    return missing


@pytest.fixture(scope="session")
def e2e_ready() -> tuple[Path, Path]:
    if os.geteuid() != 0:
        pytest.fail("e2e tests need root (network namespaces, taps, DHCP ports); run them as root after scripts/setup.sh")
    missing = _missing()
    if missing:
        pytest.fail(f"e2e prerequisites missing: {', '.join(missing)} (run scripts/setup.sh)")
    return lab_assets()


@pytest.fixture
def lab(e2e_ready: tuple[Path, Path], tmp_path: Path):
    with Lab(tmp_path / "lab") as lab:
        yield lab
