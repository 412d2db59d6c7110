"""Lab VMs with a disk: the QEMU command line for each boot target and firmware, the qcow2 that
qemu-img makes (read back with qemu-img info), and what a VM without a disk keeps doing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from requirements import need

from vaquero.lab.kernel import LabError
from vaquero.lab.netns import LabNetwork
from vaquero.lab.qemu import OVMF_CODE_4M, OVMF_VARS_4M, Vm, make_disk

UUID = "5a9a0001-0000-4000-8000-000000001001"


def vm(tmp_path: Path, **kw) -> Vm:
    return Vm(net=LabNetwork(address="10.90.0.1/24"), mac="52:54:00:00:10:01", log=tmp_path / "console.log", **kw)


def option(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == flag]


def test_make_disk_is_a_qcow2_of_the_size_given_and_kept(tmp_path: Path) -> None:
    need("qemu-img", "qemu-utils")
    disk = make_disk(tmp_path / "node1.qcow2", 2)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(disk)], check=True, capture_output=True, text=True).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == 2 << 30
    disk.write_bytes(disk.read_bytes())  # the same file: make_disk keeps a disk that is there
    before = disk.stat().st_mtime_ns
    assert make_disk(disk, 4) == disk and disk.stat().st_mtime_ns == before
    for size in (0, -1, 65):
        with pytest.raises(LabError, match="at most 64 GiB"):
            make_disk(tmp_path / f"bad{size}.qcow2", size)


def test_the_boot_target_orders_nic_and_disk(tmp_path: Path) -> None:
    need("qemu-system-x86_64", "qemu-system-x86")
    disk = tmp_path / "node1.qcow2"
    net_first = vm(tmp_path, disk=disk, uuid=UUID).command("tap0")
    assert option(net_first, "-uuid") == [UUID] and "-boot" not in net_first
    assert option(net_first, "-device")[0].endswith("bootindex=0") and option(net_first, "-device")[1].endswith("bootindex=1")
    assert option(net_first, "-drive") == [f"file={disk},if=none,id=d0,format=qcow2"]
    disk_first = vm(tmp_path, disk=disk, boot="disk").command("tap0")
    assert option(disk_first, "-device")[0].endswith("bootindex=1") and option(disk_first, "-device")[1].endswith("bootindex=0")
    with pytest.raises(LabError, match="boot must be one of network, disk"):
        vm(tmp_path, disk=disk, boot="cdrom").command("tap0")
    # Without a disk: the network only, as the lab always booted.
    plain = vm(tmp_path).command("tap0")
    assert option(plain, "-boot") == ["n"] and "-uuid" not in plain and not option(plain, "-drive")


def test_uefi_with_a_disk_gets_its_own_variable_store(tmp_path: Path) -> None:
    need("qemu-system-x86_64", "qemu-system-x86")
    if not OVMF_CODE_4M.is_file():
        need("no-such-tool-ovmf-4m", "ovmf")
    disk = tmp_path / "node1.qcow2"
    cmd = vm(tmp_path, disk=disk, firmware="uefi").command("tap0")
    own = disk.with_suffix(".ovmf-vars.fd")
    assert option(cmd, "-drive")[:2] == [f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE_4M}", f"if=pflash,format=raw,unit=1,file={own}"]
    assert own.read_bytes() == OVMF_VARS_4M.read_bytes() and "-bios" not in cmd
    own.write_bytes(b"changed by the firmware")
    vm(tmp_path, disk=disk, firmware="uefi").command("tap0")
    assert own.read_bytes() == b"changed by the firmware"  # kept across power cycles, like NVRAM
