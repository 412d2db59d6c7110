"""dnsmasq supervision in a private network namespace: start, SIGHUP, restart, crash, failure."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from vaquero.agent.dnsmasq import Dnsmasq, DnsmasqError, check_config
from vaquero.lab.netns import LabNetwork
from vaquero.render import get_site, render_site, site_hosts
from vaquero.render.dhcp import render_dnsmasq_hosts
from vaquero.sot import load

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.fail("needs root (network namespace, DHCP port 67)")
    with LabNetwork() as net:
        yield net


def _enter(net: LabNetwork):
    """Run the supervisor's dnsmasq inside the namespace by prefixing `ip netns exec`."""
    return ("ip", "netns", "exec", net.name)


class NsDnsmasq(Dnsmasq):
    def __init__(self, net: LabNetwork, *a, **kw):
        super().__init__(*a, **kw)
        self.net = net

    def command(self) -> list[str]:
        return [*_enter(self.net), *super().command()]


def _config(tmp: Path) -> tuple[str, str]:
    sot = load(REPO / "inventories" / "lab")
    bundle = render_site(sot, hosts_file=str(tmp / "dnsmasq" / "dnsmasq.hosts"))
    return bundle.dhcp, bundle.dhcp_hosts


def _wait(pred, timeout=60.0) -> bool:  # bounds a hang; dnsmasq in a netns is slow to start on a loaded machine
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_start_reload_restart_and_crash(netns, tmp_path, caplog):
    main, hosts = _config(tmp_path)
    d = NsDnsmasq(netns, tmp_path / "dnsmasq", site="lab")
    try:
        assert d.apply(main, hosts) == "written"
        d.start()
        assert d.proc is not None and d.proc.poll() is None
        assert _wait(lambda: any("read " in ln and "dnsmasq.hosts" in ln for ln in d.lines))
        first = d.proc.pid
        assert d.apply(main, hosts) == "unchanged"
        # A host change is a SIGHUP: same process, hosts file re-read.
        reads = sum("dnsmasq.hosts" in ln for ln in d.lines)
        assert d.apply(main, hosts + "52:54:00:00:10:55,set:known,10.90.0.55,extra\n") == "reloaded"
        assert _wait(lambda: sum("dnsmasq.hosts" in ln for ln in d.lines) > reads)
        assert d.proc.pid == first
        # A main config change is a restart.
        assert d.apply(main.replace("lease time", "").replace(",1h", ",2h"), hosts) == "restarted"
        assert d.proc.pid != first and d.proc.poll() is None
        # A crash is noticed and dnsmasq comes back.
        crashed = d.proc
        with caplog.at_level(logging.ERROR):
            os.kill(crashed.pid, signal.SIGKILL)
            assert _wait(lambda: d.proc is not crashed and d.proc.poll() is None, 15)
        assert any("dnsmasq exited" in r.getMessage() and getattr(r, "site", None) == "lab" for r in caplog.records)
        assert _wait(lambda: d.restarts >= 2)
    finally:
        d.stop()
    assert d.proc.poll() is not None


def test_bad_config_is_refused_and_running_config_kept(netns, tmp_path):
    main, hosts = _config(tmp_path)
    d = NsDnsmasq(netns, tmp_path / "dnsmasq", site="lab")
    try:
        d.apply(main, hosts)
        d.start()
        pid = d.proc.pid
        with pytest.raises(DnsmasqError, match="rejected"):
            d.apply(main + "dhcp-range=not,an,address\n", hosts)
        with pytest.raises(DnsmasqError, match="malformed host"):
            d.apply(main, "garbage\n")
        assert (tmp_path / "dnsmasq" / "dnsmasq.conf").read_text() == main
        assert d.proc.pid == pid and d.proc.poll() is None
    finally:
        d.stop()
    with pytest.raises(DnsmasqError):
        check_config("no-such-option\n")


def test_dnsmasq_that_fails_to_start(netns, tmp_path, caplog):
    # Something else holds the DHCP port in the namespace: dnsmasq cannot bind and exits.
    holder = netns.popen(
        [
            sys.executable,
            "-c",
            "import socket,time;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('0.0.0.0',67));print('bound',flush=True);time.sleep(600)",
        ],
        log_file=tmp_path / "holder.log",
    )
    assert _wait(lambda: "bound" in (tmp_path / "holder.log").read_text() or holder.poll() is not None), "the port holder never bound"
    assert holder.poll() is None, (tmp_path / "holder.log").read_text()
    main, hosts = _config(tmp_path)
    d = NsDnsmasq(netns, tmp_path / "dnsmasq", site="lab")
    try:
        d.apply(main, hosts)
        with caplog.at_level(logging.ERROR), pytest.raises(DnsmasqError, match="failed to start"):
            d.start()
        assert any("failed to start" in r.getMessage() and getattr(r, "site", None) == "lab" for r in caplog.records)
        assert any("Address" in ln or "address" in ln for ln in d.lines)
    finally:
        d.stop()


def test_kea_config_checked_by_kea_in_namespace(netns, tmp_path):
    import subprocess

    sot = load(REPO / "inventories" / "lab")
    site = get_site(sot, "lab")
    from vaquero.render import BootServer, render_kea

    text = render_kea(site, site_hosts(sot, site), BootServer(address="10.90.0.1", http_base="http://10.90.0.1:8080"))
    (tmp_path / "kea.json").write_text(text)
    res = subprocess.run([*_enter(netns), "kea-dhcp4", "-t", str(tmp_path / "kea.json")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:]
    assert '"vq-br0"' in text
    assert render_dnsmasq_hosts(site_hosts(sot, site)).count("\n") == 4
