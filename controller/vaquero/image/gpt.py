"""The disk's partition table: planned here, written by sgdisk, read back with a small GPT reader.

Every partition starts on a MiB boundary; GUIDs are derived from the cache key so that one key
always gives the same table.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

from .recipes import MIB, Layout
from .tools import ImageError, run

SECTOR = 512
# sgdisk's short codes and the GPT type GUIDs they stand for
TYPES = {
    "EF02": "21686148-6449-6e6f-744e-656564454649",  # BIOS boot partition (GRUB's core.img)
    "EF00": "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",  # EFI system partition
    "8300": "0fc63daf-8483-4772-8e79-3d69d8477de4",  # Linux file system
}


@dataclass(frozen=True)
class Partition:
    number: int
    name: str
    type_code: str
    first_lba: int
    last_lba: int
    guid: str

    @property
    def offset(self) -> int:
        return self.first_lba * SECTOR

    @property
    def size(self) -> int:
        return (self.last_lba - self.first_lba + 1) * SECTOR

    def to_dict(self) -> dict[str, object]:
        return {
            "number": self.number,
            "name": self.name,
            "type": self.type_code,
            "type_guid": TYPES[self.type_code],
            "guid": self.guid,
            "first_lba": self.first_lba,
            "last_lba": self.last_lba,
            "offset": self.offset,
            "size": self.size,
        }


def derived_uuid(key: str, purpose: str) -> str:
    """A fixed, random-looking UUID (version 4 bits) for `purpose` in the image of `key`."""
    digest = hashlib.sha256(f"vaquero-image:{key}:{purpose}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def plan(layout: Layout, root_bytes: int, key: str) -> tuple[list[Partition], int]:
    """The partitions and the disk size (bytes) for a root file system of `root_bytes`."""
    if root_bytes % MIB:
        raise ImageError(f"the root file system size {root_bytes} is not a whole number of MiB")
    per_mib = MIB // SECTOR
    parts: list[Partition] = []
    start = 1  # MiB: the first one holds the protective MBR and the primary GPT
    for number, (name, code, mib) in enumerate(
        (("bios", "EF02", layout.bios_boot_mib), ("esp", "EF00", layout.esp_mib), ("root", "8300", root_bytes // MIB)), start=1
    ):
        parts.append(Partition(number, name, code, start * per_mib, (start + mib) * per_mib - 1, derived_uuid(key, f"part-{name}")))
        start += mib
    # one more MiB at the end for the backup GPT (33 sectors), keeping the disk MiB-aligned
    return parts, (start + 1) * MIB


def write(image: Path, parts: list[Partition], disk_guid: str) -> None:
    args: list[str] = ["sgdisk", "--clear", f"--disk-guid={disk_guid}"]
    for p in parts:
        args += [f"--new={p.number}:{p.first_lba}:{p.last_lba}", f"--typecode={p.number}:{p.type_code}"]
        args += [f"--change-name={p.number}:{p.name}", f"--partition-guid={p.number}:{p.guid}"]
    run([*args, str(image)], timeout=60)


@dataclass(frozen=True)
class Table:
    disk_guid: str
    partitions: list[Partition]


def read(image: Path) -> Table:
    """Parse the primary GPT of `image` (header and entry CRCs checked); ImageError if it is not one."""
    with open(image, "rb") as disk:
        disk.seek(SECTOR)
        header = disk.read(SECTOR)
        if header[:8] != b"EFI PART":
            raise ImageError(f"{image}: no GPT header at LBA 1")
        size = struct.unpack_from("<I", header, 12)[0]
        crc = struct.unpack_from("<I", header, 16)[0]
        raw = bytearray(header[:size])
        raw[16:20] = bytes(4)
        if zlib.crc32(raw) != crc:
            raise ImageError(f"{image}: the GPT header's CRC does not match")
        disk_guid = str(uuid.UUID(bytes_le=header[56:72]))
        entries_lba, count, entry_size, entries_crc = struct.unpack_from("<QIII", header, 72)
        disk.seek(entries_lba * SECTOR)
        entries = disk.read(count * entry_size)
    if zlib.crc32(entries) != entries_crc:
        raise ImageError(f"{image}: the GPT partition entries' CRC does not match")
    codes = {guid: code for code, guid in TYPES.items()}
    parts = []
    for i in range(count):
        entry = entries[i * entry_size : (i + 1) * entry_size]
        type_guid = str(uuid.UUID(bytes_le=entry[:16]))
        if type_guid == "00000000-0000-0000-0000-000000000000":
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        name = entry[56:128].decode("utf-16-le").rstrip("\0")
        parts.append(Partition(i + 1, name, codes.get(type_guid, type_guid), first, last, str(uuid.UUID(bytes_le=entry[16:32]))))
    return Table(disk_guid, parts)
