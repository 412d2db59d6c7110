"""The Debian installer's netboot kernel and initrd (d-i), for installer profiles in the lab.

They come from the Debian package `debian-installer-12-netboot-amd64` (the text frontend: its
console works on a serial line) and are kept under `<lab cache>/installer/<key>/` where the key is
the sha256 the build host's apt indexes give for the package's candidate version: a new d-i in the
archive is a new folder, the same one is never downloaded twice. The files are checked against
that sha256 (the .deb) before they are unpacked, and the folder appears whole (a rename) or not at
all. d-i fetches the rest of itself (udebs for the same kernel ABI) from the mirror it is given,
so the initrd must come from the same archive as the mirror: the lab's mirror is the build host's
own apt source (`lab.mirror`), which is where this package comes from too.
"""

from __future__ import annotations

import gzip
import logging
import lzma
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from vaquero.childenv import child_env
from vaquero.image.build import sha256_file

from .kernel import DEFAULT_CACHE, LabError, run_tool

log = logging.getLogger(__name__)

PACKAGE = "debian-installer-12-netboot-amd64"
# The text frontend's images inside the package (the gtk ones want a framebuffer).
IMAGES = "usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64"
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class InstallerAssets:
    version: str  # the package's version, e.g. 20230607+deb12u15
    kernel: Path
    initrd: Path
    cached: bool  # found in the cache (no download)


def _candidate(package: str) -> tuple[str, str]:
    """(version, sha256) of the package's candidate version, as the host's apt indexes say."""
    env = child_env(extra={"LC_ALL": "C"})
    policy = run_tool(["apt-cache", "policy", package], env=env, timeout=60)
    m = re.search(r"Candidate:\s*(\S+)", policy)
    if not m or m.group(1) == "(none)":
        raise LabError(f"apt knows no candidate for {package} (run apt-get update; is the main component in the apt sources?)")
    version = m.group(1)
    show = run_tool(["apt-cache", "show", f"{package}={version}"], env=env, timeout=60)
    sums = re.findall(r"^SHA256:\s*(\S+)", show, re.M)
    if not sums or not _SHA256.fullmatch(sums[0]):
        raise LabError(f"apt-cache show {package}={version} gives no SHA256")
    return version, sums[0]


def download_deb(package: str, into: Path, candidate: tuple[str, str] | None = None) -> tuple[str, Path]:
    """`apt-get download` of the package's candidate version (or the (version, sha256) given) into
    the folder `into`, checked against the sha256 the build host's apt indexes give: (version, the .deb)."""
    version, sha = candidate or _candidate(package)
    log.info("downloading %s %s", package, version)
    run_tool(["apt-get", "download", f"{package}={version}"], cwd=into, env=child_env(extra={"LC_ALL": "C"}), timeout=900)
    debs = list(into.glob("*.deb"))
    if len(debs) != 1:
        raise LabError(f"apt-get download {package}={version} left {len(debs)} .deb files in {into}, expected 1")
    got = sha256_file(debs[0])
    if got != sha:
        raise LabError(f"{debs[0].name}: sha256 {got}, but the apt index says {sha}")
    return version, debs[0]


def fetch_installer(cache: Path = DEFAULT_CACHE, package: str = PACKAGE) -> InstallerAssets:
    """The d-i netboot `linux` and `initrd.gz`, downloaded and unpacked the first time."""
    version, sha = _candidate(package)
    parent = cache / "installer"
    folder = parent / sha[:16]
    kernel, initrd = folder / "linux", folder / "initrd.gz"
    if kernel.is_file() and initrd.is_file():
        return InstallerAssets(version, kernel, initrd, cached=True)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{sha[:16]}-", dir=parent))
    try:
        version, deb = download_deb(package, tmp, (version, sha))
        unpacked = tmp / "root"
        run_tool(["dpkg-deb", "-x", str(deb), str(unpacked)], timeout=300)
        for name in ("linux", "initrd.gz"):
            src = unpacked / IMAGES / name
            if not src.is_file():
                raise LabError(f"{deb.name} holds no {IMAGES}/{name}")
            shutil.move(str(src), tmp / name)
        shutil.rmtree(unpacked)
        deb.unlink()
        tmp.chmod(0o755)
        try:
            tmp.rename(folder)
        except OSError as exc:
            if not (kernel.is_file() and initrd.is_file()):  # another process's identical copy won the race
                raise LabError(f"cannot move the installer files into {folder} (remove it)") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return InstallerAssets(version, kernel, initrd, cached=False)


# -- does the archive serve what d-i will fetch? --

UDEB_INDEX = "dists/{suite}/main/debian-installer/binary-amd64/Packages.xz"
MAX_INDEX = 16 << 20  # the udeb index, compressed (bookworm's: about 60 KiB)
MAX_INDEX_TEXT = 64 << 20
MAX_INITRD_TEXT = 1 << 30  # d-i's initrd unpacked (bookworm's text one: about 130 MiB)
# What choose-mirror queues for installation once a mirror is chosen (not of standard priority).
QUEUED = ("apt-mirror-setup",)


@dataclass(frozen=True)
class ArchiveCheck:
    kernel_abi: str  # the initrd's kernel, e.g. 6.1.0-50-amd64: the module udebs must be for it
    needed: tuple[str, ...]  # udeb file paths in the archive d-i is expected to fetch
    missing: tuple[str, ...]  # those the archive did not serve (HEAD not 200)


def initrd_packages(initrd: Path) -> tuple[set[str], str]:
    """The udebs already unpacked in d-i's initrd (its var/lib/dpkg/status) and its kernel ABI
    (the lib/modules/<abi> folder), read from the gzip'd newc cpio without unpacking it."""
    status = b""
    abis: set[str] = set()
    read = 0
    with gzip.open(initrd, "rb") as fh:
        while True:
            head = fh.read(110)
            if len(head) < 110:
                break
            if head[:6] not in (b"070701", b"070702"):
                if head.strip(b"\0") == b"":  # padding between concatenated archives
                    continue
                raise LabError(f"{initrd}: not a gzip'd newc cpio archive (bad header at byte {read})")
            size, namesize = int(head[54:62], 16), int(head[94:102], 16)
            name = fh.read(namesize)[:-1].decode(errors="replace")
            fh.read((4 - (110 + namesize) % 4) % 4)
            data = fh.read(size)
            fh.read((4 - size % 4) % 4)
            read += 110 + namesize + size
            if read > MAX_INITRD_TEXT:
                raise LabError(f"{initrd}: more than {MAX_INITRD_TEXT} bytes unpacked")
            if name == "var/lib/dpkg/status":
                status = data
            m = re.fullmatch(r"lib/modules/([^/]+)", name)
            if m:
                abis.add(m.group(1))
    if not status or len(abis) != 1:
        raise LabError(f"{initrd}: expected a dpkg status file and one lib/modules/<version>, found status={bool(status)} kernels={sorted(abis)}")
    installed = set(re.findall(r"^Package: (\S+)$", status.decode(errors="replace"), re.M))
    return installed, abis.pop()


def _stanzas(text: str) -> list[dict[str, str]]:
    return [dict(re.findall(r"^([A-Za-z0-9-]+): (.*)$", block, re.M)) for block in text.split("\n\n") if block.strip()]


def _names(field: str) -> list[list[str]]:
    """A Depends field as alternatives of package names (versions and arch qualifiers dropped)."""
    return [[alt.strip().split(" ")[0].split(":")[0] for alt in group.split("|") if alt.strip()] for group in field.split(",") if group.strip()]


def needed_udebs(index: str, installed: set[str], kernel_abi: str) -> list[str]:
    """The archive paths of the udebs an automatic d-i install fetches, as anna chooses them: every
    udeb of priority standard or higher (kernel module udebs only for the initrd's kernel), what
    choose-mirror queues, and their dependencies, minus what the initrd already holds."""
    packages: dict[str, dict[str, str]] = {}
    provides: dict[str, list[str]] = {}
    for st in _stanzas(index):
        if "Package" not in st or "Filename" not in st:
            continue
        if st.get("Kernel-Version") not in (None, kernel_abi):
            continue
        packages[st["Package"]] = st
        for group in _names(st.get("Provides", "")):
            for name in group:
                provides.setdefault(name, []).append(st["Package"])
    have = set(installed)
    for name in installed:  # what the initrd's udebs provide counts as there too
        for group in _names(packages.get(name, {}).get("Provides", "")):
            have.update(group)
    todo = [p for p, st in packages.items() if st.get("Priority") in ("required", "important", "standard")] + list(QUEUED)
    chosen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in chosen or name in have or name not in packages:
            continue
        chosen.add(name)
        for alts in _names(packages[name].get("Depends", "")):
            if any(a in have or a in chosen for a in alts):
                continue
            real = [a for a in alts if a in packages] or [p for a in alts for p in provides.get(a, [])]
            todo += real[:1]
    return sorted(packages[p]["Filename"] for p in chosen)


def check_archive(assets: InstallerAssets, upstream: str, suite: str = "bookworm", timeout: float = 20.0) -> ArchiveCheck:
    """Ask the archive d-i will be pointed at (through the lab's mirror: `upstream`, the build host's
    apt source) for every udeb d-i is expected to fetch (HEAD each): an archive without udebs, or with
    only some, stops d-i at its first missing component with a question no preseed answers."""
    installed, abi = initrd_packages(assets.initrd)
    with httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False) as client:
        url = f"{upstream}/{UDEB_INDEX.format(suite=suite)}"
        with client.stream("GET", url) as r:
            if r.status_code != 200:
                raise LabError(f"the archive has no udeb index for {suite}: GET {UDEB_INDEX.format(suite=suite)} answered {r.status_code}")
            body = b""
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > MAX_INDEX:
                    raise LabError(f"{UDEB_INDEX.format(suite=suite)} is larger than {MAX_INDEX} bytes")
        decoder = lzma.LZMADecompressor()
        text = decoder.decompress(body, max_length=MAX_INDEX_TEXT)
        if not decoder.eof:
            raise LabError(f"{UDEB_INDEX.format(suite=suite)} is truncated or unpacks to more than {MAX_INDEX_TEXT} bytes")
        needed = needed_udebs(text.decode(errors="replace"), installed, abi)
        missing = [path for path in needed if client.head(f"{upstream}/{path}").status_code != 200]
    return ArchiveCheck(kernel_abi=abi, needed=tuple(needed), missing=tuple(missing))
