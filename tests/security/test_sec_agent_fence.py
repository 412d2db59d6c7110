"""Issue 10 item 17, agents' side: a bundle carries the fencing token of the leader whose store state
it was built from, and the store's identity; the agent refuses a bundle of the same store with a
lower fence than one it accepted, and keeps that mark across restarts.

Real pieces: controller processes (`ctl_main.py`: the API app with the agents' routes, HTTPS, over
SQLite), real leader elections on that SQLite store (`LeaderElector`), and the agent as
`vaquero agent --controller` runs it in-process (sync client + boot server, `RunningAgent`). The
stale controller serves a copy of the store taken while the previous leader led (what a lagging
replica or a late answer built from an older read looks like), on the same address the agent
talks to, as a load balancer would hand it over.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "federation"))

from fed_helpers import (
    AGENT_TOKENS,
    SHA,
    Applied,
    Controller,
    Pki,
    RunningAgent,
    TokenFiles,
    applied_sot,  # noqa: F401 - fixture
    free_port,
    move,
    pki,  # noqa: F401 - fixture
    tokens_files,  # noqa: F401 - fixture
    wait_for,
)

from vaquero.federation.bundle import store_identity
from vaquero.federation.cache import FenceMark, bundle_fence
from vaquero.federation.errors import FederationError
from vaquero.state.leader import LeaderElector
from vaquero.state.sqlite import SQLiteStore

ETCD3 = "/v1/boot/ipxe/0c-c4-7a-10-00-03"
AGENT = "east-agent-1"


def lead(store: SQLiteStore, who: str) -> LeaderElector:
    # A long TTL: the stale copy keeps this leader's key for the whole test (its lease is not refreshed there).
    e = LeaderElector(store, identity=who, ttl=300).start()
    assert e.wait_for_leadership(60), f"{who} did not become leader"
    return e


def snapshot(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite store (WAL included), as a backup or a lagging replica holds it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def controller_on(tmp: Path, name: str, applied: Applied, certs: Pki, tokens: TokenFiles, port: int) -> Controller:
    (tmp / name).mkdir(exist_ok=True)
    c = Controller(tmp / name, applied, certs, tokens)
    c.port = port  # the address the agent knows; which controller answers there is what changes
    c.start()
    return c


def fence_file(state_dir: Path) -> dict[str, object]:
    value: dict[str, object] = json.loads((state_dir / "federation" / "fence.json").read_text())
    return value


@pytest.fixture
def fed(request: pytest.FixtureRequest) -> tuple[Applied, Pki, TokenFiles]:
    """The federation tests' fixtures (the example SoT applied in SQLite, a CA, token files)."""
    return request.getfixturevalue("applied_sot"), request.getfixturevalue("pki"), request.getfixturevalue("tokens_files")


@pytest.fixture
def closers() -> Iterator[list[object]]:
    things: list[object] = []
    yield things
    for t in reversed(things):
        for method in ("stop", "close"):
            if hasattr(t, method):
                try:
                    getattr(t, method)()
                except Exception as exc:  # cleanup must go on
                    logging.getLogger(__name__).warning("cleanup of %r: %s", t, exc)
                break


def test_lower_fence_refused_higher_accepted_and_the_mark_survives_a_restart(
    tmp_path: Path, fed: tuple[Applied, Pki, TokenFiles], closers: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    applied, certs, tokens = fed
    caplog.set_level(logging.INFO, logger="vaquero.federation")
    store = applied.store()
    closers.append(store)
    sid = store_identity(store)

    # Leader A; the state it leaves: etcd3 ready (intent localboot). A copy of the store is taken now.
    move(store, "etcd3", "ready")
    a = lead(store, "ctl-a")
    fence_a = a.token
    stale_applied = Applied(applied.root, tmp_path / "stale" / "store.sqlite")
    snapshot(applied.store_path, stale_applied.store_path)
    a.stop()

    # Leader B takes over and starts installing etcd3 (intent install).
    b = lead(store, "ctl-b")
    closers.append(b)
    fence_b = b.token
    assert fence_a is not None and fence_b is not None and fence_b > fence_a
    move(store, "etcd3", "pending", "netbooting", plan="p-9", attempt=1)

    port = free_port()
    fresh = controller_on(tmp_path, "fresh", applied, certs, tokens, port)
    closers.append(fresh)
    state_dir = tmp_path / "agent"
    agent = RunningAgent(fresh, state_dir, free_port())
    closers.append(agent)

    # B's bundle (the "fence 5" of the issue) is accepted and served: etcd3 installs.
    assert agent.client.bundle is not None
    assert (agent.client.bundle["fence"], agent.client.bundle["store_id"]) == (fence_b, sid)
    good = agent.client.version
    assert "installing etcd3" in agent.get(ETCD3).text
    assert fence_file(state_dir)["fence"] == fence_b and fence_file(state_dir)["store_id"] == sid

    # The stale controller answers on the same address: its bundle (A's fence, the "fence 4") would
    # send etcd3 back to local boot. Check that it really differs, then that the agent refuses it.
    fresh.stop()
    stale = controller_on(tmp_path, "stale", stale_applied, certs, tokens, port)
    closers.append(stale)
    with stale.client(AGENT_TOKENS[AGENT]) as http:
        offered = http.get(f"/v1/agents/{AGENT}/bundle").json()
    assert (offered["fence"], offered["store_id"], offered["hosts"]["etcd3"]["intent"]) == (fence_a, sid, "localboot")
    wait_for(lambda: agent.client.rejected == offered["version"], 60, "the stale bundle refused")
    assert f"fence {fence_a}" in (agent.client.rejected_why or "") and f"fence {fence_b}" in (agent.client.rejected_why or "")
    assert agent.client.version == good and agent.client.bundle["fence"] == fence_b
    assert "installing etcd3" in agent.get(ETCD3).text  # still served from B's bundle
    assert json.loads((state_dir / "federation" / "bundle.json").read_text())["version"] == good
    refusals = [r for r in caplog.records if "refused" in r.getMessage() and offered["version"] in r.getMessage()]
    assert refusals and refusals[0].levelno == logging.ERROR and "dc-east" in refusals[0].getMessage() and SHA in refusals[0].getMessage()
    stale_store = stale_applied.store()
    closers.append(stale_store)

    def heartbeat_says_why() -> bool:
        rec = stale_store.get(f"/agents/{AGENT}")
        return rec is not None and rec.value.get("rejected") == offered["version"] and "stale leader fence" in (rec.value.get("rejected_why") or "")

    wait_for(heartbeat_says_why, 60, "the heartbeat to report the refusal")
    assert stale_store.get(f"/agents/{AGENT}").value["version"] == good

    # Leader C (the "fence 6"): accepted as soon as a controller serving it answers.
    stale.stop()
    b.stop()
    c = lead(store, "ctl-c")
    closers.append(c)
    fence_c = c.token
    assert fence_c is not None and fence_c > fence_b
    fresh2 = controller_on(tmp_path, "fresh2", applied, certs, tokens, port)
    closers.append(fresh2)
    wait_for(lambda: (agent.client.bundle or {}).get("fence") == fence_c, 60, "C's bundle accepted")
    assert fence_file(state_dir)["fence"] == fence_c
    newest = agent.client.version

    # A restart keeps the mark: the agent comes back to the stale controller and still refuses it.
    agent.stop()
    fresh2.stop()
    stale2 = controller_on(tmp_path, "stale2", stale_applied, certs, tokens, port)
    closers.append(stale2)
    agent = RunningAgent(stale2, state_dir, free_port())
    closers.append(agent)
    assert agent.client.mark.fence == fence_c  # read back from fence.json
    wait_for(lambda: agent.client.rejected == offered["version"], 60, "the stale bundle refused after a restart")
    assert agent.client.version == newest and "installing etcd3" in agent.get(ETCD3).text
    assert fence_file(state_dir)["fence"] == fence_c


def test_a_rebuilt_store_is_a_new_identity_accepted_with_a_warning(
    tmp_path: Path, fed: tuple[Applied, Pki, TokenFiles], closers: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    applied, certs, tokens = fed
    caplog.set_level(logging.INFO, logger="vaquero.federation")
    store = applied.store()
    closers.append(store)
    for i in range(40):  # history, so the old store's fence is well above what a rebuilt store starts at
        store.put(f"/scratch/{i}", {"i": i})
    old_id = store_identity(store)
    e = lead(store, "ctl-old")
    closers.append(e)
    old_fence = e.token
    assert old_fence is not None

    port = free_port()
    ctl = controller_on(tmp_path, "old", applied, certs, tokens, port)
    closers.append(ctl)
    state_dir = tmp_path / "agent"
    agent = RunningAgent(ctl, state_dir, free_port())
    closers.append(agent)
    assert fence_file(state_dir) | {"time": 0} == {"store_id": old_id, "fence": old_fence, "time": 0}

    # The operator rebuilds the store (new etcd cluster, new SQLite file) and applies the revision again.
    rebuilt = Applied(applied.root, tmp_path / "rebuilt" / "store.sqlite")
    rebuilt.store_path.parent.mkdir()
    new_store = rebuilt.store()
    closers.append(new_store)
    new_store.put("/sites-applied/current", {"sha": SHA, "root": str(applied.root), "plan": "p-test-2"})
    new_id = store_identity(new_store)
    ne = lead(new_store, "ctl-new")
    closers.append(ne)
    new_fence = ne.token
    assert new_id != old_id and new_fence is not None and new_fence < old_fence

    ctl.stop()
    ctl2 = controller_on(tmp_path, "new", rebuilt, certs, tokens, port)
    closers.append(ctl2)
    wait_for(lambda: (agent.client.bundle or {}).get("store_id") == new_id, 60, "the rebuilt store's bundle accepted")
    assert agent.client.bundle["fence"] == new_fence and agent.client.rejected is None
    assert fence_file(state_dir)["store_id"] == new_id and fence_file(state_dir)["fence"] == new_fence
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "new controller store" in r.getMessage()]
    assert warnings and new_id in warnings[0].getMessage() and old_id in warnings[0].getMessage()

    # From then on the rebuilt store's fences count: a bundle built while it had no leader is refused.
    ne.stop()
    wait_for(lambda: agent.client.rejected is not None, 60, "a leaderless bundle of the rebuilt store refused")
    assert "no leader" in (agent.client.rejected_why or "") and agent.client.bundle["fence"] == new_fence


def test_a_killed_agent_process_keeps_its_mark(tmp_path: Path, fed: tuple[Applied, Pki, TokenFiles], closers: list[object]) -> None:
    """`vaquero agent --controller` as a process: SIGKILLed after accepting leader B's bundle, started again
    while only a controller serving the older leader's state answers: it refuses that bundle and serves B's."""
    import test_federation_agent_process as agent_process  # the process wiring of tests/federation

    applied, certs, tokens = fed
    store = applied.store()
    closers.append(store)
    sid = store_identity(store)
    move(store, "etcd3", "ready")
    a = lead(store, "ctl-a")
    stale_applied = Applied(applied.root, tmp_path / "stale" / "store.sqlite")
    snapshot(applied.store_path, stale_applied.store_path)
    fence_a = a.token
    a.stop()
    b = lead(store, "ctl-b")
    closers.append(b)
    move(store, "etcd3", "pending", "netbooting", plan="p-9", attempt=1)

    port = free_port()
    fresh = controller_on(tmp_path, "fresh", applied, certs, tokens, port)
    closers.append(fresh)
    state_dir, log = tmp_path / "agent", tmp_path / "agent.log"
    proc = agent_process.AgentProcess(fresh, state_dir, free_port(), log)
    closers.append(proc)
    wait_for(lambda: (state_dir / "federation" / "fence.json").is_file() and fence_file(state_dir)["fence"] == b.token, 60, "B's bundle accepted")
    good = json.loads((state_dir / "federation" / "bundle.json").read_text())["version"]
    assert "installing etcd3" in proc.get(ETCD3).text

    proc.kill()
    fresh.stop()
    stale = controller_on(tmp_path, "stale", stale_applied, certs, tokens, port)
    closers.append(stale)
    proc = agent_process.AgentProcess(stale, state_dir, free_port(), log)
    closers.append(proc)
    stale_store = stale_applied.store()
    closers.append(stale_store)

    def refused() -> bool:
        rec = stale_store.get(f"/agents/{AGENT}")
        return rec is not None and "stale leader fence" in (rec.value.get("rejected_why") or "")

    wait_for(refused, 60, "the restarted process to refuse the stale bundle and say so")
    rec = stale_store.get(f"/agents/{AGENT}").value
    assert rec["version"] == good and f"fence {fence_a}" in rec["rejected_why"] and f"fence {b.token}" in rec["rejected_why"]
    assert "installing etcd3" in proc.get(ETCD3).text
    assert fence_file(state_dir)["store_id"] == sid and fence_file(state_dir)["fence"] == b.token
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{") and "stale leader fence" in line]
    assert lines and lines[0]["level"].lower() == "error" and lines[0].get("site") == "dc-east" and lines[0].get("refused_sha") == SHA


@pytest.mark.parametrize(
    "fields, why",
    [
        ({}, "store_id"),
        ({"store_id": "../x", "fence": 3}, "store_id"),
        ({"store_id": "a" * 32, "fence": -1}, "fence"),
        ({"store_id": "a" * 32, "fence": True}, "fence"),
        ({"store_id": "a" * 32, "fence": "7"}, "fence"),
        ({"store_id": "a" * 32, "fence": 1 << 70}, "fence"),
    ],
)
def test_a_bundle_without_a_typed_fence_is_refused(fields: dict[str, object], why: str) -> None:
    with pytest.raises(FederationError, match=why):
        bundle_fence(fields)


def test_the_mark_falls_back_to_the_cached_bundle_when_fence_json_is_torn(tmp_path: Path) -> None:
    path = tmp_path / "fence.json"
    path.write_text('{"store_id": "abcdefgh", "fen')
    mark = FenceMark(path, {"store_id": "abcdefgh", "fence": 9})
    assert (mark.store_id, mark.fence) == ("abcdefgh", 9)
    assert mark.refusal("abcdefgh", 8) is not None and mark.refusal("abcdefgh", None) is not None
    assert mark.refusal("abcdefgh", 9) is None and mark.refusal("ijklmnop", 1) is None
    mark.accept("abcdefgh", 12)
    assert json.loads(path.read_text())["fence"] == 12 and FenceMark(path, None).fence == 12
