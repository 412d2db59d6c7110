"""Where the content lives: the folder holding ``playbooks/``, ``ansible_collections/`` and ``inventories/``.

Those are not Python package data: a checkout has them at its top, an installation puts them
wherever the operator chose and says so in ``$VAQUERO_CONTENT_DIR``. Every part of vaquero that
needs them (the runner's playbooks, the lab's SoT) asks here, so there is one rule and one error.
"""

from __future__ import annotations

import os
from pathlib import Path

CONTENT_ENV = "VAQUERO_CONTENT_DIR"


class ContentNotFound(RuntimeError):
    """The content folder, or something expected in it, is missing."""


def _is_checkout(folder: Path) -> bool:
    return (folder / "playbooks").is_dir() and (folder / "ansible_collections" / "vaquero" / "metal").is_dir()


def content_dir() -> Path:
    """``$VAQUERO_CONTENT_DIR``, else the checkout this package runs from (an editable install or the source tree)."""
    env = os.environ.get(CONTENT_ENV)
    if env:
        path = Path(env)
        if not path.is_dir():
            raise ContentNotFound(f"{CONTENT_ENV}={env} is not a folder")
        return path
    for parent in Path(__file__).resolve().parents:
        if _is_checkout(parent):
            return parent
    raise ContentNotFound(f"cannot find playbooks/ and ansible_collections/: set {CONTENT_ENV} to the folder that holds them (the top of a vaquero checkout)")


def content_path(*parts: str) -> Path:
    """A file or folder under the content folder, which must exist."""
    base = content_dir()
    path = base.joinpath(*parts)
    if not path.exists():
        how = f"${CONTENT_ENV}" if os.environ.get(CONTENT_ENV) else f"the checkout found without ${CONTENT_ENV}"
        raise ContentNotFound(f"{'/'.join(parts)} is missing under {base} ({how})")
    return path
