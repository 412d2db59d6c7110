"""The suite's own helpers: a missing tool is a skip locally and a failure under CI=true, and
wait_until returns the predicate's value or names what it waited for."""

from __future__ import annotations

import pytest
from requirements import need
from waiting import wait_until


def test_a_missing_tool_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install the Debian package vq-pkg"):
        need("vq-no-such-tool", "vq-pkg")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"missing system dependency in CI: vq-no-such-tool not found .*vq-pkg"):
        need("vq-no-such-tool", "vq-pkg")
    assert need("sh").endswith("/sh")  # present: its path, no skip


def test_wait_until_returns_the_value_or_names_what_it_waited_for() -> None:
    calls: list[int] = []

    def third_time() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("not up yet")
        return len(calls)

    assert wait_until(third_time, 60, "the third call", interval=0) == 3
    with pytest.raises(AssertionError, match=r"after 0.05s waiting for the impossible \(last error: ValueError: invalid literal"):
        wait_until(lambda: int("nope"), 0.05, "the impossible", interval=0.01)
