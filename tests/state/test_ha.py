"""etcd under failure: kill -9 members of the real 3-member cluster (a follower, then the leader),
writes go on with 2 of 3; with 2 of 3 down the store says so quickly instead of hanging.
Every test puts the cluster back together (heal) whatever happens."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from vaquero.state import StoreUnavailable
from vaquero.state.etcd import EtcdStore
from vaquero.state.leader import LeaderElector

if TYPE_CHECKING:
    from conftest import EtcdCluster

pytestmark = pytest.mark.slow  # kills and restarts etcd members: ~15 s


@pytest.fixture
def cluster(etcd_cluster: EtcdCluster) -> Iterator[EtcdCluster]:
    etcd_cluster.heal()
    try:
        yield etcd_cluster
    finally:
        etcd_cluster.heal()


@pytest.fixture
def etcd(cluster: EtcdCluster, etcd_prefix: str) -> Iterator[EtcdStore]:
    s = EtcdStore(cluster.endpoints, prefix=etcd_prefix, timeout=2.0)
    try:
        yield s
    finally:
        s.close()


def _write_until_ok(store: EtcdStore, key: str, deadline: float) -> tuple[int, int]:
    """Write until one succeeds; returns (revision, failed attempts)."""
    failures = 0
    while True:
        try:
            return store.put(key, {"t": time.time()}), failures
        except StoreUnavailable:
            failures += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_writes_keep_working_when_a_follower_is_killed(cluster: EtcdCluster, etcd: EtcdStore) -> None:
    leader = cluster.leader()
    assert leader is not None
    follower = next(m for m in cluster.members if m is not leader)
    # the client talks to the member we are about to kill: failover is exercised, not dodged
    etcd._current = cluster.members.index(follower)
    lost: list[str] = []
    elector = LeaderElector(etcd, identity="ctl", ttl=2.0, on_loss=lost.append).start()
    try:
        assert elector.wait_for_leadership(5)
        cluster.kill(follower)
        for i in range(50):  # 2 of 3: no write may fail
            etcd.put(f"/after-follower/{i}", {"i": i})
        assert len(etcd.list("/after-follower/")) == 50
        assert etcd.ready()
        time.sleep(1.0)
        assert elector.is_leader and not lost  # our controller's leadership did not even blink
    finally:
        elector.stop()


def test_writes_keep_working_when_the_leader_is_killed_with_all_others_up(cluster: EtcdCluster, etcd: EtcdStore, figures: dict[str, str]) -> None:
    leader = cluster.leader()
    assert leader is not None
    etcd._current = cluster.members.index(leader)
    etcd.put("/before", {})
    lost: list[str] = []
    elector = LeaderElector(etcd, identity="ctl", ttl=5.0, on_loss=lost.append).start()  # the production default
    assert elector.wait_for_leadership(5)
    killed = time.monotonic()
    cluster.kill(leader)
    _, failures = _write_until_ok(etcd, "/after/first", killed + 10)
    blip = time.monotonic() - killed
    figures["etcd: writes unavailable after kill -9 of the etcd leader, 2 of 3 left"] = f"{blip:.2f} s ({failures} failed attempts)"
    assert blip < 5
    for i in range(50):
        etcd.put(f"/after/{i}", {"i": i})  # 2 of 3: every write succeeds
    assert etcd.get("/before") is not None and len(etcd.list("/after/")) == 51
    assert etcd.ready()
    # Our controller's lease outlives the etcd election as long as one keep-alive gets through
    # within ttl - margin; if it did not, it stepped down (safe) and leads again now.
    figures["etcd: controller leadership across an etcd leader kill (lease TTL 5 s)"] = "kept" if not lost else f"lost ({lost[0]}), then regained"
    try:
        assert elector.wait_for_leadership(5)
    finally:
        elector.stop()


def test_without_quorum_the_store_says_so_quickly(cluster: EtcdCluster, etcd: EtcdStore, figures: dict[str, str]) -> None:
    etcd.put("/q", {"v": 1})
    survivor = cluster.members[0]
    etcd._current = 0
    for m in cluster.members[1:]:
        cluster.kill(m)
    # right after the kill the survivor may still think it has a leader (etcd's check-quorum needs
    # up to two election timeouts to notice); after that every call must fail fast, not hang
    time.sleep(2.2)
    started = time.monotonic()
    assert etcd.ready() is False
    took_ready = time.monotonic() - started
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        etcd.put("/q", {"v": 2})
    took_put = time.monotonic() - started
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        etcd.get("/q")
    took_get = time.monotonic() - started
    figures["etcd: 2 of 3 members down -> ready() False / put / get raise StoreUnavailable after"] = (
        f"{took_ready * 1000:.0f} / {took_put * 1000:.0f} / {took_get * 1000:.0f} ms"
    )
    assert took_ready < 1.0 and took_put < 1.0 and took_get < 1.0
    assert survivor.running
    # a member coming back restores the quorum: the same store object works again
    cluster.restart(cluster.members[1])
    deadline = time.monotonic() + 15
    while not etcd.ready():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    rec = etcd.get("/q")
    assert rec is not None and rec.value == {"v": 1}


def test_without_quorum_right_after_the_kill_calls_are_bounded_by_the_timeout(cluster: EtcdCluster, etcd: EtcdStore) -> None:
    """Before the survivor notices it lost quorum, calls hang in etcd: the client timeout bounds them."""
    leader = cluster.leader()
    assert leader is not None
    etcd._current = cluster.members.index(leader)
    for m in cluster.members:
        if m is not leader:
            cluster.kill(m)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        etcd.put("/x", {})
    assert time.monotonic() - started < etcd.timeout + 1.0
    started = time.monotonic()
    assert etcd.ready() is False
    assert time.monotonic() - started < 3 * etcd.ready_timeout + 0.5  # the probe has its own, shorter timeout


def test_watch_resumes_on_another_member_without_gaps_or_repeats(cluster: EtcdCluster, etcd: EtcdStore) -> None:
    leader = cluster.leader()
    assert leader is not None
    victim = next(m for m in cluster.members if m is not leader)  # keep the quorum: kill a follower
    etcd._current = cluster.members.index(victim)  # the watch stream goes to the member we kill
    since = etcd.revision()
    got: list[int] = []
    done = threading.Event()

    def watcher() -> None:
        for event in etcd.watch("/wf/", since=since, timeout=2.0):
            got.append(event.value["i"] if event.value else -1)
        done.set()

    t = threading.Thread(target=watcher)
    t.start()
    writer = EtcdStore([m.client_url for m in cluster.members if m is not victim], prefix=etcd.prefix)
    try:
        for i in range(10):
            writer.put(f"/wf/{i}", {"i": i})
        time.sleep(0.3)
        cluster.kill(victim)
        for i in range(10, 20):
            writer.put(f"/wf/{i}", {"i": i})
        t.join(timeout=15)
        assert done.is_set()
        assert got == list(range(20))
    finally:
        writer.close()
