"""The boot method in the SoT: site default, host override, and the rules validation enforces."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from vaquero.sot import SoTInvalid, load
from vaquero.sot.models import boot_method

REPO = Path(__file__).resolve().parents[2]


def lab_copy(tmp: Path, site_boot: dict | None = None, host_edit: dict | None = None) -> Path:
    dest = tmp / "sot"
    shutil.copytree(REPO / "inventories/lab", dest)
    site_file = dest / "sites/lab.yaml"
    site = yaml.safe_load(site_file.read_text())
    if site_boot is not None:
        site["boot"] = site_boot
    site_file.write_text(yaml.safe_dump(site, sort_keys=False))
    cluster_file = dest / "clusters/lab.yaml"
    cluster = yaml.safe_load(cluster_file.read_text())
    cluster["hosts"][0].update(host_edit or {})
    cluster_file.write_text(yaml.safe_dump(cluster, sort_keys=False))
    return dest


REDFISH = {"type": "redfish", "address": "127.0.0.1", "port": 8443, "credential": "lab-bmc"}


def test_default_is_pxe_and_a_host_overrides_the_site(tmp_path):
    sot = load(lab_copy(tmp_path, site_boot={"method": "pxe"}, host_edit={"boot": {"method": "virtual_media"}, "bmc": REDFISH}))
    site = sot.sites["lab"]
    methods = {h.name: boot_method(site, h) for _, _, h in sot.hosts()}
    assert methods == {"node1": "virtual_media", "node2": "pxe", "node3": "pxe", "node4": "pxe"}


@pytest.mark.parametrize(
    ("site_boot", "host_edit", "field", "message"),
    [
        (None, {"boot": {"method": "virtual_media"}}, "hosts[0].boot", "Redfish BMC"),  # lab hosts have IPMI BMCs
        ({"method": "virtual_media"}, {}, "hosts[0].bmc", "Redfish BMC"),
        (None, {"boot": {"method": "virtual_media"}, "bmc": REDFISH, "ips": {}}, "hosts[0].ips", "static address"),
        (None, {"boot": {"method": "http"}, "bmc": REDFISH}, "hosts[0].firmware", "firmware: uefi"),
        (None, {"boot": {"method": "floppy"}}, "hosts[0].boot.method", "pxe"),
    ],
)
def test_boot_method_rules(tmp_path, site_boot, host_edit, field, message):
    with pytest.raises(SoTInvalid) as info:
        load(lab_copy(tmp_path, site_boot=site_boot, host_edit=host_edit))
    hits = [e for e in info.value.errors if field in str(e) and message in str(e)]
    assert hits, "\n".join(str(e) for e in info.value.errors)


def test_http_boot_with_uefi_and_redfish_is_valid(tmp_path):
    sot = load(lab_copy(tmp_path, host_edit={"boot": {"method": "http"}, "bmc": REDFISH, "firmware": "uefi"}))
    host = next(h for _, _, h in sot.hosts() if h.name == "node1")
    assert boot_method(sot.sites["lab"], host) == "http"
