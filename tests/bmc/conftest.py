"""Fixtures for the BMC tests; the shared code is in bmc_helpers.py (a unique module name: several
test folders have a conftest.py, so `from conftest import ...` would pick any of them)."""

from bmc_helpers import fast_guard, ipmi_bmc, ipmi_sim, redfish_lite, silent_udp, sushy  # noqa: F401 - pytest fixtures
