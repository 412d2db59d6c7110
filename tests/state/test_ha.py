"""etcd under failure: kill -9 members of the real 3-member cluster (a follower, then the leader),
writes go on with 2 of 3; with 2 of 3 down the store says so (etcd's own "no leader" answer, or the
client's timeout) instead of hanging. Durations are printed as figures, never asserted.
Every test puts the cluster back together (heal) whatever happens."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from waiting import wait_until

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
    # the production TTL: a 2 s lease can lapse on a starved machine, which is not what this tests
    elector = LeaderElector(etcd, identity="ctl", ttl=5.0, on_loss=lost.append).start()
    try:
        assert elector.wait_for_leadership(60)
        cluster.kill(follower)
        valid_at_kill = elector.deadline
        assert valid_at_kill is not None
        for i in range(50):  # 2 of 3: no write may fail
            etcd.put(f"/after-follower/{i}", {"i": i})
        assert len(etcd.list("/after-follower/")) == 50
        assert etcd.ready()
        # a keep-alive went through the 2 remaining members (the lease was extended after the kill)
        wait_until(lambda: (elector.deadline or 0) > valid_at_kill or lost, 60, "a lease refresh after the kill")
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
    assert elector.wait_for_leadership(60)
    killed = time.monotonic()
    cluster.kill(leader)
    _, failures = _write_until_ok(etcd, "/after/first", killed + 60)  # a bound on a hang, not a claim
    blip = time.monotonic() - killed
    figures["etcd: writes unavailable after kill -9 of the etcd leader, 2 of 3 left"] = f"{blip:.2f} s ({failures} failed attempts)"
    for i in range(50):
        etcd.put(f"/after/{i}", {"i": i})  # 2 of 3: every write succeeds
    assert etcd.get("/before") is not None and len(etcd.list("/after/")) == 51
    assert etcd.ready()
    # Our controller's lease outlives the etcd election as long as one keep-alive gets through
    # within ttl - margin; if it did not, it stepped down (safe) and leads again now.
    figures["etcd: controller leadership across an etcd leader kill (lease TTL 5 s)"] = "kept" if not lost else f"lost ({lost[0]}), then regained"
    try:
        assert elector.wait_for_leadership(60)
    finally:
        elector.stop()


def _refusal(call: object) -> str:
    """The StoreUnavailable message ``call`` ends in."""
    with pytest.raises(StoreUnavailable) as ei:
        call()  # type: ignore[operator]
    return str(ei.value)


def test_without_quorum_the_store_says_so_quickly(cluster: EtcdCluster, etcd: EtcdStore, figures: dict[str, str]) -> None:
    etcd.put("/q", {"v": 1})
    survivor = cluster.members[0]
    etcd._current = 0
    for m in cluster.members[1:]:
        cluster.kill(m)
    # right after the kill the survivor may still think it has a leader (etcd's check-quorum needs
    # up to two election timeouts to notice); once it has noticed, it refuses at once with
    # "no leader" instead of letting calls run into the client's timeout
    # The outage's writes go to another key: one that timed out before the survivor noticed may still
    # sit in its raft log and be committed once the quorum is back (etcd's semantics for a write whose
    # outcome is unknown), so it must not be the key whose survival is checked below.
    wait_until(lambda: "no leader" in _refusal(lambda: etcd.put("/q-outage", {"v": 2})), 60, "the survivor to answer 'no leader'")
    started = time.monotonic()
    assert etcd.ready() is False
    took_ready = time.monotonic() - started
    started = time.monotonic()
    put_error = _refusal(lambda: etcd.put("/q-outage", {"v": 2}))
    took_put = time.monotonic() - started
    started = time.monotonic()
    get_error = _refusal(lambda: etcd.get("/q"))
    took_get = time.monotonic() - started
    figures["etcd: 2 of 3 members down -> ready() False / put / get raise StoreUnavailable after"] = (
        f"{took_ready * 1000:.0f} / {took_put * 1000:.0f} / {took_get * 1000:.0f} ms"
    )
    # an answer from etcd, not a timeout: that is what "quickly" means, whatever the machine's load
    assert "no leader" in put_error and "Timeout" not in put_error, put_error
    assert "no leader" in get_error and "Timeout" not in get_error, get_error
    assert survivor.running
    # a member coming back restores the quorum: the same store object works again
    cluster.restart(cluster.members[1])
    wait_until(etcd.ready, 60, "the quorum to come back")
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
    error = _refusal(lambda: etcd.put("/x", {}))
    # ended by the client's timeout (or by etcd's "no leader" if the survivor noticed first), not a hang
    assert "Timeout" in error or "no leader" in error, error
    assert etcd.ready() is False  # the probe has its own, shorter timeout


def test_watch_resumes_on_another_member_without_gaps_or_repeats(cluster: EtcdCluster, etcd: EtcdStore) -> None:
    leader = cluster.leader()
    assert leader is not None
    victim = next(m for m in cluster.members if m is not leader)  # keep the quorum: kill a follower
    etcd._current = cluster.members.index(victim)  # the watch stream goes to the member we kill
    since = etcd.revision()
    got: list[int] = []
    done = threading.Event()

    def watcher() -> None:
        # a long quiet timeout: the reconnect after the kill may take seconds on a loaded machine
        for event in etcd.watch("/wf/", since=since, timeout=60.0):
            got.append(event.value["i"] if event.value else -1)
            if len(got) >= 20:
                break
        done.set()

    t = threading.Thread(target=watcher)
    t.start()
    writer = EtcdStore([m.client_url for m in cluster.members if m is not victim], prefix=etcd.prefix)
    try:
        for i in range(10):
            writer.put(f"/wf/{i}", {"i": i})
        wait_until(lambda: len(got) >= 10, 60, "the watch on the victim to see the first 10 events")
        cluster.kill(victim)
        for i in range(10, 20):
            writer.put(f"/wf/{i}", {"i": i})
        t.join(timeout=120)
        assert done.is_set()
        assert got == list(range(20))
    finally:
        writer.close()
