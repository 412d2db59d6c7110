"""The IPMI driver against a real IPMI BMC (pyghmi server), cross-checked with ipmitool."""

from __future__ import annotations

import logging

import pytest
from bmc_helpers import PASSWORD, USERNAME, ipmitool, start_ipmi_fleet, stop

from vaquero.bmc import BmcUnsupported, BootDevice, BootMode, PowerState, open_bmc


@pytest.fixture(autouse=True)
def _debug_logs(caplog):
    caplog.set_level(logging.DEBUG)


def no_password(caplog, capfd):
    out, err = capfd.readouterr()
    assert PASSWORD not in caplog.text and PASSWORD not in out and PASSWORD not in err


def test_power_on_off_cycle_reset_match_ipmitool(ipmi_bmc, caplog, capfd):
    ep = ipmi_bmc.endpoint()
    with open_bmc(ep) as bmc:
        assert bmc.get_power_state() == PowerState.OFF
        bmc.power_on()
        assert bmc.get_power_state() == PowerState.ON
        assert "Chassis Power is on" in ipmitool(ep, "chassis", "power", "status")
        bmc.power_cycle()
        bmc.power_reset()
        assert bmc.power_off(soft=False) is True
        assert "Chassis Power is off" in ipmitool(ep, "chassis", "power", "status")
    counts = ipmi_bmc.bmc_state()["counts"]
    assert counts == {"power_on": 1, "power_cycle": 1, "power_reset": 1, "power_off": 1}  # each exactly once
    no_password(caplog, capfd)


def test_soft_off_waits_for_the_os(ipmi_bmc):
    ep = ipmi_bmc.endpoint()
    with open_bmc(ep) as bmc:
        bmc.power_on()
        bmc.poll_interval = 0.1
        assert bmc.power_off(soft=True, timeout=60) is False  # the OS honoured ACPI (0.3 s); 60 s bounds a hang only
        assert bmc.get_power_state() == PowerState.OFF
        assert bmc.power_off(soft=True, timeout=60) is False  # already off: nothing sent
    assert ipmi_bmc.bmc_state()["counts"] == {"power_on": 1, "power_shutdown": 1}


def test_soft_off_forces_when_the_os_ignores_acpi(tmp_path):
    fleet = start_ipmi_fleet(tmp_path, acpi_delay=None)
    try:
        with open_bmc(fleet.endpoint()) as bmc:
            bmc.power_on()
            bmc.poll_interval = 0.1
            assert bmc.power_off(soft=True, timeout=0.5) is True
            assert bmc.get_power_state() == PowerState.OFF
        assert fleet.bmc_state()["counts"] == {"power_on": 1, "power_shutdown": 1, "power_off": 1}
    finally:
        stop(fleet.proc)


@pytest.mark.parametrize(
    ("device", "persistent", "mode", "ipmitool_words"),
    [
        (BootDevice.PXE, False, BootMode.UEFI, ["Force PXE", "BIOS EFI boot"]),
        (BootDevice.DISK, True, BootMode.BIOS, ["Force Boot from default Hard-Drive", "Options apply to all future boots"]),
        (BootDevice.CDROM, True, BootMode.UEFI, ["Force Boot from CD/DVD", "Options apply to all future boots", "BIOS EFI boot"]),
    ],
)
def test_boot_device_set_read_back_and_seen_by_ipmitool(ipmi_bmc, device, persistent, mode, ipmitool_words):
    ep = ipmi_bmc.endpoint()
    with open_bmc(ep) as bmc:
        bmc.set_boot_device(device, persistent=persistent, mode=mode)
        got = bmc.get_boot_device()
    assert (got.device, got.persistent, got.mode) == (device, persistent, mode)
    out = ipmitool(ep, "chassis", "bootparam", "get", "5")
    for w in ipmitool_words:
        assert w in out, out
    if not persistent:
        assert "Options apply to only next boot" in out
    if mode == BootMode.BIOS:
        assert "BIOS PC Compatible (legacy) boot" in out


def test_driver_reads_what_ipmitool_set(ipmi_bmc):
    ep = ipmi_bmc.endpoint()
    ipmitool(ep, "chassis", "bootdev", "pxe", "options=persistent,efiboot")
    with open_bmc(ep) as bmc:
        got = bmc.get_boot_device()
    assert (got.device, got.persistent, got.mode) == (BootDevice.PXE, True, BootMode.UEFI)


def test_http_boot_is_unsupported_over_ipmi(ipmi_bmc):
    with open_bmc(ipmi_bmc.endpoint()) as bmc, pytest.raises(BmcUnsupported):
        bmc.set_boot_device("http", mode="uefi")
    assert ipmi_bmc.bmc_state()["counts"] == {}


def test_inventory_uuid_matches_and_mismatch_is_reported(ipmi_bmc):
    with open_bmc(ipmi_bmc.endpoint()) as bmc:
        inv = bmc.inventory()
    expected = ipmi_bmc.bmc_state()["uuid"]
    assert inv.uuid == expected
    assert inv.manufacturer and inv.power_state == PowerState.OFF
    assert inv.mismatches(uuid=expected.upper()) == []
    problems = inv.mismatches(uuid="00000000-0000-0000-0000-000000000000")
    assert problems and "UUID" in problems[0]
    # ipmitool sees the same GUID
    out = ipmitool(ipmi_bmc.endpoint(), "mc", "guid")
    assert expected.lower() in out.lower()


# --- against OpenIPMI's ipmi_sim: an independent IPMI implementation --------------------------------


def test_ipmi_sim_power_and_boot_reach_its_chassis_control(ipmi_sim, caplog, capfd):
    ep = ipmi_sim.endpoint()
    with open_bmc(ep) as bmc:
        assert bmc.get_power_state() == PowerState.OFF
        bmc.power_on()
        assert "Chassis Power is on" in ipmitool(ep, "chassis", "power", "status")
        assert bmc.get_power_state() == PowerState.ON
        assert bmc.power_off(soft=False) is True
        assert "Chassis Power is off" in ipmitool(ep, "chassis", "power", "status")
        bmc.set_boot_device(BootDevice.PXE, persistent=False, mode=BootMode.UEFI)
    sets = [c for c in ipmi_sim.calls() if c.startswith("set")]
    assert sets == ["set power 1", "set power 0", "set boot pxe"]  # each exactly once
    assert "Force PXE" in ipmitool(ep, "chassis", "bootparam", "get", "5")
    no_password(caplog, capfd)


def test_ipmi_sim_guid_matches_ipmitool(ipmi_sim):
    with open_bmc(ipmi_sim.endpoint()) as bmc:
        inv = bmc.inventory()
    out = ipmitool(ipmi_sim.endpoint(), "mc", "guid")
    shown = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("System GUID"))
    assert inv.mismatches(uuid=shown) == []  # whichever byte order ipmitool shows it in
    assert inv.mismatches(uuid="00000000-0000-0000-0000-000000000000")


_IO_THREAD_PROBE = r"""
import json, sys, threading
import pyghmi.ipmi.private.session as ps
from vaquero.bmc import Endpoint, GuardPolicy, PowerState, open_bmc

args = json.loads(sys.stdin.read())
ep = Endpoint(kind="ipmi", address="127.0.0.1", host="node0", port=args["port"], username=args["username"], password=args["password"])
policy = GuardPolicy(deadline=15.0)
out = {}
with open_bmc(ep, policy=policy) as bmc:
    bmc.get_power_state()  # starts pyghmi's I/O thread
first = ps.iothread

# 1. an exception inside the I/O thread's packet dispatch (the KeyError of a session that
#    another thread's logout removed in between)
real_graball, raised = ps._io_graball, []
def graball_once_broken(*a):
    if not raised:
        raised.append(1)
        raise KeyError("session removed by another thread's logout")
    return real_graball(*a)
ps._io_graball = graball_once_broken
with open_bmc(ep, policy=policy) as bmc:
    bmc.power_on()
    out["after_exception"] = bmc.get_power_state().value
out["raised"] = len(raised)
out["same_thread_alive"] = ps.iothread is first and first.is_alive()

# 2. the I/O thread gone anyway (here: told to stop, as pyghmi's own join() does)
first.running = False
ps.iosockets[0].sendto(b"\x01", (ps.myself, ps.iosockets[0].getsockname()[1]))
threading.Thread.join(first, 10)
out["first_ended"] = not first.is_alive()
with open_bmc(ep, policy=policy) as bmc:
    bmc.power_off(soft=False)
    out["after_end"] = bmc.get_power_state().value
out["new_thread_alive"] = ps.iothread is not first and ps.iothread.is_alive()
print(json.dumps(out))
"""


def test_pyghmi_io_thread_survives_and_is_revived(ipmi_bmc):
    """pyghmi runs all IPMI I/O of a process on one thread. An exception there (a race in its
    packet dispatch) ended that thread and every later IPMI call in the process timed out (seen in
    CI). The driver keeps the thread going and starts a new one if it ended. In a child process, so a
    failure here cannot take IPMI from the tests that follow."""
    import json
    import subprocess
    import sys

    args = {"port": ipmi_bmc.port, "username": USERNAME, "password": PASSWORD}
    res = subprocess.run([sys.executable, "-c", _IO_THREAD_PROBE], input=json.dumps(args), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out == {
        "raised": 1,
        "after_exception": PowerState.ON.value,
        "same_thread_alive": True,
        "first_ended": True,
        "after_end": PowerState.OFF.value,
        "new_thread_alive": True,
    }
    assert PASSWORD not in res.stderr
