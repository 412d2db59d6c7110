"""The IPMI driver against a real IPMI BMC (pyghmi server), cross-checked with ipmitool."""

from __future__ import annotations

import logging

import pytest
from bmc_helpers import PASSWORD, ipmitool, start_ipmi_fleet, stop

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
