from __future__ import annotations

from pathlib import Path

import pytest

from vaquero.sot import SoT, load

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def lab_sot() -> SoT:
    return load(REPO / "inventories" / "lab")


@pytest.fixture(scope="session")
def federation_sot() -> SoT:
    return load(REPO / "inventories" / "federation")
