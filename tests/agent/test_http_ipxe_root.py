"""The iPXE root over HTTP (UEFI HTTP boot) serves what the TFTP server serves: Debian's ipxe
package makes /usr/lib/ipxe/ipxe.efi a symlink to /boot/ipxe.efi, and the agent answered 404 for
it over HTTP until file links in that root were followed. Folders on the way must still be real
folders inside the root, and asset roots still never follow a link out."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from vaquero.agent.http import BootApp, safe_path
from vaquero.agent.state import BootStates
from vaquero.render import render_site
from vaquero.sot import load

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """An iPXE root laid out as Debian's: a file link out of the root, a real file, a linked folder."""
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "ipxe.efi").write_bytes(b"MZ-ipxe-efi")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    ipxe = tmp_path / "ipxe"
    ipxe.mkdir()
    (ipxe / "ipxe.efi").symlink_to(boot / "ipxe.efi")
    (ipxe / "snponly.efi").write_bytes(b"MZ-snponly")
    (ipxe / "linked-dir").symlink_to(outside, target_is_directory=True)
    (ipxe / "dangling.efi").symlink_to(tmp_path / "nowhere")
    return ipxe, tmp_path


def test_safe_path_follows_file_links_only_where_asked(layout: tuple[Path, Path]) -> None:
    ipxe, tmp = layout
    assert safe_path(ipxe, "ipxe.efi", follow_file_links=True) == (tmp / "boot" / "ipxe.efi").resolve()
    assert safe_path(ipxe, "ipxe.efi") is None  # asset roots: a link out of the root stays refused
    assert safe_path(ipxe, "snponly.efi", follow_file_links=True) == (ipxe / "snponly.efi").resolve()
    for rel in ("linked-dir/secret", "dangling.efi", "../outside/secret", "linked-dir", "", "nope.efi"):
        assert safe_path(ipxe, rel, follow_file_links=True) is None, rel


async def test_ipxe_efi_symlink_is_served_over_http(layout: tuple[Path, Path]) -> None:
    ipxe, tmp = layout
    app = BootApp(
        render_site(load(REPO / "inventories" / "lab")), BootStates(tmp / "state.json"), asset_root=tmp / "outside", ipxe_root=ipxe, admin_token="t0ken"
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.90.0.11", 4444)), base_url="http://agent") as client:
        r = await client.get("/ipxe/ipxe.efi")
        assert r.status_code == 200 and r.content == b"MZ-ipxe-efi"
        r = await client.head("/ipxe/ipxe.efi")  # OVMF asks for the size first
        assert r.status_code == 200 and r.headers["content-length"] == str(len(b"MZ-ipxe-efi"))
        assert (await client.get("/ipxe/linked-dir/secret")).status_code == 404
        assert (await client.get("/ipxe/dangling.efi")).status_code == 404
        assert (await client.get("/assets/secret")).status_code == 200  # asset root itself unchanged
