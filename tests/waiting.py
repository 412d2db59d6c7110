"""Waiting for an observable condition instead of sleeping and hoping.

A loaded 2-core machine makes any fixed sleep too short one day; a deadline only bounds how long
a broken test hangs, so deadlines here are generous and never asserted on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, what: str = "the condition", interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; AssertionError naming
    ``what`` (and the last exception the predicate raised, if any) once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
        except Exception as exc:  # a peer not up yet answers with an exception; keep waiting
            last_exc = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {type(last_exc).__name__}: {last_exc})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)
