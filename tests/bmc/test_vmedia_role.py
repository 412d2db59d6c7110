"""The netboot_install role with boot method virtual_media, through real ansible-playbook: the SoT
inventory, a real agent, sushy-emulator as the Redfish BMC. A thread plays the installer: once the
BMC shows the ISO inserted, the CD override and the power on, it makes the install callback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from bmc_helpers import PASSWORD
from vmedia_helpers import REPO, VmediaAgent, vmedia_sot

from vaquero.bmc import BootDevice, PowerState, open_bmc
from vaquero.bmc.virtual_media import VirtualMedia

BIN = Path(sys.executable).parent


@pytest.fixture
def lab(tmp_path, sushy):
    sot = vmedia_sot(tmp_path, sushy.port, ca_file=sushy.ca_file)
    agent = VmediaAgent(tmp_path, sot)
    site = sot / "sites" / "lab.yaml"
    site.write_text(site.read_text().replace("url: http://10.90.0.1:8080", f"url: {agent.base}"))
    yield sot, agent
    agent.stop()


def installer(sushy, agent: VmediaAgent, done: dict) -> None:
    """Call back once the BMC shows what a real host would boot from: the ISO, the CD, power on."""
    import time

    deadline = time.monotonic() + 240
    with open_bmc(sushy.endpoint()) as bmc:
        while time.monotonic() < deadline:
            media = VirtualMedia(bmc).status()
            if media.inserted and bmc.get_boot_device().device == BootDevice.CDROM and bmc.get_power_state() == PowerState.ON:
                done["image"] = media.image
                r = httpx.post(f"{agent.base}/v1/boot/callback/node1?token={agent.token}", json={"mac": "52:54:00:00:10:01"}, timeout=30)
                done["callback"] = r.status_code
                return
            time.sleep(0.5)


def test_install_by_virtual_media_inserts_boots_cd_waits_ejects_and_boots_disk(lab, sushy):
    sot, agent = lab
    done: dict = {}
    t = threading.Thread(target=installer, args=(sushy, agent, done), daemon=True)
    t.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAQUERO_")}
    env.update(ANSIBLE_NOCOLOR="1", VAQUERO_LAB_BMC_PASSWORD=PASSWORD, VAQUERO_AGENT_TOKEN=agent.admin_token, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    cmd = [str(BIN / "ansible-playbook"), "-i", str(sot / "inventory.vaquero.yml"), "playbooks/install.yml", "--limit", "node1"]
    cmd += ["-e", "vaquero_targets=node1", "-e", "netboot_install_validate=false", "-e", "netboot_install_timeout=300", "-v"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    t.join(5)
    assert proc.returncode == 0, out[-6000:]
    assert done.get("callback") == 200 and "/v1/boot/iso/node1.iso?token=" in done["image"]
    steps = ("Insert the host's boot ISO", "Boot from the virtual CD", "Wait for the installer's callback", "Eject the boot ISO", "Boot from the local disk")
    assert all(step in out for step in steps)
    with open_bmc(sushy.endpoint()) as bmc:
        assert not VirtualMedia(bmc).status().inserted
        boot = bmc.get_boot_device()
        assert (boot.device, boot.persistent) == (BootDevice.DISK, True)
        assert bmc.get_power_state() == PowerState.ON
    assert httpx.get(f"{agent.base}/v1/boot/status/node1", timeout=30).json()["state"] == "installed"
    for secret in (PASSWORD, agent.token, agent.admin_token, done["image"].split("?token=")[1]):
        assert secret not in out
