"""`vaquero image ramdisk`: build (or find in the cache) the deploy ramdisk an image profile boots.

The `image` command group lives in vaquero.image.cli (`image build`); this package sits above it in
the layer map, so it registers the group from there and adds `ramdisk` to it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def cmd_ramdisk(args: argparse.Namespace) -> int:
    from vaquero.lab.kernel import DEFAULT_CACHE, LabError

    from .ramdisk import build_ramdisk, export

    started = time.monotonic()
    try:
        ramdisk = build_ramdisk(Path(args.cache) if args.cache else DEFAULT_CACHE)
        if args.out:
            ramdisk = export(ramdisk, Path(args.out))
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"key": ramdisk.key, "seconds": round(time.monotonic() - started, 2), **ramdisk.profile()}, indent=2))
    return 0


def add_parser(subparsers: Any) -> None:
    from vaquero.image.cli import add_parser as add_image_group

    actions = add_image_group(subparsers)
    p = actions.add_parser(
        "ramdisk",
        help="build the deploy ramdisk (kernel + initrd) that writes an image profile's disk image; prints the profile's kernel/initrd",
    )
    p.add_argument("--out", help="copy vmlinuz and deploy-initrd.img into this folder (e.g. the agent's asset folder)")
    p.add_argument("--cache", help="cache folder (default $VAQUERO_LAB_CACHE or /var/cache/vaquero-lab)")
    p.set_defaults(func=cmd_ramdisk)
