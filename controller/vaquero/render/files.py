"""Idempotent, atomic file writes with check and diff support (one code path for all three)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class WriteResult:
    path: Path
    changed: bool
    diff: dict[str, Any] = field(default_factory=dict)


def _text(data: bytes | None) -> str:
    if data is None:
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(data)} bytes of binary data>"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: str | os.PathLike[str], content: bytes | str, *, mode: int = 0o644, check: bool = False) -> WriteResult:
    """Write `content` to `path` only when the bytes (or the mode) differ: temp file + fsync + rename.

    In check mode nothing is written; the result says what would change. `diff` holds
    before/after texts in the shape Ansible's diff mode expects.
    """
    p = Path(path)
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        before: bytes | None = p.read_bytes()
        old_mode: int | None = p.stat().st_mode & 0o7777
    except FileNotFoundError:
        before, old_mode = None, None
    changed = before != data or old_mode != mode
    result = WriteResult(path=p, changed=changed)
    if changed:
        result.diff = {"before_header": str(p), "after_header": str(p), "before": _text(before), "after": _text(data)}
    if not changed or check:
        return result
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, p)
        fsync_dir(p.parent)  # the rename itself survives a power cut only once the folder is synced
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return result
