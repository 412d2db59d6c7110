"""vaquero.render.dhcp_check: the one daemon check behind the agent and the dhcp_config module, run
against the real dnsmasq and kea-dhcp4 (and small real stand-in daemons for the hostile cases)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from test_netboot_modules import REPO, play

from vaquero.agent.dnsmasq import DnsmasqError, check_config
from vaquero.render import render_dhcp, render_dnsmasq, render_site, site_hosts
from vaquero.render.dhcp_check import DhcpConfigError, DhcpDaemonMissing, check_dhcp_config, find_daemon


def _daemons() -> None:
    for flavor in ("dnsmasq", "kea"):
        try:
            find_daemon(flavor)
        except DhcpDaemonMissing as exc:
            pytest.fail(f"{exc}: install dnsmasq-base and kea-dhcp4-server")


def _fake_daemon(tmp: Path, name: str, body: str) -> Path:
    path = tmp / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _lab(lab_sot):
    b = render_site(lab_sot, None)
    return b.site, site_hosts(lab_sot, b.site), b.server


def test_real_daemons_accept_the_rendered_configs_and_reject_others_in_their_own_words(lab_sot):
    _daemons()
    site, hosts, server = _lab(lab_sot)
    check_dhcp_config(
        render_dnsmasq(site, hosts, replace(server, interface="lo"), hosts_file="/nonexistent/live.hosts"), "dnsmasq", hosts_file="/nonexistent/live.hosts"
    )
    check_dhcp_config(render_dhcp("kea", site, hosts, replace(server, interface="lo")), "kea")
    with pytest.raises(DhcpConfigError) as exc:
        check_dhcp_config("port=0\nno-such-option\n", "dnsmasq")
    assert exc.value.rc and "bad option" in exc.value.output and str(exc.value).startswith("dnsmasq rejected the config")
    with pytest.raises(DhcpConfigError) as exc:
        check_dhcp_config(json.dumps({"Dhcp4": {"bogus": 1}}), "kea")
    assert exc.value.rc and "bogus" in exc.value.output
    with pytest.raises(ValueError, match="unknown DHCP flavor"):
        check_dhcp_config("", "isc")


def test_the_agent_check_is_the_same_check(tmp_path):
    _daemons()
    with pytest.raises(DnsmasqError, match=r"dnsmasq rejected the config: .*bad option"):
        check_config("port=0\nno-such-option\n")
    check_config("port=0\n")
    with pytest.raises(DnsmasqError, match="is not installed"):
        check_config("port=0\n", binary=str(tmp_path / "no-dnsmasq"))


def test_missing_daemon_is_a_clear_refusal(tmp_path):
    with pytest.raises(DhcpDaemonMissing, match="no-such-dhcpd is not installed"):
        check_dhcp_config("port=0\n", "dnsmasq", binary="no-such-dhcpd")


def test_a_hung_daemon_is_killed_at_the_deadline(tmp_path):
    pidfile = tmp_path / "pid"
    hung = _fake_daemon(tmp_path, "dnsmasq", f"echo $$ > {pidfile}\nexec sleep 600\n")
    with pytest.raises(DhcpConfigError, match="did not finish") as exc:
        check_dhcp_config("port=0\n", "dnsmasq", binary=str(hung), timeout=2)
    assert exc.value.rc is None and not isinstance(exc.value, DhcpDaemonMissing)
    pid = int(pidfile.read_text())
    # subprocess.run kills and reaps the child on timeout: the pid no longer names a live process.
    state = Path(f"/proc/{pid}/stat")
    assert not state.exists() or state.read_text().split()[2] in ("Z", "X")


def test_the_daemon_gets_an_allow_listed_environment_and_bounded_output(tmp_path, monkeypatch):
    monkeypatch.setenv("VAQUERO_API_TOKEN", "tok-7d1c0ffee")
    monkeypatch.setenv("BMC_PASSWORD", "pw-7d1c0ffee")
    dump = tmp_path / "env"
    noisy = _fake_daemon(tmp_path, "dnsmasq", f"env > {dump}\nyes rejected | head -c 100000 >&2\nexit 3\n")
    with pytest.raises(DhcpConfigError) as exc:
        check_dhcp_config("port=0\n", "dnsmasq", binary=str(noisy))
    assert exc.value.rc == 3 and len(exc.value.output) <= 4000
    env = dump.read_text()
    assert "PATH=" in env and "7d1c0ffee" not in env


def test_dhcp_config_module_fails_closed_on_the_shared_check(tmp_path, monkeypatch):
    """A daemon that rejects the config: the module fails with its words and writes nothing."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    _fake_daemon(fake_bin, "dnsmasq", 'echo "dnsmasq: refused by the stand-in" >&2\nexit 1\n')
    dest = tmp_path / "dnsmasq.conf"
    task = {"name": "dhcp", "ignore_errors": True, "vaquero.metal.dhcp_config": {"sot": str(REPO / "inventories" / "lab"), "dest": str(dest)}}
    path = f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    monkeypatch.setenv("PATH", path)
    r = play(tmp_path, [task])["dhcp"]
    assert r["failed"] and r["msg"] == "dnsmasq rejected the rendered configuration" and "refused by the stand-in" in r["stderr"]
    assert not dest.exists()
    assert shutil.which("dnsmasq", path=path) == str(fake_bin / "dnsmasq")
