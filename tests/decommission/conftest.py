"""Decommission tests (tests/decommission): the runner's remove step, the wipe, decommission.yml on a QEMU host."""
