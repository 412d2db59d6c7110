"""`vaquero image build`: a bootable raw disk image from a recipe, cached by content hash.

The cache key is a sha256 over (see :func:`cache_key`):
- the recipe (packages, mmdebstrap variant and dpkg options, units, kernel command line, partition
  layout) and the builder's version (recipes.BUILDER_VERSION);
- the package universe: the SHA256 of every Packages index of the suite in the host's apt lists,
  as the signed InRelease files state them (the build installs from exactly those lists);
- the versions of the host tools that write bytes into the image (mmdebstrap, GRUB, e2fsprogs,
  dosfstools, mtools, gdisk).

Outputs, in <cache>/images/: NAME-KEY.raw (sparse), .raw.sha256, .raw.gz (+ .raw.gz.sha256) and
NAME-KEY.json (the manifest, written last: its presence means the rest is complete).
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import fat, grub, guest, rootfs
from .gpt import Partition, derived_uuid, plan
from .gpt import read as read_gpt
from .gpt import write as write_gpt
from .recipes import MIB, RECIPES, Layout, Recipe
from .tools import ImageError, run

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path(os.environ.get("VAQUERO_LAB_CACHE", "/var/cache/vaquero-lab"))
TOOL_PACKAGES = ("mmdebstrap", "grub-common", "grub-pc-bin", "grub-efi-amd64-bin", "e2fsprogs", "dosfstools", "mtools", "gdisk")
SECTOR = 512
BLOCK = 4096
CHUNK = 4 * MIB


@dataclass(frozen=True)
class Built:
    key: str
    raw: Path
    manifest: Path
    cached: bool
    info: dict[str, Any]

    @property
    def compressed(self) -> Path:
        return self.raw.with_name(self.raw.name + ".gz")


def cache_key(recipe: Recipe, indexes: Sequence[Mapping[str, str]], tools: Mapping[str, str]) -> str:
    """sha256 over the canonical JSON of the recipe, the package indexes and the tool versions."""
    document = {
        "recipe": recipe.to_dict(),
        "indexes": sorted((dict(i) for i in indexes), key=lambda i: json.dumps(i, sort_keys=True)),
        "tools": dict(sorted(tools.items())),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def tool_versions() -> dict[str, str]:
    out = run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n", *TOOL_PACKAGES], timeout=30)
    versions = {}
    for line in out.splitlines():
        name, version, status = line.split("\t")
        if status.startswith("ii"):
            versions[name] = version
    missing = sorted(set(TOOL_PACKAGES) - set(versions))
    if missing:
        raise ImageError(f"Debian packages needed to build images are not installed: {', '.join(missing)}")
    return versions


def recipe_named(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ImageError(f"no image recipe {name!r} (known: {', '.join(sorted(RECIPES))})") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _paths(images: Path, name: str, key: str) -> tuple[Path, Path]:
    return images / f"{name}-{key}.raw", images / f"{name}-{key}.json"


def _cached(raw: Path, manifest: Path, key: str) -> Built | None:
    if not (manifest.is_file() and raw.is_file()):
        return None
    info = json.loads(manifest.read_text())
    if info.get("key") != key or info.get("size") != raw.stat().st_size:
        raise ImageError(f"{manifest} does not describe {raw} (key or size differ): remove both to rebuild")
    return Built(key, raw, manifest, True, info)


def build(name: str, cache: Path = DEFAULT_CACHE, out: Path | None = None, progress: Callable[[str], None] = log.info) -> Built:
    """The image of recipe `name`: from the cache when its key is there, else built (under a lock)."""
    recipe = recipe_named(name)
    indexes = rootfs.apt_indexes(recipe.suite)
    tools = tool_versions()
    key = cache_key(recipe, [i.to_dict() for i in indexes], tools)
    images = cache / "images"
    images.mkdir(parents=True, exist_ok=True)
    raw, manifest = _paths(images, name, key)
    found = _cached(raw, manifest, key)
    if found is None:
        with open(images / f".{name}-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another builder of this key: wait for its result
            found = _cached(raw, manifest, key)
            if found is None:
                found = _build(recipe, key, indexes, tools, cache, raw, manifest, progress)
    if out is not None:
        _export(found, out)
    return found


def _export(built: Built, out: Path) -> None:
    """Hard-link (or sparse-copy) the image and its companions into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for src in (
        built.raw,
        built.raw.with_name(built.raw.name + ".sha256"),
        built.compressed,
        built.compressed.with_name(built.compressed.name + ".sha256"),
        built.manifest,
    ):
        dst = out / src.name
        if dst.exists():
            dst.unlink()
        try:
            os.link(src, dst)
        except OSError:
            run(["cp", "--sparse=always", "--", src, dst], timeout=600)


def _root_size(tree_bytes: int, inodes: int, headroom_mib: int) -> int:
    """The root file system's size: the tree (one block per inode rounded up), a fifth for ext4's
    own metadata and journal, plus the recipe's headroom; whole MiB."""
    need = tree_bytes + inodes * BLOCK
    size = need + need // 5 + headroom_mib * MIB
    return -(-size // MIB) * MIB


def _measure(root: Path) -> tuple[int, int]:
    total, inodes = 0, 0
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            st = os.lstat(os.path.join(dirpath, name))
            inodes += 1
            total += -(-st.st_size // BLOCK) * BLOCK
    return total, inodes


def _build(
    recipe: Recipe, key: str, indexes: list[rootfs.Index], tools: dict[str, str], cache: Path, raw: Path, manifest: Path, progress: Callable[[str], None]
) -> Built:
    started = time.monotonic()
    layout = recipe.layout
    epoch = max(i.date for i in indexes)  # SOURCE_DATE_EPOCH: the newest index's date, part of the key
    work = cache / "images" / f".build-{recipe.name}-{key[:16]}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        root = work / "root"
        progress(f"installing {len(recipe.packages)} packages (and their dependencies) with mmdebstrap into {root}")
        rootfs.mmdebstrap(recipe, root, indexes, cache / "debs", epoch)
        rootfs.keep_debs(root, cache / "debs")
        kernel = rootfs.kernel_version(root)
        installed = rootfs.packages(root)
        guest.customize(root, recipe, {"name": recipe.name, "key": key})
        paths = rootfs.clamp_times(root, epoch)
        tree_bytes, inodes = _measure(root)
        root_bytes = _root_size(tree_bytes, inodes, layout.root_headroom_mib)
        parts, disk_bytes = plan(layout, root_bytes, key)
        bios, esp, rootp = parts
        image = work / raw.name
        with open(image, "wb") as f:
            f.truncate(disk_bytes)
        disk_guid = derived_uuid(key, "disk")
        write_gpt(image, parts, disk_guid)
        progress(f"root file system: {tree_bytes // MIB} MiB in {inodes} inodes -> ext4 of {root_bytes // MIB} MiB")
        root_uuid = derived_uuid(key, "root-fs")
        _mke2fs(image, rootp, root, layout.root_label, root_uuid, derived_uuid(key, "root-hash-seed"), epoch, paths)
        _esp(image, esp, work, layout, key, epoch)
        core = grub.mkimage("i386-pc", grub.BIOS_MODULES, work / "early.cfg", work / "core.img")
        core_sectors = grub.install_bios(image, core, bios.first_lba, bios.last_lba - bios.first_lba + 1)
        table = read_gpt(image)
        if table.disk_guid != disk_guid or table.partitions != parts:
            raise ImageError(f"{image}: the partition table read back differs from the plan: {table} vs {parts}")
        os.utime(image, (epoch, epoch))
        progress("hashing and compressing")
        digest = sha256_file(image)
        gz = work / (raw.name + ".gz")
        _gzip(image, gz)
        gz_digest = sha256_file(gz)
        info: dict[str, Any] = {
            "name": recipe.name,
            "key": key,
            "file": raw.name,
            "size": disk_bytes,
            "sha256": digest,
            "compressed": {"file": gz.name, "format": "gzip", "size": gz.stat().st_size, "sha256": gz_digest},
            "disk_guid": disk_guid,
            "partitions": [p.to_dict() for p in parts],
            "root": {"label": layout.root_label, "uuid": root_uuid, "tree_bytes": tree_bytes, "inodes": inodes},
            "bios_core_sectors": core_sectors,
            "kernel": kernel,
            "kernel_cmdline": f"root=LABEL={layout.root_label} {recipe.kernel_cmdline}",
            "source_date_epoch": epoch,
            "recipe": recipe.to_dict(),
            "indexes": [i.to_dict() for i in indexes],
            "tools": tools,
            "packages": installed,
            "build_seconds": round(time.monotonic() - started, 1),
        }
        (work / f"{raw.name}.sha256").write_text(f"{digest}  {raw.name}\n")
        (work / f"{gz.name}.sha256").write_text(f"{gz_digest}  {gz.name}\n")
        for produced in (image, gz, work / f"{raw.name}.sha256", work / f"{gz.name}.sha256"):
            produced.rename(raw.parent / produced.name)
        tmp_manifest = work / manifest.name
        tmp_manifest.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        tmp_manifest.rename(manifest)  # last: the manifest's presence marks a complete image
        progress(f"built {raw} ({disk_bytes // MIB} MiB, sha256 {digest[:16]}...) in {info['build_seconds']} s")
        return Built(key, raw, manifest, False, info)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _mke2fs(image: Path, part: Partition, tree: Path, label: str, fs_uuid: str, hash_seed: str, epoch: int, paths: list[str]) -> None:
    target = f"{image}?offset={part.offset}"
    env = {"E2FSPROGS_FAKE_TIME": str(epoch)}
    run(
        ["mke2fs", "-F", "-q", "-t", "ext4", "-b", str(BLOCK), "-L", label, "-U", fs_uuid,
         "-E", f"offset={part.offset},hash_seed={hash_seed},root_owner=0:0,nodiscard",
         "-d", tree, image, str(part.size // BLOCK)],
        timeout=900, env=env,
    )  # fmt: skip
    # mke2fs copies each file's ctime and (just updated) atime from the build tree: set both to the
    # epoch, so the inodes hold no trace of when the build ran.
    script = []
    for path in paths:
        if '"' in path or "\n" in path:
            raise ImageError(f"the root tree holds a path debugfs cannot be given safely: {path!r}")
        script.append(f'sif "{path}" atime @{epoch}\nsif "{path}" ctime @{epoch}\n')
    commands = image.with_name("debugfs-times.txt")
    commands.write_text("".join(script))
    run(["debugfs", "-w", "-f", commands, target], timeout=900, env=env)
    run(["e2fsck", "-fn", target], timeout=600)


def _esp(image: Path, part: Partition, work: Path, layout: Layout, key: str, epoch: int) -> None:
    """The ESP as its own FAT32 file, then copied into its partition."""
    config = work / "early.cfg"
    config.write_text(grub.early_config(layout.root_label))
    efi = work / "BOOTX64.EFI"
    grub.mkimage("x86_64-efi", grub.EFI_MODULES, config, efi)
    os.utime(efi, (epoch, epoch))
    esp = work / "esp.img"
    volume_id = derived_uuid(key, "esp").replace("-", "")[:8]
    fat.make(esp, part.size, layout.esp_label, volume_id, {"/EFI/BOOT/BOOTX64.EFI": efi}, epoch)
    if esp.stat().st_size != part.size:
        raise ImageError(f"{esp} is {esp.stat().st_size} bytes, the ESP partition {part.size}")
    with open(esp, "rb") as src, open(image, "r+b") as disk:
        disk.seek(part.offset)
        while chunk := src.read(CHUNK):
            disk.write(chunk)
    esp.unlink()


def _gzip(src: Path, dst: Path) -> None:
    """A gzip stream (no name, mtime 0: the same bytes for the same image); busybox gunzip reads it."""
    with open(src, "rb") as f, open(dst, "wb") as raw_out, gzip.GzipFile(filename="", mode="wb", fileobj=raw_out, mtime=0, compresslevel=6) as z:
        while chunk := f.read(CHUNK):
            z.write(chunk)
