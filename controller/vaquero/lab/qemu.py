"""Lab hosts: QEMU (TCG) VMs on a tap, netbooting through iPXE, or booting a kernel directly.

A VM may have a virtio disk (a qcow2 file, made once with qemu-img at the size given); such a VM
boots the device its BMC chose (``boot``: ``network`` or ``disk``), as a server with a disk and a
PXE-capable NIC does, and ``uuid`` makes its DMI system UUID the SoT's. ``firmware="uefi"`` with a
disk runs OVMF from pflash (the 4 MiB code image read-only, a per-VM copy of its variable store),
like a real machine's NVRAM.

``firmware="uefi-http"`` is the same OVMF with its PXE boot options switched off through fw_cfg
(edk2's ``opt/org.tianocore/IPv4PXESupport`` and ``IPv6PXESupport``, read by its PXE driver), so
its first network boot option is "UEFI HTTPv4": the firmware's own DHCP (vendor class
``HTTPClient``, arch 16) gets a URL and it fetches that file over HTTP, no TFTP. This stands in for
a BMC's one-time UefiHttp boot override; the agent and its DHCP configuration are the same for
both UEFI paths."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .kernel import LabError
from .netns import LabNetwork

OVMF = ("/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd")
OVMF_CODE_4M = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS_4M = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
BOOT_TARGETS = ("network", "disk")
FIRMWARES = ("bios", "uefi", "uefi-http")
# edk2 reads these at boot (OvmfPkg's PxeBcPcdProducerLib, in Debian 12's ovmf): "no" removes the
# PXEv4/PXEv6 boot options, leaving HTTPv4 first. Checked: the firmware's first DHCPDISCOVER then
# carries vendor class HTTPClient:Arch:00016, and no TFTP request follows.
_NO_PXE = ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=no", "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no"]


def make_disk(path: Path, size_gb: float) -> Path:
    """A blank qcow2 of ``size_gb`` GiB at ``path`` (kept when it is already there: a lab host's
    disk outlives its power cycles)."""
    if not 0 < size_gb <= 64:
        raise LabError(f"a lab disk is more than 0 and at most 64 GiB, not {size_gb}")
    if path.exists():
        return path
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        raise LabError("qemu-img is not installed (qemu-utils)")
    path.parent.mkdir(parents=True, exist_ok=True)
    res = subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(path), f"{int(size_gb * 1024)}M"], capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise LabError(f"qemu-img create {path}: {res.stderr.strip()[:300]}")
    return path


@dataclass
class Vm:
    """One QEMU host. `start()` runs it inside the lab namespace, on its own tap."""

    net: LabNetwork
    mac: str
    log: Path
    memory: int = 384
    nic: str = "virtio-net-pci"
    # "bios": SeaBIOS + QEMU's iPXE option ROM (iPXE from the first DHCP: HTTP script at once).
    # "uefi": OVMF with its own PXE stack and no option ROM: DHCP -> ipxe.efi over TFTP -> iPXE
    # -> HTTP script, the path real legacy PXE firmware takes.
    # "uefi-http": OVMF, no option ROM, PXE off: UEFI HTTP boot, DHCP -> ipxe.efi over HTTP -> iPXE.
    firmware: str = "bios"
    kernel: Path | None = None
    initrd: Path | None = None
    append: str = ""
    cdrom: Path | None = None  # boot this ISO from the CD drive (virtual media) instead of the network
    disk: Path | None = None  # a qcow2 (see make_disk) on virtio-blk, serial "vq-<name of the file>"
    boot: str = "network"  # with a disk: which device boots first, "network" or "disk" (the BMC's choice)
    uuid: str | None = None  # the DMI system UUID (-uuid), the SoT's for a lab host
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started: float = 0.0

    def command(self, tap: str) -> list[str]:
        qemu = shutil.which("qemu-system-x86_64")
        if qemu is None:
            raise LabError("qemu-system-x86_64 is not installed (qemu-system-x86)")
        if self.boot not in BOOT_TARGETS:
            raise LabError(f"boot must be one of {', '.join(BOOT_TARGETS)}, not {self.boot!r}")
        if self.firmware not in FIRMWARES:
            raise LabError(f"firmware must be one of {', '.join(FIRMWARES)}, not {self.firmware!r}")
        uefi = self.firmware != "bios"
        nic = f"{self.nic},netdev=n0,mac={self.mac}" + (",romfile=" if uefi else "")
        if self.disk is not None:
            # bootindex orders the boot devices for SeaBIOS and OVMF alike; the one not chosen comes
            # second, as on a server whose boot override is spent.
            nic += f",bootindex={0 if self.boot == 'network' else 1}"
        cmd = [
            qemu, "-accel", "tcg", "-m", str(self.memory), "-smp", "1",
            "-display", "none", "-monitor", "none", "-serial", f"file:{self.log}", "-no-reboot", "-nodefaults",
            "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no", "-device", nic,
        ]  # fmt: skip
        if self.uuid is not None:
            cmd += ["-uuid", self.uuid]
        if uefi and self.disk is not None:
            cmd += self._pflash()
        elif uefi:
            ovmf = next((p for p in OVMF if Path(p).is_file()), None)
            if ovmf is None:
                raise LabError("OVMF is not installed (Debian package ovmf)")
            cmd += ["-bios", ovmf]
        if self.firmware == "uefi-http":
            cmd += _NO_PXE
        if self.disk is not None:
            serial = "vq-" + self.disk.stem[:16]
            cmd += ["-drive", f"file={self.disk},if=none,id=d0,format=qcow2",
                    "-device", f"virtio-blk-pci,drive=d0,serial={serial},bootindex={0 if self.boot == 'disk' else 1}"]  # fmt: skip
        if self.cdrom is not None:
            cmd += ["-cdrom", str(self.cdrom), "-boot", "d"]
        elif self.kernel is not None:
            cmd += ["-kernel", str(self.kernel), "-append", self.append]
            if self.initrd is not None:
                cmd += ["-initrd", str(self.initrd)]
        elif self.disk is None:
            cmd += ["-boot", "n"]
        return cmd

    def _pflash(self) -> list[str]:
        """OVMF as on a real machine: its code read-only, its variable store a per-VM copy kept
        next to the disk (made on the first start)."""
        assert self.disk is not None
        if not OVMF_CODE_4M.is_file() or not OVMF_VARS_4M.is_file():
            raise LabError(f"{OVMF_CODE_4M} or {OVMF_VARS_4M} is missing (Debian package ovmf)")
        own_vars = self.disk.with_suffix(".ovmf-vars.fd")
        if not own_vars.exists():
            shutil.copyfile(OVMF_VARS_4M, own_vars)
        return ["-machine", "q35,smm=off", "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE_4M}",
                "-drive", f"if=pflash,format=raw,unit=1,file={own_vars}"]  # fmt: skip

    def start(self) -> Vm:
        tap = self.net.add_tap()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.write_bytes(b"")
        self.started = time.monotonic()
        self.proc = self.net.popen(self.command(tap), log_file=self.log.with_suffix(".qemu.log"))
        return self

    def wait(self, timeout: float) -> int | None:
        """Wait for QEMU to exit (the guest powered off); None on timeout."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.proc is not None:
            LabNetwork.stop(self.proc)

    def console(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
