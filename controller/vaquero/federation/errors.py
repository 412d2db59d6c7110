"""The federation link's error: the controller answered, but not with what the agent needs."""

from __future__ import annotations


class FederationError(Exception):
    """The controller answered, but not with what the agent needs (auth refused, bad bundle, 5xx)."""
