"""A lab SoT whose site enrolls unknown machines, and a good inspection report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
UNKNOWN = "52:54:00:00:30:01"
KNOWN = "52:54:00:00:10:01"  # node1 of the lab SoT


def discovery_sot(dest: Path, *, enabled: bool = True, ramdisk: bool = True) -> Path:
    """The lab SoT with `discovery` on its site. Its image profile lab-debian-12 boots the deploy
    ramdisk (vmlinuz, deploy-initrd.img); without `ramdisk` the SoT has no image profile."""
    shutil.copytree(REPO / "inventories" / "lab", dest)
    site_file = dest / "sites" / "lab.yaml"
    site = yaml.safe_load(site_file.read_text())
    site["discovery"] = {"enabled": enabled, "cluster": "lab"}
    site_file.write_text(yaml.safe_dump(site, sort_keys=False))
    if not ramdisk:
        (dest / "profiles" / "lab-debian-12.yaml").unlink()
    return dest


def report(mac: str = UNKNOWN, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "boot_mac": mac,
        "nics": [{"name": "ens3", "mac": mac}, {"name": "ens4", "mac": "52:54:00:00:30:99"}],
        "uuid": "8f1c2b9e-3d4a-4e5f-9a0b-1c2d3e4f5a6b",
        "serial": "VQ-SERIAL-1",
        "vendor": "QEMU",
        "product": "Standard PC",
        "cpu_model": "QEMU Virtual CPU",
        "cpus": 2,
        "memory_mib": 384,
        "disks": [{"name": "vda", "size_bytes": 1 << 30, "serial": "vq-disk", "rotational": True, "removable": False}],
    }
    body.update(over)
    return body


def body(mac: str = UNKNOWN, **over: Any) -> bytes:
    return json.dumps(report(mac, **over)).encode()
