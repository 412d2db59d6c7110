"""The agent serves a virtual_media host's boot ISO (install token, not bound), and a real Redfish BMC
(sushy-emulator) fetches it from the real agent when the ISO is inserted."""

from __future__ import annotations

import io

import httpx
import pycdlib
import pytest
from vmedia_helpers import VmediaAgent, vmedia_sot

from vaquero.bmc import open_bmc
from vaquero.bmc.virtual_media import VirtualMedia, VirtualMediaError
from vaquero.callback import CallbackError


@pytest.fixture
def agent(tmp_path, sushy):
    a = VmediaAgent(tmp_path, vmedia_sot(tmp_path, sushy.port))
    yield a
    a.stop()


def iso_file(data: bytes, path: str) -> str:
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, iso_path=path)
        assert iso.eltorito_boot_catalog is not None  # bootable
        return out.getvalue().decode()
    finally:
        iso.close()


def test_iso_needs_the_install_token_and_holds_the_static_script(agent, tmp_path):
    with httpx.Client(timeout=30) as c:
        assert c.get(f"{agent.base}/v1/boot/iso/node1.iso").status_code == 401
        assert c.get(agent.iso_url(token="x" * 43)).status_code == 401
        assert c.get(agent.iso_url(host="node2")).status_code == 401  # node1's ISO token, node2's ISO
        assert c.get(agent.iso_url(token=agent.token)).status_code == 401  # the install token itself is not the ISO's
        assert c.get(f"{agent.base}/v1/boot/iso-url/node1").status_code == 401  # the admin API wants its token
        r = c.get(agent.iso_url())
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
        again = c.get(agent.iso_url())
        assert again.content == r.content  # built once, served from the cache
        part = c.get(agent.iso_url(), headers={"Range": "bytes=32768-32773"})
        assert part.status_code == 206 and part.content == r.content[32768:32774]
    script = iso_file(r.content, "/HOST.IPX;1")
    assert script.startswith("#!ipxe\n")
    for line in ("set ${vq-nic}/ip 10.90.0.11", "set ${vq-nic}/netmask 255.255.255.0", "set ${vq-nic}/gateway 10.90.0.1", "set ${vq-nic}/dns 10.90.0.1"):
        assert line in script
    assert "iseq ${net0/mac} 52:54:00:00:10:01 && set vq-nic net0 ||" in script
    assert f"chain --autofree {agent.base}/v1/boot/ipxe/${{${{vq-nic}}/mac:hexhyp}}" in script
    assert "dhcp" not in script.lower()
    assert agent.token not in script  # the ISO holds no secret: the install token lives in the chained script
    assert agent.token not in agent.iso_url()  # nor does its URL, which sits in the BMC for any BMC reader
    assert "INITRD host.ipx" in iso_file(r.content, "/ISOLINUX.CFG;1")
    assert len(list((agent.state_dir / "iso").glob("*.iso"))) == 1
    assert agent.token not in agent.log.read_text()


def test_a_pxe_host_has_no_iso(tmp_path, sushy):
    a = VmediaAgent(tmp_path, vmedia_sot(tmp_path, sushy.port), host="node2")  # node2 stays pxe
    try:
        with pytest.raises(CallbackError, match="HTTP 404"):
            a.iso_url()
    finally:
        a.stop()


def test_the_iso_url_goes_stale_once_the_host_called_back(agent):
    url = agent.iso_url()
    with httpx.Client(timeout=30) as c:
        assert c.get(url).status_code == 200
        cb = c.post(f"{agent.base}/v1/boot/callback/node1?token={agent.token}", json={"mac": "52:54:00:00:10:01"})
        assert cb.status_code == 200
        assert c.get(url).status_code == 401
        assert c.get(f"{agent.base}/v1/boot/iso-url/node1", headers={"Authorization": f"Bearer {agent.admin_token}"}).status_code == 409


def test_sushy_inserts_the_iso_the_agent_serves(agent, sushy):
    url = agent.iso_url()
    with open_bmc(sushy.endpoint()) as bmc:
        vm = VirtualMedia(bmc)
        r = vm.insert(url)
        assert r.changed and vm.status().image == url
        assert vm.eject().changed and not vm.status().inserted
        # sushy really fetches from the agent: a wrong token there is the BMC's refusal here
        with pytest.raises(VirtualMediaError, match="refused image"):
            vm.insert(agent.iso_url(token="y" * 43))
        assert not vm.status().inserted
    assert agent.token not in agent.log.read_text()
