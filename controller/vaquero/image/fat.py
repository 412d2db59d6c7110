"""The ESP: a FAT32 file system made by mkfs.vfat and filled by mtools, without mounts.

mtools stamps directory entries with the current time (4.0.32 ignores SOURCE_DATE_EPOCH), so
:func:`set_times` rewrites every entry's times to one instant: one key, the same bytes.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

from .tools import ImageError, run

ENTRY = 32
END_OF_CHAIN = 0x0FFFFFF8
LONG_NAME = 0x0F
DIRECTORY = 0x10


def make(path: Path, size: int, label: str, volume_id: str, files: dict[str, Path], epoch: int) -> None:
    """A FAT32 image file of `size` bytes holding `files` (FAT path -> host file)."""
    if path.exists():
        path.unlink()
    run(["mkfs.vfat", "-F", "32", "-n", label, "-i", volume_id, "--invariant", "-C", path, str(size // 1024)], timeout=120)
    env = {"MTOOLS_SKIP_CHECK": "1", "TZ": "UTC"}
    folders = sorted({str(p) for target in files for p in Path(target).parents if str(p) != "/"}, key=lambda p: (p.count("/"), p))
    if folders:
        run(["mmd", "-i", path, *(f"::{folder}" for folder in folders)], timeout=60, env=env)
    for target, source in sorted(files.items()):
        run(["mcopy", "-i", path, "-m", source, f"::{target}"], timeout=60, env=env)
    set_times(path, epoch)


def _dos(epoch: int) -> tuple[int, int]:
    t = time.gmtime(epoch)
    if t.tm_year < 1980:
        raise ImageError(f"FAT cannot hold a date before 1980 (epoch {epoch})")
    return ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday, (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)


def set_times(path: Path, epoch: int) -> int:
    """Set the create, access and write times of every directory entry to `epoch`; how many entries."""
    date, clock = _dos(epoch)
    with open(path, "r+b") as f:
        boot = f.read(512)
        sector, per_cluster, reserved, fats = struct.unpack_from("<HBHB", boot, 11)
        fat_size, root = struct.unpack_from("<I", boot, 36)[0], struct.unpack_from("<I", boot, 44)[0]
        if boot[82:87] != b"FAT32" or not sector or not per_cluster:
            raise ImageError(f"{path}: not a FAT32 file system")
        cluster_bytes = sector * per_cluster
        data = (reserved + fats * fat_size) * sector

        def chain(first: int) -> list[int]:
            clusters: list[int] = []
            while 2 <= first < END_OF_CHAIN and len(clusters) < 65536:
                clusters.append(first)
                f.seek(reserved * sector + first * 4)
                first = struct.unpack("<I", f.read(4))[0] & 0x0FFFFFFF
            return clusters

        changed = 0
        todo = [root]
        while todo:
            for cluster in chain(todo.pop()):
                offset = data + (cluster - 2) * cluster_bytes
                f.seek(offset)
                block = bytearray(f.read(cluster_bytes))
                for at in range(0, cluster_bytes, ENTRY):
                    if block[at] == 0:
                        break
                    attr = block[at + 11]
                    if block[at] == 0xE5 or attr == LONG_NAME:
                        continue
                    block[at + 13] = 0
                    struct.pack_into("<HHH", block, at + 14, clock, date, date)
                    struct.pack_into("<HH", block, at + 22, clock, date)
                    changed += 1
                    name = bytes(block[at : at + 11])
                    if attr & DIRECTORY and name not in (b".          ", b"..         "):
                        high, low = struct.unpack_from("<H", block, at + 20)[0], struct.unpack_from("<H", block, at + 26)[0]
                        todo.append((high << 16) | low)
                f.seek(offset)
                f.write(block)
    return changed
