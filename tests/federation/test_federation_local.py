"""The agent's on-disk parts without a controller: the event queue and the bundle cache."""

from __future__ import annotations

import json

import pytest

from vaquero.federation.cache import BundleCache
from vaquero.federation.errors import FederationError
from vaquero.federation.queue import EventQueue
from vaquero.federation.tokens import AgentTokens, TokenError


def test_queue_is_durable_ordered_and_deduplicated(tmp_path):
    q = EventQueue(tmp_path / "events.sqlite")
    a = q.put({"host": "h1", "state": "rebooting", "reason": "callback"})
    b = q.put({"host": "h1", "state": "validating", "reason": "up", "id": "fixed-id-0001"})
    assert q.put({"host": "h1", "state": "validating", "reason": "again", "id": "fixed-id-0001"}) == b
    with pytest.raises(ValueError):
        q.put({"state": "ready"})
    q.close()
    q = EventQueue(tmp_path / "events.sqlite")  # a restart
    assert [e["id"] for e in q.peek()] == [a, b] and len(q) == 2
    assert q.peek()[1]["reason"] == "up" and isinstance(q.peek()[0]["time"], float)
    assert q.ack([a, "unknown"]) == 1 and [e["id"] for e in q.peek()] == [b]
    q.close()


def test_cache_refuses_paths_outside_its_folder_and_survives_a_torn_file(tmp_path):
    cache = BundleCache(tmp_path)
    good = {"format": 1, "agent": "a1", "version": "v1", "files": {"sites/s.yaml": {"text": "x"}, "bin/b": {"b64": "AAE="}}}
    folder = cache.save(good)
    assert (folder / "sites" / "s.yaml").read_text() == "x" and (folder / "bin" / "b").read_bytes() == b"\x00\x01"
    for bad in ("../escape", "/etc/passwd", "a/../../b", "a//b"):
        with pytest.raises(FederationError):
            cache.save({**good, "version": "v2", "files": {bad: {"text": "x"}}})
    assert not (tmp_path.parent / "escape").exists()
    assert cache.load() == json.loads(json.dumps(good))  # the failed saves left the last good bundle
    cache.path.write_text('{"format": 1, "ver')  # not what an atomic write leaves, but a disk can lie
    assert cache.load() is None


def test_agent_tokens_file_format(tmp_path):
    f = tmp_path / "tokens"
    f.write_text("# comment\nreader:read:0123456789abcdef0123\nedge-1:agent:secret-secret-secret-1\n")
    tokens = AgentTokens.load(f, env="")
    assert tokens.agents == ["edge-1"] and tokens.match("secret-secret-secret-1") == "edge-1" and tokens.match("nope") is None
    assert "secret" not in repr(tokens)
    f.write_text("edge-1:agent:short\n")
    with pytest.raises(TokenError) as exc:
        AgentTokens.load(f, env="")
    assert "short" not in str(exc.value)
