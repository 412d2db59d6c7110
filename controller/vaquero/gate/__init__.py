"""The gate: revisions in, validated plans out, waiting for approval (or approved by policy)."""

from .core import Gate, GateError, auto_apply, check_git_url, check_rev
from .github import StatusReporter

__all__ = ["Gate", "GateError", "StatusReporter", "auto_apply", "check_git_url", "check_rev"]
