"""The Debian reference image, built once per session (or found in the lab cache by its key)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from image_helpers import TIMINGS, Listener, image_tools, listening

from vaquero.image.build import DEFAULT_CACHE, Built, build


@pytest.fixture(scope="session")
def debian_image() -> Built:
    image_tools()
    started = time.monotonic()
    built = build("debian-12", cache=DEFAULT_CACHE, progress=lambda m: print(f"image: {m}"))
    TIMINGS["build (found in the cache)" if built.cached else "cold build"] = time.monotonic() - started
    return built


@pytest.fixture
def listener() -> Iterator[Listener]:
    with listening() as found:
        yield found


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.write_line("image timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in TIMINGS.items()))
