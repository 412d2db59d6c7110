"""End to end with a real OS on the disk: an empty lab -> a signed push that adds two hosts on the
image profile lab-debian-12 -> approve -> both hosts (QEMU TCG, SeaBIOS, a blank 2 GiB virtio
disk, DMI UUID the SoT's) netboot the deploy ramdisk, which writes the Debian 12 reference image
(`vaquero image build debian-12`, cached by content hash) to the disk -> the lab BMC boots the
disk -> Debian runs cloud-init and phones home -> the validate hook logs in over SSH with the
lab's key and checks hostname, address and ssh.service -> `ready`.

The webhook path of test_webhook_to_ready.py (`vaquero standalone`, its API and agent in a
network namespace, emulated IPMI BMCs driving the QEMU processes). The two hosts install at once
(policy max_concurrent 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from requirements import need
from test_install_standalone import PASSWORD, StandaloneLab, assert_no_secret, collapse, edit_cluster, require_prerequisites
from test_webhook_to_ready import SECRET, deliver, push_body

from vaquero.lab.demo import MACS, git
from vaquero.lab.sot import prepare_image_profile

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.image]

HOSTS = ["node1", "node2"]
PROFILE = "lab-debian-12"
DISK_GB = 2
MEMORY = 512  # MiB: the deploy ramdisk, then Debian with systemd and cloud-init
PLAN_TIMEOUT = 2400


class ImageLab(StandaloneLab):
    """The standalone lab whose hosts have a blank virtio disk and enough memory for Debian."""

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.net.create()
        pw = self.workdir / "bmc-password"
        fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.password + "\n")
        hosts = self.workdir / "hosts.json"
        entries = [{"name": h, "mac": MACS[h], "port": 6230 + int(h[-1]), "disk_gb": DISK_GB, "memory": MEMORY} for h in self.hosts]
        hosts.write_text(json.dumps(entries))
        cmd = [sys.executable, "-m", "vaquero.lab.bmc", "--hosts", str(hosts), "--password-file", str(pw)]
        cmd += ["--state-dir", str(self.workdir / "vms"), "--control-port", "6229"]
        self.net.popen(cmd, log_file=self.workdir / "labbmc.log")
        self.net.wait_port("127.0.0.1", 6229, timeout=20)


def key_pair(folder: Path) -> tuple[Path, str]:
    """A fresh ed25519 pair for this lab: (private key file, public key line)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = folder / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vaquero-lab", "-f", str(key)], check=True, capture_output=True)
    return key, key.with_suffix(".pub").read_text().strip()


def set_ssh_key(sot: Path, key: Path) -> None:
    path = sot / "hooks" / "lab-hooks.yaml"
    text = path.read_text()
    assert "ssh_key: /var/lib/vaquero/lab/ssh/id_ed25519" in text
    path.write_text(text.replace("ssh_key: /var/lib/vaquero/lab/ssh/id_ed25519", f"ssh_key: {key}"))


def qemu_command_lines() -> list[list[str]]:
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"qemu-system-x86_64"):
            out.append([a.decode(errors="replace") for a in args if a])
    return out


def by_state(events: list[dict[str, Any]], state: str) -> dict[str, Any]:
    return next(e for e in events if e["state"] == state and not e["detail"].get("hook"))


@pytest.fixture(scope="module")
def deploy_assets():
    for tool, pkg in (("qemu-img", "qemu-utils"), ("ssh", "openssh-client"), ("ssh-keygen", "openssh-client"), ("mmdebstrap", "mmdebstrap"), ("cpio", "cpio")):
        need(tool, pkg)
    from vaquero.deploy.ramdisk import build_ramdisk
    from vaquero.image.build import build

    t0 = time.monotonic()
    image = build("debian-12")
    ramdisk = build_ramdisk()
    print(f"\nimage install e2e: image and ramdisk ready in {time.monotonic() - t0:.1f} s (image {'cached' if image.cached else 'built'})")
    return image, ramdisk


def test_push_approve_two_hosts_installed_from_the_debian_image_ssh_validated_ready(tmp_path, monkeypatch, deploy_assets) -> None:
    require_prerequisites()
    image, ramdisk = deploy_assets
    monkeypatch.setenv("VAQUERO_WEBHOOK_SECRET", SECRET)
    key, public = key_pair(tmp_path / "ssh")
    # The private half's own bytes (line 5 of an OpenSSH ed25519 key holds the secret seed; lines 2-3
    # are a constant header and the public key, which the host's own keys share or carry).
    private_body = key.read_text().splitlines()[4][6:46]
    lab = ImageLab(tmp_path, HOSTS, PASSWORD)
    try:
        lab.make_repo(
            profile=PROFILE,
            policy={"max_concurrent": 2, "min_available": 0, "on_failure": "halt"},
            vars={"ssh_keys": [public]},
            hooks={"pre_shutdown": ["announce-drain"], "validate": ["agent-saw-callback", "ssh-login"]},
        )
        prepare_image_profile(lab.repo, PROFILE, ramdisk.kernel, ramdisk.initrd, image.compressed)
        set_ssh_key(lab.repo, key)
        with_hosts = lab.commit("lab on the Debian 12 image, with the lab's SSH key")
        edit_cluster(lab.repo, hosts=[])
        empty = lab.commit("lab without hosts")
        lab.start()
        lab.standalone_start(f"{lab.repo}@main")  # --approve: the empty lab becomes the current revision
        assert lab.wait_plan(empty, ("succeeded", "failed"), timeout=120)["state"] == "succeeded", lab.log()

        git(lab.repo, "checkout", "-q", with_hosts, "--", "clusters/lab.yaml")
        added = lab.commit("add node1 and node2")
        answer = deliver(lab, push_body(lab.repo, empty, added))
        assert answer["status"] == 202, answer
        plan = lab.wait_plan(added, ("pending_approval", "invalid", "approved", "succeeded"), timeout=120)
        assert plan["state"] == "pending_approval", plan
        assert sorted((h["host"], h["action"]) for h in plan["plan"]["hosts"]) == [("node1", "add"), ("node2", "add")]

        t0 = time.monotonic()
        approved = lab.api("POST", f"/v1/plans/{plan['id']}/approve", {"digest": plan["digest"]})
        assert approved["status"] == 200, approved
        plan = lab.wait_plan(added, ("succeeded", "failed", "cancelled"), timeout=PLAN_TIMEOUT)
        took = time.monotonic() - t0
        consoles = {h: sorted((lab.workdir / "vms").glob(f"{h}.console*.log")) for h in HOSTS}
        tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for ps in consoles.values() for p in ps)
        assert plan["state"] == "succeeded", f"{lab.store.get('/runs/' + plan['id'])}\n{lab.log()}\n{tails}"

        bmcs = lab.bmcs()
        gz_sha = image.compressed.with_name(image.compressed.name + ".sha256").read_text().split()[0]
        for name in HOSTS:
            host = lab.store.get(f"/hosts/{name}")
            assert host["state"] == "ready" and host["sha"] == added, host
            events = lab.timeline(name)
            seq = collapse([e["state"] for e in events])
            assert seq == ["pending", "powering_off", "netbooting", "installing", "rebooting", "validating", "ready"], seq
            # The deploy ramdisk's callback (the image's digest as the SoT has it, the disk) and its progress.
            installing = by_state(events, "installing")
            report = installing["detail"]["report"]
            assert report["result"] == "success" and report["sha256"] == gz_sha and report["disk"] == "vda", report
            assert report["bytes"] == image.raw.stat().st_size and report["disk_bytes"] == DISK_GB << 30
            phases = [e["phase"] for e in installing["detail"]["deploy"]]
            assert [p for p in phases if p != "writing"] == ["disk", "written", "resized", "seeded"], phases
            assert gz_sha in installing["reason"]
            # The OS on the disk phoned home before the validate hooks ran.
            validating = by_state(events, "validating")
            booted = validating["detail"]["phone_home"]
            assert booted["event"] == "booted" and booted["hostname"] == name and booted["image"]["name"] == "debian-12", booted
            # The SSH login: hostname, address and ssh.service as the SoT says.
            ssh = next(e["detail"]["hook"] for e in events if e["detail"].get("hook", {}).get("name") == "ssh-login")
            assert ssh["ok"], ssh
            out = ssh["attempts"][-1]["output"]
            assert f"ok: hostname {name}" in out and f"SoT address 10.90.0.1{name[-1]}" in out and "ok: ssh.service is active" in out, out
            # The BMC: pxe once (spent by the first power on), then the disk for good; two boots.
            bmc = bmcs[name]
            assert bmc["boot"] == {"device": "disk", "persistent": True, "uefi": False} and bmc["power"] == "on" and bmc["boots"] == 2, bmc
            first = (lab.workdir / "vms" / f"{name}.console.1.log").read_text(errors="replace")
            assert "vaquero-deploy: callback done" in first
            second = (lab.workdir / "vms" / f"{name}.console.log").read_text(errors="replace")
            assert "vaquero-booted: reported to" in second and "token=" not in second
        # The running VMs boot their disks, with the SoT's UUIDs as their DMI system UUID.
        uuids = {line[line.index("-uuid") + 1] for line in qemu_command_lines() if "-uuid" in line}
        assert {"5a9a0001-0000-4000-8000-000000001001", "5a9a0001-0000-4000-8000-000000001002"} <= uuids, uuids
        # Neither the BMC password nor the private key is in the data folder, the logs or the artifacts.
        assert_no_secret(lab.data)
        for folder in (lab.data, lab.workdir / "vms"):
            grep = subprocess.run(["grep", "-r", "-l", "-F", "-a", private_body, str(folder)], capture_output=True, text=True)
            assert grep.returncode == 1, f"the private key is in {grep.stdout.strip()}"
        assert private_body not in lab.log(10**8)
        print(f"\nimage install e2e: approve -> {', '.join(HOSTS)} ready from the Debian 12 image in {took:.1f} s")
    finally:
        lab.close()
