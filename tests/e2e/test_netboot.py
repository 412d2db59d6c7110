"""A real netboot: dnsmasq from the rendered config, the agent's TFTP and HTTP, QEMU hosts."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from vaquero.lab.harness import Lab
from vaquero.lab.sot import edit_site
from vaquero.render import render_site
from vaquero.sot import load

pytestmark = pytest.mark.e2e

NODE1 = "52:54:00:00:10:01"
NODE2 = "52:54:00:00:10:02"
UNKNOWN = "52:54:00:00:10:99"


def _wait_log(lab: Lab, needle: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in lab.agent_log.read_text(errors="replace"):
            return True
        time.sleep(0.5)
    return False


def test_install_over_pxe_tftp_http_then_localboot_and_unknown_mac_left_alone(lab: Lab) -> None:
    lab.start_agent(install=["node1"])
    assert lab.status("node1")["state"] == "install"
    before = {h: lab.status(h)["state"] for h in ("node2", "node3", "node4")}

    # node1 on UEFI firmware with no iPXE ROM: its own PXE client gets ipxe.efi over TFTP, iPXE
    # then gets the HTTP chain script and the install script. The unknown MAC boots alongside.
    vm = lab.boot(NODE1, name="node1", firmware="uefi")
    stranger = lab.boot(UNKNOWN, name="stranger")
    rc = vm.wait(240)
    log = lab.agent_log.read_text(errors="replace")
    assert rc == 0, f"node1 did not power off after installing; console:\n{vm.console()[-2000:]}\nagent log tail:\n{log[-3000:]}"

    st = lab.status("node1")
    assert st["state"] == "installed" and st["script"] == "localboot"
    report = st["report"]
    # What the initramfs got from DHCP, reported in its callback.
    assert report["ip"] == "10.90.0.11"
    assert report["router"] == "10.90.0.1"
    assert report["dns"] == "10.90.0.1"
    assert report["ntp"] == "10.90.0.1"
    assert report["domain"] == "lab.vaquero.test"
    assert report["hostname"] == "node1"
    assert report["mac"] == NODE1
    bundle = render_site(load(str(lab.sot)))
    assert report["config_sha256"] == hashlib.sha256(bundle.hosts["node1"].config or b"").hexdigest()
    # The chain really went PXE (arch 7) -> TFTP ipxe.efi -> iPXE (user class) -> HTTP.
    assert "PXEClient:Arch:00007" in log
    assert "tftp sending ipxe.efi" in log
    assert "bootfile name: http://10.90.0.1:8080/boot.ipxe" in log

    # The unknown MAC got the script that installs nothing, and nobody else changed state.
    assert _wait_log(lab, "unknown MAC 52-54-00-00-10-99", 90), "the unknown host never asked for its script"
    stranger.stop()
    assert {h: lab.status(h)["state"] for h in ("node2", "node3", "node4")} == before
    assert "callback/node2" not in log

    # Boot node1 again: it must get localboot, not its installer.
    served = st["scripts_served"]
    again = lab.boot(NODE1, name="node1-again")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and lab.status("node1")["scripts_served"] == served:
        time.sleep(0.5)
    again.stop()
    st2 = lab.status("node1")
    assert st2["scripts_served"] > served, "node1 never fetched its script on the second boot"
    assert st2["last_script"] == "localboot"
    assert st2["state"] == "installed" and st2["report"] == report  # no second install, no second callback


def test_proxy_dhcp_mode_with_another_dhcp_server(e2e_ready, tmp_path) -> None:
    lab = Lab(tmp_path / "lab")
    with lab:
        assert lab.sot is not None
        edit_site(lab.sot, "lab", dhcp={"mode": "proxy"})
        # The site's existing DHCP server: another box on the wire, handing out addresses only.
        peer = lab.net.add_peer("10.90.0.2/24")
        conf = tmp_path / "isp-dhcp.conf"
        conf.write_text(
            "port=0\nbind-interfaces\ninterface=eth0\nno-ping\ndhcp-authoritative\n"
            "dhcp-range=10.90.0.150,10.90.0.160,255.255.255.0,1h\n"
            "dhcp-option=option:router,10.90.0.1\ndhcp-option=option:dns-server,10.90.0.53\n"
            f"dhcp-leasefile={tmp_path}/isp.leases\n"
        )
        lab.net.popen(["dnsmasq", "-k", "-C", str(conf), "--log-facility=-", f"--pid-file={tmp_path}/isp.pid"], ns=peer, log_file=tmp_path / "isp.log")
        lab.start_agent(install=["node2"])
        vm = lab.boot(NODE2, name="node2")
        rc = vm.wait(240)
        log = lab.agent_log.read_text(errors="replace")
        assert rc == 0, f"node2 did not finish; console:\n{vm.console()[-2000:]}\nagent log:\n{log[-3000:]}\nisp:\n{(tmp_path / 'isp.log').read_text()[-2000:]}"
        st = lab.status("node2")
        assert st["state"] == "installed"
        # The address and DNS came from the other server; Vaquero only answered PXE.
        assert st["report"]["ip"].startswith("10.90.0.15") or st["report"]["ip"] == "10.90.0.160"
        assert st["report"]["dns"] == "10.90.0.53"
        assert "proxy" in (lab.workdir / "state" / "dnsmasq" / "dnsmasq.conf").read_text()
        assert "DHCPOFFER" not in "".join(line for line in log.splitlines() if "dnsmasq-dhcp" in line and "PXE(" not in line and "proxy" not in line)


def test_agent_status_rejects_unknown_host(lab: Lab) -> None:
    lab.start_agent()
    code, body = lab.http("GET", "/v1/boot/status/nope")
    assert code == 404 and "unknown host" in json.loads(body)["error"]
