"""Fixtures for the API tests; the helpers live in api_helpers.py (a unique module name, so they
do not collide with other test folders' conftest modules)."""

from api_helpers import captured_logs, live, sot_repo

__all__ = ["captured_logs", "live", "sot_repo"]
