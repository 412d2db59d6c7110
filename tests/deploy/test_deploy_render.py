"""Image deploy without QEMU: the SoT fields and their errors, the instructions renderer, the ramdisk
/init's reader of those instructions (run by a real busybox sh), and the agent's deploy endpoints (ASGI)."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from requirements import need

from vaquero.agent.http import BootApp, phone_home_token
from vaquero.agent.state import BootStates
from vaquero.callback import failure
from vaquero.deploy.init_script import INIT, LIB
from vaquero.render import render_site
from vaquero.render.deploy import deploy_instructions
from vaquero.render.site import RenderError
from vaquero.sot import SoTInvalid, load
from vaquero.sot.models import Disk, DiskImage, Profile
from vaquero.sot.templates import PHONE_HOME_PLACEHOLDER, TOKEN_PLACEHOLDER, BootUrls

REPO = Path(__file__).resolve().parents[2]
SHA = "ab" * 32
ADMIN = {"Authorization": "Bearer t0ken"}


def write_sot(root: Path, image: dict | None, disk: dict | None = None, initrd: bool = True) -> Path:
    (root / "sites").mkdir(parents=True, exist_ok=True)
    (root / "profiles").mkdir(exist_ok=True)
    (root / "clusters").mkdir(exist_ok=True)
    (root / "sites" / "lab.yaml").write_text((REPO / "inventories" / "lab" / "sites" / "lab.yaml").read_text())
    profile: dict = {"apiVersion": "vaquero/v1", "kind": "Profile", "name": "img", "version": "1", "kernel": {"path": "/srv/vmlinuz", "sha256": SHA}}
    if initrd:
        profile["initrd"] = [{"path": "/srv/deploy-initrd.img", "sha256": SHA}]
    profile["cmdline"] = "console=ttyS0"
    profile["config"] = {"format": "cloud-init", "inline": "#cloud-config\nhostname: {{ host.name }}\n"}
    if image is not None:
        profile["image"] = image
    if disk is not None:
        profile["disk"] = disk
    (root / "profiles" / "img.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    hosts = [{"name": "node1", "macs": ["52:54:00:00:10:01"], "ips": {"prov": "10.90.0.11"}}, {"name": "node2", "macs": ["52:54:00:00:10:02"]}]
    cluster = {"apiVersion": "vaquero/v1", "kind": "Cluster", "name": "c", "site": "lab", "profile": "img", "hosts": hosts}
    (root / "clusters" / "c.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))
    return root


def errors_of(root: Path) -> list[str]:
    with pytest.raises(SoTInvalid) as exc:
        load(root)
    return [str(e) for e in exc.value.errors]


GOOD_IMAGE = {"url": "http://images.invalid/debian-12.raw.gz", "sha256": SHA, "compression": "gzip"}


@pytest.mark.parametrize(
    ("image", "disk", "field", "words"),
    [
        ({**GOOD_IMAGE, "format": "qcow2"}, None, "image.format", "convert to raw"),
        ({**GOOD_IMAGE, "compression": "zstd"}, None, "image.compression", "'none', 'gzip' or 'xz'"),
        ({**GOOD_IMAGE, "compression": "none"}, None, "image.compression", "says gzip"),
        ({"url": "http://images.invalid/disk.qcow2", "sha256": SHA}, None, "image.url", "not a raw image"),
        ({**GOOD_IMAGE, "url": "http://images.invalid/$(reboot).raw.gz"}, None, "image.url", "may not"),
        ({**GOOD_IMAGE, "url": "http://images.invalid/a.raw.gz;reboot"}, None, "image.url", "may not"),
        ({**GOOD_IMAGE, "url": "http://images.invalid/a'b.raw.gz"}, None, "image.url", "may not"),
        ({**GOOD_IMAGE, "url": "http://images.invalid/a.raw.gz\nreboot"}, None, "image.url", ""),
        (GOOD_IMAGE, {"path": "/dev/sda;reboot"}, "disk.path", "pattern"),
        (GOOD_IMAGE, {"path": "/dev/sda\nreboot"}, "disk.path", "pattern"),
        (GOOD_IMAGE, {"path": "/dev/$(reboot)"}, "disk.path", "pattern"),
        (GOOD_IMAGE, {"path": "/dev/../etc/passwd"}, "disk.path", "pattern"),
        (GOOD_IMAGE, {"path": "/dev//sda"}, "disk.path", "segment"),
        (GOOD_IMAGE, {"by_id": "wwn-0x5000 reboot"}, "disk.by_id", "pattern"),
        (GOOD_IMAGE, {"by_id": "`reboot`"}, "disk.by_id", "pattern"),
        (GOOD_IMAGE, {"path": "/dev/sda", "by_id": "wwn-0x5000c500a1b2c3d4"}, "disk", "at most one"),
        (None, {"path": "/dev/sda"}, "disk", "only applies to a profile with an image"),
    ],
)
def test_hostile_or_wrong_image_fields_are_refused_with_file_line_and_field(tmp_path: Path, image, disk, field, words) -> None:
    errors = errors_of(write_sot(tmp_path, image, disk))
    hit = [e for e in errors if re.match(rf"profiles/img\.yaml:\d+: {re.escape(field)}(\.|:)", e)]
    assert hit, errors
    assert any(words in e for e in hit), hit


def test_an_image_profile_needs_the_ramdisk_initrd(tmp_path: Path) -> None:
    errors = errors_of(write_sot(tmp_path, GOOD_IMAGE, initrd=False))
    assert any(re.match(r"profiles/img\.yaml:\d+: initrd: an image profile boots the deploy ramdisk", e) for e in errors), errors


def test_instructions_hold_checked_quoted_values_and_the_ipxe_script_points_at_them(tmp_path: Path) -> None:
    sot = load(write_sot(tmp_path, GOOD_IMAGE, {"by_id": "wwn-0x5000c500a1b2c3d4", "min_size_gb": 2}))
    text = deploy_instructions("node1", sot.profiles["img"], BootUrls(base="http://10.90.0.1:8080"))
    t = TOKEN_PLACEHOLDER
    assert text.splitlines() == [
        "format='vaquero-deploy/1'",
        "host='node1'",
        "image_url='http://images.invalid/debian-12.raw.gz'",  # an http(s) image is fetched from where it is
        f"image_sha256='{SHA}'",
        "image_compression='gzip'",
        f"progress_url='http://10.90.0.1:8080/v1/boot/progress/node1?token={t}'",
        f"callback_url='http://10.90.0.1:8080/v1/boot/callback/node1?token={t}'",
        f"nocloud_url='http://10.90.0.1:8080/v1/boot/nocloud/node1/{t}/'",
        f"phone_home_url='http://10.90.0.1:8080/v1/boot/phone-home/node1?token={PHONE_HOME_PLACEHOLDER}'",
        "disk_by_id='wwn-0x5000c500a1b2c3d4'",
        f"disk_min_bytes='{2 << 30}'",
        "end='1'",
    ]
    bundle = render_site(sot)
    install = bundle.hosts["node1"].install or ""
    assert f" vaquero.host=node1 vaquero.deploy=http://10.90.0.1:8080/v1/boot/deploy/node1?token={t}\n" in install
    # An http(s) image is not one of the agent's assets (the ramdisk streams it); kernel and initrd are.
    assert sorted(bundle.assets) == ["img/deploy-initrd.img", "img/vmlinuz"]


@pytest.mark.parametrize(
    ("image", "disk"),
    [
        ({"url": "http://x.invalid/a'$(reboot).raw", "sha256": SHA}, None),
        ({"url": "http://x.invalid/a.raw\nreboot", "sha256": SHA}, None),
        ({"url": "http://x.invalid/a.raw", "sha256": "x'; reboot; '"}, None),
        ({"url": "http://x.invalid/a.raw", "sha256": SHA}, {"path": "/dev/sda'; reboot; '"}),
        ({"url": "http://x.invalid/a.raw", "sha256": SHA}, {"by_id": "a\nimage_url='http://evil.invalid/x'"}),
    ],
)
def test_the_renderer_refuses_what_slipped_past_the_models(image: dict, disk: dict | None) -> None:
    # model_construct skips validation: the renderer must not trust the models.
    img = DiskImage.model_construct(**{"format": "raw", "compression": "none", "path": None, **image})
    profile = Profile.model_construct(name="img", image=img, disk=Disk.model_construct(**{"path": None, "by_id": None, "min_size_gb": 0, **(disk or {})}))
    with pytest.raises(RenderError, match="refused"):
        deploy_instructions("node1", profile, BootUrls(base="http://10.90.0.1:8080"))


def run_reader(tmp_path: Path, text: str) -> tuple[int, str]:
    """/init's own reader (LIB) in a real busybox sh, with `fail` printing instead of wiping a disk."""
    busybox = need("busybox", "busybox-static")
    (tmp_path / "deploy.txt").write_text(text)
    script = LIB + 'fail() { echo "FAIL: $*"; exit 3; }\nread_instructions "$1"\n'
    script += 'printf "url=[%s] disk=[%s] id=[%s] sha=[%s] decomp=[%s]\\n" "$IMAGE_URL" "$DISK_PATH" "$DISK_BY_ID" "$IMAGE_SHA256" "$DECOMP"\n'
    res = subprocess.run([busybox, "sh", "-c", script, "sh", str(tmp_path / "deploy.txt")], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    return res.returncode, res.stdout + res.stderr


GOOD_LINES = {
    "format": "vaquero-deploy/1",
    "host": "node1",
    "image_url": "http://10.90.0.1:8080/assets/img/a.raw.gz",
    "image_sha256": SHA,
    "image_compression": "gzip",
    "progress_url": "http://10.90.0.1:8080/v1/boot/progress/node1?token=T0k_en-aaaaaaaaaaaaaaaa",
    "callback_url": "http://10.90.0.1:8080/v1/boot/callback/node1?token=T0k_en-aaaaaaaaaaaaaaaa",
    "nocloud_url": "http://10.90.0.1:8080/v1/boot/nocloud/node1/T0k_en-aaaaaaaaaaaaaaaa/",
    "phone_home_url": "http://10.90.0.1:8080/v1/boot/phone-home/node1?token=P0k_en-aaaaaaaaaaaaaaaa",
    "disk_min_bytes": "0",
    "end": "1",
}


def lines(**over: str) -> str:
    return "".join(f"{k}='{v}'\n" for k, v in {**GOOD_LINES, **over}.items())


def test_the_init_reader_takes_good_instructions_literally(tmp_path: Path) -> None:
    rc, out = run_reader(tmp_path, lines(disk_path="/dev/nvme0n1"))
    assert rc == 0, out
    assert f"url=[{GOOD_LINES['image_url']}] disk=[/dev/nvme0n1] id=[] sha=[{SHA}] decomp=[pigz -dc]" in out


@pytest.mark.parametrize(
    "text",
    [
        lines(image_url="http://x/$(touch PWNED)"),
        lines(image_url="http://x/`touch PWNED`"),
        lines(image_url="http://x/a;touch PWNED"),
        lines(disk_path="/dev/sda;touch PWNED"),
        lines(disk_path="/dev/$(touch PWNED)"),
        lines(disk_by_id="$(touch PWNED)"),
        lines(image_sha256="$(touch PWNED)"),
        lines(image_compression="gzip;touch PWNED"),
        lines(progress_url="http://x/' ; touch PWNED ; '"),
        lines() + "image_url='http://x/a'\n$(touch PWNED)\n`touch PWNED`\n",  # stray lines are ignored, never run
        lines(end="0"),
        lines()[: len(lines()) // 2],  # cut short: no end line
    ],
)
def test_the_init_reader_never_runs_what_it_reads(tmp_path: Path, text: str) -> None:
    rc, out = run_reader(tmp_path, text)
    assert not (tmp_path / "PWNED").exists(), out
    if "touch PWNED" in text.split("end='1'")[0] or "end='1'" not in text:
        assert rc == 3 and "FAIL:" in out, out  # a hostile value or a cut answer is refused outright


def test_the_init_script_parses_and_never_evaluates_or_sources() -> None:
    busybox = need("busybox", "busybox-static")
    res = subprocess.run([busybox, "sh", "-n", "-c", INIT], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    code = [line.split("#", 1)[0] for line in INIT.splitlines()]
    assert not [c for c in code if re.search(r"(^|[\s;|&])(eval|source|\.)\s", c)], "the ramdisk /init must not eval or source anything"


# -- the agent's endpoints -------------------------------------------------------------------


@pytest.fixture
def deploy_app(tmp_path: Path) -> BootApp:
    sot = load(write_sot(tmp_path / "sot", {"path": "/srv/images/disk.raw", "sha256": SHA}))
    bundle = render_site(sot)
    return BootApp(bundle, BootStates(tmp_path / "state" / "boot-states.json"), asset_root=tmp_path / "assets", admin_token="t0ken")


def asgi(app: BootApp, ip: str = "10.90.0.11") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 4444)), base_url="http://agent")


async def armed_token(client: httpx.AsyncClient, host: str = "node1") -> str:
    assert (await client.post(f"/v1/boot/install/{host}", headers=ADMIN)).status_code == 200
    mac = {"node1": "52-54-00-00-10-01", "node2": "52-54-00-00-10-02"}[host]
    m = re.search(r"vaquero\.deploy=\S+\?token=([A-Za-z0-9_-]+)", (await client.get(f"/v1/boot/ipxe/{mac}")).text)
    assert m is not None
    return m.group(1)


@pytest.mark.anyio
async def test_deploy_instructions_progress_and_phone_home_need_their_tokens(deploy_app: BootApp, caplog) -> None:
    caplog.set_level(logging.INFO)
    async with asgi(deploy_app) as client:
        token = await armed_token(client)
        other = await armed_token(client, "node2")
        assert (await client.get("/v1/boot/deploy/node1")).status_code == 401
        assert (await client.get(f"/v1/boot/deploy/node1?token={other}")).status_code == 403
        r = await client.get(f"/v1/boot/deploy/node1?token={token}")
        assert r.status_code == 200
        ph = phone_home_token(token, "node1")
        assert "image_url='http://10.90.0.1:8080/assets/img/disk.raw'" in r.text  # a path image: the agent serves it
        assert f"callback_url='http://10.90.0.1:8080/v1/boot/callback/node1?token={token}'" in r.text
        assert f"phone_home_url='http://10.90.0.1:8080/v1/boot/phone-home/node1?token={ph}'" in r.text and ph != token
        assert "PLACEHOLDER" not in r.text
        # Bound to the address that used it first.
        async with asgi(deploy_app, "10.90.0.99") as stranger:
            assert (await stranger.get(f"/v1/boot/deploy/node1?token={token}")).status_code == 403
            assert (await stranger.post(f"/v1/boot/progress/node1?token={token}", json={"phase": "writing", "bytes": 1})).status_code == 403

        prog = f"/v1/boot/progress/node1?token={token}"
        assert (await client.post(prog, content=b"{nope")).status_code == 400
        assert (await client.post(prog, json={"phase": "writing", "bytes": -1})).status_code == 400
        assert (await client.post(prog, json={"phase": "writing", "bytes": 1, "shell": "x"})).status_code == 400
        assert (await client.post(prog, json={"phase": "writing", "disk": "sda;reboot"})).status_code == 400
    deploy_app.progress_times.clear()
    async with asgi(deploy_app) as client:
        assert (await client.post(prog, content=b'{"phase": "writing", "bytes": 1, "pad": "' + b"x" * 2000 + b'"}')).status_code == 413
        codes = [(await client.post(prog, json={"phase": "writing", "bytes": n, "total": 1 << 30, "disk": "vda"})).status_code for n in range(1, 9)]
        assert codes[:3] == [200, 200, 200] and 429 in codes  # bounded rate: the rest is refused, not kept
        kept = deploy_app.states.to_dict("node1")["deploy"]
        assert [e["bytes"] for e in kept] == [n for n, c in zip(range(1, 9), codes, strict=True) if c == 200]
        assert all(set(e) == {"phase", "bytes", "total", "disk", "time"} for e in kept)

        r = await client.post(f"/v1/boot/callback/node1?token={token}", json={"result": "success", "sha256": SHA, "bytes": 123})
        assert r.status_code == 200 and r.json()["state"] == "installed"
        st = (await client.get("/v1/boot/status/node1")).json()
        assert st["state"] == "installed" and st["deploy"] == kept and "phone_home" not in st and st["phoned_home_at"] is None
        # The install token is spent; the phone-home token works once, from any address.
        assert (await client.get(f"/v1/boot/deploy/node1?token={token}")).status_code == 401
        assert (await client.post(f"/v1/boot/phone-home/node1?token={token}")).status_code == 401
    async with asgi(deploy_app, "10.90.0.200") as booted:
        assert (await booted.post(f"/v1/boot/phone-home/node1?token={ph}", json={"uptime": 5})).status_code == 200
        assert (await booted.post(f"/v1/boot/phone-home/node1?token={ph}", json={})).status_code == 401
    st = deploy_app.states.to_dict("node1")
    assert st["phoned_home_at"] is not None and st["report"]["phone_home"]["uptime"] == 5
    # The agent's own records (httpx, the test's client, logs the URLs it requests).
    logged = "\n".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records if r.name.startswith("vaquero"))
    assert "deploy instructions served" in logged
    assert token not in logged and ph not in logged and other not in logged


@pytest.mark.anyio
async def test_a_failure_callback_fails_the_host_with_its_reason(deploy_app: BootApp) -> None:
    async with asgi(deploy_app) as client:
        token = await armed_token(client)
        reason = "image sha256 mismatch: expected " + "a" * 64 + ", got " + "b" * 64
        r = await client.post(f"/v1/boot/callback/node1?token={token}", json={"result": "failure", "reason": reason + "\n\x00x", "stage": "write"})
        assert r.status_code == 200 and r.json()["state"] == "failed"
        st = (await client.get("/v1/boot/status/node1")).json()
        assert st["state"] == "failed" and st["script"] == "localboot" and st["report"]["reason"] == reason + " \x00x"
        assert "kernel" not in (await client.get("/v1/boot/ipxe/52-54-00-00-10-01")).text  # no install loop
        assert (await client.post(f"/v1/boot/callback/node1?token={token}", json={"result": "success"})).status_code == 401
        assert (await client.post(f"/v1/boot/phone-home/node1?token={phone_home_token(token, 'node1')}")).status_code == 401
        assert (await client.post(f"/v1/boot/callback/node2?token={await armed_token(client, 'node2')}", json={"result": "maybe"})).status_code == 400
    why = failure(st, 0)
    assert why is not None and reason in why
    assert failure(st, st["since"] + 1) is None  # an older failure is not this install's
    assert failure({"state": "installed"}, 0) is None


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
