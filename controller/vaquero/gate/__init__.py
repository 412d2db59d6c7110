"""The gate: revisions in, validated plans out, waiting for approval (or approved by policy)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Gate, GateError, auto_apply, check_git_url, check_rev
    from .github import StatusReporter

__all__ = ["Gate", "GateError", "StatusReporter", "auto_apply", "check_git_url", "check_rev"]


def __getattr__(name: str) -> Any:
    # Imported on use: the validation child (vaquero.gate.sandbox) starts once per revision and
    # must not pay for the gate's threads, Store and HTTP client it never uses.
    if name == "StatusReporter":
        from .github import StatusReporter

        return StatusReporter
    if name in __all__:
        from . import core

        return getattr(core, name)
    raise AttributeError(name)
