"""Read-back against DMTF's own Redfish implementations (tests/peers): the issue's module case on the
static Redfish-Mockup-Server (a reset answered 204, the power state never moves), and boot
overrides that these independent services do keep, read back as kept (no false alarm)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bmc_helpers import PASSWORD, USERNAME, make_cert
from peers.redfish_peers import start_interface_emulator, start_mockup_server, stop_process
from test_bmc_modules import play

from vaquero.bmc import BootDevice, Endpoint, open_bmc
from vaquero.bmc.actions import ensure_boot

RACK_SYSTEM = "/redfish/v1/Systems/437XR1138R2"


@pytest.fixture
def certs(tmp_path: Path) -> tuple[Path, Path]:
    return make_cert(tmp_path)


@pytest.fixture
def rackmount(tmp_path: Path, certs: tuple[Path, Path]) -> Iterator:
    server = start_mockup_server(tmp_path, "public-rackmount1", *certs)
    yield server
    stop_process(server.proc)


@pytest.fixture
def interface_emulator(tmp_path: Path, certs: tuple[Path, Path]) -> Iterator:
    emu = start_interface_emulator(tmp_path, *certs, power_delay=3.0)
    yield emu
    stop_process(emu.proc)


def test_power_module_off_on_a_static_service_fails_with_the_observed_state(tmp_path, rackmount):
    """Issue 12: `state: off` returned `changed: true, power_state: on` here."""
    rackmount.patch(RACK_SYSTEM, {"PowerState": "On"})
    args = {"bmc_type": "redfish", "bmc_address": "127.0.0.1", "bmc_port": rackmount.port, "bmc_username": USERNAME}
    args |= {"ca_path": str(rackmount.ca_file), "host_name": "rack1", "timeout": 30}
    tasks = [{"name": "off", "vaquero.metal.power": {"state": "off", "force": True, "wait_timeout": 2}}]
    r, out = play(tmp_path, tasks, args)
    assert r[0]["failed"] and r[0]["error_kind"] == "state_not_reached" and r[0]["power_state"] == "on"
    assert "rack1" in r[0]["msg"] and "asked for off" in r[0]["msg"] and "still reports on" in r[0]["msg"]
    assert len(rackmount.requests("POST", f"{RACK_SYSTEM}/Actions/ComputerSystem.Reset")) == 1  # sent once, the wait only reads
    assert PASSWORD not in out


@pytest.mark.parametrize("peer", ["rackmount", "interface_emulator"])
def test_boot_overrides_these_services_keep_read_back_as_kept(request, peer):
    server = request.getfixturevalue(peer)
    ep = Endpoint("redfish", "127.0.0.1", USERNAME, PASSWORD, host="dmtf1", port=server.port, ca_file=str(server.ca_file))
    with open_bmc(ep) as bmc:
        r = ensure_boot(bmc, "disk", persistent=True, wait_timeout=10)
        assert r.changed and (r.after.device, r.after.persistent) == (BootDevice.DISK, True)
        r = ensure_boot(bmc, "pxe", persistent=False, wait_timeout=10)
        assert r.changed and (r.after.device, r.after.persistent) == (BootDevice.PXE, False)
        assert not ensure_boot(bmc, "pxe", persistent=False).changed


def test_a_host_already_powering_on_gets_no_second_request(interface_emulator):
    """A BMC that reports PoweringOn is carrying out a request: `on` only waits. The patched state
    never moves on this peer, so the wait ends in an error naming the transition it saw."""
    from vaquero.bmc import PowerState
    from vaquero.bmc.actions import ensure_power
    from vaquero.bmc.errors import BmcStateNotReached

    system = "/redfish/v1/Systems/System-1"
    interface_emulator.patch(system, {"PowerState": "PoweringOn"})
    ep = Endpoint("redfish", "127.0.0.1", USERNAME, PASSWORD, host="emu2", port=interface_emulator.port, ca_file=str(interface_emulator.ca_file))
    with open_bmc(ep) as bmc:
        r = ensure_power(bmc, "on", check=True)
        assert (r.before, r.changed) == (PowerState.POWERING_ON, False)
        with pytest.raises(BmcStateNotReached) as ei:
            ensure_power(bmc, "on", wait_timeout=1.0, poll_interval=0.2)
    assert ei.value.observed == PowerState.POWERING_ON and "still reports powering_on" in str(ei.value)
    assert interface_emulator.requests("POST", f"{system}/Actions/ComputerSystem.Reset") == []
