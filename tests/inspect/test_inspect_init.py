"""The deploy ramdisk's inspection mode: /init's own report builder (LIB) in a real busybox sh,
over a fake /sys and /proc holding what firmware and the kernel may put there, hostile DMI
strings included. Whatever it reads, the report is JSON the controller's model takes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from requirements import need

from vaquero.deploy.init_script import INIT, LIB
from vaquero.inspect import InspectionReport

MAC = "52:54:00:00:30:01"
UUID = "8f1c2b9e-3d4a-4e5f-9a0b-1c2d3e4f5a6b"


def put(root: Path, rel: str, text: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def machine(root: Path, *, serial: bytes = b"VQ-SERIAL-1\n", vendor: bytes = b"QEMU\n", uuid: str = UUID) -> tuple[Path, Path]:
    sys, proc = root / "sys", root / "proc"
    put(sys, "class/dmi/id/product_uuid", uuid + "\n")
    put(sys, "class/dmi/id/product_serial", serial)
    put(sys, "class/dmi/id/sys_vendor", vendor)
    put(sys, "class/dmi/id/product_name", "Standard PC (i440FX + PIIX, 1996)\n")
    for name, mac, physical in (("lo", "00:00:00:00:00:00", False), ("ens3", MAC, True), ("ens4", "52:54:00:00:30:02", True),
                                ("br0", "52:54:00:00:30:09", False), ("bad name", "52:54:00:00:30:08", True),
                                ("ens5", "not-a-mac", True), ("ens6", MAC, True)):  # fmt: skip
        put(sys, f"class/net/{name}/address", mac + "\n")
        if physical:
            (sys / "class" / "net" / name / "device").mkdir()
    put(sys, "block/vda/size", "524288\n")
    put(sys, "block/vda/serial", "vq-disk\n")
    put(sys, "block/vda/queue/rotational", "1\n")
    put(sys, "block/vda/removable", "0\n")
    put(sys, "block/sda/size", "2048\n")
    put(sys, "block/sda/device/model", 'QEMU "HARDDISK" \\ \x01\x7f\xe2\x80\x8b  \n')
    put(sys, "block/sda/queue/rotational", "0\n")
    put(sys, "block/sda/removable", "1\n")
    for skipped in ("loop0", "ram0", "zram0", "sr0"):
        put(sys, f"block/{skipped}/size", "100\n")
    put(sys, "block/vdb/size", "99999999999999999999\n")  # absurd: dropped, not emitted
    put(sys, "devices/system/memory/block_size_bytes", "8000000\n")
    for i in range(3):
        put(sys, f"devices/system/memory/memory{i}/online", "1\n")
    put(sys, "devices/system/memory/memory3/online", "0\n")
    put(proc, "cpuinfo", "processor\t: 0\nmodel name\t: QEMU Virtual CPU version 2.5+\n\nprocessor\t: 1\nmodel name\t: QEMU Virtual CPU version 2.5+\n")
    put(proc, "meminfo", "MemTotal:         350000 kB\n")
    return sys, proc


def report(tmp_path: Path, sys: Path, proc: Path, mac: str = MAC) -> tuple[str, InspectionReport]:
    busybox = need("busybox", "busybox-static")
    script = LIB + 'inspect_report "$1"\n'
    res = subprocess.run([busybox, "sh", "-c", script, "sh", mac], capture_output=True, text=True, timeout=30, cwd=tmp_path,
                         env={"PATH": str(Path(busybox).parent) + ":/usr/bin:/bin", "SYS": str(sys), "PROC": str(proc)})  # fmt: skip
    assert res.returncode == 0, res.stderr
    return res.stdout, InspectionReport.model_validate_json(res.stdout)


def test_the_report_holds_the_machines_facts(tmp_path: Path) -> None:
    text, r = report(tmp_path, *machine(tmp_path))
    assert r.boot_mac == MAC and r.uuid == UUID and r.serial == "VQ-SERIAL-1" and r.vendor == "QEMU"
    assert r.product == "Standard PC (i440FX + PIIX, 1996)" and r.cpu_model == "QEMU Virtual CPU version 2.5+"
    # lo, the bridge, a bad name, a bad address and a MAC seen twice are left out
    assert [(n.name, n.mac) for n in r.nics] == [("ens3", MAC), ("ens4", "52:54:00:00:30:02")]
    assert r.cpus == 2 and r.memory_mib == 3 * 128  # three online 128 MiB blocks, not MemTotal
    disks = {d.name: d for d in r.disks}
    assert set(disks) == {"sda", "vda"}  # loop, ram, zram, sr and an absurd size are not disks to report
    assert disks["vda"].size_bytes == 524288 * 512 and disks["vda"].serial == "vq-disk" and disks["vda"].rotational is True
    assert disks["vda"].model is None and disks["vda"].removable is False
    # control bytes and non-ASCII dropped, quotes and backslash escaped: the model reads them back as text
    assert disks["sda"].model == 'QEMU "HARDDISK" \\' and disks["sda"].removable is True and disks["sda"].rotational is False
    assert json.loads(text)["disks"]


def test_hostile_dmi_strings_never_break_the_json(tmp_path: Path) -> None:
    hostile = b'"},"boot_mac":"de:ad:be:ef:00:01","x":{"a":"\\\n\t\x00\x1b[31m' + b"\xff\xfe" + "é€".encode() + b"A" * 300 + b"\n"
    _, r = report(tmp_path, *machine(tmp_path, serial=hostile, vendor=b"   \n", uuid="$(reboot)"))
    assert r.boot_mac == MAC  # the report's own field, not the one the serial tried to inject
    assert r.serial is not None and len(r.serial) == 128 and r.serial.startswith('"},"boot_mac"')
    assert r.vendor is None and r.uuid is None  # blank and malformed values are dropped, not sent broken


def test_memory_falls_back_to_memtotal_and_empty_machines_still_parse(tmp_path: Path) -> None:
    sys, proc = machine(tmp_path)
    for i in range(4):
        (sys / "devices" / "system" / "memory" / f"memory{i}" / "online").unlink()
    for f in ("product_uuid", "product_serial", "sys_vendor", "product_name"):
        (sys / "class" / "dmi" / "id" / f).unlink()
    _, r = report(tmp_path, sys, proc)
    assert r.memory_mib == 350000 // 1024 and r.uuid is None and r.serial is None and r.product is None


def test_the_boot_mac_comes_from_the_url_and_init_has_the_mode() -> None:
    busybox = need("busybox", "busybox-static")
    script = LIB + 'boot_mac_of "$1"; echo "[$?]"\n'
    for url, want in (("http://10.90.0.1:8080/v1/inspect/52-54-00-AA-30-01", "52:54:00:aa:30:01\n[0]"),
                      ("http://10.90.0.1:8080/v1/inspect/52-54-00-aa-30", "[1]"),
                      ("http://10.90.0.1:8080/v1/inspect/$(reboot)", "[1]")):  # fmt: skip
        res = subprocess.run([busybox, "sh", "-c", script, "sh", url], capture_output=True, text=True, timeout=30)
        assert res.stdout.strip() == want, (url, res.stdout)
    assert "vaquero.inspect=*" in INIT and "--post-file /run/inspect.json" in INIT
