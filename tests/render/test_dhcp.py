"""DHCP configs, checked by the real daemons (`dnsmasq --test`, `kea-dhcp4 -t`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from vaquero.render import BootServer, RenderError, get_site, render_dnsmasq, render_kea, render_site, site_hosts
from vaquero.render.dhcp import render_dnsmasq_hosts
from vaquero.sot.models import Dhcp


def dnsmasq_test(text: str, tmp_path: Path) -> None:
    if shutil.which("dnsmasq") is None:
        pytest.fail("dnsmasq is not installed (run scripts/setup.sh)")
    conf = tmp_path / "dnsmasq.conf"
    conf.write_text(text)
    res = subprocess.run(["dnsmasq", "--test", "-C", str(conf)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def kea_test(text: str, tmp_path: Path) -> None:
    if shutil.which("kea-dhcp4") is None:
        pytest.fail("kea-dhcp4 is not installed (run scripts/setup.sh)")
    conf = tmp_path / "kea.json"
    conf.write_text(text)
    res = subprocess.run(["kea-dhcp4", "-t", str(conf)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]


def _server() -> BootServer:
    return BootServer(address="10.90.0.1", http_base="http://10.90.0.1:8080")


def test_dnsmasq_server_mode(lab_sot, tmp_path):
    site = get_site(lab_sot, "lab")
    text = render_dnsmasq(site, site_hosts(lab_sot, site), _server())
    dnsmasq_test(text, tmp_path)
    lines = text.splitlines()
    assert "port=0" in lines and "no-ping" in lines and "enable-ra" in lines and "dhcp-ignore-clid" in lines
    assert "dhcp-range=set:net-prov,10.90.0.100,10.90.0.199,255.255.255.0,1h" in lines
    assert "dhcp-option=tag:net-prov,option:router,10.90.0.1" in lines
    assert "dhcp-option=tag:net-prov,option:dns-server,10.90.0.1" in lines
    assert "dhcp-option-force=tag:net-prov,option:ntp-server,10.90.0.1" in lines  # forced so iPXE/OS get it
    assert "dhcp-option=tag:net-prov,option:domain-name,lab.vaquero.test" in lines
    assert "dhcp-host=52:54:00:00:10:01,set:known,10.90.0.11,node1" in lines  # name -> option 12
    assert "dhcp-match=set:ipxe,175" in lines and "dhcp-userclass=set:ipxe,iPXE" in lines
    assert "dhcp-option=encap:175,176,1" in lines
    assert "dhcp-boot=tag:ipxe,http://10.90.0.1:8080/boot.ipxe" in lines
    assert "dhcp-boot=tag:!ipxe,tag:!efihttp,tag:!efi64,undionly.kpxe,,10.90.0.1" in lines  # BIOS, arch 0
    assert "dhcp-boot=tag:!ipxe,tag:!efihttp,tag:efi64,ipxe.efi,,10.90.0.1" in lines  # UEFI, arch 7/9
    assert "dhcp-match=set:efihttp,option:client-arch,16" in lines  # UEFI HTTP boot
    assert "dhcp-boot=tag:!ipxe,tag:efihttp,http://10.90.0.1:8080/ipxe/ipxe.efi" in lines
    assert "dhcp-option=tag:efihttp,option:vendor-class,HTTPClient" in lines


def test_dnsmasq_snponly_and_hosts_file(lab_sot, tmp_path):
    site = get_site(lab_sot, "lab")
    hosts = site_hosts(lab_sot, site)
    text = render_dnsmasq(site, hosts, replace(_server(), efi_file="snponly.efi"), hosts_file=str(tmp_path / "h"))
    (tmp_path / "h").write_text(render_dnsmasq_hosts(hosts))
    dnsmasq_test(text, tmp_path)
    assert f"dhcp-hostsfile={tmp_path / 'h'}" in text and "dhcp-host=" not in text
    assert "snponly.efi,,10.90.0.1" in text
    assert (tmp_path / "h").read_text().splitlines()[0] == "52:54:00:00:10:01,set:known,10.90.0.11,node1"


def test_dnsmasq_proxy_mode(lab_sot, tmp_path):
    site = get_site(lab_sot, "lab")
    net = site.networks[0].model_copy(update={"dhcp": Dhcp(mode="proxy")})
    proxy_site = site.model_copy(update={"networks": [net]})
    hosts = [replace(h, network=net) for h in site_hosts(lab_sot, site)]
    text = render_dnsmasq(proxy_site, hosts, _server())
    dnsmasq_test(text, tmp_path)
    assert "dhcp-range=set:net-prov,10.90.0.0,proxy,255.255.255.0" in text
    assert "option:router" not in text and "dhcp-authoritative" not in text  # the other server does that
    assert 'pxe-service=tag:!ipxe,x86PC,"Vaquero iPXE",undionly.kpxe' in text
    assert 'pxe-service=tag:!ipxe,X86-64_EFI,"Vaquero iPXE",ipxe.efi' in text
    assert 'pxe-service=tag:ipxe,x86PC,"Vaquero",http://10.90.0.1:8080/boot.ipxe' in text
    assert "dhcp-host=52:54:00:00:10:01,set:known,node1" in text  # no address in proxy mode
    with pytest.raises(RenderError, match="proxy"):
        render_kea(proxy_site, hosts, _server())


def test_dnsmasq_federation_sites_validate(federation_sot, tmp_path):
    for name, site in federation_sot.sites.items():
        text = render_dnsmasq(site, site_hosts(federation_sot, site), _server())
        dnsmasq_test(text, tmp_path)
        assert f"site {name}" in text


def test_kea(lab_sot, tmp_path):
    site = get_site(lab_sot, "lab")
    text = render_kea(site, site_hosts(lab_sot, site), replace(_server(), interface="lo"))
    kea_test(text, tmp_path)
    conf = json.loads(text)["Dhcp4"]
    subnet = conf["subnet4"][0]
    assert subnet["subnet"] == "10.90.0.0/24" and subnet["pools"] == [{"pool": "10.90.0.100 - 10.90.0.199"}]
    opts = {o["name"]: o for o in subnet["option-data"]}
    assert opts["routers"]["data"] == "10.90.0.1" and opts["domain-name-servers"]["data"] == "10.90.0.1"
    assert opts["ntp-servers"]["always-send"] is True and opts["domain-name"]["data"] == "lab.vaquero.test"
    assert {"hw-address": "52:54:00:00:10:01", "hostname": "node1", "ip-address": "10.90.0.11"} in subnet["reservations"]
    classes = {c["name"]: c for c in conf["client-classes"]}
    assert classes["ipxe"]["boot-file-name"] == "http://10.90.0.1:8080/boot.ipxe"
    assert classes["bios"]["boot-file-name"] == "undionly.kpxe" and classes["efi-x64"]["boot-file-name"] == "ipxe.efi"
    assert "0x0010" in classes["efi-http"]["test"]


def test_kea_federation_validates(federation_sot, tmp_path):
    for site in federation_sot.sites.values():
        if any(n.dhcp.mode == "proxy" for n in site.networks):
            continue
        kea_test(render_kea(site, site_hosts(federation_sot, site), replace(_server(), interface="lo")), tmp_path)


def test_render_site_bundle(lab_sot):
    b = render_site(lab_sot)
    assert set(b.hosts) == {"node1", "node2", "node3", "node4"}
    assert b.by_mac["52-54-00-00-10-03"] == "node3"
    assert b.host_for_mac("52:54:00:00:10:03").name == "node3"
    assert b.host_for_mac("52:54:00:00:10:99") is None and b.host_for_mac("garbage") is None
    # the hosts' installer, and the deploy ramdisk of the lab's image profile that their wipes boot
    assert set(b.assets) == {"lab-linux/vmlinuz", "lab-linux/initramfs.img", "lab-debian-12/vmlinuz", "lab-debian-12/deploy-initrd.img"}
    assert b.hosts["node1"].wipe_assets == ("lab-debian-12/vmlinuz", "lab-debian-12/deploy-initrd.img")
    with pytest.raises(RenderError, match="unknown site"):
        render_site(lab_sot, "nope")
