# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The modules' main(), run in this process on real files and the integration targets' SoT:
modes the Ansible way, check mode answering what a real run answers, bounds refused."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from ansible_collections.vaquero.metal.plugins.modules import boot_mode, dhcp_config, hook, host_state, wait_callback
from ansible_collections.vaquero.metal.tests.unit.plugins.modules.run_module import run_module

HERE = os.path.dirname(os.path.abspath(__file__))
SOT = os.path.join(HERE, "..", "..", "..", "integration", "targets", "vaquero_netboot", "files", "sot")


def perms(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mode, bits", [(420, 0o644), ("0640", 0o640), ("640", 0o640), ("u=rw,g=,o=", 0o600)])
def test_dhcp_config_mode(tmp_path, capsys, mode, bits):
    dest = str(tmp_path / "dnsmasq.conf")
    args = dict(sot=SOT, dest=dest, validate=False, mode=mode)
    r = run_module(dhcp_config.main, capsys, args)
    assert r["changed"] and perms(dest) == bits
    assert not run_module(dhcp_config.main, capsys, args)["changed"]


def test_dhcp_config_mode_change_check_and_diff(tmp_path, capsys):
    dest = str(tmp_path / "dnsmasq.conf")
    run_module(dhcp_config.main, capsys, dict(sot=SOT, dest=dest, validate=False, mode="0644"))
    r = run_module(dhcp_config.main, capsys, dict(sot=SOT, dest=dest, validate=False, mode="0600"), check_mode=True, diff=True)
    assert r["changed"] and perms(dest) == 0o644
    assert r["diff"] == [dict(before=dict(path=dest, mode="0644"), after=dict(path=dest, mode="0600"))]
    r = run_module(dhcp_config.main, capsys, dict(sot=SOT, dest=dest, validate=False, mode="0600"))
    assert r["changed"] and perms(dest) == 0o600


@pytest.mark.parametrize("mode", ["rwx", "0999", 0o17777, True])
def test_dhcp_config_bad_mode_writes_nothing(tmp_path, capsys, mode):
    dest = str(tmp_path / "dnsmasq.conf")
    r = run_module(dhcp_config.main, capsys, dict(sot=SOT, dest=dest, validate=False, mode=mode))
    assert r["failed"] and "mode must be octal" in r["msg"] and not os.path.exists(dest)


def test_dhcp_config_no_mode_new_file_0644(tmp_path, capsys):
    dest = str(tmp_path / "dnsmasq.conf")
    old = os.umask(0o077)
    try:
        run_module(dhcp_config.main, capsys, dict(sot=SOT, dest=dest, validate=False))
    finally:
        os.umask(old)
    assert perms(dest) == 0o644


def test_hook_check_mode_answers_what_a_real_run_answers(tmp_path, capsys):
    sot = str(tmp_path / "sot")
    shutil.copytree(SOT, sot)
    args = dict(name="announce-drain", host="node1", phase="pre_shutdown", sot=sot)
    check = run_module(hook.main, capsys, args, check_mode=True)
    real = run_module(hook.main, capsys, args)
    assert check["changed"] is real["changed"] is True
    assert check["vaquero_hook"]["type"] == real["vaquero_hook"]["type"] == "command"
    assert check["vaquero_hook"]["attempts"] == [] and "draining node1" in real["vaquero_hook"]["attempts"][0]["output"]
    for bad in (dict(args, name="nosuch"), dict(args, host="nosuch")):
        assert run_module(hook.main, capsys, bad, check_mode=True)["msg"] == run_module(hook.main, capsys, bad)["msg"]


def test_host_state_same_in_both_modes(capsys):
    args = dict(host="node1", state="ready", reason="validated")
    check = run_module(host_state.main, capsys, args, check_mode=True)
    real = run_module(host_state.main, capsys, args)
    assert check["changed"] is real["changed"] is False
    assert {k: v for k, v in check["vaquero_event"].items() if k != "time"} == {k: v for k, v in real["vaquero_event"].items() if k != "time"}


@pytest.mark.parametrize(
    "kw, fragment",
    [
        (dict(timeout=0), "timeout must be between 1"),
        (dict(timeout=-1), "timeout must be between 1"),
        (dict(interval=0), "interval must be more than 0"),
        (dict(interval=-2.5), "interval must be more than 0"),
        (dict(since=-1), "since must be"),
        (dict(since=float("nan")), "since must be"),
        (dict(host="node1/../x"), "host must be a SoT host name"),
        (dict(url="file:///etc/passwd"), "url must be an http"),
    ],
)
def test_wait_callback_bounds(capsys, kw, fragment):
    r = run_module(wait_callback.main, capsys, dict(dict(host="node1", sot=SOT), **kw))
    assert r["failed"] and fragment in r["msg"] and r["waited"] == 0.0


@pytest.mark.parametrize(
    "status, mode",
    [
        ({"state": "none", "script": "localboot"}, "localboot"),
        ({"state": "install", "script": "install"}, "install"),
        ({"state": "installed"}, "localboot"),
        ({"state": "install"}, "install"),
        ({}, "localboot"),
    ],
)
def test_boot_mode_reads_the_agent_state(status, mode):
    assert boot_mode.mode_of(status) == mode


def test_boot_mode_refuses_before_asking_the_agent(capsys):
    # an unreachable url: refused input must fail before any request is made
    base = dict(host="node1", sot=SOT, mode="install", url="http://127.0.0.1:9/")
    assert "SoT host name" in run_module(boot_mode.main, capsys, dict(base, host="Node_1"))["msg"]
    assert "rearm is for mode=install only" in run_module(boot_mode.main, capsys, dict(base, mode="localboot", rearm=True))["msg"]
    assert "url must be" in run_module(boot_mode.main, capsys, dict(base, url="http://a b/"))["msg"]
    assert "unreachable" in run_module(boot_mode.main, capsys, base, check_mode=True)["msg"]  # check mode does ask (read only)
