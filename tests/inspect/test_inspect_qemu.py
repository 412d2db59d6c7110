"""Discovery end to end: a QEMU host (TCG, SeaBIOS) whose MAC the SoT does not know netboots in the
lab namespace from `vaquero standalone` (its site enrolls unknown machines), gets the deploy ramdisk
in inspection mode, reports itself, and powers off; its report (the MAC it booted with, the SMBIOS
UUID and serial QEMU gave it, its virtio disk, memory and CPUs) lands in the controller's store at
/inspections/<mac>. Nothing is armed for it: a report is only a proposal.

The standalone starts as after an applied run (/sites-applied/current in its store), so its agent
serves the site at once; the ramdisk is the cached build of tests/deploy (one build, one key).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from requirements import need, need_root
from waiting import wait_until

from vaquero.lab.demo import StoreView
from vaquero.lab.netns import LabNetwork
from vaquero.lab.qemu import Vm, make_disk
from vaquero.state.sqlite import SQLiteStore

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
MAC = "52:54:00:00:40:01"  # not in the SoT
KNOWN = "52:54:00:00:20:01"
UUID = "3c0ffee0-4e4f-4a1b-9c2d-0123456789ab"
SERIAL = "VQ-E2E-SERIAL-0042"
MEMORY_MIB = 384
CPUS = 2
DISK_GIB = 0.5
BOOT_TIMEOUT = 600


@dataclass
class InspectedVm(Vm):
    """A lab host with SMBIOS identity and more than one CPU, as a real machine has."""

    serial: str = ""
    cpus: int = 1

    def command(self, tap: str) -> list[str]:
        cmd = super().command(tap)
        i = cmd.index("-smp")
        cmd[i + 1] = str(self.cpus)
        return [*cmd, "-smbios", f"type=1,serial={self.serial},manufacturer=Vaquero Lab,product=Inspected VM"]


def write_sot(dest: Path, ramdisk: object) -> Path:
    (dest / "sites").mkdir(parents=True)
    (dest / "profiles").mkdir()
    (dest / "clusters").mkdir()
    site = yaml.safe_load((REPO / "inventories" / "lab" / "sites" / "lab.yaml").read_text())
    site["discovery"] = {"enabled": True, "cluster": "deploy"}
    (dest / "sites" / "lab.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
    profile = {"apiVersion": "vaquero/v1", "kind": "Profile", "name": "ramdisk", "version": "1", **ramdisk.profile(),  # type: ignore[attr-defined]
               "cmdline": "console=ttyS0", "image": {"url": "http://10.90.0.1:8099/image.raw", "sha256": "0" * 64}}  # fmt: skip
    (dest / "profiles" / "ramdisk.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    cluster = {"apiVersion": "vaquero/v1", "kind": "Cluster", "name": "deploy", "site": "lab", "profile": "ramdisk",
               "hosts": [{"name": "node1", "macs": [KNOWN], "ips": {"prov": "10.90.0.11"}}]}  # fmt: skip
    (dest / "clusters" / "deploy.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))
    return dest


def test_an_unknown_machine_is_inspected_and_its_report_lands_in_the_store(tmp_path: Path) -> None:
    need_root("network namespaces, taps and QEMU hosts")
    for tool, pkg in (("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils"), ("dnsmasq", "dnsmasq-base"), ("cpio", "cpio"),
                      ("apt-get", "apt")):  # fmt: skip
        need(tool, pkg)
    from vaquero.deploy.ramdisk import build_ramdisk

    sot = write_sot(tmp_path / "sot", build_ramdisk())
    data = tmp_path / "data"
    data.mkdir()
    seed = SQLiteStore(data / "state.db")  # as a run that applied this SoT leaves it
    seed.put("/sites-applied/current", {"sha": None, "root": str(sot), "plan": "p-applied"})
    seed.close()
    net = LabNetwork()
    net.create()
    vm = None
    try:
        cmd = [sys.executable, "-m", "vaquero.cli", "--log-level", "info", "standalone", "--sot", str(sot), "--data-dir", str(data),
               "--listen", "127.0.0.1:8000"]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "VAQUERO_LAB_BMC_PASSWORD": "unused-in-this-test"}
        net.popen(cmd, log_file=tmp_path / "standalone.log", env=env)
        net.wait_port("10.90.0.1", 8080, timeout=90)
        disk = make_disk(tmp_path / "vm" / "disk.qcow2", DISK_GIB)
        vm = InspectedVm(net, MAC, tmp_path / "vm.log", memory=MEMORY_MIB, disk=disk, uuid=UUID, serial=SERIAL, cpus=CPUS)
        vm.start()
        rc = vm.wait(BOOT_TIMEOUT)
        console = vm.console()
        log = (tmp_path / "standalone.log").read_text(errors="replace")
        assert rc is not None, f"the VM did not power off within {BOOT_TIMEOUT} s; console:\n{console[-3000:]}\nstandalone:\n{log[-3000:]}"
        assert "vaquero-deploy: inspection report taken" in console, console[-3000:]
        store = StoreView(data / "state.db")
        key = "/inspections/" + MAC.replace(":", "-")
        wait_until(lambda: store.get(key) is not None, timeout=30, what="the report in the store")
        rec = store.get(key)
        assert rec is not None
        report = rec["report"]
        print("\nreport:", json.dumps(report, indent=1))
        assert rec["site"] == "lab" and rec["agent"] == "lab-agent" and rec["status"] == "new"
        assert report["boot_mac"] == MAC and MAC in [n["mac"] for n in report["nics"]]
        assert report["uuid"].lower() == UUID and report["serial"] == SERIAL
        assert report["vendor"] == "Vaquero Lab" and report["product"] == "Inspected VM"
        assert report["cpus"] == CPUS and report["memory_mib"] == MEMORY_MIB
        disks = {d["name"]: d for d in report["disks"]}
        assert disks["vda"]["size_bytes"] == int(DISK_GIB * 1024) << 20 and disks["vda"]["serial"] == "vq-disk"
        # Never armed: the agent holds no boot state for it, and the unknown MAC is nobody's host.
        states = json.loads((data / "agent" / "boot-states.json").read_text()) if (data / "agent" / "boot-states.json").exists() else {"hosts": {}}
        assert all(st.get("state") != "install" for st in states.get("hosts", {}).values()), states
        assert not [h for h in store.list("/hosts/") if MAC in json.dumps(h)]
        assert "served the inspection ramdisk" in log and "kept for enrollment" in log
    finally:
        if vm is not None:
            vm.stop()
        net.close()
