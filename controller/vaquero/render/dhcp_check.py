"""Ask the DHCP daemon itself whether a rendered config is valid (``dnsmasq --test``, ``kea-dhcp4 -t``).

The renderer escapes every value, but only the daemon knows its own grammar; the agent (before it
replaces dnsmasq's config) and the ``dhcp_config`` module (before it writes the file) both check
here, so a config one accepts the other accepts too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from vaquero.childenv import child_env

BINARIES = {"dnsmasq": "dnsmasq", "kea": "kea-dhcp4"}
# Daemons live in sbin, which a non-login PATH often lacks.
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
OUTPUT_LIMIT = 4000
DEFAULT_TIMEOUT = 60.0


class DhcpConfigError(RuntimeError):
    """The daemon is missing, timed out, or rejected the config (``output`` holds its own words)."""

    def __init__(self, message: str, *, binary: str, output: str = "", rc: int | None = None) -> None:
        super().__init__(message)
        self.binary = binary
        self.output = output
        self.rc = rc


class DhcpDaemonMissing(DhcpConfigError):
    """The daemon that would check the config is not installed: no verdict on the config."""


def find_daemon(flavor: str, binary: str | None = None) -> str:
    """The path of the daemon that checks ``flavor`` configs; DhcpConfigError when it is not installed."""
    if flavor not in BINARIES:
        raise ValueError(f"unknown DHCP flavor {flavor!r} (one of {', '.join(BINARIES)})")
    name = binary or BINARIES[flavor]
    if os.sep in name:
        if os.access(name, os.X_OK):
            return name
    else:
        path = os.pathsep.join([os.environ.get("PATH", os.defpath), *SBIN])
        found = shutil.which(name, path=path)
        if found:
            return found
    raise DhcpDaemonMissing(f"{name} is not installed", binary=name)


def check_dhcp_config(
    text: str,
    flavor: str = "dnsmasq",
    *,
    hosts_text: str | None = None,
    hosts_file: str | None = None,
    binary: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Raise DhcpConfigError unless the daemon for ``flavor`` accepts ``text``.

    For dnsmasq, a ``dhcp-hostsfile=<hosts_file>`` line is pointed at a candidate copy of
    ``hosts_text`` (or at an empty file), so the check never reads the live reservations. The
    daemon runs with an allow-listed environment and is killed after ``timeout`` seconds.
    """
    path = find_daemon(flavor, binary)
    with tempfile.TemporaryDirectory(prefix="vaquero-dhcp-") as tmpdir:
        if flavor == "dnsmasq" and hosts_file:
            candidate = os.path.join(tmpdir, "candidate.hosts")
            with open(candidate, "w", encoding="utf-8") as fh:
                fh.write(hosts_text or "")
            text = text.replace(f"dhcp-hostsfile={hosts_file}", f"dhcp-hostsfile={candidate}")
        conf = os.path.join(tmpdir, "candidate.conf")
        with open(conf, "w", encoding="utf-8") as fh:
            fh.write(text)
        cmd = [path, "--test", "-C", conf] if flavor == "dnsmasq" else [path, "-t", conf]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=child_env(), timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise DhcpConfigError(f"{os.path.basename(path)} did not finish checking the config within {timeout:g}s", binary=path) from None
    if res.returncode != 0:
        output = ((res.stderr or "") + (res.stdout or "")).strip()[-OUTPUT_LIMIT:]
        name = os.path.basename(path)
        raise DhcpConfigError(f"{name} rejected the config: {output}", binary=name, output=output, rc=res.returncode)


def check_config(text: str, binary: str = "dnsmasq") -> None:
    """``dnsmasq --test`` on ``text`` (the agent's check)."""
    check_dhcp_config(text, "dnsmasq", binary=binary)
