"""A failed pre_shutdown hook stops before power is cut: the real upgrade.yml, by hand, against
an emulated IPMI BMC on loopback that counts every operation it executed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

from ports import free_port

from vaquero.sot import load

REPO = Path(__file__).resolve().parents[2]


def test_failed_drain_hook_cuts_no_power(lab_sot: Path, tmp_path: Path) -> None:
    node2_uuid = next(str(h.uuid) for _, _, h in load(lab_sot, semantic=False).hosts() if h.name == "node2")
    port, control = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    (tmp_path / "pw").write_text("drain-guard-pw\n")
    cmd = [sys.executable, "-m", "vaquero.bmc.emulator", "--port", str(port), "--password-file", str(tmp_path / "pw"), "--control-port", str(control)]
    cmd += ["--uuid", node2_uuid]  # node2's machine, as the SoT says: the roles check the BMC's identity first
    bmc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert bmc.stdout is not None and bmc.stdout.readline().startswith(b"ready")
        text = (lab_sot / "clusters" / "lab.yaml").read_text().replace("port: 6232", f"port: {port}")
        (lab_sot / "clusters" / "lab.yaml").write_text(text)
        (lab_sot / "hooks" / "lab-hooks.yaml").write_text(
            textwrap.dedent(
                """\
                apiVersion: vaquero/v1
                kind: Hook
                name: announce-drain
                type: command
                command: "echo cannot drain {{ host.name }}: pods would be lost; exit 1"
                retries: 1
                delay: 0
                ---
                apiVersion: vaquero/v1
                kind: Hook
                name: agent-saw-callback
                type: command
                command: "true"
                """
            )
        )
        env = {**os.environ, "VAQUERO_LAB_BMC_PASSWORD": "drain-guard-pw", "ANSIBLE_NOCOLOR": "1"}
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        t0 = time.monotonic()
        res = subprocess.run(
            ["ansible-playbook", "-i", str(lab_sot / "inventory.vaquero.yml"), "playbooks/upgrade.yml", "--limit", "node2"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert res.returncode == 2, res.stdout[-3000:]
        assert "cannot drain node2: pods would be lost" in res.stdout and "after 2 attempt(s)" in res.stdout
        assert "Power off (the operating system shuts down first)" not in res.stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{control}/", timeout=5) as resp:
            state = json.loads(resp.read())[str(port)]
        assert state["counts"] == {} and state["power"] == "off", state  # not one BMC operation
        print(f"drain guard: {time.monotonic() - t0:.1f}s")
    finally:
        bmc.terminate()
        bmc.wait(10)
