"""The in-place upgrade's fallback: when the OS cannot be asked to reboot (nothing answers SSH), the
BMC power-cycles the host, and a host that still does not answer fails with the reason. The real
upgrade.yml by hand, against an emulated IPMI BMC on loopback that counts every operation, and an
SSH port with nothing behind it. (The path through the OS, on Debian in QEMU, is in
tests/e2e/test_image_install.py.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from ports import free_port
from requirements import need

from vaquero.sot import load

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("trust_first_key", [True, False])
def test_os_that_cannot_be_asked_is_power_cycled_by_the_bmc_and_the_host_fails_if_it_stays_silent(lab_sot: Path, tmp_path: Path, trust_first_key: bool) -> None:
    """No agent holds a phone-home report of this host, so no SSH host keys: only a cluster that trusts
    the first key goes on to SSH at all; without it the host fails before any SSH or BMC request."""
    need("ipmitool", "ipmitool")
    need("ssh", "openssh-client")
    node2_uuid = next(str(h.uuid) for _, _, h in load(lab_sot, semantic=False).hosts() if h.name == "node2")
    port, control, ssh_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    (tmp_path / "pw").write_text("fallback-pw\n")
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    cmd = [sys.executable, "-m", "vaquero.bmc.emulator", "--port", str(port), "--password-file", str(tmp_path / "pw"), "--control-port", str(control)]
    bmc = subprocess.Popen([*cmd, "--uuid", node2_uuid], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert bmc.stdout is not None and bmc.stdout.readline().startswith(b"ready")
        # the host runs (its OS is up, as for any upgrade): powered on over IPMI by ipmitool
        ipmi = ["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(port), "-U", "admin", "-E", "chassis", "power", "on"]
        subprocess.run(ipmi, check=True, capture_output=True, timeout=60, env={**os.environ, "IPMI_PASSWORD": "fallback-pw"})
        path = lab_sot / "clusters" / "lab.yaml"
        doc = yaml.safe_load(path.read_text().replace("port: 6232", f"port: {port}"))
        ssh = {"user": "debian", "key": str(key), "port": ssh_port, "trust_first_key": trust_first_key}
        doc["upgrade"] = {"strategy": "reboot", "ssh": ssh, "reboot_timeout": 30}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        env = {**os.environ, "VAQUERO_LAB_BMC_PASSWORD": "fallback-pw", "ANSIBLE_NOCOLOR": "1"}
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        play = ["ansible-playbook", "-i", str(lab_sot / "inventory.vaquero.yml"), "playbooks/upgrade.yml", "--limit", "node2"]
        # the host's address is loopback here, and the reboot wait short (the SoT's minimum is 30 s)
        play += ["-e", "ansible_host=127.0.0.1", "-e", "rolling_upgrade_reboot_timeout=3"]
        res = subprocess.run(play, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        out = res.stdout
        assert res.returncode == 2, out[-4000:]
        if not trust_first_key:
            assert "node2: its installed OS reported no SSH host keys when it phoned home" in out, out[-4000:]
            assert "Reboot through the operating system" not in out and "Install the profile's packages" not in out
            with urllib.request.urlopen(f"http://127.0.0.1:{control}/", timeout=5) as resp:
                assert json.loads(resp.read())[str(port)]["counts"] == {"power_on": 1}  # ipmitool's, nothing from the upgrade
            return
        # The OS was asked first, over SSH; it could not be reached, so the BMC power-cycled the host.
        assert "TASK [vaquero.metal.rolling_upgrade : Reboot through the operating system" in out
        assert f"port {ssh_port}: Connection refused" in out, out[-4000:]
        assert "TASK [vaquero.metal.rolling_upgrade : Power-cycle the host through its BMC]" in out
        # Still nothing over SSH: the host fails there, and nothing after it (versions, validate) ran.
        assert "TASK [vaquero.metal.rolling_upgrade : Wait until the host answers over SSH again]" in out
        after = out.split("Wait until the host answers over SSH again]")[-1]
        assert "timed out waiting for ping module test" in after, after[-3000:]
        assert "Read back the package versions" not in after and "Report ready" not in out
        with urllib.request.urlopen(f"http://127.0.0.1:{control}/", timeout=5) as resp:
            state = json.loads(resp.read())[str(port)]
        # besides ipmitool's power on: the boot device set to the disk and one power cycle, nothing else
        assert state["counts"] == {"power_on": 1, "set_boot": 1, "power_cycle": 1}, state
        # the known_hosts file of the upgrade is gone
        assert "Remove the known_hosts file of this upgrade" in out
    finally:
        bmc.terminate()
        bmc.wait(timeout=10)
