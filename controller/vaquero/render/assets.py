"""OS assets (kernels, initrds, images) in the agent's asset root, verified by sha256.

`ensure_asset` copies or downloads a file to its place, hashing while it writes, and refuses
a mismatch (the partial file is removed, the old one is kept). A file whose hash already
matches is left alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)
CHUNK = 1 << 20


class AssetError(RuntimeError):
    """An asset is missing, unreachable, or does not match its sha256."""


@dataclass
class AssetResult:
    path: Path
    sha256: str
    changed: bool
    size: int
    msg: str


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _source_path(source: str, base: Path | None) -> Path | None:
    """A local source as a path (plain path or file:// URL); None for http(s)."""
    parts = urlsplit(source)
    if parts.scheme in ("http", "https"):
        return None
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme:
        raise AssetError(f"unsupported asset source {source!r} (http, https, file or a path)")
    p = Path(source)
    return p if p.is_absolute() or base is None else base / p


def ensure_asset(
    source: str, dest: Path, sha256: str, *, base: Path | None = None, check: bool = False, timeout: float = 60.0, host: str | None = None
) -> AssetResult:
    """Put `source` at `dest` with the given sha256. Raises AssetError (dest untouched) on any problem."""
    want = sha256.lower()
    extra = {"host": host} if host else {}
    if dest.is_file() and sha256_file(dest) == want:
        return AssetResult(dest, want, False, dest.stat().st_size, "already present with the expected sha256")
    local = _source_path(source, base)
    if local is not None and not local.is_file():
        log.error("asset %s is missing", local, extra=extra)
        raise AssetError(f"asset source {local} does not exist")
    if check:
        if local is not None:
            got = sha256_file(local)
            if got != want:
                raise AssetError(f"asset {local} has sha256 {got}, expected {want}")
        return AssetResult(dest, want, True, local.stat().st_size if local else 0, f"would fetch {source}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            if local is not None:
                with open(local, "rb") as src:
                    while chunk := src.read(CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
            else:
                import httpx

                try:
                    with httpx.stream("GET", source, timeout=timeout, follow_redirects=True) as resp:
                        if resp.status_code != 200:
                            raise AssetError(f"GET {source}: HTTP {resp.status_code}")
                        for chunk in resp.iter_bytes(CHUNK):
                            h.update(chunk)
                            out.write(chunk)
                            size += len(chunk)
                except httpx.HTTPError as exc:
                    raise AssetError(f"GET {source}: {exc}") from exc
            out.flush()
            os.fsync(out.fileno())
        got = h.hexdigest()
        if got != want:
            log.error("asset %s: sha256 %s does not match the expected %s; refused", source, got, want, extra=extra)
            raise AssetError(f"asset {source} has sha256 {got}, expected {want}: refused")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("asset %s -> %s (%d bytes)", source, dest, size, extra=extra)
    return AssetResult(dest, want, True, size, f"fetched {source}")
