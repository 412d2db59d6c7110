"""Discovery at the agent: the script an unknown MAC gets, and POST /v1/inspect/<mac> under hostile
input. The real BootApp driven as ASGI, a real SQLite inbox, SoTs loaded and rendered for real."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from inspect_helpers import KNOWN, REPO, UNKNOWN, body, discovery_sot

from vaquero.agent.http import BootApp
from vaquero.agent.state import BootStates
from vaquero.inspect.inbox import InspectionInbox
from vaquero.inspect.report import MAX_REPORT_BYTES
from vaquero.render import render_site
from vaquero.sot import load

pytestmark = pytest.mark.anyio
URL = f"/v1/inspect/{UNKNOWN.replace(':', '-')}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_app(tmp_path: Path, sot: Path, *, files: bool = True, cap: int = 256) -> BootApp:
    assets = tmp_path / "assets"
    if files:
        (assets / "lab-debian-12").mkdir(parents=True, exist_ok=True)
        for f in ("vmlinuz", "deploy-initrd.img"):
            (assets / "lab-debian-12" / f).write_bytes(b"x")
    inbox = InspectionInbox(tmp_path / "state" / "inspections.sqlite", cap=cap)
    return BootApp(render_site(load(sot)), BootStates(tmp_path / "state" / "boot-states.json"), asset_root=assets, admin_token="t0ken", inbox=inbox)


def client(app: BootApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.90.0.150", 4444)), base_url="http://agent")


@pytest.fixture
def app(tmp_path: Path) -> BootApp:
    return make_app(tmp_path, discovery_sot(tmp_path / "sot"))


async def test_an_unknown_mac_boots_the_inspection_ramdisk_and_known_ones_are_unchanged(app: BootApp, tmp_path: Path) -> None:
    plain = make_app(tmp_path / "plain", REPO / "inventories" / "lab")
    async with client(app) as c, client(plain) as p:
        r = await c.get("/v1/boot/ipxe/52-54-00-00-30-01")
        assert r.status_code == 200
        lines = r.text.splitlines()
        assert lines[0] == "#!ipxe" and lines[-1] == "boot"
        assert ("kernel --name vmlinuz http://10.90.0.1:8080/assets/lab-debian-12/vmlinuz initrd=deploy-initrd.img console=ttyS0 quiet "
                "vaquero.inspect=http://10.90.0.1:8080/v1/inspect/52-54-00-00-30-01") in lines  # fmt: skip
        assert "initrd --name deploy-initrd.img http://10.90.0.1:8080/assets/lab-debian-12/deploy-initrd.img" in lines
        assert "vaquero.deploy" not in r.text and "token" not in r.text  # it installs nothing and carries no token
        # the MAC in the script is the one asked for, normalised
        assert "/v1/inspect/52-54-00-00-30-0a" in (await c.get("/v1/boot/ipxe/52:54:00:00:30:0A")).text
        # a known host's script is the same bytes as without discovery; the same unknown MAC without it installs nothing
        assert (await c.get("/v1/boot/ipxe/52-54-00-00-10-01")).content == (await p.get("/v1/boot/ipxe/52-54-00-00-10-01")).content
        r = await p.get("/v1/boot/ipxe/52-54-00-00-30-01")
        assert "nothing to install" in r.text and "kernel" not in r.text


async def test_without_discovery_nothing_changes(tmp_path: Path) -> None:
    app = make_app(tmp_path, discovery_sot(tmp_path / "sot", enabled=False))
    async with client(app) as c:
        assert "nothing to install" in (await c.get("/v1/boot/ipxe/52-54-00-00-30-01")).text
        r = await c.post(URL, content=body())
    assert r.status_code == 404 and "discovery is off" in r.json()["error"]
    assert len(app.inbox or []) == 0


async def test_no_ramdisk_serves_the_old_script_and_says_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    no_profile = make_app(tmp_path / "a", discovery_sot(tmp_path / "a" / "sot", ramdisk=False))
    no_files = make_app(tmp_path / "b", discovery_sot(tmp_path / "b" / "sot"), files=False)
    with caplog.at_level(logging.WARNING):
        for app in (no_profile, no_files):
            async with client(app) as c:
                assert "nothing to install" in (await c.get("/v1/boot/ipxe/52-54-00-00-30-01")).text
    said = [rec.getMessage() for rec in caplog.records if "unknown MAC 52-54-00-00-30-01" in rec.getMessage()]
    assert any("no image profile in the SoT gives a deploy ramdisk" in m for m in said), said
    assert any("does not hold the ramdisk (lab-debian-12/vmlinuz, lab-debian-12/deploy-initrd.img)" in m for m in said), said


async def test_a_good_report_is_kept_durably(app: BootApp, tmp_path: Path) -> None:
    handed: list[int] = []
    app.on_inspection = lambda: handed.append(len(app.inbox or []))
    async with client(app) as c:
        r = await c.post(URL, content=body())
    assert r.status_code == 202 and r.json() == {"mac": UNKNOWN, "kept": True}
    assert handed == [1]
    again = InspectionInbox(tmp_path / "state" / "inspections.sqlite")  # what a restarted agent finds
    [(_, kept)] = again.peek()
    assert kept.boot_mac == UNKNOWN and kept.serial == "VQ-SERIAL-1" and kept.disks[0].size_bytes == 1 << 30


@pytest.mark.parametrize(
    ("payload", "status", "says"),
    [
        (b"{not json", 422, "Invalid JSON"),
        (b"[1, 2]", 422, "body"),
        (b"", 422, ""),
        (b"[" * 5000 + b"]" * 5000, 422, ""),  # deep JSON: refused by the parser's bound, no RecursionError
        (body(cpus=10**40), 422, "cpus"),
        (body(memory_mib=1.5), 422, "memory_mib"),
        (body(serial="a\nb"), 422, "serial"),
        (body(serial="x" * 129), 422, "serial"),
        (body(extra={"a": [1] * 10}), 422, "extra"),
        (body(nics=[{"name": "../../etc", "mac": UNKNOWN}]), 422, "nics"),
        (body(nics=[{"name": "eth0", "mac": "52:54:00:00:30:02"}]), 422, "not among the reported NICs"),
        (body(disks=[{"name": "vda", "size_bytes": 1}] * 2), 422, "disk is reported twice"),
        (body(disks=[{"name": f"d{i}", "size_bytes": 1} for i in range(65)]), 422, "disks"),
        (body(boot_mac="52:54:00:00:30:02", nics=[{"name": "e", "mac": "52:54:00:00:30:02"}]), 400, "not the MAC of the path"),
    ],
)
async def test_hostile_bodies_are_refused_and_nothing_is_kept(app: BootApp, payload: bytes, status: int, says: str) -> None:
    async with client(app) as c:
        r = await c.post(URL, content=payload)
    assert r.status_code == status, r.text
    assert says in r.json()["error"]
    assert len(app.inbox or []) == 0
    # a refused report does not use up the machine's turn
    async with client(app) as c:
        assert (await c.post(URL, content=body())).status_code == 202


async def test_oversize_known_malformed_flood_and_cap(tmp_path: Path) -> None:
    app = make_app(tmp_path, discovery_sot(tmp_path / "sot"), cap=2)
    big = body(cpu_model="x" * 100) + b" " * MAX_REPORT_BYTES

    async def chunks():  # no Content-Length: the bound is counted while reading
        for _ in range(MAX_REPORT_BYTES // 4096 + 2):
            yield b" " * 4096

    async with client(app) as c:
        assert (await c.post(URL, content=big)).status_code == 413
        assert (await c.post(URL, content=chunks())).status_code == 413
        r = await c.post(f"/v1/inspect/{KNOWN.replace(':', '-')}", content=body(KNOWN))
        assert r.status_code == 409 and "host of the site" in r.json()["error"]
        assert (await c.post("/v1/inspect/..%2f..%2fetc", content=body())).status_code == 400
        assert (await c.post(URL, content=body())).status_code == 202
        r = await c.post(URL, content=body())  # the same machine again at once: flood
        assert r.status_code == 429
        second = "52:54:00:00:30:02"
        assert (await c.post(f"/v1/inspect/{second}", content=body(second, nics=[{"name": "e", "mac": second}]))).status_code == 202
        third = "52:54:00:00:30:03"
        r = await c.post(f"/v1/inspect/{third}", content=body(third, nics=[{"name": "e", "mac": third}]))
        assert r.status_code == 503 and "waiting for the controller" in r.json()["error"]
    assert sorted(rep.boot_mac for _, rep in (app.inbox.peek() if app.inbox else [])) == [UNKNOWN, second]
