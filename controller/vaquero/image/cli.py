"""`vaquero image build NAME`: build (or find in the cache) a bootable disk image.

The `image` group's other action, `ramdisk`, builds the deploy ramdisk, which sits in a layer above
this package: vaquero.deploy.cli registers the group through :func:`add_parser` and adds it there."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def cmd_build(args: argparse.Namespace) -> int:
    from .build import DEFAULT_CACHE, build
    from .tools import ImageError

    started = time.monotonic()
    try:
        built = build(args.name, cache=Path(args.cache) if args.cache else DEFAULT_CACHE, out=Path(args.out) if args.out else None,
                      progress=lambda m: print(m, file=sys.stderr))  # fmt: skip
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    info = built.info
    folder = Path(args.out) if args.out else built.raw.parent
    print(json.dumps({
        "name": info["name"], "key": built.key, "cached": built.cached, "seconds": round(time.monotonic() - started, 2),
        "raw": str(folder / built.raw.name), "size": info["size"], "sha256": info["sha256"],
        "compressed": str(folder / built.compressed.name), "compressed_sha256": info["compressed"]["sha256"],
        "manifest": str(folder / built.manifest.name), "kernel": info["kernel"],
    }, indent=2))  # fmt: skip
    return 0


HELP = "build bootable OS disk images (raw + gzip) and the deploy ramdisk that writes them, cached by content hash (needs root)"


def add_parser(subparsers: Any) -> Any:
    """Register `image` with its `build` action; returns the group's sub-parsers for more actions."""
    from .recipes import RECIPES

    p = subparsers.add_parser("image", help=HELP)
    sub = p.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    b = sub.add_parser("build", help="build the image of a recipe, or return the cached one with the same key")
    b.add_argument("name", choices=sorted(RECIPES), help="the recipe")
    b.add_argument("--out", help="also place the image, its .sha256, .gz and manifest in this folder (hard links when possible)")
    b.add_argument("--cache", help="the cache folder (default $VAQUERO_LAB_CACHE or /var/cache/vaquero-lab); images go to CACHE/images")
    b.set_defaults(func=cmd_build)
    return sub
