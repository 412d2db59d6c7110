"""The Store: a small key-value interface with revisions, that SQLite and etcd both implement.

Small on purpose (get, put, compare-and-set, delete, list by prefix, watch, lease) so one
conformance suite runs against every implementation. Values are JSON objects.
Keys are '/'-separated paths: /hosts/<name>, /events/<host>/<seq>, /plans/<id>, ...
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Record:
    key: str
    value: dict[str, Any]
    revision: int  # the store revision of the last write to this key (etcd's mod_revision)


@dataclass(frozen=True)
class WatchEvent:
    type: str  # put | delete
    key: str
    value: dict[str, Any] | None
    revision: int


@dataclass(frozen=True)
class Lease:
    id: int
    ttl: float


class StoreUnavailable(Exception):
    """The store cannot be reached or has no quorum; the caller should retry later, not guess."""


class WatchCompacted(Exception):
    """The revision a watch asked to start after is no longer kept; list again and watch from store.revision()."""

    def __init__(self, since: int, compact_revision: int) -> None:
        self.since, self.compact_revision = since, compact_revision
        super().__init__(f"revision {since} is compacted (oldest kept: {compact_revision}); list again and watch from the current revision")


class LeaseExpired(Exception):
    """A write named a lease that expired or was revoked (etcd: "requested lease not found")."""


class Store(abc.ABC):
    @abc.abstractmethod
    def get(self, key: str) -> Record | None: ...

    @abc.abstractmethod
    def put(self, key: str, value: dict[str, Any], *, lease: Lease | None = None) -> int:
        """Write unconditionally; returns the new revision. LeaseExpired if `lease` is gone."""

    @abc.abstractmethod
    def cas(self, key: str, value: dict[str, Any], *, expect: int, lease: Lease | None = None) -> int | None:
        """Write only if the key's revision is `expect` (0: the key must not exist).

        Returns the new revision, or None when someone else wrote first.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> bool: ...

    @abc.abstractmethod
    def list(self, prefix: str) -> list[Record]:
        """Records whose key starts with `prefix`, sorted by key."""

    @abc.abstractmethod
    def watch(self, prefix: str, *, since: int, timeout: float) -> Iterator[WatchEvent]:
        """Changes under `prefix` after revision `since`, until `timeout` seconds pass without one.

        WatchCompacted when changes after `since` are no longer kept: never a silent gap.
        """

    @abc.abstractmethod
    def grant(self, ttl: float) -> Lease: ...

    @abc.abstractmethod
    def refresh(self, lease: Lease) -> bool:
        """Keep a lease alive; False when it already expired (its keys are gone)."""

    @abc.abstractmethod
    def revoke(self, lease: Lease) -> None: ...

    def revision(self) -> int:
        """The store's current revision: list, then watch(since=revision) misses nothing."""
        raise NotImplementedError

    @abc.abstractmethod
    def ready(self) -> bool:
        """Reachable, writable and migrated: what /healthz/ready reports."""

    def close(self) -> None:  # noqa: B027 - optional for implementations without resources
        pass
