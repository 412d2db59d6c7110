"""The agent's copy of the last bundle and the leader fence it accepted, on disk under STATE_DIR/federation/.

    bundle.json         the last bundle, written atomically (temp file, fsync, rename)
    sot/<version>/      its SoT folder, what the boot services load (`--sot`)
    fence.json          the controller store's identity and the highest leader fence accepted from it:
                        a bundle of that store with a lower fence is refused (built from older state
                        by, or for, a deposed leader); a new store identity is accepted with a warning

Both survive restarts, so an agent cut off from its controller keeps serving what it had.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from vaquero.render.files import fsync_dir, write_file

from .errors import FederationError

log = logging.getLogger("vaquero.federation")

STORE_ID = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
MAX_FENCE = (1 << 63) - 1  # etcd revisions are int64


def _safe_rel(rel: str) -> PurePosixPath:
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or "\\" in rel or "\x00" in rel or any(part in ("", ".", "..") for part in rel.split("/")):
        raise FederationError(f"bundle file name {rel[:100]!r} is not a plain relative path")
    return p


def _dir_name(version: str) -> str:
    return "".join(c if c.isalnum() or c in "+-_." else "_" for c in version)[:200]


class BundleCache:
    """The last bundle on disk, and its SoT folder. Survives restarts; a torn write is impossible."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.path = self.dir / "bundle.json"

    def load(self) -> dict[str, Any] | None:
        try:
            bundle: dict[str, Any] = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("cached bundle %s unreadable (%s): waiting for the controller", self.path, exc)
            return None
        if not self.sot_path(bundle).is_dir():
            try:
                self._materialize(bundle)
            except (OSError, FederationError) as exc:
                log.error("cached bundle's SoT folder cannot be rebuilt: %s", exc)
                return None
        return bundle

    def sot_path(self, bundle: dict[str, Any]) -> Path:
        return self.dir / "sot" / _dir_name(str(bundle["version"]))

    def _materialize(self, bundle: dict[str, Any]) -> Path:
        final = self.sot_path(bundle)
        if final.is_dir():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
        try:
            for rel, content in sorted(bundle.get("files", {}).items()):
                target = tmp.joinpath(*_safe_rel(rel).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                data = content["text"].encode("utf-8") if "text" in content else base64.b64decode(content["b64"])
                target.write_bytes(data)
            os.replace(tmp, final)
            fsync_dir(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def stage(self, bundle: dict[str, Any]) -> Path:
        """Write the bundle's SoT folder (atomically: a temp folder renamed); bundle.json still names the old one."""
        return self._materialize(bundle)

    def commit(self, bundle: dict[str, Any]) -> Path:
        """bundle.json now names this bundle (the commit point); older folders are pruned, the previous one kept."""
        previous = self.load_quiet()
        folder = self._materialize(bundle)
        write_file(self.path, json.dumps(bundle, sort_keys=True).encode(), mode=0o600)
        keep = {folder.name} | ({self.sot_path(previous).name} if previous else set())
        for child in (self.dir / "sot").iterdir():
            if child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)
        return folder

    def save(self, bundle: dict[str, Any]) -> Path:
        self.stage(bundle)
        return self.commit(bundle)

    def load_quiet(self) -> dict[str, Any] | None:
        try:
            value: dict[str, Any] = json.loads(self.path.read_bytes())
            return value
        except (OSError, ValueError):
            return None


# -- the fence mark ---------------------------------------------------------------------------


def bundle_fence(bundle: dict[str, Any]) -> tuple[str, int | None]:
    """(store_id, fence) of a bundle, typed; FederationError when either is missing or malformed."""
    sid, fence = bundle.get("store_id"), bundle.get("fence")
    if not isinstance(sid, str) or not STORE_ID.match(sid):
        raise FederationError("bundle: no valid store_id (a controller too old to fence, or a forged bundle)")
    if fence is not None and (isinstance(fence, bool) or not isinstance(fence, int) or not 0 <= fence <= MAX_FENCE):
        raise FederationError("bundle: fence is not a revision (a non-negative integer or null)")
    return sid, fence


class FenceMark:
    """The highest leader fence accepted, for one store identity, on disk (fence.json, atomic writes)."""

    def __init__(self, path: Path, cached: dict[str, Any] | None) -> None:
        self.path = path
        self.store_id: str | None = None
        self.fence: int | None = None
        try:
            raw = json.loads(path.read_bytes())
            self.store_id, self.fence = bundle_fence(raw if isinstance(raw, dict) else {})
        except FileNotFoundError:
            pass
        except (OSError, ValueError, FederationError) as exc:
            log.error("fence mark %s unreadable (%s): the cached bundle's fence stands in", path, exc)
        if cached is not None:  # bundle.json may be newer than fence.json (crash between the two writes)
            try:
                sid, fence = bundle_fence(cached)
            except FederationError:
                return
            if self.store_id is None or (sid == self.store_id and self._lower(self.fence, fence)):
                self.store_id, self.fence = sid, fence

    @staticmethod
    def _lower(a: int | None, b: int | None) -> bool:
        """a < b, with null (built while no controller led) below every token."""
        return b is not None and (a is None or a < b)

    def refusal(self, store_id: str, fence: int | None) -> str | None:
        """Why a bundle (store_id, fence) must be refused, or None."""
        if self.store_id is None or store_id != self.store_id:
            return None
        if self._lower(fence, self.fence):
            got = "no leader (null)" if fence is None else str(fence)
            return f"stale leader fence: this bundle was built under fence {got}, a bundle of the same store under fence {self.fence} was accepted"
        return None

    def accept(self, store_id: str, fence: int | None) -> None:
        if self.store_id is not None and store_id != self.store_id:
            # A rebuilt store is an operator act (docs/ha.md): its fences start again, so the old mark cannot hold.
            log.warning("bundle from a new controller store %s (was %s, fence %s): fence mark reset to %s", store_id, self.store_id, self.fence, fence)
        elif not self._lower(self.fence, fence) and self.store_id is not None:
            return  # equal fence (same leader): nothing new to persist
        write_file(self.path, json.dumps({"store_id": store_id, "fence": fence, "time": time.time()}, sort_keys=True).encode(), mode=0o600)
        self.store_id, self.fence = store_id, fence
