"""The source of truth: models, loading with file:line errors, validation, git sources."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import SoTError, SoTInvalid, SourceError

if TYPE_CHECKING:
    from .loader import SoT, empty_sot, load, load_spec
    from .models import API_VERSION, Cluster, Hook, Host, Profile, Site

# Imported on use: `vaquero validate` only fetches the tree (sot.source) and hands it to the bounded
# child, so the parent must not pay for pydantic, YAML and Jinja (about a second on a busy host).
_LAZY = {name: "loader" for name in ("SoT", "empty_sot", "load", "load_spec")}
_LAZY |= {name: "models" for name in ("API_VERSION", "Cluster", "Hook", "Host", "Profile", "Site")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "API_VERSION",
    "Cluster",
    "Hook",
    "Host",
    "Profile",
    "Site",
    "SoT",
    "SoTError",
    "SoTInvalid",
    "SourceError",
    "empty_sot",
    "load",
    "load_spec",
]
