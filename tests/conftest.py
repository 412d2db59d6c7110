"""Shared by every test folder: this directory is on sys.path (rootdir conftest, no packages), so
tests import the common helpers as `from waiting import wait_until` and `from requirements import need`."""

import os as _os
import tempfile as _tempfile

import pytest

# The BMC guard shares its locks, global slots and breakers through a folder every process on the
# machine opens. Each pytest run gets its own, so parallel test runs neither share a breaker
# opened by another run's dead BMC nor compete for its slots; the run's children inherit it.
_os.environ.setdefault("VAQUERO_BMC_GUARD_DIR", _tempfile.mkdtemp(prefix="vq-bmc-guard-"))


# The files that boot QEMU machines or build disk images run longest. Collected first, they start
# first on the pytest-xdist workers (scripts/test.sh runs three, files dealt to them in turn, in
# this order: --no-loadscope-reorder, else xdist deals files with more tests first), so the
# run does not end with one worker busy on a long file while the others wait idle. The e2e that
# installs, upgrades in place and rolls back the Debian image is by far the longest (12-20 min on
# 2 cores): it goes first, and the image build (tests/image, the same cached build under a file
# lock: one of the two waits for the other) second.
_LONG_FIRST = ("tests/e2e/test_image_install.py", "tests/image/", "tests/e2e/test_upgrade_rolling.py", "tests/e2e/", "tests/deploy/", "tests/decommission/")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    root = str(config.rootpath) + "/"

    def rank(item: pytest.Item) -> int:
        rel = str(item.path).removeprefix(root)
        return next((i for i, prefix in enumerate(_LONG_FIRST) if rel.startswith(prefix)), len(_LONG_FIRST) + 1)

    items.sort(key=rank)  # stable: the order inside each file and group is kept
