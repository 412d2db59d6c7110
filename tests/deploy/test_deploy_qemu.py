"""Image deploy end to end: QEMU hosts (TCG, SeaBIOS) netboot the deploy ramdisk through the agent,
which streams a synthetic GPT image onto a blank virtio disk; the disk is read back with qemu-img.

Two boots per test, in parallel: a gzip image (disk chosen by its by-id name) and a raw one (the
default disk) that succeed; an image whose bytes do not match the SoT's sha256 and a download cut
short, which fail and leave the disk's first and last MiB zeroed.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import DATA_BYTES, DISK_BYTES, IMAGE_BYTES, MIB, DeployLab, sgdisk_info

from vaquero.callback import failure

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
BOOT_TIMEOUT = 600


def boot_all(lab: DeployLab, names: list[str]) -> float:
    t0 = time.monotonic()
    vms = {n: lab.boot(n) for n in names}
    for name, vm in vms.items():
        rc = vm.wait(BOOT_TIMEOUT)
        assert rc is not None, f"{name} did not power off within {BOOT_TIMEOUT} s; console:\n{vm.console()[-3000:]}"
    return time.monotonic() - t0


def debugfs_cat(part: Path, path: str) -> str:
    res = subprocess.run(["debugfs", "-R", f"cat {path}", str(part)], capture_output=True, text=True, check=True)
    return res.stdout


def partition(disk: Path, first: int, last: int, dest: Path) -> Path:
    with open(disk, "rb") as src, open(dest, "wb") as out:
        src.seek(first * 512)
        left = (last - first + 1) * 512
        while left:
            chunk = src.read(min(left, 4 * MIB))
            assert chunk
            out.write(chunk)
            left -= len(chunk)
    return dest


def fs_bytes(part: Path) -> int:
    out = subprocess.run(["dumpe2fs", "-h", str(part)], capture_output=True, text=True, check=True).stdout
    count = re.search(r"^Block count:\s+(\d+)", out, re.M)
    size = re.search(r"^Block size:\s+(\d+)", out, re.M)
    assert count and size, out
    return int(count.group(1)) * int(size.group(1))


def phases(status: dict) -> list[str]:
    return [e["phase"] for e in status["deploy"]]


def test_gzip_and_raw_images_are_written_grown_and_seeded(deploy_lab: DeployLab) -> None:
    lab, image = deploy_lab, deploy_lab.image
    took = boot_all(lab, ["node1", "node2"])
    for name, served_sha, compressed in (("node1", image.gz_sha256, True), ("node2", image.raw_sha256, False)):
        console = lab.vms[name].console()
        st = lab.lab.status(name)
        assert st["state"] == "installed", f"{name}: {json.dumps(st)}\n{console[-3000:]}"
        report = st["report"]
        # The callback: the digest of the bytes as served, the bytes dd wrote (the raw image), the disk.
        assert report["result"] == "success" and report["sha256"] == served_sha and report["bytes"] == IMAGE_BYTES
        assert report["disk"] == "vda" and report["disk_bytes"] == DISK_BYTES and report["partition"] == "vda2"
        # The progress reports, as the agent keeps them for the host's timeline.
        seen = phases(st)
        assert [p for p in seen if p != "writing"] == ["disk", "written", "resized", "seeded"], seen
        written = next(e for e in st["deploy"] if e["phase"] == "written")
        assert written["bytes"] == IMAGE_BYTES and written["total"] == DISK_BYTES and written["disk"] == "vda"
        samples = [e["bytes"] for e in st["deploy"] if e["phase"] == "writing"]
        assert samples == sorted(samples) and all(0 <= b <= IMAGE_BYTES + MIB for b in samples)
        assert "vaquero-deploy: callback done" in console
        assert "needs a check first" in console  # the image's file system is marked with errors (conftest)
        assert not [line for line in console.splitlines() if "vaquero-deploy:" in line and "token=" in line]

        disk = lab.read_disk(name)
        with open(disk, "rb") as fh:
            fh.seek(MIB)
            assert fh.read(DATA_BYTES) == image.data, f"{name}: partition 1 is not the image's bytes"
        # The last partition now ends at the disk's end, the backup GPT header moved there, the table is sound.
        first, last = sgdisk_info(disk, 2)
        assert first == image.root_first
        assert last >= DISK_BYTES // 512 - 34 - 2048 and last > image.root_last
        verify = subprocess.run(["sgdisk", "-v", str(disk)], capture_output=True, text=True).stdout
        assert "No problems found" in verify, verify
        root = partition(disk, first, last, lab.workdir / f"{name}.root.ext4")
        assert fs_bytes(root) > (image.root_last - image.root_first + 1) * 512 and fs_bytes(root) <= (last - first + 1) * 512
        fsck = subprocess.run(["e2fsck", "-fn", str(root)], capture_output=True, text=True)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        # The image's own file, the NoCloud seed from the agent, the phone-home URL for the installed OS.
        assert debugfs_cat(root, "/etc/vaquero-image-marker") == image.marker
        assert debugfs_cat(root, "/var/lib/cloud/seed/nocloud/user-data") == f"#cloud-config\nhostname: {name}\nfqdn: {name}.lab.vaquero.test\n"
        assert f"local-hostname: {name}" in debugfs_cat(root, "/var/lib/cloud/seed/nocloud/meta-data")
        url = debugfs_cat(root, "/etc/vaquero/phone-home.url").strip()
        m = re.fullmatch(rf"http://10\.90\.0\.1:8080(/v1/boot/phone-home/{name}\?token=[A-Za-z0-9_-]{{43}})", url)
        assert m, url
        # The installed OS's phone home is accepted once, then the token is spent.
        code, body = lab.lab.http("POST", m.group(1), b'{"booted": true}')
        assert code == 200, body
        assert lab.lab.status(name)["phoned_home_at"] is not None
        assert lab.lab.http("POST", m.group(1), b"{}")[0] == 401
        print(f"\n{name}: {'gzip' if compressed else 'raw'} image deployed; progress {seen}")
    print(f"deploy e2e: two hosts deployed in parallel in {took:.1f} s")


def test_a_wrong_digest_or_a_cut_download_fails_and_wipes_the_disk(deploy_lab: DeployLab) -> None:
    lab, image = deploy_lab, deploy_lab.image
    took = boot_all(lab, ["node3", "node4"])
    zero = b"\0" * MIB
    for name in ("node3", "node4"):
        st = lab.lab.status(name)
        console = lab.vms[name].console()
        assert st["state"] == "failed", f"{name}: {json.dumps(st)}\n{console[-3000:]}"
        report = st["report"]
        assert report["result"] == "failure" and report["wiped"] is True and report["disk"] == "vda"
        disk = lab.read_disk(name)
        with open(disk, "rb") as fh:
            assert fh.read(MIB) == zero
            fh.seek(DISK_BYTES - MIB)
            assert fh.read(MIB) == zero
        # What the install role's wait_callback raises: the host is failed with this reason, never ready.
        why = failure(st, 0)
        assert why is not None and report["reason"] in why
        assert lab.lab.http("POST", f"/v1/boot/callback/{name}?token={'x' * 43}", b"{}")[0] == 401
        print(f"\n{name}: {report['reason']}")
    bad = lab.lab.status("node3")["report"]
    expected = bad["expected_sha256"]
    assert expected != image.raw_sha256 and bad["actual_sha256"] == image.raw_sha256
    assert f"expected {expected}, got {image.raw_sha256}" in bad["reason"] and bad["stage"] == "write"
    # The raw bytes went to the disk before the digest was known: the wipe took the GPT headers away again.
    cut = lab.lab.status("node4")["report"]
    assert cut["stage"] == "write" and cut["actual_sha256"] != image.gz_sha256
    assert re.search(r"decompression|download|mismatch|stopped", cut["reason"]), cut["reason"]
    print(f"deploy e2e: two failing deploys in parallel in {took:.1f} s")
