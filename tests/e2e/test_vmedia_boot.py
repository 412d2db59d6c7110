"""Boot without DHCP: the agent's boot ISO as the CD of a lab VM, on a segment where no DHCP server runs.

The ISO's iPXE script gives the NIC the host's static address from the SoT, chains the agent's
install script over HTTP, and the installer (given a static address on its cmdline too) calls back
with its install token. QEMU's CD drive stands in for the BMC's virtual media (sushy-emulator's fake
driver cannot attach an ISO to a VM); the Redfish side is proven in tests/bmc/test_vmedia_*.py.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from vaquero.lab.harness import Lab
from vaquero.lab.qemu import Vm

pytestmark = pytest.mark.e2e

NODE1 = "52:54:00:00:10:01"
STATIC = " vaquero.ip={{ host.ip }}/{{ network.prefix }} vaquero.gw={{ network.gateway }}"


def _make_virtual_media_host(lab: Lab) -> None:
    assert lab.sot is not None
    cluster_file = lab.sot / "clusters" / "lab.yaml"
    cluster = yaml.safe_load(cluster_file.read_text())
    node1 = next(h for h in cluster["hosts"] if h["name"] == "node1")
    node1["boot"] = {"method": "virtual_media"}
    node1["bmc"] = {"type": "redfish", "address": "127.0.0.1", "port": 8443, "credential": "lab-bmc"}
    cluster_file.write_text(yaml.safe_dump(cluster, sort_keys=False))
    for path in (lab.sot / "profiles").glob("*.yaml"):
        docs = list(yaml.safe_load_all(path.read_text()))
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "Profile":
                doc["cmdline"] = doc["cmdline"] + STATIC  # the installer has no DHCP either
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def _in_ns(lab: Lab, *cmd: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(lab.net.command(list(cmd)), capture_output=True, timeout=120)


def test_boot_iso_with_static_address_reaches_the_agent_and_calls_back(lab: Lab) -> None:
    _make_virtual_media_host(lab)
    lab.start_agent(install=["node1"], dhcp=False)
    assert lab.status("node1")["state"] == "install"
    assert subprocess.run(["pgrep", "-f", f"dnsmasq.*{lab.workdir}"], capture_output=True).returncode != 0  # no DHCP server

    admin = (lab.workdir / "state" / "admin-token").read_text().strip()
    base = f"http://{lab.address}:{lab.http_port}"
    res = _in_ns(lab, "curl", "-sf", "-H", f"Authorization: Bearer {admin}", f"{base}/v1/boot/iso-url/node1")
    assert res.returncode == 0, res.stderr
    url = json.loads(res.stdout)["url"]
    iso = lab.workdir / "node1.iso"
    res = _in_ns(lab, "curl", "-sf", "-o", str(iso), url)
    assert res.returncode == 0 and iso.stat().st_size > 100_000, res.stderr

    vm = Vm(lab.net, NODE1, lab.workdir / "vm-node1-cd.log", cdrom=iso)
    lab.vms.append(vm)
    vm.start()
    rc = vm.wait(300)
    log = lab.agent_log.read_text(errors="replace")
    assert rc == 0, f"node1 did not power off after installing; console:\n{vm.console()[-2000:]}\nagent log tail:\n{log[-3000:]}"

    st = lab.status("node1")
    assert st["state"] == "installed" and st["script"] == "localboot"
    report = st["report"]
    assert report["ip"] == "10.90.0.11" and report["router"] == "10.90.0.1" and report["mac"] == NODE1
    assert report["_client"] == "10.90.0.11"  # the callback came from the static address
    console = vm.console()
    assert "vaquero-lab: static address 10.90.0.11/24" in console and "callback done" in console
    # the ISO's token is spent with the install: the URL serves nothing any more
    res = _in_ns(lab, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url)
    assert res.stdout == b"401"
