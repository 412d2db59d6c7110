from __future__ import annotations

from pathlib import Path

import pytest

from vaquero.agent.http import BootApp
from vaquero.agent.state import BootStates
from vaquero.render import render_site
from vaquero.sot import load

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(tmp_path: Path) -> BootApp:
    bundle = render_site(load(REPO / "inventories" / "lab"))
    assets = tmp_path / "assets"
    (assets / "lab-linux").mkdir(parents=True)
    (assets / "lab-linux" / "vmlinuz").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    (assets / "lab-linux" / "empty").write_bytes(b"")
    (tmp_path / "secret").write_text("secret")
    (assets / "lab-linux" / "link").symlink_to(tmp_path / "secret")
    ipxe = tmp_path / "ipxe"
    ipxe.mkdir()
    (ipxe / "ipxe.efi").write_bytes(b"MZ-efi")
    return BootApp(bundle, BootStates(tmp_path / "state" / "boot-states.json"), asset_root=assets, ipxe_root=ipxe, admin_token="t0ken")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
