"""The wipe without QEMU: /init's wipe functions in a real busybox sh on a real GPT + ext4 disk
file, the wipe instructions and their reader, and the agent's wipe, retire and drop over ASGI."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from requirements import need
from wipe_helpers import MIB, make_filled_disk, partition_rows, signatures

from vaquero.agent.http import BootApp
from vaquero.agent.state import BootStates
from vaquero.deploy.init_script import LIB
from vaquero.render import render_site
from vaquero.render.deploy import ERASE_PLACEHOLDER, wipe_instructions, with_erase
from vaquero.render.site import RenderError
from vaquero.sot import load
from vaquero.sot.templates import BootUrls

REPO = Path(__file__).resolve().parents[2]
SHA = "ab" * 32
ADMIN = {"Authorization": "Bearer t0ken"}
DISK = 24 * MIB


def run_lib(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    busybox = need("busybox", "busybox-static")
    return subprocess.run([busybox, "sh", "-c", LIB + script, "sh", *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize("erase", ["signatures", "full"])
def test_wipe_disk_leaves_no_partition_table_nor_file_system(tmp_path: Path, erase: str) -> None:
    need("blkid", "util-linux")
    disk, parts = make_filled_disk(tmp_path / "disk.raw", DISK)
    gpt, blkid = signatures(disk)
    assert len(partition_rows(gpt)) == 2, gpt  # the GPT is there before
    assert 'PTTYPE="gpt"' in blkid, blkid
    assert b"customer data" in disk.read_bytes()
    spec = " ".join(f"{s}:{n}" for s, n in parts)
    script = 'WIPE_RANGES=ranges; wipe_disk "$1" "$2" "$3" "$4"; echo "rc=$? zeroed=$ZEROED"\n'
    res = run_lib(tmp_path, script, str(disk), str(DISK), erase, spec)
    out = res.stdout + res.stderr
    assert "rc=0" in out, out
    zeroed = int(out.split("zeroed=")[1].split()[0])
    data = disk.read_bytes()
    if erase == "full":
        assert zeroed == DISK and data.count(0) == DISK
    else:
        # The first and last MiB of the disk and of each partition; nothing else is touched.
        ranges = [(0, MIB), (DISK - MIB, MIB)] + [r for s, n in parts for r in ((s * 512, MIB), ((s + n) * 512 - MIB, MIB))]
        assert zeroed == sum(n for _, n in ranges)
        for off, n in ranges:
            assert data[off : off + n] == bytes(n), off
        assert data[2 * MIB : 4 * MIB] == b"\xa5" * (2 * MIB)  # signatures mode is not an erase of the data
    gpt, blkid = signatures(disk)
    # sgdisk finds no GPT (it offers to create one) and blkid no partition table nor file system.
    assert partition_rows(gpt) == [] and "Creating new GPT entries" in gpt, gpt
    assert "PTTYPE" not in blkid and "TYPE=" not in blkid, blkid


def test_wipe_disk_reports_a_range_that_does_not_read_back_as_zeros(tmp_path: Path) -> None:
    disk, _ = make_filled_disk(tmp_path / "disk.raw", DISK)
    # dd that writes nothing: the read-back must catch it (exit 2), never report a wipe.
    script = 'dd() { case "$*" in *of=*) return 0 ;; *) command dd "$@" ;; esac; }\nWIPE_RANGES=ranges; wipe_disk "$1" "$2" signatures ""; echo "rc=$?"\n'
    res = run_lib(tmp_path, script, str(disk), str(DISK))
    assert "rc=2" in res.stdout, res.stdout + res.stderr


def read_wipe(tmp_path: Path, text: str) -> tuple[int, str]:
    (tmp_path / "wipe.txt").write_text(text)
    script = 'fail() { echo "FAIL: $*"; exit 3; }\nread_instructions "$1"\nprintf "mode=[%s] erase=[%s] host=[%s]\\n" "$MODE" "$ERASE" "$HOST"\n'
    res = run_lib(tmp_path, script, str(tmp_path / "wipe.txt"))
    return res.returncode, res.stdout + res.stderr


def test_wipe_instructions_are_rendered_checked_and_read_literally(tmp_path: Path) -> None:
    urls = BootUrls(base="http://10.90.0.1:8080", token="T0k_en-aaaaaaaaaaaaaaaa")
    text = wipe_instructions("node1", urls)
    assert "mode='wipe'" in text and f"erase='{ERASE_PLACEHOLDER}'" in text and text.endswith("end='1'\n")
    with pytest.raises(RenderError, match="refused"):
        with_erase(text.encode(), "full;reboot")
    with pytest.raises(RenderError, match="refused"):
        wipe_instructions("node1;reboot", urls)
    good = with_erase(text.encode(), "signatures").decode()
    rc, out = read_wipe(tmp_path, good)
    assert rc == 0 and "mode=[wipe] erase=[signatures] host=[node1]" in out, out
    for bad in (good.replace("signatures", "everything"), good.replace("signatures", "$(touch PWNED)"), good.replace("mode='wipe'", "mode='nuke'")):
        rc, out = read_wipe(tmp_path, bad)
        assert rc == 3 and "FAIL:" in out and not (tmp_path / "PWNED").exists(), out


# -- the agent -------------------------------------------------------------------------------


def write_sot(root: Path, hosts: list[str]) -> Path:
    """The lab site, an image profile (its kernel and initrd stand for the deploy ramdisk) and `hosts`."""
    for d in ("sites", "profiles", "clusters"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "sites" / "lab.yaml").write_text((REPO / "inventories" / "lab" / "sites" / "lab.yaml").read_text())
    profile = {"apiVersion": "vaquero/v1", "kind": "Profile", "name": "img", "version": "1", "kernel": {"path": "/srv/vmlinuz", "sha256": SHA},
               "initrd": [{"path": "/srv/deploy-initrd.img", "sha256": SHA}], "cmdline": "console=ttyS0",
               "image": {"path": "/srv/images/disk.raw", "sha256": SHA}}  # fmt: skip
    (root / "profiles" / "img.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    macs = {"node1": "52:54:00:00:10:01", "node2": "52:54:00:00:10:02"}
    entries = [{"name": h, "macs": [macs[h]], "ips": {"prov": f"10.90.0.1{h[-1]}"}} for h in hosts]
    cluster = {"apiVersion": "vaquero/v1", "kind": "Cluster", "name": "c", "site": "lab", "profile": "img", "hosts": entries}
    (root / "clusters" / "c.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))
    return root


@pytest.fixture
def retiring(tmp_path: Path) -> tuple[BootApp, list[int]]:
    """An agent that served node1 and node2, then got the revision without node2."""
    old = render_site(load(write_sot(tmp_path / "old", ["node1", "node2"])))
    new = render_site(load(write_sot(tmp_path / "new", ["node1"])))
    applied: list[int] = []
    (tmp_path / "assets" / "img").mkdir(parents=True)
    for name in ("vmlinuz", "deploy-initrd.img"):
        (tmp_path / "assets" / "img" / name).write_bytes(b"ramdisk")
    app = BootApp(old, BootStates(tmp_path / "state" / "boot-states.json"), asset_root=tmp_path / "assets", admin_token="t0ken")
    app.on_dhcp_change = lambda: applied.append(1)
    app.set_bundle(new)
    return app, applied


def asgi(app: BootApp, ip: str = "10.90.0.12") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 4444)), base_url="http://agent")


@pytest.mark.anyio
async def test_a_retired_host_is_served_its_wipe_until_it_calls_back_then_nothing(retiring: tuple[BootApp, list[int]]) -> None:
    app, applied = retiring
    mac = "/v1/boot/ipxe/52-54-00-00-10-02"
    assert "52:54:00:00:10:02" in app.dhcp_hosts() and "52:54:00:00:10:01" in app.dhcp_hosts()
    async with asgi(app) as client:
        assert (await client.get(mac)).text == app.retired["node2"].localboot  # served localboot while retired
        assert (await client.post("/v1/boot/wipe/node2", headers=ADMIN)).status_code == 400  # no erase mode
        assert (await client.post("/v1/boot/wipe/node2", headers=ADMIN, json={"erase": "all"})).status_code == 400
        assert (await client.post("/v1/boot/wipe/node2", json={"erase": "full"})).status_code == 401
        assert (await client.post("/v1/boot/wipe/node9", headers=ADMIN, json={"erase": "full"})).status_code == 404
        assert (await client.post("/v1/boot/install/node2", headers=ADMIN)).status_code == 404  # retired: never installed again
        (app.asset_root / "img" / "vmlinuz").rename(app.asset_root / "img" / "away")
        r = await client.post("/v1/boot/wipe/node2", headers=ADMIN, json={"erase": "signatures"})
        assert r.status_code == 409 and "img/vmlinuz" in r.json()["error"]  # no ramdisk here: no wipe boot armed
        (app.asset_root / "img" / "away").rename(app.asset_root / "img" / "vmlinuz")
        r = await client.post("/v1/boot/wipe/node2", headers=ADMIN, json={"erase": "signatures"})
        assert r.status_code == 200 and r.json()["state"] == "wipe" and r.json()["script"] == "wipe"
        script = (await client.get(mac)).text
        m = re.search(r"vaquero\.deploy=\S+/v1/boot/deploy/node2\?token=([A-Za-z0-9_-]+)", script)
        assert m is not None and "kernel" in script, script
        token = m.group(1)
        assert (await client.get(f"/v1/boot/nocloud/node2/{token}/user-data")).status_code == 404  # a wipe token fetches no config
        text = (await client.get(f"/v1/boot/deploy/node2?token={token}")).text
        assert "mode='wipe'" in text and "erase='signatures'" in text and "image_url" not in text and "PLACEHOLDER" not in text
        prog = await client.post(f"/v1/boot/progress/node2?token={token}", json={"phase": "wiping", "bytes": 0, "total": 1 << 28, "disk": "vda"})
        assert prog.status_code == 200
        # A success that names no bytes zeroed is not a wipe.
        body = {"result": "success", "mode": "wipe", "erase": "signatures", "bytes_zeroed": 6 * MIB, "disks": ["vda"]}
        r = await client.post(f"/v1/boot/callback/node2?token={token}", json=body)
        assert r.status_code == 200 and r.json() == {"host": "node2", "state": "wiped", "script": "none"}
        st = (await client.get("/v1/boot/status/node2")).json()
        assert st["state"] == "wiped" and st["report"]["bytes_zeroed"] == 6 * MIB and st["deploy"][0]["phase"] == "wiping"
        assert (await client.get(mac)).text == app.unknown[2].decode()
        assert "52:54:00:00:10:02" not in app.dhcp_hosts() and "52:54:00:00:10:01" in app.dhcp_hosts() and applied == [1]
        assert "node2" not in app.retired
        # Disarming afterwards keeps it unserved; the token is spent.
        assert (await client.post("/v1/boot/localboot/node2", headers=ADMIN)).json()["state"] == "wiped"
        assert (await client.get(mac)).text == app.unknown[2].decode()
        assert (await client.post(f"/v1/boot/callback/node2?token={token}", json=body)).status_code == 401


@pytest.mark.anyio
async def test_a_wipe_success_without_bytes_zeroed_fails_the_host(retiring: tuple[BootApp, list[int]]) -> None:
    app, applied = retiring
    async with asgi(app) as client:
        await client.post("/v1/boot/wipe/node2", headers=ADMIN, json={"erase": "full"})
        token = re.search(r"token=([A-Za-z0-9_-]+)", (await client.get("/v1/boot/ipxe/52-54-00-00-10-02")).text).group(1)  # type: ignore[union-attr]
        r = await client.post(f"/v1/boot/callback/node2?token={token}", json={"result": "success", "mode": "wipe"})
        assert r.status_code == 200 and r.json()["state"] == "failed"
        st = (await client.get("/v1/boot/status/node2")).json()
        assert st["state"] == "failed" and "bytes_zeroed" in st["report"]["reason"]
    assert "52:54:00:00:10:02" in app.dhcp_hosts() and applied == [] and "node2" in app.retired  # kept for another try


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_host_installed_without_an_image_can_be_wiped_its_agent_fetches_the_ramdisk(tmp_path: Path) -> None:
    """node1 installs from kernel + initrd (no image); the SoT's image profile, used by no host,
    provides the deploy ramdisk its wipe boots: the agent's assets include that ramdisk."""
    root = write_sot(tmp_path / "sot", ["node1"])
    installer = {"apiVersion": "vaquero/v1", "kind": "Profile", "name": "linux", "version": "1", "kernel": {"path": "/srv/linux/vmlinuz", "sha256": SHA},
                 "initrd": [{"path": "/srv/linux/initrd.img", "sha256": SHA}], "cmdline": "console=ttyS0"}  # fmt: skip
    (root / "profiles" / "linux.yaml").write_text(yaml.safe_dump(installer, sort_keys=False))
    cluster = yaml.safe_load((root / "clusters" / "c.yaml").read_text())
    cluster["profile"] = "linux"
    (root / "clusters" / "c.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))
    bundle = render_site(load(root))
    host = bundle.hosts["node1"]
    assert host.profile == "linux" and host.deploy is None and host.wipe is not None
    assert host.wipe_assets == ("img/vmlinuz", "img/deploy-initrd.img")
    assert set(bundle.assets) == {"linux/vmlinuz", "linux/initrd.img", "img/vmlinuz", "img/deploy-initrd.img"}
    assert "img/disk.raw" not in bundle.assets  # the image itself is fetched only for hosts that install it
