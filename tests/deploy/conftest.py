"""Image deploy in the lab: the deploy ramdisk (real Debian packages), QEMU (TCG, SeaBIOS) hosts with
a blank virtio disk, the agent in the lab's network namespace, and small synthetic disk images.

One agent serves four hosts, armed at its start; each test boots its hosts (in parallel, one VM per
host) and reads their disks back with qemu-img.
"""

from __future__ import annotations

import gzip
import hashlib
import random
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from requirements import need, need_root

from vaquero.lab.harness import Lab
from vaquero.lab.qemu import Vm

REPO = Path(__file__).resolve().parents[2]
MIB = 1 << 20
IMAGE_BYTES = 24 * MIB
DATA_BYTES = 4 * MIB  # partition 1: seeded random bytes, compared byte for byte after the deploy
DISK_BYTES = 256 * MIB
IMAGE_PORT = 8099
HOSTS = {  # name -> (MAC, profile)
    "node1": ("52:54:00:00:20:01", "img-gz"),
    "node2": ("52:54:00:00:20:02", "img-raw"),
    "node3": ("52:54:00:00:20:03", "img-bad-digest"),
    "node4": ("52:54:00:00:20:04", "img-cut"),
}
DISK_SERIAL = "vq-deploy-disk"


@dataclass
class Image:
    raw: Path
    gz: Path
    data: bytes  # partition 1's bytes
    marker: str  # the content of /etc/vaquero-image-marker in partition 2
    root_first: int  # partition 2, in 512-byte sectors
    root_last: int

    @property
    def raw_sha256(self) -> str:
        return hashlib.sha256(self.raw.read_bytes()).hexdigest()

    @property
    def gz_sha256(self) -> str:
        return hashlib.sha256(self.gz.read_bytes()).hexdigest()


def sgdisk_info(path: Path, part: int) -> tuple[int, int]:
    out = subprocess.run(["sgdisk", "-i", str(part), str(path)], check=True, capture_output=True, text=True).stdout
    first = re.search(r"First sector: (\d+)", out)
    last = re.search(r"Last sector: (\d+)", out)
    assert first and last, out
    return int(first.group(1)), int(last.group(1))


def make_image(folder: Path) -> Image:
    """A GPT disk image: partition 1 of seeded random bytes, partition 2 an ext4 (mke2fs -d) holding a marker."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "image.raw"
    with open(raw, "wb") as fh:
        fh.truncate(IMAGE_BYTES)
    subprocess.run(["sgdisk", "-o", "-n", "1:2048:+4M", "-t", "1:8300", "-c", "1:data", "-n", "2:0:0", "-t", "2:8300", "-c", "2:root", str(raw)],
                   check=True, capture_output=True)  # fmt: skip
    first, last = sgdisk_info(raw, 2)
    data = random.Random(20261203).randbytes(DATA_BYTES)
    marker = f"vaquero deploy test image {hashlib.sha256(data).hexdigest()[:16]}\n"
    tree = folder / "tree"
    (tree / "etc").mkdir(parents=True, exist_ok=True)
    (tree / "etc" / "vaquero-image-marker").write_text(marker)
    part = folder / "root.ext4"
    with open(part, "wb") as fh:
        fh.truncate((last - first + 1) * 512)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "vqroot", "-d", str(tree), "-E", "root_owner=0:0", str(part)], check=True, capture_output=True)
    # Marked as having errors: resize2fs then refuses until e2fsck -f has run, so these deploys take
    # the ramdisk's check-first path (the image e2e's builder image, left clean, takes the other).
    subprocess.run(["tune2fs", "-E", "force_fsck", str(part)], check=True, capture_output=True)
    with open(raw, "r+b") as fh:
        fh.seek(MIB)
        fh.write(data)
        fh.seek(first * 512)
        fh.write(part.read_bytes())
    gz = folder / "image.raw.gz"
    with open(raw, "rb") as src, open(gz, "wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=1) as z:
        while chunk := src.read(4 * MIB):
            z.write(chunk)
    return Image(raw=raw, gz=gz, data=data, marker=marker, root_first=first, root_last=last)


def write_sot(dest: Path, image: Image, ramdisk: Any, served: Path) -> Path:
    """The lab site, one cluster of four hosts and one image profile per case."""
    (dest / "sites").mkdir(parents=True, exist_ok=True)
    (dest / "profiles").mkdir(exist_ok=True)
    (dest / "clusters").mkdir(exist_ok=True)
    (dest / "sites" / "lab.yaml").write_text((REPO / "inventories" / "lab" / "sites" / "lab.yaml").read_text())
    base = {"apiVersion": "vaquero/v1", "kind": "Profile", "version": "1", **ramdisk.profile(), "cmdline": "console=ttyS0 quiet",
            "config": {"format": "cloud-init", "inline": "#cloud-config\nhostname: {{ host.name }}\nfqdn: {{ host.fqdn }}\n"}}  # fmt: skip
    bad = hashlib.sha256(b"not the image").hexdigest()
    by_id = {"by_id": f"virtio-{DISK_SERIAL}"}
    profiles = [
        {**base, "name": "img-gz", "image": {"path": str(image.gz), "sha256": image.gz_sha256, "compression": "gzip"}, "disk": by_id},
        {**base, "name": "img-raw", "image": {"path": str(image.raw), "sha256": image.raw_sha256}, "disk": {"min_size_gb": 0}},
        # Served from the plain server: the agent never holds (nor checks) an http(s) image, the ramdisk does.
        {**base, "name": "img-bad-digest", "image": {"url": f"http://10.90.0.1:{IMAGE_PORT}/image.raw", "sha256": bad}, "disk": {"path": "/dev/vda"}},
        {**base, "name": "img-cut", "image": {"url": f"http://10.90.0.1:{IMAGE_PORT}/cut/image.raw.gz", "sha256": image.gz_sha256, "compression": "gzip"}},
    ]
    (dest / "profiles" / "images.yaml").write_text(yaml.safe_dump_all(profiles, sort_keys=False))
    hosts = [{"name": n, "macs": [mac], "profile": prof, "ips": {"prov": f"10.90.0.{10 + i}"}} for i, (n, (mac, prof)) in enumerate(sorted(HOSTS.items()), 1)]
    cluster = {"apiVersion": "vaquero/v1", "kind": "Cluster", "name": "deploy", "site": "lab", "profile": "img-raw", "hosts": hosts}
    (dest / "clusters" / "deploy.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))
    return dest


# The lab's Vm names its disk's serial after the file: every host's disk file is called this, in a
# folder of its own, so each has the by-id name virtio-vq-deploy-disk.
DISK_FILE = "deploy-disk.qcow2"
# Lab-only disk options: cache=unsafe drops the guest's flushes (its final fsync costs nothing on a
# throw-away file) and detect-zeroes=unmap keeps the zero blocks the guest writes out of the qcow2
# (the guest still writes every block). Never for a disk that matters.
LAB_DRIVE_OPTIONS = ",cache=unsafe,discard=unmap,detect-zeroes=unmap"


@dataclass
class DiskVm(Vm):
    """A lab host with one virtio disk (the lab's Vm with a disk, netbooting) and the lab-only drive options."""

    def command(self, tap: str) -> list[str]:
        cmd = super().command(tap)
        assert self.disk is not None and f"serial={DISK_SERIAL}," in " ".join(cmd), cmd
        return [arg + LAB_DRIVE_OPTIONS if arg.startswith(f"file={self.disk},") else arg for arg in cmd]


@dataclass
class DeployLab:
    lab: Lab
    image: Image
    workdir: Path
    vms: dict[str, DiskVm] = field(default_factory=dict)

    def blank_disk(self, name: str) -> Path:
        """A 256 MiB qcow2 whose first and last MiB hold non-zero bytes, so a wipe is visible."""
        raw = self.workdir / f"{name}.blank.raw"
        with open(raw, "wb") as fh:
            fh.truncate(DISK_BYTES)
            fh.write(b"\xa5" * MIB)
            fh.seek(DISK_BYTES - MIB)
            fh.write(b"\x5a" * MIB)
        disk = self.workdir / name / DISK_FILE
        disk.parent.mkdir(exist_ok=True)
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(disk)], check=True, capture_output=True)
        raw.unlink()
        return disk

    def boot(self, name: str) -> DiskVm:
        mac, _ = HOSTS[name]
        vm = DiskVm(self.lab.net, mac, self.workdir / f"vm-{name}.log", memory=384, disk=self.blank_disk(name))
        self.lab.vms.append(vm)
        self.vms[name] = vm
        return vm.start()

    def read_disk(self, name: str) -> Path:
        vm = self.vms[name]
        assert vm.disk is not None
        out = self.workdir / f"{name}.back.raw"
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(vm.disk), str(out)], check=True, capture_output=True)
        return out


class _PreparedLab(Lab):
    """The lab harness with a SoT of our own (its kernel and initrd already set to the deploy ramdisk)."""

    def __enter__(self) -> Lab:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sot = self.src_sot
        self.net.create()
        return self


@pytest.fixture(scope="module")
def deploy_lab(tmp_path_factory: pytest.TempPathFactory):
    need_root("network namespaces, taps and QEMU hosts")
    for tool, pkg in (("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils"), ("sgdisk", "gdisk"), ("mke2fs", "e2fsprogs"),
                      ("debugfs", "e2fsprogs"), ("dumpe2fs", "e2fsprogs"), ("dnsmasq", "dnsmasq-base"), ("cpio", "cpio"), ("apt-get", "apt")):  # fmt: skip
        need(tool, pkg)
    from vaquero.deploy.ramdisk import build_ramdisk

    workdir = tmp_path_factory.mktemp("deploy")
    ramdisk = build_ramdisk()
    image = make_image(workdir / "image")
    sot = write_sot(workdir / "sot", image, ramdisk, image.raw.parent)
    with _PreparedLab(workdir / "lab", sot=sot) as lab:
        lab.net.popen([sys.executable, str(Path(__file__).with_name("image_server.py")), str(image.raw.parent), lab.address, str(IMAGE_PORT)],
                      log_file=workdir / "image-server.log")  # fmt: skip
        lab.start_agent(install=sorted(HOSTS))
        lab.net.wait_port(lab.address, IMAGE_PORT, timeout=30)
        yield DeployLab(lab=lab, image=image, workdir=workdir)
