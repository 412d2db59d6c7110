"""Shared by every test folder: this directory is on sys.path (rootdir conftest, no packages), so
tests import the common helpers as `from waiting import wait_until` and `from requirements import need`."""

import os as _os
import tempfile as _tempfile

# The BMC guard shares its locks, global slots and breakers through a folder every process on the
# machine opens. Each pytest run gets its own, so parallel test runs neither share a breaker
# opened by another run's dead BMC nor compete for its slots; the run's children inherit it.
_os.environ.setdefault("VAQUERO_BMC_GUARD_DIR", _tempfile.mkdtemp(prefix="vq-bmc-guard-"))
