"""One conformance suite for every Store: the same tests run on SQLite and on a real etcd cluster."""

from __future__ import annotations

import itertools
import random
import threading
import time
from pathlib import Path

import httpx
import pytest
from waiting import wait_until

from vaquero.state import LeaseExpired, Store, WatchCompacted, open_store
from vaquero.state.etcd import EtcdStore
from vaquero.state.sqlite import SQLiteStore

# A watch ends after this long without events; the tests take the events they expect and stop,
# so this only bounds how long a broken store makes a test hang, however loaded the machine.
QUIET = 60.0


def take(store: Store, prefix: str, since: int, n: int) -> list:
    """The first ``n`` events after ``since`` (fewer only if the store went quiet for QUIET s)."""
    return list(itertools.islice(store.watch(prefix, since=since, timeout=QUIET), n))


def test_put_get_roundtrip(store: Store) -> None:
    assert store.get("/hosts/none") is None
    value = {"name": "node-1", "nested": {"list": [1, 2, 3], "unicode": "čaj ☕"}, "n": None}
    rev = store.put("/hosts/node-1", value)
    rec = store.get("/hosts/node-1")
    assert rec is not None
    assert rec.key == "/hosts/node-1"
    assert rec.value == value
    assert rec.revision == rev > 0


def test_revisions_are_monotonic(store: Store) -> None:
    revs = [store.put(f"/r/{i % 3}", {"i": i}) for i in range(20)]
    assert revs == sorted(revs) and len(set(revs)) == len(revs)
    assert store.revision() >= revs[-1]
    assert store.delete("/r/0")
    assert store.revision() > revs[-1]
    rec = store.get("/r/1")
    assert rec is not None and rec.revision in revs


def test_cas(store: Store) -> None:
    r1 = store.cas("/c", {"v": 1}, expect=0)
    assert r1 is not None
    assert store.cas("/c", {"v": 2}, expect=0) is None  # exists already
    assert store.cas("/c", {"v": 2}, expect=r1 + 1000) is None  # wrong revision
    r2 = store.cas("/c", {"v": 2}, expect=r1)
    assert r2 is not None and r2 > r1
    assert store.cas("/c", {"v": 3}, expect=r1) is None  # stale
    rec = store.get("/c")
    assert rec is not None and rec.value == {"v": 2} and rec.revision == r2
    assert store.delete("/c")
    assert store.cas("/c", {"v": 4}, expect=0) is not None  # gone: may be created again


def test_cas_create_race_has_one_winner(store: Store) -> None:
    barrier = threading.Barrier(8)
    wins: list[int] = []

    def racer(i: int) -> None:
        barrier.wait()
        if store.cas("/race/key", {"winner": i}, expect=0) is not None:
            wins.append(i)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    rec = store.get("/race/key")
    assert rec is not None and rec.value == {"winner": wins[0]}


def test_cas_counter_from_8_threads_loses_no_increment(store: Store) -> None:
    store.put("/counter", {"n": 0})
    per_thread = 15

    def worker() -> None:
        done = 0
        while done < per_thread:
            rec = store.get("/counter")
            assert rec is not None
            if store.cas("/counter", {"n": rec.value["n"] + 1}, expect=rec.revision) is not None:
                done += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec = store.get("/counter")
    assert rec is not None and rec.value["n"] == 8 * per_thread


def test_delete(store: Store) -> None:
    store.put("/d/a", {})
    assert store.delete("/d/a") is True
    assert store.get("/d/a") is None
    assert store.delete("/d/a") is False
    assert store.delete("/d/never") is False


def test_list_by_prefix_sorted_by_key(store: Store) -> None:
    keys = ["/a/b", "/a/b/c", "/a/bb", "/a/c", "/a/a", "/a/z/😀", "/a/é", "/ab", "/b", "/a"]
    for k in random.sample(keys, len(keys)):
        store.put(k, {"k": k})
    under_a = [r.key for r in store.list("/a/")]
    assert under_a == sorted(k for k in keys if k.startswith("/a/"))  # '/ab', '/a', '/b' excluded
    assert [r.value["k"] for r in store.list("/a/")] == under_a
    assert [r.key for r in store.list("/a/b")] == ["/a/b", "/a/b/c", "/a/bb"]
    assert store.list("/nothing/") == []
    everything = [r.key for r in store.list("/")]
    assert everything == sorted(keys)  # byte order of UTF-8 == code point order


def test_list_more_than_one_page(store: Store) -> None:
    def fill(start: int) -> None:
        for i in range(start, 1005, 5):
            store.put(f"/many/{i:05d}", {"i": i})

    threads = [threading.Thread(target=fill, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = store.list("/many/")
    assert [r.value["i"] for r in got] == list(range(1005))


def test_watch_from_a_revision(store: Store) -> None:
    start = store.revision()
    r1 = store.put("/w/a", {"v": 1})
    r2 = store.put("/w/b", {"v": 2})
    store.put("/other", {"v": 0})
    r3 = store.put("/w/a", {"v": 3})
    assert store.delete("/w/b")
    events = take(store, "/w/", start, 4)  # "/other" sorts between r2 and r3: a leak would show here
    assert [(e.type, e.key, e.value) for e in events] == [
        ("put", "/w/a", {"v": 1}),
        ("put", "/w/b", {"v": 2}),
        ("put", "/w/a", {"v": 3}),
        ("delete", "/w/b", None),
    ]
    assert [e.revision for e in events[:3]] == [r1, r2, r3]
    assert events[3].revision > r3
    later = take(store, "/w/", r2, 2)  # strictly after r2
    assert [(e.type, e.key) for e in later] == [("put", "/w/a"), ("delete", "/w/b")]


def test_watch_sees_live_changes_and_ends_after_quiet_timeout(store: Store) -> None:
    since = store.revision()
    seen = threading.Semaphore(0)
    last_put = {"at": 0.0}

    def writer() -> None:
        # each change is written only once the watcher has seen the previous one: the watch is
        # live, not a replay of history it found when it started
        for i in range(5):
            if i and not seen.acquire(timeout=QUIET):
                return
            last_put["at"] = time.monotonic()
            store.put(f"/live/{i}", {"i": i})

    t = threading.Thread(target=writer)
    t.start()
    got = []
    # the quiet timeout must outlast one put on a loaded machine (an etcd fsync can take seconds)
    quiet = 5.0
    for e in store.watch("/live/", since=since, timeout=quiet):
        got.append(e.value)
        seen.release()
    ended = time.monotonic()
    t.join()
    assert got == [{"i": i} for i in range(5)]
    # it ended by itself once quiet, and not before a whole quiet timeout after the last change
    # (a lower bound only: a loaded machine makes it later, never earlier)
    assert ended - last_put["at"] >= quiet - 0.01


def _compact(store: Store, revision: int) -> None:
    """Drop the history up to `revision`, the way each store does it in production."""
    if isinstance(store, EtcdStore):
        httpx.post(store.endpoints[0] + "/v3/kv/compaction", json={"revision": str(revision), "physical": True}, timeout=5).raise_for_status()
    else:
        assert isinstance(store, SQLiteStore)
        store.keep_changes = 5  # keep only the last 5 changes; the next writes compact the rest
        for i in range(10):
            store.put("/compact/filler", {"i": i})


def test_watch_from_a_compacted_revision_raises_instead_of_skipping(store: Store) -> None:
    since = store.revision()
    for i in range(5):
        store.put("/wc/a", {"i": i})
    _compact(store, store.revision())
    with pytest.raises(WatchCompacted) as exc:
        take(store, "/wc/", since, 1)
    assert exc.value.compact_revision > since + 1
    # the way out: list, then watch from the current revision
    now = store.revision()
    assert [r.value for r in store.list("/wc/")] == [{"i": 4}]
    store.put("/wc/b", {"i": 5})
    assert [e.value for e in take(store, "/wc/", now, 1)] == [{"i": 5}]


def test_lease_expiry_removes_keys(store: Store) -> None:
    lease = store.grant(1)  # etcd rounds up to its minimum TTL (2 s with default timings)
    assert lease.ttl >= 1
    since = store.revision()
    store.put("/lease/a", {"v": 1}, lease=lease)
    assert store.cas("/lease/b", {"v": 2}, expect=0, lease=lease) is not None
    store.put("/lease/kept", {"v": 3})
    assert store.refresh(lease) is True
    wait_until(lambda: store.get("/lease/a") is None, 60, "the lease to expire")
    assert store.get("/lease/b") is None
    assert store.get("/lease/kept") is not None
    assert store.refresh(lease) is False
    with pytest.raises(LeaseExpired):
        store.put("/lease/c", {}, lease=lease)
    deletes = {e.key for e in take(store, "/lease/", since, 5) if e.type == "delete"}  # 3 puts, 2 deletes
    assert deletes == {"/lease/a", "/lease/b"}


def test_refresh_keeps_lease_alive_and_revoke_removes_keys(store: Store) -> None:
    # a TTL far above the refresh interval: a loaded machine may delay a refresh by seconds
    lease = store.grant(4)
    store.put("/lease2/a", {}, lease=lease)
    end = time.monotonic() + lease.ttl * 1.3
    while time.monotonic() < end:  # keeps refreshing for longer than the TTL; how long is not asserted
        assert store.refresh(lease)
        time.sleep(0.2)
    assert store.get("/lease2/a") is not None  # outlived its TTL thanks to the refreshes
    store.revoke(lease)
    assert store.get("/lease2/a") is None
    store.revoke(lease)  # twice is harmless


def test_ready(store: Store) -> None:
    assert store.ready() is True


def test_data_survives_reopen(store_url: str) -> None:
    s = open_store(store_url)
    rev = s.put("/persist/a", {"v": 1})
    s.close()
    s2 = open_store(store_url)
    try:
        rec = s2.get("/persist/a")
        assert rec is not None and rec.value == {"v": 1} and rec.revision == rev
        assert s2.put("/persist/b", {}) > rev  # the revision counter survives too
    finally:
        s2.close()


# -- implementation specifics --


def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = open_store(f"sqlite://{tmp_path}/x/y.db")
    assert isinstance(s, SQLiteStore) and s.path == f"{tmp_path}/x/y.db"
    s.close()
    monkeypatch.setenv("VAQUERO_DATA_DIR", str(tmp_path / "data"))
    s = open_store("sqlite://")
    assert isinstance(s, SQLiteStore) and s.path == str(tmp_path / "data" / "store.sqlite")
    s.close()
    s = open_store("sqlite://", data_dir=tmp_path / "other")
    assert isinstance(s, SQLiteStore) and s.path == str(tmp_path / "other" / "store.sqlite")
    s.close()
    e = open_store("etcd://10.0.0.1:2379,10.0.0.2:2379/vaquero/prod?timeout=0.5")
    assert isinstance(e, EtcdStore)
    assert e.endpoints == ["http://10.0.0.1:2379", "http://10.0.0.2:2379"] and e.prefix == "/vaquero/prod" and e.timeout == 0.5
    e.close()
    e = open_store("etcd+https://a:2379")
    assert isinstance(e, EtcdStore) and e.endpoints == ["https://a:2379"] and e.prefix == ""
    e.close()
    for bad in ("nothing", "mysql://x", "etcd://"):
        with pytest.raises(ValueError):
            open_store(bad)


def test_etcd_prefixes_isolate_installations(etcd_cluster, etcd_prefix: str) -> None:
    a = EtcdStore(etcd_cluster.endpoints, prefix=etcd_prefix + "-a")
    b = EtcdStore(etcd_cluster.endpoints, prefix=etcd_prefix + "-b")
    try:
        a.put("/hosts/x", {"site": "a"})
        b.put("/hosts/x", {"site": "b"})
        a_rec, b_rec = a.get("/hosts/x"), b.get("/hosts/x")
        assert a_rec is not None and b_rec is not None
        assert (a_rec.value, b_rec.value) == ({"site": "a"}, {"site": "b"})
        assert [r.key for r in a.list("/")] == ["/hosts/x"]
        raw = EtcdStore(etcd_cluster.endpoints)
        assert {r.key for r in raw.list(etcd_prefix)} == {etcd_prefix + "-a/hosts/x", etcd_prefix + "-b/hosts/x"}
        raw.close()
    finally:
        a.close()
        b.close()


def test_etcd_fails_over_from_a_dead_endpoint(etcd_cluster, etcd_prefix: str) -> None:
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    s = EtcdStore([dead, *etcd_cluster.endpoints], prefix=etcd_prefix)
    try:
        s.put("/f", {"ok": True})
        rec = s.get("/f")
        assert rec is not None and rec.value == {"ok": True}
        assert s.endpoints[s._current] != dead  # it moved on, and stays on a live member
    finally:
        s.close()
