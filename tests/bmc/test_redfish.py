"""The Redfish driver against sushy-emulator (TLS, basic auth) and a small session/task service."""

from __future__ import annotations

import logging

import pytest
from bmc_helpers import PASSWORD, SUSHY_MAC, SUSHY_UUID

from vaquero.bmc import BmcAuthError, BmcUnreachable, BmcUnsupported, BootDevice, BootMode, PowerState, open_bmc
from vaquero.bmc.redfish_driver import BmcTlsError


@pytest.fixture(autouse=True)
def _debug_logs(caplog):
    caplog.set_level(logging.DEBUG)


def no_password(caplog, capfd):
    out, err = capfd.readouterr()
    assert PASSWORD not in caplog.text and PASSWORD not in out and PASSWORD not in err


def test_power_and_boot_over_tls_with_basic_auth(sushy, caplog, capfd):
    with open_bmc(sushy.endpoint()) as bmc:
        assert bmc.get_power_state() == PowerState.OFF
        assert bmc.auth_method == "basic"  # sushy has no sessions: fell back
        bmc.power_on()
        assert bmc.get_power_state() == PowerState.ON
        bmc.power_cycle()
        assert bmc.get_power_state() == PowerState.ON
        assert bmc.power_off(soft=True, timeout=60) is False  # returns when the OS is off; 60 s bounds a hang only
        assert bmc.get_power_state() == PowerState.OFF
        bmc.set_boot_device(BootDevice.PXE, persistent=True, mode=BootMode.UEFI)
        got = bmc.get_boot_device()
        assert (got.device, got.persistent, got.mode) == (BootDevice.PXE, True, BootMode.UEFI)
        bmc.set_boot_device(BootDevice.DISK, persistent=True, mode=BootMode.BIOS)
        got = bmc.get_boot_device()
        assert (got.device, got.mode) == (BootDevice.DISK, BootMode.BIOS)
    no_password(caplog, capfd)


def test_inventory_uuid_and_macs(sushy):
    with open_bmc(sushy.endpoint()) as bmc:
        inv = bmc.inventory()
    assert inv.uuid == SUSHY_UUID and inv.macs == (SUSHY_MAC,)
    assert inv.manufacturer == "Sushy Emulator"
    assert inv.mismatches(uuid=SUSHY_UUID, macs=[SUSHY_MAC.upper()]) == []
    assert any("MAC" in p for p in inv.mismatches(macs=["52:54:00:00:00:01"]))


def test_tls_is_verified_by_default(sushy, fast_guard):
    with pytest.raises(BmcTlsError):
        open_bmc(sushy.endpoint(ca_file=None), fast_guard).get_power_state()


def test_insecure_flag_works_and_warns(sushy, caplog):
    with open_bmc(sushy.endpoint(ca_file=None, verify=False)) as bmc:
        assert bmc.get_power_state() in (PowerState.ON, PowerState.OFF)
    assert any("TLS verification is OFF" in r.getMessage() and getattr(r, "host", None) == "rf-node" for r in caplog.records)


def test_wrong_password_is_an_auth_error(sushy, caplog, capfd, fast_guard):
    with pytest.raises(BmcAuthError) as ei:
        open_bmc(sushy.endpoint(password="not-" + PASSWORD), fast_guard).get_power_state()
    assert ei.value.host == "rf-node" and PASSWORD not in str(ei.value)
    no_password(caplog, capfd)


def test_session_auth_tasks_etag_and_allowable_values(redfish_lite, caplog, capfd):
    with open_bmc(redfish_lite.endpoint()) as bmc:
        bmc.power_on()  # 202 + task monitor, followed until Completed
        assert bmc.auth_method == "session"
        assert bmc.get_power_state() == PowerState.ON
        bmc.power_cycle()
        assert redfish_lite.resets == ["On", "PowerCycle"]  # PowerCycle chosen from AllowableValues
        with pytest.raises(BmcUnsupported):
            bmc.power_off(soft=True, timeout=1)  # no GracefulShutdown allowed
        assert bmc.power_off(soft=False) is True
        bmc.set_boot_device("http", persistent=False, mode="uefi")  # PATCH with If-Match (else 412)
        got = bmc.get_boot_device()
        assert (got.device, got.persistent, got.mode) == (BootDevice.HTTP, False, BootMode.UEFI)
        with pytest.raises(BmcUnsupported):
            bmc.set_boot_device("cdrom")  # not in BootSourceOverrideTarget AllowableValues
        with pytest.raises(BmcUnsupported):
            bmc.set_boot_device("pxe", mode="bios")  # Legacy not in the allowed modes
        inv = bmc.inventory()
        assert (inv.serial, inv.model) == ("SN123", "L1")
    assert redfish_lite.basic_requests == 0 and redfish_lite.sessions_created == 1
    assert redfish_lite.tokens == set()  # logged out on close
    assert redfish_lite.resets == ["On", "PowerCycle", "ForceOff"]
    no_password(caplog, capfd)


def test_wrong_password_with_sessions(redfish_lite, fast_guard):
    with pytest.raises(BmcAuthError):
        open_bmc(redfish_lite.endpoint(password="nope"), fast_guard).get_power_state()


def test_closed_port_is_unreachable_fast(fast_guard):
    from bmc_helpers import free_port

    from vaquero.bmc import Endpoint

    ep = Endpoint("redfish", "127.0.0.1", "admin", PASSWORD, host="gone", port=free_port(), scheme="http")
    with pytest.raises(BmcUnreachable) as ei:
        open_bmc(ep, fast_guard).get_power_state()
    assert ei.value.host == "gone"
