"""A private network for lab hosts: a network namespace with a bridge, taps for QEMU, and
optionally a second namespace (another box on the wire, e.g. an existing DHCP server).

Everything lives inside namespaces this class creates; `close()` removes them and every
process started through it, so a failed test leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Sequence
from ipaddress import IPv4Interface
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from .kernel import LabError

log = logging.getLogger(__name__)


def _ip(*args: str) -> None:
    res = subprocess.run(["ip", *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {res.stderr.strip()}")


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, taps)")


class LabNetwork:
    """`with LabNetwork(address="10.90.0.1/24") as net:` — a namespace with bridge `bridge`."""

    def __init__(self, address: str = "10.90.0.1/24", bridge: str = "vq-br0", prefix: str = "vq", ipv6: str | None = "fd90::1/64") -> None:
        self.name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self.bridge = bridge
        self.address = IPv4Interface(address)
        self.ipv6 = ipv6  # a ULA inside the namespace, so dnsmasq can send router adverts
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self._taps = 0

    # -- lifecycle --
    def __enter__(self) -> LabNetwork:
        self.create()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def create(self) -> None:
        require_root()
        _ip("netns", "add", self.name)
        self.namespaces.append(self.name)
        _ip("-n", self.name, "link", "set", "lo", "up")
        _ip("-n", self.name, "link", "add", self.bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0")
        _ip("-n", self.name, "addr", "add", str(self.address), "dev", self.bridge)
        if self.ipv6:
            _ip("-n", self.name, "addr", "add", self.ipv6, "dev", self.bridge, "nodad")
        _ip("-n", self.name, "link", "set", self.bridge, "up")

    def close(self) -> None:
        for p in reversed(self.procs):
            self.stop(p)
        self.procs.clear()
        for ns in reversed(self.namespaces):
            # Kill anything still running inside (processes we started through `ip netns exec`).
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()

    # -- wiring --
    def add_tap(self) -> str:
        self._taps += 1
        tap = f"vqtap{self._taps}"
        _ip("-n", self.name, "tuntap", "add", "dev", tap, "mode", "tap")
        _ip("-n", self.name, "link", "set", tap, "master", self.bridge)
        _ip("-n", self.name, "link", "set", tap, "up")
        return tap

    def add_peer(self, address: str) -> str:
        """A second namespace joined to the bridge by a veth pair, with `address` on its end."""
        peer = f"{self.name}-p{len(self.namespaces)}"
        _ip("netns", "add", peer)
        self.namespaces.append(peer)
        _ip("-n", peer, "link", "set", "lo", "up")
        side = f"vqv{len(self.namespaces)}"
        _ip("-n", self.name, "link", "add", side, "type", "veth", "peer", "name", "eth0", "netns", peer)
        _ip("-n", self.name, "link", "set", side, "master", self.bridge)
        _ip("-n", self.name, "link", "set", side, "up")
        _ip("-n", peer, "addr", "add", address, "dev", "eth0")
        _ip("-n", peer, "link", "set", "eth0", "up")
        return peer

    # -- processes --
    def command(self, cmd: Sequence[str], ns: str | None = None) -> list[str]:
        return ["ip", "netns", "exec", ns or self.name, *cmd]

    def popen(self, cmd: Sequence[str], *, ns: str | None = None, log_file: Path | None = None, **kw: Any) -> subprocess.Popen[bytes]:
        out: IO[bytes] | int = subprocess.DEVNULL
        if log_file is not None:
            out = open(log_file, "ab")
        try:
            proc = subprocess.Popen(self.command(cmd, ns), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kw)
        finally:
            if not isinstance(out, int):
                out.close()  # the child has its own copy
        self.procs.append(proc)
        return proc

    def run(self, cmd: Sequence[str], *, ns: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(cmd, ns), capture_output=True, text=True, timeout=timeout)

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], timeout: float = 5) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout)

    def wait_port(self, host: str, port: int, timeout: float = 20, ns: str | None = None) -> None:
        """Wait until a TCP port answers inside the namespace."""
        deadline = time.monotonic() + timeout
        probe = f"import socket;socket.create_connection(('{host}',{port}),0.5).close()"
        import sys

        while time.monotonic() < deadline:
            if self.run([sys.executable, "-c", probe], ns=ns, timeout=5).returncode == 0:
                return
            time.sleep(0.2)
        raise LabError(f"nothing listens on {host}:{port} in {ns or self.name} after {timeout}s")
