"""Power actions report success only once the BMC reads the asked state back (issue 12, point 1).

Real peers: the pyghmi emulated BMC in its "stuck" mode (requests acknowledged, state never
changes) and with a power delay, and sushy-emulator with its power delay pinned to a few seconds
(dynamic) or frozen (a delay far longer than any test).
"""

from __future__ import annotations

import io
import json

import pytest
from bmc_helpers import PASSWORD, start_ipmi_fleet, start_sushy, stop
from test_bmc_modules import play

from vaquero.bmc import PowerState, open_bmc
from vaquero.bmc.actions import ensure_power
from vaquero.bmc.cli import power_command
from vaquero.bmc.errors import BmcStateNotReached


@pytest.fixture
def stuck_bmc(tmp_path):
    fleet = start_ipmi_fleet(tmp_path, extra=("--stuck",))
    yield fleet
    stop(fleet.proc)


@pytest.fixture
def slow_bmc(tmp_path):
    fleet = start_ipmi_fleet(tmp_path, extra=("--power-delay", "1.5"))
    yield fleet
    stop(fleet.proc)


@pytest.fixture
def frozen_sushy(tmp_path):
    s = start_sushy(tmp_path, power_delay=3600)
    yield s
    stop(s.proc)


@pytest.fixture
def slow_sushy(tmp_path):
    s = start_sushy(tmp_path, power_delay=2)
    yield s
    stop(s.proc)


def cli(ep, action, **kw):
    out, err = io.StringIO(), io.StringIO()
    rc = power_command(ep, action, out=out, err=err, **kw)
    return rc, out.getvalue(), err.getvalue()


def test_stuck_ipmi_bmc_is_a_typed_error_naming_host_requested_and_observed(stuck_bmc):
    with open_bmc(stuck_bmc.endpoint(host="node4")) as bmc:
        with pytest.raises(BmcStateNotReached) as ei:
            ensure_power(bmc, "on", wait_timeout=1.0, poll_interval=0.1)
        exc = ei.value
        assert (exc.host, exc.requested, exc.target, exc.observed, exc.kind) == ("node4", "on", PowerState.ON, PowerState.OFF, "state_not_reached")
        assert exc.waited >= 1.0 and str(exc).startswith("node4: power on: asked for on, the BMC still reports off")
        # cycle on a host that is off powers it on, and must then read on
        with pytest.raises(BmcStateNotReached) as ei:
            ensure_power(bmc, "cycle", wait_timeout=0.5, poll_interval=0.1)
        assert ei.value.observed == PowerState.OFF
        # check mode is unchanged: it reads, reports, sends nothing, waits for nothing
        r = ensure_power(bmc, "on", check=True, wait_timeout=0)
        assert (r.before, r.after, r.changed) == (PowerState.OFF, PowerState.OFF, True)
    # the requests went out once each: the wait polls, it never repeats the request
    assert stuck_bmc.bmc_state()["counts"] == {"power_on": 2}


def test_cli_exits_non_zero_on_a_stuck_bmc(stuck_bmc):
    ep = stuck_bmc.endpoint(host="rack1")
    rc, out, err = cli(ep, "on", wait_timeout=0.5)
    assert rc == 1 and out == ""
    assert err.startswith("error: rack1: state_not_reached: power on: asked for on, the BMC still reports off"), err
    rc, _, err = cli(ep, "cycle", wait_timeout=0.5, as_json=True)
    data = json.loads(err)
    assert rc == 1 and data["error"] == "state_not_reached" and data["requested"] == "on" and data["power_state"] == "off"
    assert PASSWORD not in err


def test_ipmi_power_delay_is_waited_for(slow_bmc):
    """The request takes 1.5 s to show: the old code read "off -> off" at once and called it done."""
    ep = slow_bmc.endpoint(host="node5")
    rc, out, err = cli(ep, "on", wait_timeout=60)
    assert rc == 0 and out == "node5: power on: off -> on\n", err
    assert slow_bmc.bmc_state()["power"] == "on"
    rc, out, err = cli(ep, "off", force=True, wait_timeout=60)
    assert rc == 0 and out == "node5: power off: on -> off (forced)\n", err
    with open_bmc(ep) as bmc:
        r = ensure_power(bmc, "reset", wait_timeout=60, poll_interval=0.1)
        assert (r.before, r.after) == (PowerState.OFF, PowerState.ON)  # reset of an off host powers it on, and it is on
    assert slow_bmc.bmc_state()["counts"] == {"power_on": 2, "power_off": 1}


def test_sushy_with_a_power_delay_reads_back_the_new_state(slow_sushy):
    ep = slow_sushy.endpoint(host="rf1")
    rc, out, err = cli(ep, "on", wait_timeout=60)
    assert rc == 0 and out == "rf1: power on: off -> on\n", err
    # sushy's restart goes Off at once and On after the delay: a cycle must end on, not off
    with open_bmc(ep) as bmc:
        bmc.poll_interval = 0.2
        r = ensure_power(bmc, "cycle", wait_timeout=60)
        assert r.after == PowerState.ON and bmc.get_power_state() == PowerState.ON
    rc, out, err = cli(ep, "off", force=True, wait_timeout=60)
    assert rc == 0 and out == "rf1: power off: on -> off (forced)\n", err


def test_sushy_whose_power_never_changes_fails_the_cli(frozen_sushy):
    rc, out, err = cli(frozen_sushy.endpoint(host="rack1"), "on", wait_timeout=1.5)
    assert rc == 1 and out == ""
    assert "rack1: state_not_reached: power on: asked for on, the BMC still reports off" in err


def test_power_module_fails_with_the_observed_state(tmp_path, stuck_bmc):
    ep = stuck_bmc.endpoint()
    args = {"bmc_type": "ipmi", "bmc_address": ep.address, "bmc_port": ep.port, "bmc_username": ep.username, "host_name": "rack1", "timeout": 20}
    tasks = [
        {"name": "on, check mode", "vaquero.metal.power": {"state": "on"}, "check_mode": True},
        {"name": "on", "vaquero.metal.power": {"state": "on", "wait_timeout": 1}},
        {"name": "cycled", "vaquero.metal.power": {"state": "cycled", "wait_timeout": 0}},
        {"name": "bad wait", "vaquero.metal.power": {"state": "on", "wait_timeout": -1}},
    ]
    r, out = play(tmp_path, tasks, args)
    assert not r[0].get("failed") and r[0]["changed"] and r[0]["power_state"] == "off"
    assert r[1]["failed"] and r[1]["error_kind"] == "state_not_reached" and r[1]["power_state"] == "off" and r[1]["changed"]
    assert "rack1" in r[1]["msg"] and "asked for on" in r[1]["msg"] and "still reports off" in r[1]["msg"]
    assert r[2]["failed"] and r[2]["error_kind"] == "state_not_reached"
    assert r[3]["failed"] and "wait_timeout" in r[3]["msg"]
    assert stuck_bmc.bmc_state()["counts"] == {"power_on": 2}  # none from check mode or the refused option
    assert PASSWORD not in out
