"""The Store: a small key-value interface with revisions, that SQLite and etcd both implement.

Small on purpose (get, put, compare-and-set, delete, list by prefix, watch, lease) so one
conformance suite runs against every implementation. Values are JSON objects.
Keys are '/'-separated paths: /hosts/<name>, /events/<host>/<seq>, /plans/<id>, ...
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
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


class FenceLost(Exception):
    """A fenced write found the fence key (the leader key) no longer at the writer's token: a newer
    leader exists, or none; nothing was written."""


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

    def fenced_write(self, key: str, value: dict[str, Any] | None, *, expect: int | None, fence: tuple[str, int]) -> int | None:
        """Write `value` (None: delete the key) in one transaction, only while the key `fence[0]`
        still has revision `fence[1]` (a leader's fencing token); FenceLost otherwise.

        `expect` as in cas (None: unconditional). Returns the new revision, or None when `expect`
        did not match (or, for a delete, when there was nothing to delete).
        """
        raise NotImplementedError

    def revision(self) -> int:
        """The store's current revision: list, then watch(since=revision) misses nothing."""
        raise NotImplementedError

    @abc.abstractmethod
    def ready(self) -> bool:
        """Reachable, writable and migrated: what /healthz/ready reports."""

    def close(self) -> None:  # noqa: B027 - optional for implementations without resources
        pass


class FencedStore(Store):
    """A Store whose every write carries a leader's fencing token (the writer's side of fencing).

    `fence()` gives (leader key, token) or raises (e.g. NotLeader, from the local lease deadline,
    without asking the store); the inner store then refuses the write with FenceLost when the leader
    key no longer carries that token. A deposed leader that still believes it leads (paused past
    its lease) therefore writes nothing. Reads and leases pass through.
    """

    def __init__(self, inner: Store, fence: Callable[[], tuple[str, int]]) -> None:
        self.inner = inner
        self.fence = fence

    def get(self, key: str) -> Record | None:
        return self.inner.get(key)

    def put(self, key: str, value: dict[str, Any], *, lease: Lease | None = None) -> int:
        if lease is not None:
            raise ValueError("fenced writes do not take a lease")
        rev = self.inner.fenced_write(key, value, expect=None, fence=self.fence())
        assert rev is not None  # an unconditional put either writes or raises
        return rev

    def cas(self, key: str, value: dict[str, Any], *, expect: int, lease: Lease | None = None) -> int | None:
        if lease is not None:
            raise ValueError("fenced writes do not take a lease")
        return self.inner.fenced_write(key, value, expect=expect, fence=self.fence())

    def delete(self, key: str) -> bool:
        return self.inner.fenced_write(key, None, expect=None, fence=self.fence()) is not None

    def fenced_write(self, key: str, value: dict[str, Any] | None, *, expect: int | None, fence: tuple[str, int]) -> int | None:
        return self.inner.fenced_write(key, value, expect=expect, fence=fence)

    def list(self, prefix: str) -> list[Record]:
        return self.inner.list(prefix)

    def watch(self, prefix: str, *, since: int, timeout: float) -> Iterator[WatchEvent]:
        return self.inner.watch(prefix, since=since, timeout=timeout)

    def grant(self, ttl: float) -> Lease:
        return self.inner.grant(ttl)

    def refresh(self, lease: Lease) -> bool:
        return self.inner.refresh(lease)

    def revoke(self, lease: Lease) -> None:
        self.inner.revoke(lease)

    def revision(self) -> int:
        return self.inner.revision()

    def ready(self) -> bool:
        return self.inner.ready()
