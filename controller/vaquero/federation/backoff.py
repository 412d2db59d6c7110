"""How long a partitioned agent waits before it tries its controller again."""

from __future__ import annotations

import random


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d], d = min(cap, base * 2**(failures-1))."""
    d = min(cap, base * (2 ** max(0, failures - 1)))
    return (rng or random).uniform(d / 2, d)
