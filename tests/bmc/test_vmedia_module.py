"""vaquero.metal.virtual_media through real ansible-playbook: sushy-emulator as the Redfish BMC, a real
`vaquero agent` serving the host's boot ISO (the module asks the agent for its URL)."""

from __future__ import annotations

import pytest
from bmc_helpers import PASSWORD, USERNAME
from test_bmc_modules import ok, play
from vmedia_helpers import VmediaAgent, vmedia_sot


@pytest.fixture
def agent(tmp_path, sushy, monkeypatch):
    a = VmediaAgent(tmp_path, vmedia_sot(tmp_path, sushy.port))
    monkeypatch.setenv("VAQUERO_AGENT_TOKEN", a.admin_token)  # read where the module runs, never a module option
    yield a
    a.stop()


def test_insert_boot_cd_eject_with_check_mode_and_diff(tmp_path, sushy, agent):
    bmc = {"bmc_type": "redfish", "bmc_address": "127.0.0.1", "bmc_port": sushy.port, "bmc_username": USERNAME}
    bmc.update(ca_path=str(sushy.ca_file), host_name="node1", timeout=30)
    iso = {"iso_host": "node1", "sot": str(tmp_path / "sot"), "agent_url": agent.base}
    iso_url = agent.iso_url()
    unfetchable = iso_url.split("?")[0] + "?token=" + "z" * 43
    tasks = [
        {"name": "insert, check mode", "vaquero.metal.virtual_media": {"state": "inserted", **iso}, "check_mode": True, "diff": True},
        {"name": "insert", "vaquero.metal.virtual_media": {"state": "inserted", **iso}, "diff": True},
        {"name": "insert again", "vaquero.metal.virtual_media": {"state": "inserted", **iso}},
        {"name": "boot from the CD", "vaquero.metal.boot_device": {"device": "cdrom", "persistent": True}},
        {"name": "eject, check mode", "vaquero.metal.virtual_media": {"state": "ejected"}, "check_mode": True},
        {"name": "eject", "vaquero.metal.virtual_media": {"state": "ejected"}},
        {"name": "eject again", "vaquero.metal.virtual_media": {"state": "ejected"}},
        {"name": "an image the BMC cannot fetch", "vaquero.metal.virtual_media": {"state": "inserted", "image_url": unfetchable}},
        {"name": "ipmi has no virtual media", "vaquero.metal.virtual_media": {"state": "ejected", "bmc_type": "ipmi", "ca_path": None}},
        {"name": "no image", "vaquero.metal.virtual_media": {"state": "inserted"}},
    ]
    r, out = play(tmp_path, tasks, bmc)
    masked = iso_url.split("?token=")[0] + "?token=***"

    assert ok(r[0])["changed"] and r[0]["media"]["inserted"] and not r[0]["previous_media"]["inserted"]
    assert r[0]["diff"]["before"] == {"inserted": False, "image": None} and r[0]["diff"]["after"]["inserted"] is True
    assert ok(r[1])["changed"] and r[1]["media"] == {**r[1]["media"], "inserted": True, "image": masked}
    assert r[1]["diff"] == {"before": {"inserted": False, "image": None}, "after": {"inserted": True, "image": masked}}
    assert not ok(r[2])["changed"]
    assert ok(r[3])["boot"]["device"] == "cdrom"
    assert ok(r[4])["changed"] and r[4]["previous_media"]["inserted"]
    assert ok(r[5])["changed"] and r[5]["media"]["inserted"] is False
    assert not ok(r[6])["changed"]
    assert r[7]["failed"] and r[7]["error_kind"] == "virtual_media" and "refused image" in r[7]["msg"] and "token=***" in r[7]["msg"]
    assert r[8]["failed"] and r[8]["error_kind"] == "unsupported"
    assert r[9]["failed"] and "image_url or iso_host" in r[9]["msg"]
    # neither the BMC password, the install token, the admin token nor the ISO token ever shows
    for secret in (PASSWORD, agent.token, agent.admin_token, iso_url.split("?token=")[1], "z" * 43):
        assert secret not in out and secret not in repr(r)


def test_iso_of_a_host_not_armed_fails_with_the_agents_reason(tmp_path, sushy, agent):
    bmc = {"bmc_type": "redfish", "bmc_address": "127.0.0.1", "bmc_port": sushy.port, "bmc_username": USERNAME, "ca_path": str(sushy.ca_file)}
    tasks = [{"name": "node2 boots by pxe", "vaquero.metal.virtual_media": {"state": "inserted", "iso_host": "node2", "agent_url": agent.base}}]
    r, _ = play(tmp_path, tasks, bmc)
    assert r[0]["failed"] and r[0]["error_kind"] == "agent" and "HTTP 404" in r[0]["msg"]
