"""IPMI errors that say what really happened, and the BMC key (Kg) of two-key logins (issue 12,
points 6 and 7), against real peers: a silent UDP socket, the pyghmi emulated BMC (stopped with
SIGSTOP once a session is open: a peer that drops after the request), OpenIPMI's ipmi_sim with a
``bmc_key``, cross-checked with ipmitool."""

from __future__ import annotations

import io
import logging
import os
import signal
import socket
import subprocess

import pytest
from bmc_helpers import _CHASSIS, IPMI_SIM_GUID, PASSWORD, USERNAME, IpmiSim, free_port, ipmitool, start_ipmi_fleet, stop
from requirements import need
from waiting import wait_until

from vaquero.bmc import BmcAuthError, BmcTimeout, BmcUnreachable, Guard, GuardPolicy, PowerState, open_bmc
from vaquero.bmc.cli import power_command

KG = "Kg-0f-the-BMC-7x2w"  # 18 bytes; tests grep logs and errors for it


@pytest.fixture(autouse=True)
def _no_secret_anywhere(caplog, capfd):
    caplog.set_level(logging.DEBUG)
    yield
    out, err = capfd.readouterr()
    for secret in (PASSWORD, KG):
        assert secret not in caplog.text and secret not in out and secret not in err


def guard(deadline: float = 6.0, attempt: float = 4.0) -> Guard:
    return Guard(policy=GuardPolicy(attempt_timeout=attempt, deadline=deadline, retries=2, backoff_base=0.05, backoff_max=0.1, breaker_reset=60.0))


def test_silent_port_with_a_10s_budget_names_the_budget_and_the_login(silent_udp):
    from vaquero.bmc import Endpoint

    ep = Endpoint("ipmi", "127.0.0.1", USERNAME, PASSWORD, host="quiet", port=silent_udp)
    out, err = io.StringIO(), io.StringIO()
    rc = power_command(ep, "status", timeout=10, out=out, err=err)
    text = err.getvalue()
    assert rc == 1 and out.getvalue() == ""
    assert text.startswith("error: quiet: unreachable: ") and "cannot connect" in text and "session set-up" in text, text
    assert "of the operation's 10.0s budget" in text, text


def test_peer_that_stops_answering_after_the_request_is_not_cannot_connect(tmp_path):
    fleet = start_ipmi_fleet(tmp_path)
    try:
        bmc = open_bmc(fleet.endpoint(host="dropper"), guard())
        assert bmc.get_power_state() == PowerState.OFF  # the session is open
        os.kill(fleet.proc.pid, signal.SIGSTOP)  # the BMC gets the next packets and never answers
        try:
            with pytest.raises(BmcTimeout) as ei:
                bmc.get_power_state()
        finally:
            os.kill(fleet.proc.pid, signal.SIGCONT)
        text = str(ei.value)
        assert "cannot connect" not in text and "request netfn 0x0 cmd 0x1 sent, no answer" in text, text
        assert "of the operation's 6.0s budget" in text and ei.value.maybe_applied
    finally:
        stop(fleet.proc)


def test_a_closed_port_is_cannot_connect_and_nothing_applied():
    from vaquero.bmc import Endpoint

    ep = Endpoint("ipmi", "127.0.0.1", USERNAME, PASSWORD, host="closed", port=free_port(socket.SOCK_DGRAM))
    with pytest.raises(BmcUnreachable) as ei:
        open_bmc(ep, guard()).get_power_state()
    assert "cannot connect" in str(ei.value) and ei.value.maybe_applied is False


def test_kg_login_against_the_emulated_bmc(tmp_path):
    kg_file = tmp_path / "kg"
    kg_file.write_text(KG)
    fleet = start_ipmi_fleet(tmp_path, extra=("--kg-file", str(kg_file)))
    try:
        with open_bmc(fleet.endpoint(kg=KG), guard()) as bmc:
            assert bmc.get_power_state() == PowerState.OFF
            assert repr(bmc.endpoint).count("***") == 2  # password and Kg both masked
        for wrong in ("not-" + KG[:14], None):
            with pytest.raises(BmcAuthError) as ei:
                open_bmc(fleet.endpoint(kg=wrong), guard()).get_power_state()
            assert "Kg" in str(ei.value)
        with pytest.raises(BmcAuthError, match="1 to 20 bytes"):
            open_bmc(fleet.endpoint(kg="x" * 21), guard()).get_power_state()
        # ipmitool with the same key (-K: from $IPMI_KGKEY) agrees
        env = {**os.environ, "IPMI_PASSWORD": PASSWORD, "IPMI_KGKEY": KG}
        cmd = ["ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", str(fleet.port), "-U", USERNAME, "-E", "-K", "chassis", "power", "status"]
        assert "Chassis Power is off" in subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60, env=env).stdout
    finally:
        stop(fleet.proc)


@pytest.fixture
def ipmi_sim_kg(tmp_path):
    """ipmi_sim (OpenIPMI) whose LAN interface requires the BMC key ``KG``."""
    need("ipmi_sim", "openipmi")
    folder = tmp_path / "ipmi_sim"
    (folder / "state").mkdir(parents=True)
    port, serial = free_port(socket.SOCK_DGRAM), free_port()
    script = folder / "chassis.sh"
    script.write_text(_CHASSIS)
    script.chmod(0o755)
    (folder / "lan.conf").write_text(
        f'name "vaquero-kg"\nset_working_mc 0x20\n  startlan 1\n    addr 127.0.0.1 {port}\n    priv_limit admin\n'
        f'    allowed_auths_admin md5\n    guid {IPMI_SIM_GUID}\n    bmc_key "{KG}"\n  endlan\n'
        f"  serial 15 127.0.0.1 {serial} codec VM ipmb 0x20\n"
        f'  chassis_control "{script} 0x20"\n'
        f'  user 2 true "{USERNAME}" "{PASSWORD}" admin 10 md5\n'
    )
    (folder / "sim.emu").write_text("mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n")
    proc = subprocess.Popen(
        ["ipmi_sim", "-c", str(folder / "lan.conf"), "-f", str(folder / "sim.emu"), "-s", str(folder / "state"), "-n"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=folder,
    )
    sim = IpmiSim(port, folder, proc)
    env = {**os.environ, "IPMI_PASSWORD": PASSWORD, "IPMI_KGKEY": KG}
    status = ["ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", str(port), "-U", USERNAME, "-E", "-K", "chassis", "power", "status"]
    try:
        wait_until(lambda: "Chassis Power" in subprocess.run(status, capture_output=True, text=True, timeout=30, env=env).stdout, what="ipmi_sim with a Kg")
    except Exception:
        stop(proc)
        raise
    yield sim
    stop(proc)


def test_kg_login_against_ipmi_sim(ipmi_sim_kg):
    with open_bmc(ipmi_sim_kg.endpoint(kg=KG), guard()) as bmc:
        assert bmc.get_power_state() == PowerState.OFF
        bmc.power_on()
        assert bmc.get_power_state() == PowerState.ON
    assert [c for c in ipmi_sim_kg.calls() if c.startswith("set")] == ["set power 1"]
    for wrong in ("not-" + KG[:14], None):
        with pytest.raises((BmcAuthError, BmcUnreachable)):
            open_bmc(ipmi_sim_kg.endpoint(kg=wrong), guard(deadline=4, attempt=3)).get_power_state()
    # ipmitool without the key is refused too: the key is really required
    with pytest.raises(subprocess.CalledProcessError):
        ipmitool(ipmi_sim_kg.endpoint(), "chassis", "power", "status")


def test_kg_through_the_power_module_and_the_cli(tmp_path):
    import json
    import sys

    from test_bmc_modules import play

    kg_file = tmp_path / "kg"
    kg_file.write_text(KG)
    fleet = start_ipmi_fleet(tmp_path, extra=("--kg-file", str(kg_file)))
    try:
        args = {"bmc_type": "ipmi", "bmc_address": "127.0.0.1", "bmc_port": fleet.port, "bmc_username": USERNAME, "host_name": "kg1", "timeout": 20}
        tasks = [
            {"name": "with the key", "vaquero.metal.power": {"state": "on", "bmc_kg": KG}},
            {"name": "wrong key", "vaquero.metal.power": {"state": "off", "force": True, "bmc_kg": "not-" + KG[:14]}},
            {"name": "no key", "vaquero.metal.power": {"state": "off", "force": True}},
        ]
        r, out = play(tmp_path, tasks, args)
        assert not r[0].get("failed") and r[0]["changed"] and r[0]["power_state"] == "on", r[0].get("msg")
        assert r[1]["failed"] and r[1]["error_kind"] == "auth" and r[2]["failed"] and r[2]["error_kind"] == "auth"
        assert KG not in out and KG[:14] not in out
        assert fleet.bmc_state()["counts"] == {"power_on": 1}  # the refused logins did nothing

        env = {**os.environ, "VAQUERO_BMC_PASSWORD": PASSWORD}
        cmd = [sys.executable, "-m", "vaquero.bmc.cli", "power", "kg1", "status", "--bmc-type", "ipmi", "--bmc-address", "127.0.0.1"]
        cmd += ["--bmc-port", str(fleet.port), "--bmc-username", USERNAME, "--bmc-kg-file", str(kg_file), "--json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        assert proc.returncode == 0 and json.loads(proc.stdout)["power_state"] == "on", proc.stderr
        assert KG not in proc.stdout + proc.stderr
    finally:
        stop(fleet.proc)


def test_a_session_breaking_down_has_its_reason_before_it_looks_broken():
    """pyghmi's _mark_broken logs out (``broken`` set, ``logging`` cleared) before it stores the
    reason; a login waiting in another thread then raised AttributeError('errormsg') instead of the
    BMC's refusal (seen once in CI as a Kg refusal read as a protocol error). The driver's patch
    stores the reason first: at the moment the session looks broken, its reason is there."""
    from pyghmi.ipmi.private import session as psession

    from vaquero.bmc.ipmi import _patch_pyghmi

    _patch_pyghmi()
    seen: list[object] = []
    sess = object.__new__(psession.Session)
    sess.bmc, sess.userid, sess.password, sess.port, sess.kgo = "192.0.2.1", b"u", b"p", 623, None
    sess.broken, sess.socket, sess.logonwaiters = False, None, []

    def logout(sessionok: bool = True) -> None:
        sess.broken = True  # what pyghmi's logout does first
        seen.append(getattr(sess, "errormsg", AttributeError))

    sess.logout = logout  # type: ignore[method-assign]
    sess._mark_broken("Incorrect password provided")
    assert seen == ["Incorrect password provided"]
    assert sess.errormsg == "Incorrect password provided" and sess.broken
