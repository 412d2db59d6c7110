"""`vaquero image build debian-12`: the cache key, the disk the builder writes (read back with
sgdisk, mtools, debugfs and a GPT reader), and a real boot from that disk under OVMF (SeaBIOS boots
it in tests/e2e/test_image_install.py, after the deploy ramdisk wrote it).

The image tests (marker `image`) need root and build the image once per session, or find it in
the lab cache ($VAQUERO_LAB_CACHE) under its key."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import itertools
import re
import struct
import subprocess
import time
from pathlib import Path

import pytest
from image_helpers import GROW, TIMINGS, Listener, boot, nocloud_seed
from requirements import need
from waiting import wait_until

from vaquero.hostkeys import host_keys
from vaquero.image import fat, grub
from vaquero.image.build import DEFAULT_CACHE, Built, build, cache_key, sha256_file
from vaquero.image.gpt import Layout, plan
from vaquero.image.gpt import read as read_gpt
from vaquero.image.recipes import DEBIAN_12, MIB
from vaquero.image.tools import ImageError

INDEXES = [
    {"origin": "Debian", "codename": "bookworm", "path": "main/binary-amd64/Packages", "sha256": "a" * 64},
    {"origin": "Debian", "codename": "bookworm-security", "path": "main/binary-amd64/Packages", "sha256": "b" * 64},
]
TOOLS = {"mmdebstrap": "1.3.5-2", "grub-common": "2.06-13+deb12u2"}


# --- the cache key: a pure function of the recipe, the package indexes and the tool versions ---


def test_cache_key_is_stable_and_ignores_order() -> None:
    key = cache_key(DEBIAN_12, INDEXES, TOOLS)
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert cache_key(DEBIAN_12, list(reversed(INDEXES)), dict(reversed(list(TOOLS.items())))) == key


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r, i, t: (dataclasses.replace(r, packages=(*r.packages, "curl")), i, t), id="package"),
        pytest.param(lambda r, i, t: (dataclasses.replace(r, variant="apt"), i, t), id="variant"),
        pytest.param(lambda r, i, t: (dataclasses.replace(r, layout=Layout(esp_mib=128)), i, t), id="layout"),
        pytest.param(lambda r, i, t: (dataclasses.replace(r, kernel_cmdline=r.kernel_cmdline + " quiet"), i, t), id="cmdline"),
        pytest.param(lambda r, i, t: (r, [{**i[0], "sha256": "c" * 64}, i[1]], t), id="index digest"),
        pytest.param(lambda r, i, t: (r, i[:1], t), id="index gone"),
        pytest.param(lambda r, i, t: (r, i, {**t, "grub-common": "2.06-14"}), id="tool version"),
    ],
)
def test_cache_key_changes_with_every_input(change) -> None:
    assert cache_key(*change(DEBIAN_12, INDEXES, TOOLS)) != cache_key(DEBIAN_12, INDEXES, TOOLS)


def test_cache_key_changes_with_the_builder_version(monkeypatch: pytest.MonkeyPatch) -> None:
    before = cache_key(DEBIAN_12, INDEXES, TOOLS)
    monkeypatch.setattr("vaquero.image.recipes.BUILDER_VERSION", "999")
    assert cache_key(DEBIAN_12, INDEXES, TOOLS) != before


def test_partition_plan_aligns_and_puts_root_last() -> None:
    parts, size = plan(DEBIAN_12.layout, 700 * MIB, "k" * 64)
    assert [(p.name, p.type_code) for p in parts] == [("bios", "EF02"), ("esp", "EF00"), ("root", "8300")]
    assert all(p.first_lba % 2048 == 0 for p in parts)
    assert [p.size for p in parts] == [1 * MIB, 64 * MIB, 700 * MIB]
    assert all(a.last_lba + 1 == b.first_lba for a, b in itertools.pairwise(parts))
    assert size == (1 + 1 + 64 + 700 + 1) * MIB  # the last MiB holds the backup GPT
    assert plan(DEBIAN_12.layout, 700 * MIB, "k" * 64) == (parts, size)
    assert plan(DEBIAN_12.layout, 700 * MIB, "j" * 64)[0][2].guid != parts[2].guid
    with pytest.raises(ImageError, match="whole number of MiB"):
        plan(DEBIAN_12.layout, 700 * MIB + 1, "k" * 64)


# --- GRUB's BIOS boot code, patched as grub-bios-setup does (real boot.img and core.img) ---


def _core(tmp_path: Path) -> bytes:
    need("grub-mkimage", "grub-common")
    if not (grub.GRUB_LIB / "i386-pc" / "moddep.lst").is_file():
        need("/usr/lib/grub/i386-pc/moddep.lst", "grub-pc-bin")
    config = tmp_path / "early.cfg"
    config.write_text(grub.early_config("vaquero-root"))
    return grub.mkimage("i386-pc", grub.BIOS_MODULES, config, tmp_path / "core.img")


def test_boot_sector_keeps_the_partition_table_and_points_at_core(tmp_path: Path) -> None:
    _core(tmp_path)
    boot_img = (grub.GRUB_LIB / "i386-pc" / "boot.img").read_bytes()
    mbr = bytearray(512)
    mbr[0x1B8:0x1BC] = b"SIGN"
    mbr[0x1BE : 0x1BE + 16] = bytes([0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF])
    mbr[510:512] = b"\x55\xaa"
    sector = grub.boot_sector(boot_img, bytes(mbr), 2048)
    assert len(sector) == 512
    assert sector[0x1B8:] == mbr[0x1B8:]  # disk signature, protective partition, 0x55AA untouched
    assert struct.unpack_from("<Q", sector, 0x5C)[0] == 2048
    assert sector[0x64] == 0xFF and sector[0x66:0x68] == b"\x90\x90"
    assert sector[0x68:0x1B8] == boot_img[0x68:0x1B8]  # the rest of GRUB's code as shipped
    with pytest.raises(ImageError, match="0x55AA"):
        grub.boot_sector(boot_img, bytes(512), 2048)


def test_core_blocklist_names_the_sectors_after_the_first(tmp_path: Path) -> None:
    core = _core(tmp_path)
    patched = grub.core_image(core, 2048)
    sectors = -(-len(core) // 512)
    assert len(patched) == sectors * 512 and patched[: len(core)][:500] == core[:500]
    assert struct.unpack_from("<QHH", patched, 500) == (2049, sectors - 1, 0x820)
    assert patched[512:] == core[512:].ljust(len(patched) - 512, b"\0")
    with pytest.raises(ImageError, match="Reed-Solomon"):
        grub.core_image(core[:0x210] + b"\1\0\0\0" + core[0x214:], 2048)


def test_esp_bytes_do_not_depend_on_the_clock(tmp_path: Path) -> None:
    need("mkfs.vfat", "dosfstools")
    need("mcopy", "mtools")
    loader = tmp_path / "BOOTX64.EFI"
    loader.write_bytes(b"MZ" + bytes(range(256)) * 40)
    images = []
    started = time.monotonic()
    for n in (1, 2):
        if n == 2:  # FAT times have a 2 s resolution: let mtools' clock move past it
            wait_until(lambda: time.monotonic() - started > 2.1, timeout=10, what="the clock to move on")
        esp = tmp_path / f"esp{n}.img"
        fat.make(esp, 64 * MIB, "VQ-ESP", "1234abcd", {"/EFI/BOOT/BOOTX64.EFI": loader}, 1_700_000_000)
        images.append(esp.read_bytes())
    assert images[0] == images[1]
    listing = subprocess.run(["mdir", "-i", str(tmp_path / "esp1.img"), "-/", "::/"], capture_output=True, text=True, check=True).stdout
    assert "BOOTX64  EFI" in listing and "2023-11-14" in listing  # the epoch, not today


# --- the built image, read back ---


def _part(built: Built, name: str) -> dict:
    return next(p for p in built.info["partitions"] if p["name"] == name)


@pytest.mark.image
def test_gpt_reads_back_as_planned(debian_image: Built) -> None:
    table = read_gpt(debian_image.raw)
    assert [(p.name, p.type_code) for p in table.partitions] == [("bios", "EF02"), ("esp", "EF00"), ("root", "8300")]
    assert [p.to_dict() for p in table.partitions] == debian_image.info["partitions"]
    out = subprocess.run(["sgdisk", "-p", str(debian_image.raw)], capture_output=True, text=True, check=True).stdout
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+(\w{4})\s+(\S+)", out, re.MULTILINE)
    assert [(int(n), c, name) for n, _s, _e, c, name in rows] == [(1, "EF02", "bios"), (2, "EF00", "esp"), (3, "8300", "root")]
    size = debian_image.raw.stat().st_size
    assert int(rows[2][2]) == size // 512 - 2048 - 1  # root is last: nothing but the backup GPT's MiB after it
    verify = subprocess.run(["sgdisk", "-v", str(debian_image.raw)], capture_output=True, text=True, check=True).stdout
    assert "No problems found" in verify


@pytest.mark.image
def test_mbr_and_bios_boot_partition_hold_grub(debian_image: Built) -> None:
    bios = _part(debian_image, "bios")
    with open(debian_image.raw, "rb") as disk:
        mbr = disk.read(512)
        disk.seek(bios["offset"])
        core = disk.read(bios["size"])
    boot_img = (grub.GRUB_LIB / "i386-pc" / "boot.img").read_bytes()
    assert mbr[0x68:0x1B8] == boot_img[0x68:0x1B8]
    assert struct.unpack_from("<Q", mbr, 0x5C)[0] == bios["first_lba"]
    assert mbr[0x66:0x68] == b"\x90\x90" and mbr[510:] == b"\x55\xaa"
    assert mbr[0x1BE + 4] == 0xEE  # the protective MBR partition is still there
    sectors = debian_image.info["bios_core_sectors"]
    assert struct.unpack_from("<QHH", core, 500) == (bios["first_lba"] + 1, sectors - 1, 0x820)
    assert core[sectors * 512 :].strip(b"\0") == b""


@pytest.mark.image
def test_esp_holds_the_uefi_loader(debian_image: Built, tmp_path: Path) -> None:
    need("mdir", "mtools")
    target = f"{debian_image.raw}@@{_part(debian_image, 'esp')['offset']}"
    listing = subprocess.run(["mdir", "-i", target, "-b", "::/EFI/BOOT"], capture_output=True, text=True, check=True).stdout
    assert "::/EFI/BOOT/BOOTX64.EFI" in listing
    subprocess.run(["mcopy", "-i", target, "::/EFI/BOOT/BOOTX64.EFI", str(tmp_path / "x.efi")], check=True)
    loader = (tmp_path / "x.efi").read_bytes()
    assert loader[:2] == b"MZ" and b"vaquero-root" in loader  # a PE image carrying the early config


def _debugfs(built: Built, request: str) -> str:
    target = f"{built.raw}?offset={_part(built, 'root')['offset']}"
    return subprocess.run(["debugfs", "-R", request, target], capture_output=True, text=True, check=True).stdout


@pytest.mark.image
def test_root_fs_holds_kernel_grub_cfg_and_the_first_boot_contract(debian_image: Built) -> None:
    need("debugfs", "e2fsprogs")
    kernel = debian_image.info["kernel"]
    assert re.fullmatch(r"6\.1\.\d+-\d+-cloud-amd64", kernel)
    boot = _debugfs(debian_image, "ls -l /boot")
    assert f"vmlinuz-{kernel}" in boot and f"initrd.img-{kernel}" in boot
    cfg = _debugfs(debian_image, "cat /boot/grub/grub.cfg")
    assert "linux /vmlinuz root=LABEL=vaquero-root" in cfg and "console=ttyS0" in cfg and "set timeout=0" in cfg
    assert _debugfs(debian_image, "cat /etc/machine-id") == ""
    assert "ssh_host_" not in _debugfs(debian_image, "ls /etc/ssh")
    lists = _debugfs(debian_image, "ls /var/lib/apt/lists").split()
    assert not [n for n in lists if n.endswith(("Packages.lz4", "InRelease"))]
    assert re.search(r"^root:[*!]", _debugfs(debian_image, "cat /etc/shadow"), re.MULTILINE)
    assert "NoCloud" in _debugfs(debian_image, "cat /etc/cloud/cloud.cfg.d/90_vaquero.cfg")
    assert "vaquero-booted.service" in _debugfs(debian_image, "ls /etc/systemd/system/multi-user.target.wants")
    assert debian_image.key in _debugfs(debian_image, "cat /etc/vaquero/image.json")
    fs = _debugfs(debian_image, "stats")
    assert "Filesystem volume name:   vaquero-root" in fs
    for package in ("systemd-sysv", "cloud-init", "openssh-server", "cloud-guest-utils", "linux-image-cloud-amd64", "sudo"):
        assert package in debian_image.info["packages"]


@pytest.mark.image
def test_digests_and_the_gzip_copy_match_the_image(debian_image: Built) -> None:
    info = debian_image.info
    raw = debian_image.raw
    assert raw.with_name(raw.name + ".sha256").read_text() == f"{info['sha256']}  {raw.name}\n"
    assert sha256_file(raw) == info["sha256"]
    gz = debian_image.compressed
    assert gz.with_name(gz.name + ".sha256").read_text() == f"{info['compressed']['sha256']}  {gz.name}\n"
    assert sha256_file(gz) == info["compressed"]["sha256"]
    digest = hashlib.sha256()
    with gzip.open(gz, "rb") as stream:
        while chunk := stream.read(4 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == info["sha256"]
    # sparse: the blocks allocated are far fewer than the disk's size
    assert raw.stat().st_blocks * 512 < info["size"]


@pytest.mark.image
def test_a_second_build_returns_the_cached_image(debian_image: Built, tmp_path: Path) -> None:
    started = time.monotonic()
    again = build("debian-12", cache=DEFAULT_CACHE, out=tmp_path / "out")
    TIMINGS["warm build"] = time.monotonic() - started
    assert again.cached and again.key == debian_image.key and again.raw == debian_image.raw
    exported = tmp_path / "out" / again.raw.name
    assert exported.stat().st_size == debian_image.info["size"]
    assert (tmp_path / "out" / again.manifest.name).is_file() and (tmp_path / "out" / again.compressed.name).is_file()


# --- booting the image from its disk ---

HOSTNAME = "vq-image-test"


def _user_data(listener: Listener) -> str:
    return f"""#cloud-config
write_files:
  - path: /etc/vaquero/phone-home.url
    permissions: '0600'
    content: "http://10.0.2.2:{listener.port}/v1/boot/callback/{HOSTNAME}?token=not-a-real-token"
  - path: /var/lib/vaquero-test/marker
    content: "from-the-seed"
runcmd:
  - [sh, -c, 'echo "VAQUERO-BOOTED-$(hostname) root-bytes=$(df -B1 --output=size / | tail -n1 | tr -d " ")
      marker=$(cat /var/lib/vaquero-test/marker) host-keys=$(cd /etc/ssh && ls ssh_host_*_key | tr "\\n" ,)
      sshd-keys=$(sshd -T | grep -c "^hostkey ") ed25519=$(cut -d" " -f2 /etc/ssh/ssh_host_ed25519_key.pub) VAQUERO-END" > /dev/ttyS0']
"""


def _boot_and_check(built: Built, firmware: str, listener: Listener, tmp_path: Path) -> None:
    seed = tmp_path / "seed.img"
    nocloud_seed(seed, HOSTNAME, _user_data(listener))
    started = time.monotonic()
    vm = boot(built.raw, firmware, seed, tmp_path)
    try:
        _check_boot(built, firmware, vm, listener, started)
    finally:
        vm.stop()


def _check_boot(built: Built, firmware: str, vm, listener: Listener, started: float) -> None:
    text = vm.wait_for("VAQUERO-END", timeout=900)
    TIMINGS[f"{firmware} boot to marker"] = time.monotonic() - started
    line = re.search(r"VAQUERO-BOOTED-(\S+) root-bytes=(\d+) marker=(\S+) host-keys=(\S*) sshd-keys=(\d+) ed25519=(\S+) VAQUERO-END", text)
    assert line, text[-3000:]
    assert line.group(1) == HOSTNAME  # the hostname came from the seed's meta-data
    assert line.group(3) == "from-the-seed"
    # cloud-init made the two host key types the image asks for (no RSA, no DSA), and sshd loads both
    assert line.group(4) == "ssh_host_ecdsa_key,ssh_host_ed25519_key,"
    assert line.group(5) == "2"
    root = _part(built, "root")
    assert int(line.group(2)) > root["size"] + GROW // 2  # growpart + resize2fs used the larger disk
    # the image's hook reported the boot to the URL the seed left for it
    path, report = wait_until(lambda: listener.posts and listener.posts[0], timeout=300, what="the phone-home POST")
    assert path == f"/v1/boot/callback/{HOSTNAME}?token=not-a-real-token"
    assert report["event"] == "booted" and report["hostname"] == HOSTNAME
    assert report["image"] == {"name": "debian-12", "key": built.key}
    assert report["kernel"] == built.info["kernel"] and report["instance_id"] == f"{HOSTNAME}-1"
    # the host keys cloud-init made, as later SSH logins are held to them (vaquero.hostkeys)
    keys = host_keys(report["ssh_host_keys"])
    assert [k.split()[0] for k in keys] == ["ecdsa-sha2-nistp256", "ssh-ed25519"] and f"ssh-ed25519 {line.group(6)}" in keys, report
    assert "not-a-real-token" not in vm.text()  # the URL's token is never printed


# One direct boot, under OVMF. The SeaBIOS path (the MBR's boot.img and core.img in the BIOS boot
# partition, read back above) is booted by tests/e2e/test_image_install.py from the deployed disk,
# which also checks the hostname from the seed, the phone-home report and an SSH login; the checks
# of cloud-init's own work (growpart, write_files, the host key types, the report's image key and
# kernel, no token on the console) are made here.
@pytest.mark.image
@pytest.mark.slow
def test_boots_from_disk_under_ovmf(debian_image: Built, listener: Listener, tmp_path: Path) -> None:
    _boot_and_check(debian_image, "uefi", listener, tmp_path)
