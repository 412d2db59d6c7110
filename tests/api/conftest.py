"""Fixtures for the API tests; the helpers live in api_helpers.py and pr_helpers.py (unique module
names, so they do not collide with other test folders' conftest modules)."""

from api_helpers import captured_logs, live, sot_repo
from pr_helpers import env, env_no_checks

__all__ = ["captured_logs", "env", "env_no_checks", "live", "sot_repo"]
