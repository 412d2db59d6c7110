"""GRUB on the disk without mounts or loop devices, for both firmware paths.

- UEFI: one `grub-mkimage -O x86_64-efi` image, EFI/BOOT/BOOTX64.EFI on the ESP (the removable-media
  path every UEFI firmware tries without NVRAM entries).
- BIOS: `grub-mkimage -O i386-pc` core.img in the BIOS boot partition and GRUB's boot.img in the
  MBR's first 440 bytes, patched the way grub-bios-setup patches them (grub-core/boot/i386/pc/boot.S,
  include/grub/i386/pc/boot.h, util/setup.c of GRUB 2.06).

Both carry the same early config: find the root file system by its label and load its
/boot/grub/grub.cfg, so GRUB needs no module folder on any disk.
"""

from __future__ import annotations

import struct
from pathlib import Path

from .tools import ImageError, run

GRUB_LIB = Path("/usr/lib/grub")
SECTOR = 512

# boot.img (boot.h): where grub-bios-setup patches the MBR code
KERNEL_SECTOR = 0x5C  # u64 LE: LBA of core.img's first sector
BOOT_DRIVE = 0x64  # u8: 0xff = use the drive the BIOS booted from
DRIVE_CHECK = 0x66  # 2-byte jmp over the "is DL a hard disk" fix-up; NOPped for hard disks
BPB_START, BPB_END = 0x03, 0x5A  # a possible DOS BPB: grub-bios-setup keeps the disk's bytes there
MBR_CODE_END = 0x1B8  # code ends where the disk signature and the partition table begin
BOOT_SIGNATURE = 0x1FE  # 0x55 0xAA

# diskboot.img, the first sector of core.img: the blocklist grub-bios-setup fills in, read
# backwards from the end of the sector. Entry: start LBA u64, sector count u16, load segment u16.
BLOCKLIST = SECTOR - 12
BLOCKLIST_FORMAT = "<QHH"
DEFAULT_SEGMENT = 0x820  # GRUB_BOOT_I386_PC_KERNEL_SEG (0x800) + one sector

# core.img's second sector (startup_raw.S): how much Reed-Solomon redundancy follows the image.
# Zero tells the start-up code there is none to check (grub-bios-setup adds some; we add none).
RS_REDUNDANCY = SECTOR + 0x10

COMMON_MODULES = ("part_gpt", "ext2", "search", "search_label", "configfile", "normal", "linux", "echo", "test", "serial", "terminal")
BIOS_MODULES = ("biosdisk", *COMMON_MODULES)
EFI_MODULES = ("efi_gop", *COMMON_MODULES)


def early_config(root_label: str) -> str:
    return f"search --no-floppy --label --set=root {root_label}\nset prefix=($root)/boot/grub\nconfigfile ($root)/boot/grub/grub.cfg\n"


def mkimage(platform: str, modules: tuple[str, ...], config: Path, out: Path) -> bytes:
    directory = GRUB_LIB / platform
    if not (directory / "moddep.lst").is_file():
        package = "grub-pc-bin" if platform == "i386-pc" else "grub-efi-amd64-bin"
        raise ImageError(f"GRUB's {platform} modules are missing in {directory} (Debian package {package})")
    run(["grub-mkimage", "-O", platform, "-d", directory, "-o", out, "-c", config, "-p", "/boot/grub", *modules], timeout=60)
    return out.read_bytes()


def boot_sector(boot_img: bytes, disk_mbr: bytes, core_lba: int) -> bytes:
    """The MBR: GRUB's boot code (patched) + the disk's own signature and protective partition table."""
    if len(boot_img) != SECTOR or len(disk_mbr) != SECTOR:
        raise ImageError(f"boot.img and the MBR must be {SECTOR} bytes (got {len(boot_img)} and {len(disk_mbr)})")
    if disk_mbr[BOOT_SIGNATURE:] != b"\x55\xaa":
        raise ImageError("the disk has no MBR signature (0x55AA): write the GPT (protective MBR) first")
    if boot_img[DRIVE_CHECK] != 0xEB:
        raise ImageError(f"boot.img has {boot_img[DRIVE_CHECK]:#04x} at {DRIVE_CHECK:#x}, not the jmp this code patches: another GRUB layout?")
    code = bytearray(boot_img[:MBR_CODE_END])
    code[BPB_START:BPB_END] = disk_mbr[BPB_START:BPB_END]
    struct.pack_into("<Q", code, KERNEL_SECTOR, core_lba)
    code[BOOT_DRIVE] = 0xFF
    code[DRIVE_CHECK : DRIVE_CHECK + 2] = b"\x90\x90"
    return bytes(code) + disk_mbr[MBR_CODE_END:]


def core_image(core: bytes, core_lba: int) -> bytes:
    """core.img with its blocklist naming where its own sectors 2..n lie on the disk."""
    if len(core) < 2 * SECTOR:
        raise ImageError(f"core.img is {len(core)} bytes: too small to be GRUB's i386-pc core")
    sectors = -(-len(core) // SECTOR)
    if sectors - 1 > 0xFFFF:
        raise ImageError(f"core.img is {len(core)} bytes: larger than one blocklist entry can load")
    segment = struct.unpack_from(BLOCKLIST_FORMAT, core, BLOCKLIST)[2]
    if segment != DEFAULT_SEGMENT:
        raise ImageError(f"core.img's blocklist segment is {segment:#x}, expected {DEFAULT_SEGMENT:#x}: another GRUB layout?")
    if core[BLOCKLIST - 12 : BLOCKLIST] != bytes(12):
        raise ImageError("core.img's blocklist has no terminator entry before the first one")
    if struct.unpack_from("<I", core, RS_REDUNDANCY)[0] != 0:
        raise ImageError("core.img already carries Reed-Solomon redundancy: was it set up before?")
    patched = bytearray(core.ljust(sectors * SECTOR, b"\0"))
    struct.pack_into(BLOCKLIST_FORMAT, patched, BLOCKLIST, core_lba + 1, sectors - 1, segment)
    return bytes(patched)


def install_bios(image: Path, core: bytes, core_lba: int, max_sectors: int) -> int:
    """Write boot.img into the MBR and core.img at `core_lba`; the core's size in sectors."""
    boot_img = (GRUB_LIB / "i386-pc" / "boot.img").read_bytes()
    patched = core_image(core, core_lba)
    if len(patched) // SECTOR > max_sectors:
        raise ImageError(f"core.img needs {len(patched) // SECTOR} sectors, the BIOS boot partition has {max_sectors}")
    with open(image, "r+b") as disk:
        mbr = disk.read(SECTOR)
        disk.seek(0)
        disk.write(boot_sector(boot_img, mbr, core_lba))
        disk.seek(core_lba * SECTOR)
        disk.write(patched)
    return len(patched) // SECTOR
