"""Netboot end to end: QEMU start -> install callback through the whole chain, vs the same
kernel + initramfs + command line booted directly with QEMU's -kernel (the floor).

Chains measured (TCG, one lab namespace, the agent with dnsmasq/TFTP/HTTP inside it):
  - uefi: OVMF PXE -> DHCP -> ipxe.efi over TFTP -> iPXE DHCP -> HTTP chain + host script ->
          kernel + initrd over HTTP -> Linux DHCP -> config -> callback;
          floor: OVMF + -kernel/-initrd, Linux DHCP -> config -> callback
  - bios: SeaBIOS + QEMU's iPXE ROM -> DHCP -> HTTP chain + host script -> kernel + initrd ->
          ... -> callback; floor: SeaBIOS + -kernel/-initrd
The time is from QEMU's start to the moment the agent records the callback. Lower is better;
target netboot <= 1.5x direct.

    python benchmarks/netboot_e2e.py [--runs 3] [--firmware uefi bios]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "controller"))

NODE1 = "52:54:00:00:10:01"


def one(lab, firmware: str, direct: bool, cmdline: str) -> float:
    code, body = lab.http("POST", "/v1/boot/install/node1")
    if code != 200:
        raise SystemExit(f"cannot arm node1: {code} {body!r}")
    t0 = time.time()
    vm = lab.boot(NODE1, name=f"{firmware}-{'direct' if direct else 'net'}", direct=direct, append=cmdline, firmware=firmware)
    rc = vm.wait(300)
    st = lab.status("node1")
    vm.stop()
    if rc is None or st["state"] != "installed":
        raise SystemExit(f"{firmware} {'direct' if direct else 'netboot'}: no callback (rc {rc}); console:\n{vm.console()[-1500:]}")
    return float(st["since"]) - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--firmware", nargs="+", default=["uefi", "bios"], choices=["uefi", "bios"])
    ap.add_argument("--efi-file", default="ipxe.efi", choices=["ipxe.efi", "snponly.efi"], help="iPXE binary UEFI PXE gets over TFTP")
    args = ap.parse_args()

    from vaquero.lab.harness import Lab
    from vaquero.render import render_site
    from vaquero.sot import load

    with tempfile.TemporaryDirectory(prefix="vq-bench-netboot-") as tmp, Lab(Path(tmp) / "lab") as lab:
        lab.start_agent(extra=["--efi-file", args.efi_file])
        install = render_site(load(str(lab.sot))).hosts["node1"].install or ""
        kernel_line = next(line for line in install.splitlines() if line.startswith("kernel "))
        cmdline = kernel_line.split(" ", 3)[3]  # kernel --name NAME URL <cmdline>
        cmdline = " ".join(w for w in cmdline.split() if not w.startswith("initrd="))
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.runs):
            for fw in args.firmware:  # interleaved, so load from elsewhere hits both alike
                times.setdefault((fw, "netboot"), []).append(one(lab, fw, False, cmdline))
                times.setdefault((fw, "direct"), []).append(one(lab, fw, True, cmdline))
        for (fw, kind), ts in times.items():
            print(f"# {fw:4s} {kind:8s} " + " ".join(f"{t:.1f}" for t in ts) + " s")
        for fw in args.firmware:
            n = statistics.median(times[(fw, "netboot")])
            d = statistics.median(times[(fw, "direct")])
            chain = f"PXE+TFTP {args.efi_file}+iPXE+HTTP" if fw == "uefi" else "iPXE ROM+HTTP"
            print(f"netboot_e2e_{fw} ratio {n / d:.2f} (netboot {n:.1f} s via {chain}, direct -kernel {d:.1f} s, medians of {args.runs}; target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
