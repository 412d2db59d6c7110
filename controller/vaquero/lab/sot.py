"""A lab SoT ready to boot: a copy of a SoT whose lab profile points at freshly built assets."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from vaquero.render.assets import sha256_file


def prepare_sot(src: Path, dest: Path, profile: str, kernel: Path, initrd: Path) -> Path:
    """Copy the SoT folder `src` to `dest`, with `profile`'s kernel and initrd set to the given
    files and their real sha256 (the checked-in lab profile carries placeholder hashes)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".git"))
    found = False
    for path in sorted((dest / "profiles").rglob("*.y*ml")):
        docs = list(yaml.safe_load_all(path.read_text()))
        changed = False
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "Profile" and doc.get("name") == profile:
                doc["kernel"] = {"path": str(kernel), "sha256": sha256_file(kernel)}
                doc["initrd"] = [{"path": str(initrd), "sha256": sha256_file(initrd)}]
                changed = found = True
        if changed:
            path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    if not found:
        raise ValueError(f"no Profile {profile!r} in {src}/profiles")
    return dest


def prepare_image_profile(sot: Path, profile: str, kernel: Path, initrd: Path, image: Path, compression: str = "gzip") -> None:
    """Point the image profile `profile` of a SoT copy at a deploy ramdisk (`kernel`, `initrd`) and a
    disk image, with their real sha256 (the checked-in lab profile carries placeholders)."""
    for path in sorted((sot / "profiles").rglob("*.y*ml")):
        docs = list(yaml.safe_load_all(path.read_text()))
        hit = False
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "Profile" and doc.get("name") == profile:
                doc["kernel"] = {"path": str(kernel), "sha256": sha256_file(kernel)}
                doc["initrd"] = [{"path": str(initrd), "sha256": sha256_file(initrd)}]
                doc["image"] = {"path": str(image), "sha256": sha256_file(image), "compression": compression}
                hit = True
        if hit:
            path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
            return
    raise ValueError(f"no Profile {profile!r} in {sot}/profiles")


def edit_site(sot: Path, site: str, **network: Any) -> None:
    """Change keys of the first network of `site` (e.g. dhcp={'mode': 'proxy'}) in a SoT copy."""
    for path in sorted((sot / "sites").rglob("*.y*ml")):
        docs = list(yaml.safe_load_all(path.read_text()))
        hit = False
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "Site" and doc.get("name") == site:
                doc["networks"][0].update(network)
                hit = True
        if hit:
            path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
            return
    raise ValueError(f"no Site {site!r} in {sot}/sites")
