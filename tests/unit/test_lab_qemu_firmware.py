"""Lab VMs' firmware choices on the QEMU command line: "uefi-http" is OVMF with its PXE boot options
switched off through fw_cfg (what makes it boot over HTTP is checked end to end in
tests/e2e/test_uefi_http_boot.py); "uefi" keeps PXE; neither has an iPXE option ROM on the NIC."""

from __future__ import annotations

from pathlib import Path

import pytest
from requirements import need

from vaquero.lab.kernel import LabError
from vaquero.lab.netns import LabNetwork
from vaquero.lab.qemu import OVMF, Vm


def command(tmp_path: Path, firmware: str) -> list[str]:
    vm = Vm(net=LabNetwork(address="10.90.0.1/24"), mac="52:54:00:00:10:01", log=tmp_path / "console.log", firmware=firmware)
    return vm.command("tap0")


def option(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == flag]


def test_uefi_http_switches_pxe_off_and_uefi_keeps_it(tmp_path: Path) -> None:
    need("qemu-system-x86_64", "qemu-system-x86")
    if not any(Path(p).is_file() for p in OVMF):
        need("no-such-tool-ovmf", "ovmf")
    http = command(tmp_path, "uefi-http")
    assert option(http, "-fw_cfg") == ["name=opt/org.tianocore/IPv4PXESupport,string=no", "name=opt/org.tianocore/IPv6PXESupport,string=no"]
    pxe = command(tmp_path, "uefi")
    assert option(pxe, "-fw_cfg") == []
    for cmd in (http, pxe):
        assert option(cmd, "-bios")[0] in OVMF and option(cmd, "-boot") == ["n"]
        assert option(cmd, "-device")[0].endswith(",romfile=")  # no iPXE ROM: the firmware's own network stack boots
    bios = command(tmp_path, "bios")
    assert "-bios" not in bios and "-fw_cfg" not in bios and not option(bios, "-device")[0].endswith(",romfile=")
    with pytest.raises(LabError, match="firmware must be one of bios, uefi, uefi-http, not 'uefi-https'"):
        command(tmp_path, "uefi-https")
