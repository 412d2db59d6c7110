from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from vaquero.render import RenderError, chain_script, host_script, localboot_script, mac_key, render_site, unknown_script
from vaquero.render.config import render_config
from vaquero.sot.models import ConfigTemplate
from vaquero.sot.templates import BootUrls


def test_install_script(lab_sot):
    b = render_site(lab_sot)
    s = b.hosts["node1"].install
    assert s.startswith("#!ipxe\n")
    assert "kernel --name vmlinuz http://10.90.0.1:8080/assets/lab-linux/vmlinuz initrd=initramfs.img console=ttyS0" in s
    assert "vaquero.callback=http://10.90.0.1:8080/v1/boot/callback/node1" in s
    assert "vaquero.config=http://10.90.0.1:8080/v1/boot/config/node1" in s
    assert "initrd --name initramfs.img http://10.90.0.1:8080/assets/lab-linux/initramfs.img" in s
    assert s.rstrip().endswith("boot")


def test_localboot_and_unknown_never_install():
    for s in (localboot_script("node1", "bios"), localboot_script("node1", "uefi"), unknown_script()):
        assert s.startswith("#!ipxe\n")
        assert "kernel" not in s and "initrd" not in s and "boot\n" not in s.replace("sanboot", "")
    assert "sanboot --no-describe --drive 0x80" in localboot_script("n", "bios")
    assert "exit" in localboot_script("n", "uefi")


def test_chain_script_keys_by_mac():
    s = chain_script("http://10.90.0.1:8080/")
    assert "http://10.90.0.1:8080/v1/boot/ipxe/${netX/mac:hexhyp}" in s


def test_host_script_modes(lab_sot):
    b = render_site(lab_sot)
    profile = lab_sot.profiles["lab-linux"]
    urls = BootUrls(base=b.base_url)
    assert host_script("localboot", "node1", "bios", profile, b.hosts["node1"].context, urls) == b.hosts["node1"].localboot
    assert host_script("install", "node1", "bios", profile, b.hosts["node1"].context, urls) == b.hosts["node1"].install
    with pytest.raises(RenderError):
        host_script("install", "node1", "bios", None, None, urls)
    with pytest.raises(RenderError):
        host_script("reinstall", "node1", "bios", profile, {}, urls)  # type: ignore[arg-type]


def test_mac_key():
    assert mac_key("52:54:00:AA:bb:01") == "52-54-00-aa-bb-01"
    assert mac_key("52-54-00-aa-bb-01") == "52-54-00-aa-bb-01"
    for bad in ("", "52:54:00", "../../etc", "52:54:00:aa:bb:zz"):
        with pytest.raises(RenderError):
            mac_key(bad)


def test_cloud_init(lab_sot):
    b = render_site(lab_sot)
    cfg = b.hosts["node2"]
    assert cfg.config_format == "cloud-init"
    text = cfg.config.decode()
    assert text.startswith("#cloud-config") and "hostname: node2" in text and "fqdn: node2.lab.vaquero.test" in text
    assert b"local-hostname: node2" in cfg.meta_data and b"instance-id: node2-0-" in cfg.meta_data


def test_ignition(lab_sot, tmp_path: Path):
    b = render_site(lab_sot)
    ctx = b.hosts["node1"].context
    ign = ConfigTemplate(
        format="ignition",
        inline='{"ignition": {"version": "3.4.0"}, "storage": {"files": [{"path": "/etc/hostname", "contents": {"source": "data:,{{ host.name }}"}}]}}',
    )
    profile = lab_sot.profiles["lab-linux"].model_copy(update={"config": ign})
    fmt, data = render_config(tmp_path, profile, ctx)
    doc = json.loads(data)
    assert fmt == "ignition" and doc["ignition"]["version"] == "3.4.0"
    assert doc["storage"]["files"][0]["contents"]["source"] == "data:,node1"
    for bad in ("{not json", '{"storage": {}}'):
        p = profile.model_copy(update={"config": ConfigTemplate(format="ignition", inline=bad)})
        with pytest.raises(RenderError, match="Ignition"):
            render_config(tmp_path, p, ctx)
    p = profile.model_copy(update={"config": ConfigTemplate(format="cloud-init", inline="hostname: x")})
    with pytest.raises(RenderError, match="cloud-config"):
        render_config(tmp_path, p, ctx)
    assert hashlib.sha256(data).hexdigest()  # bytes, ready to serve
