"""Fixtures for the federation tests; helpers live in fed_helpers.py (a unique module name)."""

from fed_helpers import applied_sot, pki, tokens_files

__all__ = ["applied_sot", "pki", "tokens_files"]
