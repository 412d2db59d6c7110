"""Shared by every test folder: this directory is on sys.path (rootdir conftest, no packages), so
tests import the common helpers as `from waiting import wait_until` and `from requirements import need`."""
