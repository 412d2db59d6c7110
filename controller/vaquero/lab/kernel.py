"""A Debian kernel for lab hosts: `apt-get download` + `dpkg -x` into a cache folder, once."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path(os.environ.get("VAQUERO_LAB_CACHE", "/var/cache/vaquero-lab"))
META_PACKAGE = "linux-image-amd64"


class LabError(RuntimeError):
    """A lab prerequisite is missing or a lab step failed."""


@dataclass(frozen=True)
class Kernel:
    version: str
    vmlinuz: Path
    modules: Path  # .../lib/modules/<version>


def run_tool(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600.0) -> str:
    """Run a build tool (apt, dpkg, depmod...); its failure, absence or overrun is a LabError
    naming the command and the end of what it said."""
    try:
        out = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env=env, timeout=timeout)
    except FileNotFoundError as exc:
        raise LabError(f"{cmd[0]} is not installed") from exc
    except subprocess.CalledProcessError as exc:
        raise LabError(f"{' '.join(cmd)} failed: {exc.stderr.decode(errors='replace').strip()[-400:]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(cmd)} took more than {exc.timeout:g} s") from exc
    return out.stdout.decode(errors="replace")


def _concrete_package(meta: str) -> str:
    """linux-image-amd64 depends on exactly one linux-image-<version>-amd64."""
    out = run_tool(["apt-cache", "depends", meta])
    for line in out.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-image-\S+)", line)
        if m:
            return m.group(1)
    if meta.startswith("linux-image-") and re.search(r"\d", meta):
        return meta
    raise LabError(f"cannot find the kernel package {meta} depends on")


def _find(root: Path) -> Kernel | None:
    boots = sorted((root / "boot").glob("vmlinuz-*")) if (root / "boot").is_dir() else []
    if not boots:
        return None
    version = boots[-1].name.removeprefix("vmlinuz-")
    modules = root / "lib" / "modules" / version
    if not (modules / "modules.dep").is_file():
        return None
    return Kernel(version=version, vmlinuz=boots[-1], modules=modules)


def fetch_kernel(cache: Path = DEFAULT_CACHE, package: str = META_PACKAGE) -> Kernel:
    """Return the cached kernel, downloading and unpacking it the first time (takes a lock)."""
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / "kernel"
    found = _find(root)
    if found:
        return found
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _find(root)
        if found:
            return found
        debs = sorted(cache.glob("linux-image-*.deb"))
        if not debs:
            concrete = _concrete_package(package)
            log.info("downloading %s", concrete)
            run_tool(["apt-get", "download", concrete], cwd=cache)
            debs = sorted(cache.glob("linux-image-*.deb"))
        if not debs:
            raise LabError(f"apt-get download left no linux-image .deb in {cache}")
        tmp = cache / "kernel.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        run_tool(["dpkg", "-x", str(debs[-1]), str(tmp)])
        versions = [p.name.removeprefix("vmlinuz-") for p in (tmp / "boot").glob("vmlinuz-*")]
        if not versions:
            raise LabError(f"{debs[-1].name} holds no /boot/vmlinuz")
        run_tool(["depmod", "-b", str(tmp), versions[0]])
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    found = _find(root)
    if not found:
        raise LabError(f"no usable kernel in {root}")
    return found
