"""Netboot end to end: QEMU start -> install callback through the whole chain, vs the same
kernel + initramfs + command line booted directly with QEMU's -kernel (the floor).

Chains measured (TCG, one lab namespace, one agent with dnsmasq/TFTP/HTTP inside it for all):
  - uefi: OVMF PXE -> DHCP -> ipxe.efi over TFTP -> iPXE DHCP -> HTTP chain + host script ->
          kernel + initrd over HTTP -> Linux DHCP -> config -> callback;
          floor: OVMF + -kernel/-initrd, Linux DHCP -> config -> callback
  - uefi-http: OVMF UEFI HTTP boot (PXE options off, see vaquero.lab.qemu) -> DHCP (vendor class
          HTTPClient) -> ipxe.efi over HTTP -> iPXE DHCP -> ... as uefi; same floor as uefi
  - uefi-uki: OVMF UEFI HTTP boot -> DHCP (HTTPClient) -> one unified kernel image over HTTP
          (systemd's EFI stub from Debian's systemd-boot-efi + the same kernel, initramfs and
          command line, built here with objcopy) -> Linux DHCP -> config -> callback: no iPXE at
          all. An experiment, not a path the agent offers: the UKI is put where the agent serves
          the iPXE binary (--efi-file) for these boots only, and the console must show no iPXE.
          It measures what UEFI HTTP boot costs without any boot loader; same floor as uefi
  - bios: SeaBIOS + QEMU's iPXE ROM -> DHCP -> HTTP chain + host script -> kernel + initrd ->
          ... -> callback; floor: SeaBIOS + -kernel/-initrd
The time is from QEMU's start to the moment the agent records the callback. Lower is better;
target netboot <= 1.5x direct. Each netboot's path is read back from the agent's own log (TFTP
transfers, its HTTP access log): a UEFI HTTP boot with a TFTP transfer, or a PXE boot without
one, fails the run.

    python benchmarks/netboot_e2e.py [--runs 3] [--firmware uefi uefi-http bios uefi-uki]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "controller"))

NODE1 = "52:54:00:00:10:01"
NODE1_IP = "10.90.0.11"
FLOOR = {"uefi": "uefi", "uefi-http": "uefi", "uefi-uki": "uefi", "bios": "bios"}  # OVMF + -kernel for every UEFI chain
CHAIN = {"uefi": "PXE+TFTP {efi}+iPXE+HTTP", "uefi-http": "UEFI HTTP {efi}+iPXE+HTTP", "uefi-uki": "UEFI HTTP UKI, no iPXE", "bios": "iPXE ROM+HTTP"}
VM_FIRMWARE = {"uefi-uki": "uefi-http"}  # the lab VM's firmware, where the chain's name is not one
IPXE_DIR = Path("/usr/lib/ipxe")
STUB = "usr/lib/systemd/boot/efi/linuxx64.efi.stub"


def check_path(firmware: str, log: str, efi_file: str) -> None:
    """The boot took the path it is counted under, by the agent's own log of this boot."""
    msgs = [json.loads(line).get("msg", "") for line in log.splitlines() if line.startswith("{")]
    tftp = sum(m.startswith("tftp sending") and m.endswith(f" to {NODE1_IP}") for m in msgs)
    http_efi = sum(m.startswith(f'{NODE1_IP} "GET /ipxe/{efi_file}" 200') for m in msgs)
    # OVMF's PXE asks for the file's size in one TFTP request and downloads it in another.
    ok = {
        "uefi": tftp >= 1 and http_efi == 0,
        "uefi-http": tftp == 0 and http_efi == 1,
        "uefi-uki": tftp == 0 and http_efi == 1,
        "bios": tftp == 0 and http_efi == 0,
    }[firmware]
    if not ok:
        raise SystemExit(
            f"{firmware}: not the path measured: the agent logged {tftp} TFTP transfer(s) and {http_efi} HTTP GET(s) of /ipxe/{efi_file} for node1"
        )


def arm(lab) -> None:
    """Arm node1 again (an admin call): the agent's token read from its state folder, handed to curl
    on stdin so it is on no command line."""
    token = (lab.workdir / "state" / "admin-token").read_text().strip()
    url = f"http://{lab.address}:{lab.http_port}/v1/boot/install/node1"
    cmd = lab.net.command(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "@-", url])
    res = subprocess.run(cmd, input=f"Authorization: Bearer {token}\n", capture_output=True, text=True, timeout=30)
    if res.stdout != "200":
        raise SystemExit(f"cannot arm node1: HTTP {res.stdout or '-'} {res.stderr.strip()[:300]}")


def direct_cmdline(lab) -> str:
    """The command line iPXE would give the kernel now: from node1's script as the agent serves it
    after arming (with this install's token), minus iPXE's initrd= (QEMU's -initrd needs none)."""
    code, script = lab.http("GET", "/v1/boot/ipxe/" + NODE1.replace(":", "-"))
    if code != 200:
        raise SystemExit(f"node1's script: HTTP {code}")
    line = next(ln for ln in script.decode().splitlines() if ln.startswith("kernel "))
    words = line.split()[1:]
    if words[0] == "--name":
        words = words[2:]
    return " ".join(w for w in words[1:] if not w.startswith("initrd="))  # words[0] is the kernel's URL


def fetch_stub(into: Path) -> Path:
    """systemd's EFI stub for unified kernel images, from the Debian package systemd-boot-efi
    (downloaded with apt-get, checked against the apt index's sha256)."""
    from vaquero.lab.installer import download_deb

    version, deb = download_deb("systemd-boot-efi", into)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(into / "root")], check=True, timeout=120)
    print(f"# uefi-uki: systemd-boot-efi {version}", flush=True)
    return into / "root" / STUB


def build_uki(stub: Path, kernel: Path, initrd: Path, cmdline: str, out: Path) -> None:
    """stub + .cmdline + .linux + .initrd, each section placed after the previous one at the
    stub's section alignment (systemd's documented objcopy recipe)."""
    text = subprocess.run(["objdump", "-p", "-h", str(stub)], check=True, capture_output=True, text=True).stdout
    align = int(next(ln.split()[1] for ln in text.splitlines() if ln.startswith("SectionAlignment")), 16)
    end = max(int(w[3], 16) + int(w[2], 16) for w in (ln.split() for ln in text.splitlines()) if len(w) == 7 and w[0].isdigit())
    cmdfile = out.with_suffix(".cmdline")
    cmdfile.write_bytes(cmdline.encode() + b"\0")
    args, vma = [], end
    for section, path in ((".cmdline", cmdfile), (".linux", kernel), (".initrd", initrd)):
        vma = -(-vma // align) * align
        args += ["--add-section", f"{section}={path}", "--change-section-vma", f"{section}={vma:#x}"]
        vma += path.stat().st_size
    tmp = out.with_suffix(".tmp")
    subprocess.run(["objcopy", *args, str(stub), str(tmp)], check=True, timeout=60)
    os.replace(tmp, out)


def efi_root(into: Path) -> Path:
    """The agent's iPXE/TFTP folder for a run with the uefi-uki chain: links to Debian's iPXE
    binaries, one of which the UKI replaces for the uefi-uki boots only."""
    into.mkdir()
    for f in IPXE_DIR.iterdir():
        (into / f.name).symlink_to(f.resolve())
    return into


def one(lab, firmware: str, direct: bool, efi_file: str, uki: tuple[Path, Path] | None = None) -> float:
    arm(lab)
    cmdline = direct_cmdline(lab) if direct else ""
    served = None
    if firmware == "uefi-uki" and not direct:
        assert uki is not None, "uefi-uki needs the stub and the efi root"
        stub, root = uki
        served = root / efi_file
        # Built beside the served folder, not in it: the command line file holds the install token.
        work = root.parent / "uki-build"
        work.mkdir(exist_ok=True)
        build_uki(stub, lab.kernel, lab.initrd, direct_cmdline(lab), work / "uki.efi")
        os.replace(work / "uki.efi", served)
    offset = lab.agent_log.stat().st_size
    t0 = time.time()
    try:
        vm = lab.boot(NODE1, name=f"{firmware}-{'direct' if direct else 'net'}", direct=direct, append=cmdline, firmware=VM_FIRMWARE.get(firmware, firmware))
        rc = vm.wait(300)
        st = lab.status("node1")
        vm.stop()
    finally:
        if served is not None:
            served.unlink()
            served.symlink_to((IPXE_DIR / efi_file).resolve())
    if rc is None or st["state"] != "installed":
        raise SystemExit(f"{firmware} {'direct' if direct else 'netboot'}: no callback (rc {rc}); console:\n{vm.console()[-1500:]}")
    if not direct:
        with lab.agent_log.open(errors="replace") as fh:
            fh.seek(offset)
            check_path(firmware, fh.read(), efi_file)
        # iPXE prints its name on the console first thing; a UKI boot must have run none.
        if firmware.startswith("uefi") and ("iPXE" in vm.console()) != (firmware != "uefi-uki"):
            raise SystemExit(f"{firmware}: the console {'shows' if firmware == 'uefi-uki' else 'lacks'} iPXE: not the path measured")
    return float(st["since"]) - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--firmware", nargs="+", default=["uefi", "uefi-http", "bios"], choices=list(FLOOR))
    ap.add_argument(
        "--efi-file", default="ipxe.efi", choices=["ipxe.efi", "snponly.efi"], help="iPXE binary UEFI firmware gets (PXE: TFTP, UEFI HTTP boot: HTTP)"
    )
    args = ap.parse_args()

    from vaquero.lab.harness import Lab

    with tempfile.TemporaryDirectory(prefix="vq-bench-netboot-") as tmp, Lab(Path(tmp) / "lab") as lab:
        uki = None
        extra = ["--efi-file", args.efi_file, "--access-log"]
        if "uefi-uki" in args.firmware:
            (Path(tmp) / "stub").mkdir()
            uki = (fetch_stub(Path(tmp) / "stub"), efi_root(Path(tmp) / "efi"))
            extra += ["--tftp-root", str(uki[1])]
        # --access-log: the agent logs each HTTP request, so the path each boot took can be read back.
        lab.start_agent(extra=extra)
        floors = list(dict.fromkeys(FLOOR[fw] for fw in args.firmware))
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.runs):
            # interleaved, so load from elsewhere hits every chain and floor alike
            for fw in args.firmware:
                times.setdefault((fw, "netboot"), []).append(one(lab, fw, False, args.efi_file, uki))
            for fw in floors:
                times.setdefault((fw, "direct"), []).append(one(lab, fw, True, args.efi_file))
        for (fw, kind), ts in times.items():
            print(f"# {fw:9s} {kind:8s} " + " ".join(f"{t:.1f}" for t in ts) + " s")
        for fw in args.firmware:
            n = statistics.median(times[(fw, "netboot")])
            d = statistics.median(times[(FLOOR[fw], "direct")])
            name = fw.replace("-", "_")
            chain = CHAIN[fw].format(efi=args.efi_file)
            print(f"netboot_e2e_{name} ratio {n / d:.2f} (netboot {n:.1f} s via {chain}, direct -kernel {d:.1f} s, medians of {args.runs}; target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
