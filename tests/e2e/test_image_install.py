"""End to end with a real OS on the disk: an empty lab -> a signed push that adds two hosts on the
image profile lab-debian-12 -> approve -> both hosts (QEMU TCG, SeaBIOS, a blank 2 GiB virtio
disk, DMI UUID the SoT's) netboot the deploy ramdisk, which writes the Debian 12 reference image
(`vaquero image build debian-12`, cached by content hash) to the disk -> the lab BMC boots the
disk -> Debian runs cloud-init and phones home -> the validate hook logs in over SSH with the
lab's key and checks hostname, address and ssh.service -> `ready`.

Then, on the same hosts, the in-place upgrade (upgrade.strategy reboot over SSH): a push moves
the profile's package vaquero-probe (a tiny HTTP responder cloud-init installed from the lab's
repository) from 1 to 2, one host at a time, with min_available 1 measured by a prober asking both
responders every second; and a push to the broken version 3 fails the first host's validate hook,
upgrade.rollback brings it back to 2, and the second host is never touched.

The webhook path of test_webhook_to_ready.py (`vaquero standalone`, its API and agent in a
network namespace, emulated IPMI BMCs driving the QEMU processes). The two hosts install at once
(policy max_concurrent 2).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from requirements import need
from test_install_standalone import PASSWORD, StandaloneLab, assert_no_secret, collapse, edit_cluster, require_prerequisites
from test_webhook_to_ready import SECRET, deliver, push_body
from waiting import wait_until

from vaquero.lab.demo import MACS, git
from vaquero.lab.netns import LabNetwork
from vaquero.lab.probe import build_probe_repo
from vaquero.lab.sot import prepare_image_profile

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.image]

HOSTS = ["node1", "node2"]
PROFILE = "lab-debian-12"
DISK_GB = 2
MEMORY = 512  # MiB: the deploy ramdisk, then Debian with systemd and cloud-init
PLAN_TIMEOUT = 2400
REPO_ADDRESS, REPO_PORT = "10.90.0.1", 8081  # the lab's package repository, on the bridge


class ImageLab(StandaloneLab):
    """The standalone lab whose hosts have a blank virtio disk and enough memory for Debian."""

    def host_entries(self) -> list[dict[str, Any]]:
        return [{"name": h, "mac": MACS[h], "port": 6230 + int(h[-1]), "disk_gb": DISK_GB, "memory": MEMORY} for h in self.hosts]


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
    probe_repo = build_probe_repo()
    print(f"\nimage install e2e: image and ramdisk ready in {time.monotonic() - t0:.1f} s (image {'cached' if image.cached else 'built'})")
    return image, ramdisk, probe_repo


def test_push_approve_two_hosts_installed_from_the_debian_image_ssh_validated_ready(tmp_path, monkeypatch, deploy_assets) -> None:
    require_prerequisites()
    image, ramdisk, probe_repo = deploy_assets
    monkeypatch.setenv("VAQUERO_WEBHOOK_SECRET", SECRET)
    key, public = key_pair(tmp_path / "ssh")
    # The private half's own bytes (line 5 of an OpenSSH ed25519 key holds the secret seed; lines 2-3
    # are a constant header and the public key, which the host's own keys share or carry).
    private_body = key.read_text().splitlines()[4][6:46]
    lab = ImageLab(tmp_path, HOSTS, PASSWORD)
    prober = None
    try:
        lab.make_repo(
            profile=PROFILE,
            policy={"max_concurrent": 2, "min_available": 0, "on_failure": "halt"},
            vars={"ssh_keys": [public]},
            hooks={"pre_shutdown": ["announce-drain"], "validate": ["agent-saw-callback", "ssh-login", "cloud-init-done", "probe-answers"]},
            upgrade={"strategy": "reboot", "rollback": True, "ssh": {"user": "debian", "key": str(key)}},
        )
        prepare_image_profile(lab.repo, PROFILE, ramdisk.kernel, ramdisk.initrd, image.compressed)
        set_probe_version(lab, "1")
        edit_cluster(lab.repo, vars={"ssh_keys": [public], "apt_repo": f"http://{REPO_ADDRESS}:{REPO_PORT}/"})
        set_ssh_key(lab.repo, key)
        with_hosts = lab.commit("lab on the Debian 12 image, with the lab's SSH key")
        edit_cluster(lab.repo, hosts=[])
        empty = lab.commit("lab without hosts")
        lab.start()
        # The lab's package repository (vaquero-probe 1, 2 and 3), served on the bridge.
        lab.net.popen(
            [sys.executable, "-m", "http.server", "--bind", REPO_ADDRESS, str(REPO_PORT), "--directory", str(probe_repo)], log_file=lab.workdir / "repo.log"
        )
        lab.net.wait_port(REPO_ADDRESS, REPO_PORT, timeout=20)
        prober = Prober(lab, HOSTS)
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
            # with its SSH host keys, which the ssh_check below and the in-place upgrades are held to
            assert [k.split()[0] for k in booted["ssh_host_keys"]] == ["ecdsa-sha2-nistp256", "ssh-ed25519"], booted
            # The SSH login: hostname, address and ssh.service as the SoT says.
            ssh = next(e["detail"]["hook"] for e in events if e["detail"].get("hook", {}).get("name") == "ssh-login")
            assert ssh["ok"], ssh
            out = ssh["attempts"][-1]["output"]
            assert f"ok: hostname {name}" in out and f"SoT address 10.90.0.1{name[-1]}" in out and "ok: ssh.service is active" in out, out
            # The BMC: pxe once (spent by the first power on), then the disk for good; two boots.
            bmc = bmcs[name]
            assert bmc["boot"] == {"device": "disk", "persistent": True, "uefi": False} and bmc["power"] == "on" and bmc["boots"] == 2, bmc
            first = (lab.workdir / "vms" / f"{name}.console.1.log").read_text(errors="replace")
            # the builder leaves its file system clean: grown with no second full check of proven bytes
            assert "vaquero-deploy: callback done" in first and "needs a check first" not in first
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

        # Both responders answer version 1, installed by cloud-init from the lab's repository.
        wait_until(lambda: prober.last() == {h: "vaquero-probe 1" for h in HOSTS}, timeout=180, what="both responders answering vaquero-probe 1", interval=1)
        upgraded = in_place_upgrade(lab, prober, added, "2")
        rolled_back = failed_upgrade_rolls_back(lab, prober, upgraded)
        assert rolled_back
    finally:
        if prober is not None:
            prober.stop()
        lab.close()


class Prober:
    """Asks every host's responder (vaquero-probe, port 8080) what it runs, once a second, from a
    process inside the lab's namespace; each round is one JSON line: time and host -> body or null."""

    CODE = r"""
import concurrent.futures as cf, json, sys, time, urllib.request
out, urls = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
def ask(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read(200).decode(errors="replace").strip()
    except Exception:
        return None
with cf.ThreadPoolExecutor(len(urls)) as pool, open(out, "a", buffering=1) as fh:
    while True:
        t = time.time()
        answers = dict(zip(urls, pool.map(ask, urls.values())))
        fh.write(json.dumps({"t": t, "up": answers}) + "\n")
        time.sleep(max(0.0, 1.0 - (time.time() - t)))
"""

    def __init__(self, lab: ImageLab, hosts: list[str]) -> None:
        self.file = lab.workdir / "probe.jsonl"
        urls = [f"{h}=http://10.90.0.1{h[-1]}:8080/" for h in hosts]
        self.proc = lab.net.popen([sys.executable, "-c", self.CODE, str(self.file), *urls], log_file=lab.workdir / "prober.log")

    def rounds(self, since: float = 0.0, until: float = float("inf")) -> list[dict[str, Any]]:
        if not self.file.exists():
            return []
        rows = [json.loads(line) for line in self.file.read_text().splitlines() if line.endswith("}")]
        return [r for r in rows if since <= r["t"] <= until]

    def last(self) -> dict[str, Any] | None:
        rows = self.rounds()
        return rows[-1]["up"] if rows else None

    def stop(self) -> None:
        LabNetwork.stop(self.proc, timeout=5)


def since(events: list[dict[str, Any]], t: float) -> list[dict[str, Any]]:
    return [e for e in events if e["time"] >= t]


def push_and_approve(lab: ImageLab, before: str, message: str) -> tuple[str, dict[str, Any], float, float]:
    sha = lab.commit(message)
    answer = deliver(lab, push_body(lab.repo, before, sha))
    assert answer["status"] == 202, answer
    plan = lab.wait_plan(sha, ("pending_approval", "invalid", "approved", "succeeded"), timeout=120)
    assert plan["state"] == "pending_approval", plan
    assert sorted((h["host"], h["action"]) for h in plan["plan"]["hosts"]) == [(h, "upgrade") for h in HOSTS]
    t0 = time.time()
    approved = lab.api("POST", f"/v1/plans/{plan['id']}/approve", {"digest": plan["digest"]})
    assert approved["status"] == 200, approved
    plan = lab.wait_plan(sha, ("succeeded", "failed", "cancelled"), timeout=PLAN_TIMEOUT)
    return sha, plan, t0, time.time()


def set_probe_version(lab: ImageLab, version: str) -> None:
    path = lab.repo / "profiles" / f"{PROFILE}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["packages"] = [{"name": "vaquero-probe", "version": version}]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def in_place_upgrade(lab: ImageLab, prober: Prober, before: str, version: str) -> str:
    """vaquero-probe 1 -> 2 with upgrade.strategy reboot: over SSH, one host at a time
    (max_concurrent 1, min_available 1), each rebooted through its OS; min_available is measured by
    the prober: in every round of the upgrade at least one responder answered."""
    set_probe_version(lab, version)
    edit_cluster(lab.repo, policy={"max_concurrent": 1, "min_available": 1, "on_failure": "halt"})
    sha, plan, t0, t1 = push_and_approve(lab, before, f"vaquero-probe {version}: in place, one host at a time")
    assert plan["state"] == "succeeded", f"{lab.store.get('/runs/' + plan['id'])}\n{lab.log()}"
    for name in HOSTS:
        events = since(lab.timeline(name), t0)
        assert collapse([e["state"] for e in events]) == ["pending", "draining", "installing", "rebooting", "validating", "ready"], events
        assert "vaquero-probe=2" in by_state(events, "installing")["reason"]
        validating = by_state(events, "validating")["detail"]
        assert validating["rebooted_by"] == "os" and validating["packages"] == {"vaquero-probe": version}, validating
        assert lab.store.get(f"/hosts/{name}")["sha"] == sha
    rounds = prober.rounds(t0, t1)
    assert len(rounds) > 20, rounds
    answering = [sum(1 for v in r["up"].values() if v) for r in rounds]
    assert min(answering) >= 1, f"a round of the upgrade with no responder answering: {[r for r in rounds if not any(r['up'].values())][:3]}"
    for name in HOSTS:  # each responder really went away (its host rebooted) and came back on the new version
        assert any(r["up"][name] is None for r in rounds), f"{name}'s responder never stopped answering"
    wait_until(
        lambda: prober.last() == {h: f"vaquero-probe {version}" for h in HOSTS}, timeout=30, what="both responders answering the new version", interval=1
    )
    print(f"\nin-place upgrade e2e: {', '.join(HOSTS)} to vaquero-probe {version} in {t1 - t0:.1f} s; fewest responders up in a round: {min(answering)}")
    return sha


def failed_upgrade_rolls_back(lab: ImageLab, prober: Prober, before: str) -> str:
    """vaquero-probe 3 installs but never answers: the first host fails its validate hook, upgrade.rollback
    takes it back to the previous revision (vaquero-probe 2, in place again), the plan halts and the
    second host is never touched."""
    set_probe_version(lab, "3")
    sha, plan, t0, t1 = push_and_approve(lab, before, "vaquero-probe 3: broken")
    run = lab.store.get("/runs/" + plan["id"])
    assert plan["state"] == "failed", f"{run}\n{lab.log()}"
    first, second = HOSTS
    events = since(lab.timeline(first), t0)
    seq = collapse([e["state"] for e in events])
    assert seq[:6] == ["pending", "draining", "installing", "rebooting", "validating", "failed"], seq
    assert seq[-5:] == ["draining", "installing", "rebooting", "validating", "ready"], seq
    assert "vaquero-probe=3" in by_state(events, "installing")["reason"]
    reinstall = [e for e in events if e["state"] == "installing"][-1]
    assert "vaquero-probe=2" in reinstall["reason"], reinstall
    failed = next(e for e in events if e["state"] == "failed")
    assert "probe-answers" in json.dumps(failed) and "failed after 5 attempt(s)" in json.dumps(failed), failed
    assert lab.store.get(f"/hosts/{first}")["sha"] == before
    untouched = [e["state"] for e in since(lab.timeline(second), t0)]
    assert not set(untouched) - {"pending", "ready"}, untouched  # queued at most, never drained
    assert prober.last() == {h: "vaquero-probe 2" for h in HOSTS}, prober.rounds()[-3:]
    print(f"\nrollback e2e: {first} failed on vaquero-probe 3 and was rolled back to 2 in {t1 - t0:.1f} s")
    return sha
