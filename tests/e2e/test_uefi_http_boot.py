"""UEFI HTTP boot end to end: OVMF with its PXE options off (vaquero.lab.qemu, firmware
"uefi-http") asks the agent's dnsmasq for a boot file as an HTTPClient, gets the URL of ipxe.efi on
the agent, fetches it over HTTP, and iPXE carries on as on the PXE path (DHCP -> chain -> host
script -> kernel + initrd over HTTP -> callback). No TFTP at all.

The PXE path with the same agent and DHCP configuration (UEFI PXE -> ipxe.efi over TFTP) stays
covered by tests/e2e/test_netboot.py::test_install_over_pxe_tftp_http_then_localboot_and_unknown_mac_left_alone.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from vaquero.lab.harness import Lab
from vaquero.render import render_site
from vaquero.sot import load

pytestmark = pytest.mark.e2e

NODE1 = "52:54:00:00:10:01"
NODE1_IP = "10.90.0.11"


def _messages(lab: Lab) -> list[str]:
    """The agent's log (JSON lines: its own, dnsmasq's and its HTTP access log) as messages."""
    out = []
    for line in lab.agent_log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(str(json.loads(line).get("msg", "")))
    return out


def _dhcp(msgs: list[str], field: str) -> list[tuple[str, str]]:
    """(transaction id, value) of dnsmasq's log-dhcp lines "<xid> <field><value>"."""
    out = []
    for m in msgs:
        _, sep, rest = m.partition("dnsmasq-dhcp[")
        xid, _, tail = rest.partition("]: ")[2].partition(" ")
        if sep and xid.isdigit() and tail.startswith(field):
            out.append((xid, tail[len(field) :]))
    return out


def test_uefi_http_boot_fetches_ipxe_over_http_with_no_tftp(lab: Lab) -> None:
    # --access-log: the agent logs every HTTP request, which is how the fetch of ipxe.efi is counted.
    lab.start_agent(install=["node1"], extra=["--access-log"])
    vm = lab.boot(NODE1, name="node1-http", firmware="uefi-http")
    rc = vm.wait(240)
    msgs = _messages(lab)
    assert rc == 0, f"node1 did not power off after installing; console:\n{vm.console()[-2500:]}\nagent log tail:\n" + "\n".join(msgs[-60:])

    st = lab.status("node1")
    assert st["state"] == "installed" and st["script"] == "localboot"
    report = st["report"]
    assert report["mac"] == NODE1 and report["ip"] == NODE1_IP and report["hostname"] == "node1"
    bundle = render_site(load(str(lab.sot)))
    assert report["config_sha256"] == hashlib.sha256(bundle.hosts["node1"].config or b"").hexdigest()

    # The firmware's DHCP: an HTTPClient (arch 16), answered with the URL of ipxe.efi on the agent
    # and vendor class HTTPClient, as the rendered dnsmasq configuration says.
    url = f"http://{lab.address}:{lab.http_port}/ipxe/ipxe.efi"
    assert any("vendor class: HTTPClient:Arch:00016" in m for m in msgs), "no DHCP request from a UEFI HTTP boot client"
    assert any(m.endswith(f"bootfile name: {url}") for m in msgs), f"dnsmasq never offered {url}"
    assert any("option: 60 vendor-class  48:54:54:50:43:6c:69:65:6e:74" in m for m in msgs), "no vendor class HTTPClient in the answer"
    # The firmware's PXE client never asked: every PXEClient request came from iPXE (user class iPXE).
    pxe = {xid for xid, what in _dhcp(msgs, "vendor class: ") if what.startswith("PXEClient")}
    ipxe = {xid for xid, what in _dhcp(msgs, "user class: ") if what == "iPXE"}
    assert pxe and pxe <= ipxe, f"DHCP transactions from a PXE client that is not iPXE: {sorted(pxe - ipxe)}"

    # The agent's TFTP server was up, and served nothing; ipxe.efi went out over HTTP, once, and
    # before iPXE asked for its chain script.
    assert any(m.startswith("tftp serving ") for m in msgs), "the agent's TFTP server did not start: the check below would prove nothing"
    tftp = [m for m in msgs if m.startswith("tftp ") and not m.startswith("tftp serving ")]
    assert tftp == [], f"TFTP traffic during a UEFI HTTP boot: {tftp}"
    conf = (lab.workdir / "state" / "dnsmasq" / "dnsmasq.conf").read_text()
    assert "enable-tftp" not in conf  # dnsmasq itself serves no TFTP either
    gets = [i for i, m in enumerate(msgs) if m.startswith(f'{NODE1_IP} "GET /ipxe/ipxe.efi" 200')]
    chain = [i for i, m in enumerate(msgs) if m.startswith(f'{NODE1_IP} "GET /boot.ipxe" 200')]
    assert len(gets) == 1, f"expected one HTTP GET of /ipxe/ipxe.efi by node1, got {len(gets)}"
    assert chain and gets[0] < chain[0], "iPXE's chain script came before the firmware's fetch of ipxe.efi"
    assert any(m.startswith(f'{NODE1_IP} "GET /v1/boot/ipxe/52-54-00-00-10-01" 200') for m in msgs)
