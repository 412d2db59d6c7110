"""Small builders of SoT objects for the policy tests (no files, no loader)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from vaquero.sot.loader import SoT
from vaquero.sot.models import Cluster, Host

_macs = itertools.count(1)


def host(name: str, roles: tuple[str, ...] = (), **fields: Any) -> Host:
    n = next(_macs)
    return Host(name=name, macs=[f"02:00:00:{(n >> 16) & 255:02x}:{(n >> 8) & 255:02x}:{n & 255:02x}"], roles=list(roles), **fields)


def cluster(name: str, hosts: list[Host] | int, depends_on: tuple[str, ...] = (), **policy: Any) -> Cluster:
    if isinstance(hosts, int):
        hosts = [host(f"{name}-h{i}") for i in range(hosts)]
    return Cluster(apiVersion="vaquero/v1", kind="Cluster", name=name, site="s", profile="p", depends_on=list(depends_on), policy=policy, hosts=hosts)


def sot(*clusters: Cluster, sha: str | None = None) -> SoT:
    return SoT(root=Path("/nonexistent"), sha=sha, label="test", clusters={c.name: c for c in clusters})
