"""Decommission test helpers: a raw disk holding a GPT and an ext4 file system, and what sgdisk and blkid find on one."""

from __future__ import annotations

import subprocess
from pathlib import Path

from requirements import need

MIB = 1 << 20


def make_filled_disk(path: Path, size: int) -> tuple[Path, list[tuple[int, int]]]:
    """A raw disk file holding a GPT (a data partition and an ext4 file system made with mke2fs -d),
    every other byte non-zero; returns it and its partitions as (start, sectors)."""
    need("sgdisk", "gdisk")
    need("mke2fs", "e2fsprogs")
    with open(path, "wb") as fh:
        fh.write(b"\xa5" * size)
    table = ["-o", "-n", "1:2048:+4M", "-t", "1:fd00", "-n", "2:0:0", "-t", "2:8300", "-c", "2:root"]
    subprocess.run(["sgdisk", *table, str(path)], check=True, capture_output=True)
    parts = []
    for n in (1, 2):
        out = subprocess.run(["sgdisk", "-i", str(n), str(path)], check=True, capture_output=True, text=True).stdout
        first = int(out.split("First sector: ")[1].split()[0])
        last = int(out.split("Last sector: ")[1].split()[0])
        parts.append((first, last - first + 1))
    tree = path.parent / f"{path.stem}-tree"
    (tree / "etc").mkdir(parents=True, exist_ok=True)
    (tree / "etc" / "secret-data").write_text("customer data that must not survive\n")
    fs = path.parent / f"{path.stem}-root.ext4"
    with open(fs, "wb") as fh:
        fh.truncate(parts[1][1] * 512)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "vqroot", "-d", str(tree), str(fs)], check=True, capture_output=True)
    with open(path, "r+b") as fh:
        fh.seek(parts[1][0] * 512)
        fh.write(fs.read_bytes())
    fs.unlink()
    return path, parts


def signatures(path: Path) -> tuple[str, str]:
    """What `sgdisk -p` and `blkid -p` find on a disk image (sgdisk's table, blkid's probe)."""
    gpt = subprocess.run(["sgdisk", "-p", str(path)], capture_output=True, text=True)
    blkid = subprocess.run(["blkid", "-p", str(path)], capture_output=True, text=True)
    return gpt.stdout + gpt.stderr, blkid.stdout + blkid.stderr


def partition_rows(sgdisk_out: str) -> list[str]:
    """The partition lines of `sgdisk -p` output."""
    import re

    return re.findall(r"^\s+\d+\s+\d+\s+\d+\s.*$", sgdisk_out, re.M)
