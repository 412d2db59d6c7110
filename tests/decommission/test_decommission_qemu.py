"""Decommission on a QEMU host, through the controller: `vaquero standalone` applies a revision
that has node1 (and node2) kept powered off, then a push removes both from the SoT; the plan shows
`remove`, it is approved, and the runner runs playbooks/decommission.yml on the previous
revision's inventory.

node1 is a QEMU host (TCG, SeaBIOS) whose emulated IPMI BMC (vaquero.lab.bmc) drives its QEMU
process; its virtio disk already holds a GPT, a data partition and an ext4 file system (made on
this machine with sgdisk and `mke2fs -d`, every other byte 0xa5). The BMC boots pxe once, the
agent serves node1 (retired: no longer in the SoT) the deploy ramdisk in wipe mode, /init zeroes
the disk's and each partition's first and last MiB and calls back, and the disk is read back with
qemu-img. node2's BMC answers with another system UUID than the SoT's: its step fails at the
identity check before any power or boot request, in the same run (no VM of its own).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from requirements import need, need_root
from wipe_helpers import MIB, make_filled_disk, partition_rows, signatures

from vaquero.lab.demo import MACS, StandaloneLab
from vaquero.lab.sot import prepare_image_profile
from vaquero.render.ipxe import mac_key, unknown_script

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Decom-BMC-pw-5b0d2e"
AGENT_TOKEN = "decom-agent-admin-token-7f3a9c1e"  # the standalone's agent admin token, grepped for in the logs
PROFILE = "lab-debian-12"
DISK_BYTES = 64 * MIB
MEMORY = 192  # MiB: the deploy ramdisk only (no image is written)
WRONG_UUID = "5a9a0001-0000-4000-8000-00000000dead"
PLAN_TIMEOUT = 600


class DecomLab(StandaloneLab):
    """The standalone lab: node1 with the prepared disk and little memory, node2's BMC with a UUID the SoT does not give it."""

    def host_entries(self) -> list[dict[str, Any]]:
        return [
            # disk_gb is only for the BMC's make_disk, which keeps the disk already at vms/node1.qcow2.
            {"name": "node1", "mac": MACS["node1"], "port": 6231, "disk_gb": DISK_BYTES / (1 << 30), "memory": MEMORY},
            {"name": "node2", "mac": MACS["node2"], "port": 6232, "uuid": WRONG_UUID, "memory": MEMORY},
        ]


def edit_hosts(repo: Path, keep: list[str], **host_keys: Any) -> None:
    """Keep only `keep` in the lab cluster and set keys on each of them."""
    path = repo / "clusters" / "lab.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["hosts"] = [{**h, **host_keys} for h in doc["hosts"] if h["name"] in keep]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def blkid_at(raw: Path, offset: int) -> str:
    """What `blkid -p` finds at a byte offset of a disk image ('' when nothing)."""
    res = subprocess.run(["blkid", "-p", "-O", str(offset), str(raw)], capture_output=True, text=True)
    return res.stdout.strip()


def agent_get(lab: StandaloneLab, path: str) -> tuple[int, str]:
    res = lab.net.run(["curl", "-s", "-w", "\n%{http_code}", f"http://10.90.0.1:8080{path}"], timeout=15)
    body, _, code = res.stdout.rpartition("\n")
    return int(code or 0), body


def assert_no_secret(*paths: Path) -> None:
    """Neither the BMC password, nor the agent's admin token, nor a one-time token (the wipe's, in
    the ramdisk's URLs) in any file under `paths`."""
    for secret in (PASSWORD, AGENT_TOKEN):
        grep = subprocess.run(["grep", "-r", "-l", "-a", "-F", secret, *map(str, paths)], capture_output=True, text=True)
        assert grep.returncode == 1, f"a secret is in {grep.stdout.strip()}"
    grep = subprocess.run(["grep", "-r", "-a", "-o", "-E", "token=[A-Za-z0-9_-]{20,}", *map(str, paths)], capture_output=True, text=True)
    assert grep.returncode == 1, f"a one-time token is in {grep.stdout.strip()[:300]}"


@pytest.mark.e2e
def test_remove_wipes_powers_off_and_forgets_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_root("network namespaces, taps and QEMU hosts")
    tools = (("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils"), ("sgdisk", "gdisk"), ("mke2fs", "e2fsprogs"), ("blkid", "util-linux"),
             ("dnsmasq", "dnsmasq-base"), ("cpio", "cpio"), ("apt-get", "apt"), ("curl", "curl"), ("git", "git"))  # fmt: skip
    for tool, pkg in tools:
        need(tool, pkg)
    assert (Path(sys.executable).parent / "ansible-playbook").exists(), "ansible-playbook is not in the venv (run scripts/setup.sh)"
    from vaquero.deploy.ramdisk import build_ramdisk

    ramdisk = build_ramdisk()  # cached by content hash
    monkeypatch.setenv("VAQUERO_AGENT_TOKEN", AGENT_TOKEN)

    # node1's disk: GPT + data partition + ext4, as a qcow2 where the lab BMC keeps node1's disk.
    raw, parts = make_filled_disk(tmp_path / "node1-before.raw", DISK_BYTES)
    table, probe = signatures(raw)
    assert len(partition_rows(table)) == 2 and 'TYPE="ext4"' in blkid_at(raw, parts[1][0] * 512), (table, probe)
    disk = tmp_path / "lab" / "vms" / "node1.qcow2"
    disk.parent.mkdir(parents=True)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(disk)], check=True, capture_output=True)
    # The image profile the hosts were deployed from: the deploy ramdisk boots their wipe. The image
    # is never written here; it only has to be a file whose sha256 the agent checks.
    image = tmp_path / "never-deployed.raw.gz"
    image.write_bytes(gzip.compress(b"\0" * MIB, mtime=0))

    t0 = time.monotonic()
    lab = DecomLab(tmp_path / "lab", ["node1", "node2"], PASSWORD)
    try:
        lab.make_repo(policy={"max_concurrent": 2, "min_available": 0, "on_failure": "continue"})
        prepare_image_profile(lab.repo, PROFILE, ramdisk.kernel, ramdisk.initrd, image)
        # Revision 1 has both hosts, kept powered off: applied without a boot (action `config`).
        edit_hosts(lab.repo, ["node1", "node2"], profile=PROFILE, power="off")
        sha1 = lab.commit("node1 and node2 on the image profile, kept off")
        lab.start()
        lab.standalone_start(f"{lab.repo}@main")
        plan1 = lab.wait_plan(sha1, ("succeeded", "failed", "cancelled"), timeout=120)
        assert plan1["state"] == "succeeded", f"{lab.store.get('/runs/' + plan1['id'])}\n{lab.log()}"
        assert lab.store.get("/sites-applied/current")["sha"] == sha1
        reservations = lab.data / "agent" / "dnsmasq" / "dnsmasq.hosts"
        assert MACS["node1"] in reservations.read_text().lower(), reservations.read_text()
        assert lab.bmcs()["node1"]["boots"] == 0

        # Revision 2: both hosts leave the SoT.
        edit_hosts(lab.repo, [])
        cluster = yaml.safe_load((lab.repo / "clusters" / "lab.yaml").read_text())
        assert cluster["hosts"] == []
        sha2 = lab.commit("decommission node1 and node2")
        t1 = time.monotonic()
        queued = lab.api("POST", "/v1/revisions", {"source": f"{lab.repo}@main"})
        assert queued["status"] in (200, 202), queued
        plan2 = lab.wait_plan(sha2, ("pending_approval", "approved", "running", "invalid"), timeout=60)
        assert plan2["state"] == "pending_approval", plan2
        steps = {s["host"]: s["action"] for w in plan2["plan"]["waves"] for s in w["steps"]}
        assert steps == {"node1": "remove", "node2": "remove"}, plan2["plan"]["waves"]
        assert lab.api("POST", f"/v1/plans/{plan2['id']}/approve", {"digest": plan2["digest"]})["status"] == 200
        plan2 = lab.wait_plan(sha2, ("succeeded", "failed", "cancelled"), timeout=PLAN_TIMEOUT)
        removed_in = time.monotonic() - t1
        run = lab.store.get(f"/runs/{plan2['id']}")

        # node1: drained, wiped, powered off, removed - in that order, with the wipe's report.
        host = lab.store.get("/hosts/node1")
        console = "\n".join(p.read_text(errors="replace") for p in sorted((lab.workdir / "vms").glob("node1.console*.log")))
        assert host is not None and host["state"] == "removed" and host["plan"] == plan2["id"], f"{host}\n{run}\n{lab.log()}\n{console[-3000:]}"
        events = [e for e in lab.timeline("node1") if e.get("plan") == plan2["id"]]
        seq = [s for i, s in enumerate(e["state"] for e in events) if i == 0 or s != events[i - 1]["state"]]
        assert seq == ["pending", "draining", "wiping", "powering_off", "removed"], seq
        off = next(e for e in events if e["state"] == "powering_off")
        report = off["detail"]
        # signatures: the first and last MiB of the disk and of each partition (partition 1 is 4 MiB).
        assert report["result"] == "success" and report["erase"] == "signatures" and report["disks"] == ["vda"], report
        assert report["bytes_zeroed"] == 6 * MIB, report
        assert f"{6 * MIB} bytes zeroed on vda" in off["reason"], off["reason"]
        assert "vaquero-deploy: callback done" in console and "erase signatures" in console

        # The disk, read back: no partition table, no file system signature, where there were.
        back = tmp_path / "node1-after.raw"
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(back)], check=True, capture_output=True)
        assert back.stat().st_size == DISK_BYTES
        table, probe = signatures(back)
        # sgdisk finds no GPT, neither header (it starts a new, empty table in memory).
        assert partition_rows(table) == [] and "Creating new GPT entries" in table, table
        assert subprocess.run(["blkid", "-p", str(back)], capture_output=True).returncode == 2, probe
        for start, _ in parts:
            assert blkid_at(back, start * 512) == "", f"a signature left at sector {start}"
        with open(back, "rb") as fh:
            for start, sectors in [(0, DISK_BYTES // 512), *parts]:
                for off_ in (start * 512, (start + sectors) * 512 - MIB):
                    fh.seek(off_)
                    assert fh.read(MIB) == b"\0" * MIB, f"bytes at {off_} are not zeros"
            # signatures, not full: the middle of the ext4 partition still holds its old bytes.
            fh.seek(parts[1][0] * 512 + 8 * MIB)
            assert fh.read(MIB) != b"\0" * MIB

        # The BMC: booted the network once, reads back off.
        bmc = lab.bmcs()["node1"]
        assert bmc["power"] == "off" and bmc["boots"] == 1, bmc
        assert bmc["history"][0]["op"] in ("on", "cycle") and bmc["history"][0]["boot"] == "pxe", bmc["history"]
        # The agent: node1's MAC gets the unknown-MAC script, its reservation is gone from dnsmasq's hosts file.
        code, body = agent_get(lab, f"/v1/boot/ipxe/{mac_key(MACS['node1'])}")
        assert (code, body) == (200, unknown_script()), (code, body)
        assert MACS["node1"] not in reservations.read_text().lower(), reservations.read_text()
        st = json.loads(agent_get(lab, "/v1/boot/status/node1")[1])
        assert st["state"] == "wiped" and st["script"] == "none", st

        # node2: its BMC is not the host's - failed at the identity check, never powered nor armed.
        node2 = lab.store.get("/hosts/node2")
        assert node2 is not None and node2["state"] == "failed", node2
        ev2 = [e for e in lab.timeline("node2") if e.get("plan") == plan2["id"]]
        assert "wiping" not in [e["state"] for e in ev2], ev2
        failed = next(e for e in ev2 if e["state"] == "failed")
        assert "not this host's BMC" in failed["reason"] and WRONG_UUID in failed["reason"], failed
        assert lab.bmcs()["node2"]["history"] == [] and lab.bmcs()["node2"]["boots"] == 0
        st2 = json.loads(agent_get(lab, "/v1/boot/status/node2")[1])
        assert st2["state"] not in ("wipe", "wiped"), st2
        assert MACS["node2"] in reservations.read_text().lower()  # still retired: served until it is wiped

        # The run: node1's step succeeded, node2's failed; so the run failed and revision 1 stays applied.
        assert lab.store.get(f"/run-steps/{plan2['id']}/node1")["state"] == "succeeded"
        assert lab.store.get(f"/run-steps/{plan2['id']}/node2")["state"] == "failed"
        assert plan2["state"] == "failed" and "node2" in str(run), run
        assert lab.store.get("/sites-applied/current")["sha"] == sha1

        # Started over after the wipe (a retry, or a controller restart before `removed`): the agent
        # no longer serves node1 and will not arm it again; the wipe that called back stands, no boot.
        playbook = [str(Path(sys.executable).parent / "ansible-playbook"), "-v", "-i", f"{run['previous']['root']}/inventory.vaquero.yml"]
        again = subprocess.run(
            lab.net.command([*playbook, "playbooks/decommission.yml", "--limit", "node1"]),
            cwd=REPO, capture_output=True, text=True, timeout=180, env={**os.environ, "VAQUERO_LAB_BMC_PASSWORD": PASSWORD, "ANSIBLE_NOCOLOR": "1"},
        )  # fmt: skip
        assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-2000:]
        assert f"node1: already wiped (erase signatures, {6 * MIB} bytes zeroed)" in again.stdout, again.stdout[-4000:]
        assert f"{6 * MIB} bytes zeroed on vda" in again.stdout, again.stdout[-4000:]  # the powering_off report: the first wipe's
        bmc = lab.bmcs()["node1"]
        assert bmc["power"] == "off" and bmc["boots"] == 1, bmc
        assert PASSWORD not in again.stdout + again.stderr and AGENT_TOKEN not in again.stdout + again.stderr

        lab.standalone_stop()
        assert_no_secret(lab.data, lab.workdir / "standalone.log", lab.workdir / "labbmc.log", lab.workdir / "vms")
        print(f"\ndecommission e2e: {time.monotonic() - t0:.1f}s in all, remove plan {removed_in:.1f}s; node1 timeline {seq}")
    finally:
        lab.close()
