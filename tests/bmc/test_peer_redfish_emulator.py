"""The Redfish driver and `vaquero power` against DMTF's Redfish-Interface-Emulator (tests/peers), a
dynamic service whose power state passes through PoweringOn/PoweringOff for a few seconds."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bmc_helpers import PASSWORD, USERNAME, make_cert
from peers.redfish_peers import InterfaceEmulator, start_interface_emulator, stop_process
from waiting import wait_until

from vaquero.bmc import Endpoint, Guard, GuardPolicy, PowerState, open_bmc

SYSTEM = "/redfish/v1/Systems/System-1"
RESET = f"{SYSTEM}/Actions/ComputerSystem.Reset"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[InterfaceEmulator]:
    cert, key = make_cert(tmp_path)
    emu = start_interface_emulator(tmp_path, cert, key, power_delay=3.0)
    yield emu
    stop_process(emu.proc)


def endpoint(emu: InterfaceEmulator) -> Endpoint:
    return Endpoint("redfish", "127.0.0.1", USERNAME, PASSWORD, host="emu-node", port=emu.port, ca_file=str(emu.ca_file))


def guard() -> Guard:
    return Guard(policy=GuardPolicy(attempt_timeout=20.0, deadline=40.0, retries=0))


def _readback_landed() -> bool:
    from vaquero.bmc import actions

    return hasattr(actions, "wait_for_power")


READBACK = _readback_landed()


@pytest.mark.parametrize(("redfish", "ours"), [("PoweringOn", PowerState.POWERING_ON), ("PoweringOff", PowerState.POWERING_OFF)])
def test_powering_states_read_as_in_progress(emulator, redfish, ours):
    emulator.patch(SYSTEM, {"PowerState": redfish})  # the emulator takes a PATCH of any property
    with open_bmc(endpoint(emulator), guard()) as bmc:
        assert bmc.get_power_state() == ours
        assert bmc.inventory().power_state == ours
    # neither reading is taken for the state the host came from
    assert ours not in (PowerState.ON, PowerState.OFF)


@pytest.mark.xfail(not READBACK, reason="power readback (issue 12 point 1) not in bmc.actions yet: the CLI reports the PoweringOn it reads", strict=True)
def test_power_on_ends_on_after_the_delay(emulator, tmp_path):
    with open_bmc(endpoint(emulator), guard()) as bmc:
        bmc.power_off(soft=False)
    wait_until(lambda: emulator.get(SYSTEM)["PowerState"] == "Off", timeout=60, what="the emulator to settle off")
    pwfile = tmp_path / "pw"
    pwfile.write_text(PASSWORD)
    bmc_args = ["--bmc-type", "redfish", "--bmc-address", "127.0.0.1", "--bmc-port", str(emulator.port), "--ca-file", str(emulator.ca_file)]
    bmc_args += ["--bmc-username", USERNAME, "--bmc-password-file", str(pwfile), "--timeout", "30"]
    res = subprocess.run([sys.executable, "-m", "vaquero.cli", "power", "emu1", "on", *bmc_args], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("-> on"), res.stdout
    assert emulator.get(SYSTEM)["PowerState"] == "On"
    # one power-off (ours), one power-on: the CLI waited for the change instead of asking again
    assert len(emulator.requests("POST", RESET)) == 2
    assert PASSWORD not in res.stdout + res.stderr
