"""`vaquero lab`: build the lab's boot assets, netboot a virtual lab host end to end."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def cmd_assets(args: argparse.Namespace) -> int:
    from vaquero.render.assets import sha256_file

    from .harness import lab_assets
    from .kernel import DEFAULT_CACHE

    kernel, initrd = lab_assets(Path(args.cache) if args.cache else DEFAULT_CACHE)
    out = {"kernel": {"path": str(kernel), "sha256": sha256_file(kernel)}, "initrd": {"path": str(initrd), "sha256": sha256_file(initrd)}}
    print(json.dumps(out, indent=2))
    return 0


def cmd_netboot(args: argparse.Namespace) -> int:
    from .harness import Lab
    from .kernel import LabError

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="vaquero-lab-"))
    try:
        with Lab(workdir, sot=Path(args.sot) if args.sot else None) as lab:
            assert lab.sot is not None
            from vaquero.sot import load

            found = load(lab.sot).host(args.host)
            if found is None:
                print(f"error: no host {args.host!r} in the lab SoT", file=sys.stderr)
                return 2
            _, host = found
            lab.start_agent(install=[args.host])
            t0 = time.time()
            print(f"netbooting {args.host} ({host.macs[0]}, {args.firmware}) in namespace {lab.net.name}; logs in {workdir}", file=sys.stderr)
            vm = lab.boot(host.macs[0], name=args.host, firmware=args.firmware)
            rc = vm.wait(args.timeout)
            st = lab.status(args.host)
            ok = rc is not None and st["state"] == "installed"
            result: dict[str, Any] = {"host": args.host, "installed": ok, "seconds": round(time.time() - t0, 1), "status": st}
            print(json.dumps(result, indent=2))
            if not ok:
                print(f"error: {args.host} did not call back; console:\n{vm.console()[-2000:]}", file=sys.stderr)
                return 1
            return 0
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("lab", help="the virtual lab: boot assets, netboot a QEMU host (needs root)")
    sub = p.add_subparsers(dest="lab_command", required=True)
    a = sub.add_parser("assets", help="fetch the Debian kernel and build the lab initramfs; print paths and sha256")
    a.add_argument("--cache", help="cache folder (default /var/cache/vaquero-lab)")
    a.set_defaults(func=cmd_assets)
    n = sub.add_parser("netboot", help="netboot a lab host end to end: namespace, dnsmasq, agent, QEMU; prints its callback")
    n.add_argument("--host", default="node1")
    n.add_argument("--sot", help="lab SoT folder (default inventories/lab)")
    n.add_argument(
        "--firmware",
        choices=["bios", "uefi", "uefi-http"],
        default="uefi",
        help="uefi: PXE -> TFTP ipxe.efi -> iPXE -> HTTP; uefi-http: UEFI HTTP boot, ipxe.efi over HTTP",
    )
    n.add_argument("--timeout", type=float, default=300)
    n.add_argument("--workdir", help="keep logs here (default: a new temporary folder)")
    n.set_defaults(func=cmd_netboot)
