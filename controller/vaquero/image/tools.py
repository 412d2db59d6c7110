"""Running the host tools an image is built with: bounded in time, a clean environment, errors
that name the command and end with the tool's own last words."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from vaquero.childenv import child_env


class ImageError(RuntimeError):
    """A build step failed or its result did not read back as expected."""


# Debian packages that provide each tool, named in the error when one is missing.
PACKAGES = {
    "mmdebstrap": "mmdebstrap",
    "sgdisk": "gdisk",
    "mke2fs": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "mdir": "mtools",
    "grub-mkimage": "grub-common (with grub-pc-bin and grub-efi-amd64-bin)",
    "dpkg-query": "dpkg",
    "systemctl": "systemd",
}


def run(
    cmd: Sequence[str | Path],
    *,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: bytes | None = None,
) -> str:
    """Run `cmd`, return its stdout; ImageError naming the command on failure or timeout."""
    argv = [str(c) for c in cmd]
    if shutil.which(argv[0]) is None:
        raise ImageError(f"{argv[0]} is not installed (Debian package {PACKAGES.get(argv[0], argv[0])})")
    try:
        out = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, env=child_env(extra=env), cwd=cwd, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ImageError(f"{argv[0]} did not finish in {timeout:g}s: {' '.join(argv)[:300]}") from exc
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).decode(errors="replace").strip()[-1500:]
        raise ImageError(f"{argv[0]} failed (exit {out.returncode}): {' '.join(argv)[:300]}\n{tail}")
    return out.stdout.decode(errors="replace")
