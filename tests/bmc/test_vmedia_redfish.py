"""Redfish VirtualMedia and UEFI HTTP boot through the Python API, against sushy-emulator (fake driver).

sushy-emulator downloads the image when it is inserted, so every insert here really fetches the
ISO from a loopback HTTP server that wants the install token in the query string.
"""

from __future__ import annotations

import logging

import pytest
from bmc_helpers import PASSWORD
from vmedia_helpers import TOKEN, ImageServer

from vaquero.bmc import BmcError, BmcUnsupported, BootDevice, BootMode, open_bmc
from vaquero.bmc.actions import ensure_boot
from vaquero.bmc.virtual_media import VirtualMedia, VirtualMediaError, mask_url


@pytest.fixture
def image(tmp_path):
    iso = tmp_path / "node1.iso"
    iso.write_bytes(b"\0" * 32768 + b"CD001" + b"\0" * 4096)
    with ImageServer(iso) as server:
        yield server


@pytest.fixture(autouse=True)
def _debug_logs(caplog):
    caplog.set_level(logging.DEBUG)


def no_secrets(caplog, capfd, *blobs: object) -> None:
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err, *(repr(b) for b in blobs)):
        assert TOKEN not in text and PASSWORD not in text


def test_insert_read_back_boot_cd_eject_read_back(sushy, image, caplog, capfd):
    url = image.url()
    with open_bmc(sushy.endpoint()) as bmc:
        vm = VirtualMedia(bmc)
        empty = vm.status()
        assert not empty.inserted and "/VirtualMedia/" in empty.slot and "CD" in empty.media_types

        r = vm.insert(url)
        assert r.changed and r.after.inserted and r.after.image == url
        # what the BMC holds now, read again from a fresh look
        again = VirtualMedia(bmc).status()
        assert again.inserted and again.image == url
        assert ("/v1/boot/iso/node1.iso", 200) in image.requests  # the BMC fetched the ISO, with the token
        assert not vm.insert(url).changed  # idempotent

        # persistent: sushy-emulator keeps every override as Continuous (LAB.md), and the install
        # sequence ends with eject + disk, so a persistent cd override never outlives it
        boot = ensure_boot(bmc, "cdrom", persistent=True)
        assert boot.changed and bmc.get_boot_device().device == BootDevice.CDROM

        e = vm.eject()
        assert e.changed and not e.after.inserted
        assert not vm.status().inserted
        assert not vm.eject().changed
    # results show the URL with the token masked; logs never hold it
    assert r.as_dict()["media"]["image"] == mask_url(url) and "token=***" in r.as_dict()["media"]["image"]
    no_secrets(caplog, capfd, r.as_dict(), e.as_dict())


def test_a_second_image_replaces_the_first(sushy, image):
    first, second = image.url(), image.url(token=TOKEN + "2")
    image.token = TOKEN + "2"  # the agent re-armed the host: only the new token serves the ISO now
    with open_bmc(sushy.endpoint()) as bmc:
        vm = VirtualMedia(bmc)
        with pytest.raises(VirtualMediaError):
            vm.insert(first)
        r = vm.insert(second)
        assert r.changed and vm.status().image == second


def test_image_refused_by_the_bmc_is_a_clear_typed_error(sushy, image, caplog, capfd):
    bad = image.url(token="wrong-token-0123456789abcdef")  # the image server answers 404
    with open_bmc(sushy.endpoint()) as bmc:
        vm = VirtualMedia(bmc)
        with pytest.raises(VirtualMediaError) as info:
            vm.insert(bad)
        assert not vm.status().inserted  # nothing half-attached
    msg = str(info.value)
    assert info.value.kind == "virtual_media" and "refused image" in msg and "HTTP 400" in msg
    assert "wrong-token" not in msg and "token=***" in msg
    no_secrets(caplog, capfd, msg)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "http://127.0.0.1/x y.iso", "ftp://h/x.iso", "http:///nohost.iso", "http://h/" + "a" * 3000])
def test_malformed_image_urls_are_refused_before_reaching_the_bmc(sushy, url):
    with open_bmc(sushy.endpoint()) as bmc:
        with pytest.raises(VirtualMediaError):
            VirtualMedia(bmc).insert(url)
        assert not VirtualMedia(bmc).status().inserted


def test_check_mode_reads_and_reports_without_writing(sushy, image):
    with open_bmc(sushy.endpoint()) as bmc:
        vm = VirtualMedia(bmc)
        r = vm.insert(image.url(), check=True)
        assert r.changed and r.after.inserted and not r.before.inserted
        assert not vm.status().inserted and image.requests == []


def test_virtual_media_needs_redfish(ipmi_bmc):
    with open_bmc(ipmi_bmc.endpoint()) as bmc, pytest.raises(BmcUnsupported):
        VirtualMedia(bmc)  # type: ignore[arg-type]


def test_uefi_http_boot_where_offered_and_the_emulator_quirk_reported(sushy):
    """sushy-emulator offers UefiHttp in UEFI mode only, and stores it as Pxe (LAB.md): the readback tells."""
    with open_bmc(sushy.endpoint()) as bmc:
        bmc.set_boot_device(BootDevice.PXE, persistent=True, mode=BootMode.BIOS)
        with pytest.raises(BmcUnsupported, match="UefiHttp"):
            bmc.set_boot_device(BootDevice.HTTP, persistent=False)  # Legacy mode: not in AllowableValues
        bmc.set_boot_device(BootDevice.DISK, persistent=True, mode=BootMode.UEFI)
        try:
            result = ensure_boot(bmc, "http", persistent=True, mode="uefi", wait_timeout=3)
        except BmcError as exc:  # a readback that is compared: the mismatch is an error naming both
            assert exc.kind == "setting_not_applied" and "http" in str(exc).lower() and "pxe" in str(exc).lower()
        else:
            assert result.after.device == BootDevice.PXE and result.target.device == BootDevice.HTTP
        assert bmc.get_boot_device().device == BootDevice.PXE  # the truth: what the emulator kept


def test_a_token_the_process_never_inserted_is_masked_in_the_client_log(sushy, image, caplog):
    """Another process inserted the image: reading the slot back logs the BMC's answer (redfish client, debug)."""
    url = image.url(token="other-process-token-0123456789")
    image.token = "other-process-token-0123456789"
    with open_bmc(sushy.endpoint()) as bmc:
        bmc._request("POST", VirtualMedia(bmc)._find_slot() + "/Actions/VirtualMedia.InsertMedia", {"Image": url, "Inserted": True})
        caplog.clear()
        assert VirtualMedia(bmc).status().image == url
    assert "token=***" in caplog.text and "other-process-token" not in caplog.text
