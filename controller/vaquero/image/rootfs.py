"""The root file system tree: Debian packages installed by mmdebstrap from the host's apt sources,
resolved against the host's own apt lists (so the package set is what the cache key says).

The host's lists are copied into the tree and mmdebstrap skips `apt-get update`: the versions
installed are exactly those of the Packages indexes whose digests went into the key. When the
mirror no longer has one of them, the download fails and the error says to run `apt-get update`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

from .recipes import Recipe
from .tools import ImageError, run

APT_LISTS = Path("/var/lib/apt/lists")
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
COMPRESSIONS = (".lz4", ".gz", ".xz", ".zst", ".bz2", ".lzma")


@dataclass(frozen=True)
class Index:
    """One Packages index of the host's apt lists: what it is (origin, codename, path), its digest
    as the signed InRelease states it, its date, and the local files that hold it."""

    origin: str
    codename: str
    path: str  # e.g. main/binary-amd64/Packages
    sha256: str
    date: int  # the InRelease Date, seconds since the epoch
    files: tuple[Path, ...]

    def to_dict(self) -> dict[str, str]:
        # no mirror host name: the key is the same whichever mirror serves these bytes
        return {"origin": self.origin, "codename": self.codename, "path": self.path, "sha256": self.sha256}


def _release_fields(text: str) -> tuple[dict[str, str], dict[str, str]]:
    fields: dict[str, str] = {}
    sha256: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("-----BEGIN PGP SIGNATURE"):
            break
        if line.startswith(" ") and section == "SHA256":
            parts = line.split()
            if len(parts) == 3:
                sha256[parts[2]] = parts[0]
        elif ":" in line and not line.startswith(" "):
            name, _, value = line.partition(":")
            section = name
            fields[name] = value.strip()
    return fields, sha256


def apt_indexes(suite: str, lists: Path = APT_LISTS) -> list[Index]:
    """The Packages indexes of `suite` (and suite-updates, suite-security...) the host has."""
    found: list[Index] = []
    for release in sorted(lists.glob("*_InRelease")):
        fields, sums = _release_fields(release.read_text(errors="replace"))
        codename = fields.get("Codename", "")
        if codename != suite and not codename.startswith(f"{suite}-"):
            continue
        prefix = release.name.removesuffix("InRelease")
        try:
            date = int(parsedate_to_datetime(fields["Date"]).timestamp())
        except (KeyError, TypeError, ValueError) as exc:
            raise ImageError(f"{release}: no usable Date field") from exc
        for local in sorted(lists.glob(f"{prefix}*Packages*")):
            name = local.name.removeprefix(prefix)
            for suffix in COMPRESSIONS:
                name = name.removesuffix(suffix)
            path = name.replace("_", "/")
            if path not in sums:
                raise ImageError(f"{local}: {release.name} lists no SHA256 for {path}")
            found.append(Index(fields.get("Origin", ""), codename, path, sums[path], date, (release, local)))
    if not found:
        raise ImageError(f"the host's apt lists ({lists}) hold no Packages index for {suite}: run apt-get update")
    return found


def host_sources(suite: str) -> list[Path]:
    """The host's apt source files that name `suite`: mmdebstrap pastes them into the tree."""
    candidates: list[Path] = []
    for place in APT_SOURCES:
        if place.is_file():
            candidates.append(place)
        elif place.is_dir():
            candidates += sorted(p for p in place.iterdir() if p.suffix in (".list", ".sources") and p.is_file())
    chosen = [p for p in candidates if re.search(rf"(^|\s){re.escape(suite)}(\s|-|$)", p.read_text(), re.MULTILINE)]
    if not chosen:
        raise ImageError(f"no apt source file under /etc/apt names the suite {suite}")
    return chosen


def mmdebstrap(recipe: Recipe, root: Path, indexes: list[Index], debs: Path, epoch: int, timeout: float = 1800) -> None:
    """Install the recipe's packages into `root` (which must not exist yet)."""
    if os.geteuid() != 0:
        raise ImageError("building an image needs root (mmdebstrap --mode=root creates device nodes and owners)")
    lists = " ".join(shlex.quote(str(f)) for index in indexes for f in index.files)
    args: list[str] = [
        "mmdebstrap",
        "--mode=root",
        f"--variant={recipe.variant}",
        "--format=directory",
        f"--include={','.join(recipe.packages)}",
        # the lists copied in below are the package universe; the deb cache survives cleanup
        "--skip=update",
        "--skip=essential/unlink",
        "--skip=cleanup/apt/cache",
        f'--setup-hook=mkdir -p "$1/var/lib/apt/lists" && cp -- {lists} "$1/var/lib/apt/lists/"',
        f'--setup-hook=mkdir -p "$1/var/cache/apt/archives" && cp -a -- {shlex.quote(str(debs))}/. "$1/var/cache/apt/archives/"',
    ]
    args += [f"--dpkgopt={opt}" for opt in recipe.dpkg_options]
    args += [recipe.suite, str(root), *(str(s) for s in host_sources(recipe.suite))]
    debs.mkdir(parents=True, exist_ok=True)
    try:
        run(args, timeout=timeout, env={"SOURCE_DATE_EPOCH": str(epoch)})
    except ImageError as exc:
        if "404" in str(exc) or "Failed to fetch" in str(exc):
            raise ImageError(f"{exc}\nthe mirror no longer serves a package version of the host's apt lists: run apt-get update") from exc
        raise


def keep_debs(root: Path, debs: Path) -> None:
    """Move the downloaded packages into the cache (atomically per file) for the next build."""
    archives = root / "var/cache/apt/archives"
    for deb in archives.glob("*.deb"):
        target = debs / deb.name
        if not target.exists():
            tmp = debs / f".{deb.name}.{os.getpid()}.tmp"
            shutil.copyfile(deb, tmp)
            tmp.rename(target)
        deb.unlink()


def packages(root: Path) -> dict[str, str]:
    out = run(["dpkg-query", f"--admindir={root / 'var/lib/dpkg'}", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n"], timeout=60)
    found = {}
    for line in out.splitlines():
        name, version, status = line.split("\t")
        if status.startswith("ii"):
            found[name] = version
    return found


def kernel_version(root: Path) -> str:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise ImageError(f"expected one kernel in {root / 'boot'}, found {[k.name for k in kernels]}")
    version = kernels[0].name.removeprefix("vmlinuz-")
    for link in ("vmlinuz", "initrd.img"):
        if not (root / link).exists():
            raise ImageError(f"{root / link} is missing: the kernel package did not make its symlink")
    if not (root / "boot" / f"initrd.img-{version}").is_file():
        raise ImageError(f"no initramfs for kernel {version} in {root / 'boot'}")
    return version


def clamp_times(root: Path, epoch: int) -> list[str]:
    """Files newer than `epoch` (made while installing) get it as mtime; every atime is the mtime.
    Returns the tree's paths relative to root ("/"-rooted), sorted, for the inode time fix-up."""
    paths = ["/"]
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted([*dirs, *files]):
            full = os.path.join(dirpath, name)
            paths.append("/" + os.path.relpath(full, root))
            st = os.lstat(full)
            mtime = min(int(st.st_mtime), epoch)
            os.utime(full, (mtime, mtime), follow_symlinks=False)
    os.utime(root, (epoch, epoch))
    return paths
