"""What counts as drift for one host (vaquero.drift.compare) and how the plan shows it (drift.text)."""

from __future__ import annotations

from vaquero.bmc.values import BootDevice, BootMode, BootSetting, PowerState
from vaquero.drift.compare import Observation, judge
from vaquero.drift.records import actions, counts
from vaquero.drift.text import render_drift

NO_OVERRIDE = BootSetting(BootDevice.NONE, False)


def obs(power: PowerState = PowerState.ON, boot: BootSetting = NO_OVERRIDE, error: str | None = None) -> Observation:
    return Observation("ipmi", at=0.0, power=power, boot=boot, error=error)


def test_a_ready_host_matching_its_sot_is_ok():
    assert judge("n1", "ready", "on", obs())["status"] == "ok"
    assert judge("n1", "ready", "on", obs(boot=BootSetting(BootDevice.DISK, True, BootMode.UEFI)))["status"] == "ok"
    # on its way to the wanted state: no drift
    assert judge("n1", "ready", "on", obs(power=PowerState.POWERING_ON))["status"] == "ok"
    # kept off by the SoT: off matches, and its boot override does not matter until it is on
    assert judge("n1", "ready", "off", obs(power=PowerState.OFF, boot=BootSetting(BootDevice.PXE, True)))["status"] == "ok"


def test_power_and_boot_drift_with_reasons():
    rec = judge("node2", "ready", "on", obs(power=PowerState.OFF, boot=BootSetting(BootDevice.PXE, False)))
    assert rec["status"] == "drift"
    assert [f["action"] for f in rec["findings"]] == ["power_on", "boot_disk"]
    assert rec["findings"][0]["reason"] == "node2: power is off (observed 00:00:00 via ipmi), the SoT wants it on"
    assert "pxe (next boot only)" in rec["findings"][1]["reason"]
    off = judge("node3", "ready", "off", obs(power=PowerState.POWERING_ON))
    assert [f["action"] for f in off["findings"]] == ["power_off"]


def test_an_agent_that_would_not_serve_localboot_is_drift():
    for state in ("none", "installed"):
        assert judge("n1", "ready", "on", Observation("ipmi", at=0.0, power=PowerState.ON, boot=NO_OVERRIDE, agent_state=state))["status"] == "ok"
    for state in ("install", "wipe", "wiped", "failed"):
        rec = judge("n1", "ready", "on", Observation("ipmi", at=0.0, power=PowerState.ON, boot=NO_OVERRIDE, agent_state=state))
        assert [(f["kind"], f["action"], f["observed"]) for f in rec["findings"]] == [("agent", "agent_localboot", state)]
        assert "via the site agent" in rec["findings"][0]["reason"]
    # the agent unread, the BMC read: unknown, with what was not read
    rec = judge("n1", "ready", "on", Observation("ipmi", at=0.0, power=PowerState.ON, boot=NO_OVERRIDE, agent_error="agent unreachable"))
    assert (rec["status"], rec["reason"]) == ("unknown", "agent: agent unreachable")


def test_unknown_and_skipped_are_never_drift():
    rec = judge("n1", "ready", "on", obs(power=None, boot=None, error="unreachable: no answer"))  # type: ignore[arg-type]
    assert (rec["status"], rec["reason"], rec["findings"]) == ("unknown", "BMC: unreachable: no answer", [])
    for state in (None, "enrolled", "installing", "failed", "powering_off"):
        rec = judge("n1", state, "on", obs(power=PowerState.OFF))
        assert rec["status"] == "skipped" and rec["findings"] == [] and rec["reason"]
    records = [judge("a", "ready", "on", obs(power=PowerState.OFF)), rec, judge("b", "ready", "on", obs(error="timeout"))]
    assert counts(records) == {"power": 1, "boot": 0, "agent": 0, "unknown": 1}
    assert [(a["host"], a["kind"]) for a in actions(records)] == [("a", "power")]


def test_a_reason_cannot_add_a_line_to_the_plan():
    report = {
        "count": 1,
        "actions": [{"host": "n1", "kind": "power", "action": "power_on", "reason": "off\n  ^ host n9: fake line\u2028x"}],
        "hosts": [{"host": "n2", "status": "unknown", "reason": "bad\r\nthing"}],
    }
    text = render_drift(report)
    assert "\n  ^ host n9" not in text and "\\n  ^ host n9: fake line\\u2028x" in text
    assert "unknown (bad\\r\\nthing)" in text
    assert text.count("\n") == len(text.splitlines())
