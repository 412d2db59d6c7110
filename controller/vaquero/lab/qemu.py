"""Lab hosts: QEMU (TCG) VMs on a tap, netbooting through iPXE, or booting a kernel directly."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .kernel import LabError
from .netns import LabNetwork

OVMF = ("/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd")


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
    firmware: str = "bios"
    kernel: Path | None = None
    initrd: Path | None = None
    append: str = ""
    cdrom: Path | None = None  # boot this ISO from the CD drive (virtual media) instead of the network
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started: float = 0.0

    def command(self, tap: str) -> list[str]:
        qemu = shutil.which("qemu-system-x86_64")
        if qemu is None:
            raise LabError("qemu-system-x86_64 is not installed (qemu-system-x86)")
        nic = f"{self.nic},netdev=n0,mac={self.mac}" + (",romfile=" if self.firmware == "uefi" else "")
        cmd = [
            qemu, "-accel", "tcg", "-m", str(self.memory), "-smp", "1",
            "-display", "none", "-monitor", "none", "-serial", f"file:{self.log}", "-no-reboot", "-nodefaults",
            "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no", "-device", nic,
        ]  # fmt: skip
        if self.firmware == "uefi":
            ovmf = next((p for p in OVMF if Path(p).is_file()), None)
            if ovmf is None:
                raise LabError("OVMF is not installed (Debian package ovmf)")
            cmd += ["-bios", ovmf]
        if self.cdrom is not None:
            cmd += ["-cdrom", str(self.cdrom), "-boot", "d"]
        elif self.kernel is not None:
            cmd += ["-kernel", str(self.kernel), "-append", self.append]
            if self.initrd is not None:
                cmd += ["-initrd", str(self.initrd)]
        else:
            cmd += ["-boot", "n"]
        return cmd

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
