"""Missing system dependencies: a skip on a developer's machine, a failure in CI.

CI runs as root after scripts/setup.sh, so a missing tool there is a broken set-up that a skip
would hide (half of the suite silently gone); `CI=true` turns every such skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def missing(reason: str) -> NoReturn:
    """Skip (fail under CI=true) because ``reason`` - which names the package to install - holds."""
    if in_ci():
        pytest.fail(f"missing system dependency in CI: {reason}", pytrace=False)
    pytest.skip(f"missing system dependency: {reason} (CI=true makes this a failure)")


def need(tool: str, package: str | None = None) -> str:
    """The path of ``tool`` on PATH, or a skip/failure naming the Debian package that provides it."""
    path = shutil.which(tool)
    if path is None:
        missing(f"{tool} not found (install the Debian package {package or tool}; scripts/setup.sh does)")
    return path


def need_root(why: str) -> None:
    if os.geteuid() != 0:
        missing(f"root is required: {why}")
