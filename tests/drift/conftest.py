"""The drift tests use the BMC peers (tests/bmc/bmc_helpers.py) and the live API (tests/api/api_helpers.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bmc"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from bmc_helpers import silent_udp  # noqa: F401 - a pytest fixture
