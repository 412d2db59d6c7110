"""Boot overrides are read back and compared with the request (issue 12, point 2).

Real peers that keep something else than what they were sent: sushy-emulator keeps every override
as Continuous and stores UefiHttp as Pxe; OpenIPMI's ipmi_sim hands the device to its chassis
script but answers the boot flags as not valid (by the IPMI spec: no override at all).
No difference is forgiven: each of them would boot the host otherwise than asked.
"""

from __future__ import annotations

import io
import json

import pytest
from bmc_helpers import PASSWORD, USERNAME
from test_bmc_modules import play

from vaquero.bmc import BootDevice, BootMode, BootSetting, open_bmc
from vaquero.bmc.actions import ensure_boot
from vaquero.bmc.cli import boot_command
from vaquero.bmc.errors import BmcSettingNotApplied


def cli(ep, device, **kw):
    out, err = io.StringIO(), io.StringIO()
    rc = boot_command(ep, device, out=out, err=err, **kw)
    return rc, out.getvalue(), err.getvalue()


def test_sushy_keeps_a_one_time_override_as_persistent_and_that_is_an_error(sushy):
    ep = sushy.endpoint(host="rf1")
    with open_bmc(ep) as bmc:
        with pytest.raises(BmcSettingNotApplied) as ei:
            ensure_boot(bmc, "pxe", persistent=False, mode="uefi", wait_timeout=0.5, poll_interval=0.1)
        exc = ei.value
        assert exc.kind == "setting_not_applied" and exc.host == "rf1"
        assert exc.requested == BootSetting(BootDevice.PXE, False, BootMode.UEFI)
        assert (exc.observed.device, exc.observed.persistent) == (BootDevice.PXE, True)
        assert "asked for pxe (next boot only, uefi), the BMC reads back pxe (persistent, uefi)" in str(exc)
        # what it can hold, it holds: a persistent override reads back as asked
        r = ensure_boot(bmc, "disk", persistent=True, mode="uefi", wait_timeout=5)
        assert r.changed and r.after == BootSetting(BootDevice.DISK, True, BootMode.UEFI)


def test_sushy_stores_http_boot_as_pxe_and_the_cli_says_so(sushy):
    ep = sushy.endpoint(host="rf2")
    rc, out, err = cli(ep, "http", persistent=True, uefi=True, wait_timeout=0.5)
    assert rc == 1 and out == ""
    assert err.startswith("error: rf2: setting_not_applied: boot override: asked for http (persistent, uefi), the BMC reads back pxe (persistent, uefi)"), err
    rc, _, err = cli(ep, "pxe", wait_timeout=0.5, as_json=True)
    data = json.loads(err)
    assert rc == 1 and data["error"] == "setting_not_applied"
    assert data["requested"] == {"device": "pxe", "persistent": False, "mode": None} and data["boot"]["persistent"] is True
    rc, out, err = cli(ep, "pxe", persistent=True, uefi=True)
    assert rc == 0 and out == "rf2: boot already pxe (persistent, uefi)\n", err
    assert PASSWORD not in err


def test_ipmi_sim_answers_boot_flags_invalid_after_a_set(ipmi_sim):
    ep = ipmi_sim.endpoint(host="sim1")
    with open_bmc(ep) as bmc:
        with pytest.raises(BmcSettingNotApplied) as ei:
            ensure_boot(bmc, "pxe", persistent=True, mode="uefi", wait_timeout=0.5, poll_interval=0.1)
        assert ei.value.requested == BootSetting(BootDevice.PXE, True, BootMode.UEFI)
        assert ei.value.observed.device == BootDevice.NONE
        assert "asked for pxe (persistent, uefi), the BMC reads back none (no override)" in str(ei.value)
    assert [c for c in ipmi_sim.calls() if c.startswith("set")] == ["set boot pxe"]  # sent once, the wait only reads


def test_the_emulated_bmc_holds_every_flag_so_nothing_fails(ipmi_bmc):
    with open_bmc(ipmi_bmc.endpoint()) as bmc:
        for device, persistent, mode in [("pxe", False, "uefi"), ("disk", True, "bios"), ("cdrom", True, None), ("none", False, None)]:
            r = ensure_boot(bmc, device, persistent=persistent, mode=mode, wait_timeout=5)
            assert r.changed and r.after.device == BootDevice(device)
    assert ipmi_bmc.bmc_state()["counts"] == {"set_boot": 4}


def test_boot_device_module_fails_naming_requested_and_observed(tmp_path, sushy):
    args = {"bmc_type": "redfish", "bmc_address": "127.0.0.1", "bmc_port": sushy.port, "bmc_username": USERNAME, "ca_path": str(sushy.ca_file)}
    args |= {"host_name": "rf3", "timeout": 20}
    tasks = [
        {"name": "once, check mode", "vaquero.metal.boot_device": {"device": "pxe", "uefi": True}, "check_mode": True},
        {"name": "once", "vaquero.metal.boot_device": {"device": "pxe", "uefi": True, "wait_timeout": 1}},
        {"name": "persistent", "vaquero.metal.boot_device": {"device": "disk", "persistent": True, "uefi": True}},
        {"name": "http", "vaquero.metal.boot_device": {"device": "http", "persistent": True, "wait_timeout": 0}},
    ]
    r, out = play(tmp_path, tasks, args)
    assert not r[0].get("failed") and r[0]["changed"]
    assert r[1]["failed"] and r[1]["error_kind"] == "setting_not_applied" and r[1]["changed"]
    assert r[1]["requested_boot"] == {"device": "pxe", "persistent": False, "mode": "uefi"} and r[1]["boot"]["persistent"] is True
    assert "rf3" in r[1]["msg"] and "asked for pxe (next boot only, uefi)" in r[1]["msg"]
    assert not r[2].get("failed") and r[2]["boot"] == {"device": "disk", "persistent": True, "mode": "uefi"}
    assert r[3]["failed"] and r[3]["boot"]["device"] == "pxe" and r[3]["requested_boot"]["device"] == "http"
    assert PASSWORD not in out
