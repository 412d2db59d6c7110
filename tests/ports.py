"""Free loopback ports for the servers tests start (BMC emulators, agents, SSH stand-ins)."""

from __future__ import annotations

import socket


def free_port(kind: int = socket.SOCK_STREAM, count: int = 1) -> int:
    """A free loopback port (the first of ``count`` consecutive free ones)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count > 65000:
            continue
        ok = True
        for p in range(base, base + count):
            try:
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
                break
        if ok:
            return base
    raise RuntimeError("no free port range")
