"""vaquero.state: the Store (SQLite by default, etcd for HA), the host state machine, leader election.

`open_store(url)` picks the implementation from a URL:

- ``sqlite:///var/lib/vaquero/store.sqlite``: one SQLite file (WAL); ``sqlite://`` alone uses
  ``<data_dir>/store.sqlite`` where data_dir is the argument, ``$VAQUERO_DATA_DIR`` or ``~/.local/share/vaquero``.
- ``etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379/vaquero``: etcd over its v3 JSON gateway,
  failing over between the members, every key under the prefix (``/vaquero``). ``etcd+https://``
  talks HTTPS. ``?timeout=2`` sets the per-call timeout in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs

from .store import Lease, LeaseExpired, Record, Store, StoreUnavailable, WatchCompacted, WatchEvent

__all__ = ["Lease", "LeaseExpired", "Record", "Store", "StoreUnavailable", "WatchCompacted", "WatchEvent", "default_data_dir", "open_store"]


def default_data_dir() -> Path:
    env = os.environ.get("VAQUERO_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vaquero"


def open_store(url: str, *, data_dir: str | Path | None = None) -> Store:
    """Open the Store a URL names (see the module docstring). ValueError for a URL it does not understand."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"store URL {url!r}: expected sqlite:///path/to/file.db or etcd://host:2379[,host:2379...][/prefix]")
    rest, _, query = rest.partition("?")
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        if rest in ("", "/"):
            path = Path(data_dir) if data_dir else default_data_dir()
            return SQLiteStore(path / "store.sqlite")
        return SQLiteStore(rest if rest == ":memory:" else os.path.expanduser(rest))
    if scheme in ("etcd", "etcd+http", "etcd+https"):
        from .etcd import EtcdStore

        hosts, _, prefix = rest.partition("/")
        http = "https" if scheme == "etcd+https" else "http"
        endpoints = [f"{http}://{h.strip()}" for h in hosts.split(",") if h.strip()]
        if not endpoints:
            raise ValueError(f"store URL {url!r}: no etcd endpoint")
        timeout = float(params.get("timeout", 2.0))
        return EtcdStore(endpoints, prefix=f"/{prefix.strip('/')}" if prefix.strip("/") else "", timeout=timeout)
    raise ValueError(f"store URL {url!r}: unknown scheme {scheme!r} (sqlite or etcd)")
