"""Property test: random sequences of put / cas / delete / list on each Store agree with a plain
dict model, revision rules included (hypothesis generates the sequences, the same ones for both)."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaquero.state import Store, open_store

KEYS = st.sampled_from(["/m/a", "/m/b", "/m/b/c", "/m/ba", "/m/é", "/n"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), KEYS, st.integers(0, 9)),
        st.tuples(st.just("cas_current"), KEYS, st.integers(0, 9)),  # expect = the revision we know
        st.tuples(st.just("cas_stale"), KEYS, st.integers(0, 9)),  # expect = an older revision
        st.tuples(st.just("create"), KEYS, st.integers(0, 9)),  # expect = 0
        st.tuples(st.just("delete"), KEYS, st.just(0)),
    ),
    max_size=25,
)


def _run(store: Store, ops: list[tuple[str, str, int]]) -> None:
    model: dict[str, tuple[dict[str, Any], int]] = {}
    last_rev = store.revision()
    for op, key, n in ops:
        value = {"n": n}
        known = model.get(key)
        if op == "put":
            rev = store.put(key, value)
            assert rev > last_rev
            model[key], last_rev = (value, rev), rev
        elif op in ("cas_current", "cas_stale", "create"):
            expect = {"cas_current": known[1] if known else 0, "cas_stale": (known[1] - 1) if known else 10**9, "create": 0}[op]
            should_win = (known[1] if known else 0) == expect
            rev_or_none = store.cas(key, value, expect=expect)
            assert (rev_or_none is not None) == should_win, (op, key, expect, known)
            if rev_or_none is not None:
                assert rev_or_none > last_rev
                model[key], last_rev = (value, rev_or_none), rev_or_none
        else:
            assert store.delete(key) == (key in model)
            if key in model:
                del model[key]
                last_rev = store.revision()
        rec = store.get(key)
        assert (rec.value, rec.revision) == model[key] if rec else key not in model
    listed = [(r.key, r.value, r.revision) for r in store.list("/m/")]
    assert listed == sorted((k, v, r) for k, (v, r) in model.items() if k.startswith("/m/"))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_store_agrees_with_a_dict_model(store_url: str, ops: list[tuple[str, str, int]]) -> None:
    # a fresh namespace per example: a new prefix on etcd, a new file on SQLite
    url = store_url.replace("state.db", f"model-{uuid.uuid4().hex[:8]}.db") if store_url.startswith("sqlite") else f"{store_url}/{uuid.uuid4().hex[:8]}"
    store = open_store(url)
    try:
        _run(store, ops)
    finally:
        store.close()
