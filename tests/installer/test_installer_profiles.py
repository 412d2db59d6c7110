"""The ready installer profiles of inventories/installers (debian-installer with a preseed, Flatcar
with Ignition and flatcar-install), checked by peers we did not write: debconf-set-selections reads
the preseed, sh/bash parse the scripts it carries, Ignition's own JSON schema (spec 3.4.0, closed)
checks both Flatcar configs. Then the agent over ASGI: the config is served with the tokens put in,
and the phone-home URL the installed OS is given works once, after the installer's callback."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import jsonschema
import pytest
import yaml
from requirements import need

from vaquero.agent.http import BootApp, phone_home_token
from vaquero.agent.state import BootStates
from vaquero.render import render_site
from vaquero.render.site import RenderError
from vaquero.sot import load
from vaquero.sot.errors import SoTInvalid
from vaquero.sot.models import preseed_error
from vaquero.sot.templates import PHONE_HOME_PLACEHOLDER, TOKEN_PLACEHOLDER
from vaquero.sot.validate import check

REPO = Path(__file__).resolve().parents[2]
SOT = REPO / "inventories" / "installers"
SCHEMA = Path(__file__).parent / "fixtures" / "ignition-v3_4.schema.json"
ADMIN = {"Authorization": "Bearer t0ken"}


@pytest.fixture(scope="module")
def bundle() -> Any:
    return render_site(load(SOT), "dc1")  # load() raises on any validation error


def late_command(preseed: str) -> str:
    lines = [ln for ln in preseed.splitlines() if ln.startswith("d-i preseed/late_command string ")]
    assert len(lines) == 1, lines
    return lines[0].removeprefix("d-i preseed/late_command string ")


# --- debian-installer ---------------------------------------------------------------------------


def test_the_debian_preseed_is_read_by_debconf_and_its_scripts_parse(bundle: Any, tmp_path: Path) -> None:
    hb = bundle.hosts["deb1"]
    assert hb.config_format == "preseed" and hb.phone_home
    text = hb.config.decode()
    assert preseed_error(text) is None
    (tmp_path / "deb1.cfg").write_text(text)
    res = subprocess.run([need("debconf-set-selections", "debconf"), "-c", str(tmp_path / "deb1.cfg")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "warning" not in res.stderr.lower(), res.stderr
    answers = {m.group(1): m.group(2) for m in re.finditer(r"^d-i (\S+) \S+ ?(.*)$", text, re.M)}
    assert answers["netcfg/get_hostname"] == "deb1" and answers["partman-auto/disk"] == "/dev/vda"
    assert answers["mirror/http/hostname"] == "10.90.0.1:3142" and answers["grub-installer/bootdev"] == "/dev/vda"
    # The late_command is one shell line: sh parses it, the tokens' placeholders are in plain text
    # (the agent swaps them when it serves the file), the setup script inside parses too.
    late = late_command(text)
    assert subprocess.run(["sh", "-n", "-c", late], capture_output=True, timeout=30).returncode == 0
    assert f"/v1/boot/phone-home/deb1?token={PHONE_HOME_PLACEHOLDER}" in late and f"/v1/boot/callback/deb1?token={TOKEN_PLACEHOLDER}" in late
    setup = base64.b64decode(re.search(r"in-target sh -c 'echo ([A-Za-z0-9+/=]+) \| base64 -d \| sh'", late).group(1)).decode()  # type: ignore[union-attr]
    assert subprocess.run(["sh", "-n", "-c", setup], capture_output=True, timeout=30).returncode == 0
    files = dict(re.findall(r"^echo ([A-Za-z0-9+/=]+) \| base64 -d > (\S+)$", setup, re.M))
    by_path = {path: base64.b64decode(b64).decode() for b64, path in files.items()}
    assert set(by_path) == {"/usr/lib/vaquero/phone-home", "/etc/systemd/system/vaquero-booted.service"}
    assert subprocess.run(["sh", "-n", "-c", by_path["/usr/lib/vaquero/phone-home"]], capture_output=True, timeout=30).returncode == 0
    assert "ConditionPathExists=!/var/lib/vaquero/phone-home.done" in by_path["/etc/systemd/system/vaquero-booted.service"]
    key = yaml.safe_load((SOT / "clusters" / "debian.yaml").read_text())["vars"]["ssh_keys"][0]
    assert shlex.quote(key) in setup and "/home/debian/.ssh/authorized_keys" in setup


def test_the_setup_script_writes_what_it_says_in_a_real_shell(bundle: Any, tmp_path: Path) -> None:
    """The base64-carried files decode to the exact unit and script text, run under a real sh with
    the target's paths moved into a scratch root (no chroot, no root needed)."""
    late = late_command(bundle.hosts["deb1"].config.decode())
    setup = base64.b64decode(re.search(r"echo ([A-Za-z0-9+/=]+) \| base64 -d \| sh'", late).group(1)).decode()  # type: ignore[union-attr]
    root = tmp_path / "target"
    # Only the file-writing lines (mkdir, the base64 files): user and service set-up needs the target.
    lines = [ln for ln in setup.splitlines() if ln.startswith(("mkdir ", "chmod 0755")) or "| base64 -d >" in ln]
    script = "\n".join(re.sub(r"(\s)/(usr|etc)/", rf"\1{root}/\2/", ln) for ln in lines)
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    assert len(lines) == 4, lines
    res = subprocess.run(["sh", "-e", "-c", script], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    unit = (root / "etc/systemd/system/vaquero-booted.service").read_text()
    assert unit.startswith("[Unit]\n") and "ExecStart=/usr/lib/vaquero/phone-home\n" in unit and "WantedBy=multi-user.target" in unit
    assert (root / "usr/lib/vaquero/phone-home").stat().st_mode & 0o111
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:  # systemd's own parser, where the machine has it
        res = subprocess.run(
            [analyze, "verify", "--man=no", str(root / "etc/systemd/system/vaquero-booted.service")], capture_output=True, text=True, timeout=60
        )
        assert "Unknown key" not in res.stderr and "Invalid" not in res.stderr, res.stderr


@pytest.mark.parametrize(
    ("var", "why"),
    [
        ("/dev/vda\\", "ends with a backslash"),  # would join the next answer to this one
        ("/dev/vda --no-ask-partman", None),  # spaces are part of the value: still one answer
    ],
)
def test_a_var_that_would_change_the_preseed_is_refused_at_validation_and_render(tmp_path: Path, var: str, why: str) -> None:
    root = tmp_path / "sot"
    shutil.copytree(SOT, root)
    path = root / "clusters" / "debian.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["vars"]["install_disk"] = var
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    sot = load(root, semantic=False)
    errors = check(sot)
    if why is None:
        assert errors == [] and "partman-auto/disk string /dev/vda --no-ask-partman\n" in render_site(sot, "dc1").hosts["deb1"].config.decode()
        return
    assert any(why in e.message and e.field == "config" and e.file == "profiles/debian-12-installer.yaml" for e in errors), errors
    with pytest.raises(RenderError, match=why):
        render_site(sot, "dc1")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("d-i a/b string x\u2028d-i preseed/early_command string reboot\n", "line 1: a control character"),
        ("d-i a/b string x\x1bc\n", "line 1: a control character"),
        ("d-i a/b string x\rd-i c/d string y\r\n", "line 1: a control character"),  # a CR inside a CRLF line
        ("# ok\nd-i a/b strin x\n", "line 2: unknown type 'strin'"),
        ("d-i a/b boolean yes\n", "boolean: true or false"),
        ("d-i a/b\n", "not 'owner question type value'"),
        ("d-i a/b string x \\\n  more\n", "ends with a backslash"),
    ],
)
def test_preseed_lines_are_refused_with_their_line_number(text: str, why: str) -> None:
    assert why in (preseed_error(text) or "")


def test_a_crlf_preseed_is_read_as_its_lines() -> None:
    assert preseed_error("#_preseed_V1\r\nd-i a/b string x\r\nd-i c/d boolean true\r\n") is None


def test_phone_home_needs_a_config_that_tells_the_os_where(tmp_path: Path) -> None:
    root = tmp_path / "sot"
    shutil.copytree(SOT, root)
    tpl = root / "templates" / "debian-12.preseed.j2"
    tpl.write_text(tpl.read_text().replace("{{ urls.phone_home | shquote }}", "'http://nowhere.invalid/'"))
    errors = check(load(root, semantic=False))
    assert [e.message for e in errors if e.field == "phone_home"] == ["phone_home is true but the config for host deb1 never uses urls.phone_home"], errors


def test_shquote_refuses_a_line_break_and_quotes_everything_else(tmp_path: Path) -> None:
    from vaquero.sot.templates import environment

    env = environment()
    hostile = 'a\'b $(reboot) `id` \\ "c"'
    out = env.from_string("printf '%s' {{ v | shquote }}").render(v=hostile)
    assert subprocess.run(["sh", "-c", out], capture_output=True, text=True, timeout=30).stdout == hostile
    with pytest.raises(Exception, match="line break"):
        env.from_string("{{ v | shquote }}").render(v="a\nreboot")


# --- Flatcar ------------------------------------------------------------------------------------


def closed(schema: Any) -> Any:
    """The schema with every object closed to the keys it names (Ignition's own leaves them open, and
    a misspelt key would pass unseen): unevaluatedProperties (JSON schema 2020-12), set where an
    allOf is, which sees the keys its branches name; the branches, and definitions they refer to,
    stay open."""
    in_branches: set[str] = set()

    def refs(node: Any) -> None:
        if isinstance(node, dict):
            for branch in node.get("allOf", []):
                if "$ref" in branch:
                    in_branches.add(branch["$ref"])
            for v in node.values():
                refs(v)
        elif isinstance(node, list):
            for v in node:
                refs(v)

    def close(node: Any, where: str, branch: bool) -> Any:
        if isinstance(node, list):
            return [close(v, f"{where}/{i}", branch) for i, v in enumerate(node)]
        if not isinstance(node, dict):
            return node
        out = {k: close(v, f"{where}/{k}", k == "allOf") for k, v in node.items()}
        if not branch and where not in in_branches and ("allOf" in out or (out.get("type") == "object" and "properties" in out)):
            out.setdefault("unevaluatedProperties", False)
        return out

    refs(schema)
    return close(schema, "#", False)


def validator() -> jsonschema.Draft202012Validator:
    schema = closed(json.loads(SCHEMA.read_text()))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return jsonschema.Draft202012Validator(schema)


def data_url(source: str) -> str:
    assert source.startswith("data:,"), source[:40]
    return unquote(source.removeprefix("data:,"))


def files_of(doc: dict[str, Any]) -> dict[str, str]:
    return {f["path"]: data_url(f["contents"]["source"]) for f in doc["storage"]["files"]}


def test_both_flatcar_ignition_configs_pass_the_spec_schema_and_their_scripts_parse(bundle: Any) -> None:
    check_spec = validator()
    hb = bundle.hosts["fc1"]
    assert hb.config_format == "ignition" and hb.phone_home
    installer = json.loads(hb.config)
    errs = sorted(check_spec.iter_errors(installer), key=str)
    assert not errs, errs[0]
    files = files_of(installer)
    installed = json.loads(files["/opt/installer/ignition.json"])
    errs = sorted(check_spec.iter_errors(installed), key=str)
    assert not errs, errs[0]
    assert installer["ignition"]["version"] == installed["ignition"]["version"] == "3.4.0"
    script = files["/opt/installer/install.sh"]
    assert subprocess.run(["bash", "-n", "-c", script], capture_output=True, timeout=30).returncode == 0
    assert "flatcar-install -d /dev/vda -V 4152.2.0 -b http://10.90.0.1:8080/assets/flatcar/amd64-usr -i /opt/installer/ignition.json" in script
    assert f"callback='http://10.90.0.1:8080/v1/boot/callback/fc1?token={TOKEN_PLACEHOLDER}'" in script
    [unit] = installer["systemd"]["units"]
    assert unit["name"] == "vaquero-install.service" and unit["enabled"] and "ExecStart=/opt/installer/install.sh" in unit["contents"]
    # The installed system: its name, the SSH keys, the one-time phone-home URL (0600) and the unit.
    mine = files_of(installed)
    assert mine["/etc/hostname"] == "fc1"
    assert mine["/etc/vaquero/phone-home.url"] == f"http://10.90.0.1:8080/v1/boot/phone-home/fc1?token={PHONE_HOME_PLACEHOLDER}\n"
    assert {f["path"]: f["mode"] for f in installed["storage"]["files"]}["/etc/vaquero/phone-home.url"] == 0o600
    assert subprocess.run(["bash", "-n", "-c", mine["/opt/vaquero/phone-home"]], capture_output=True, timeout=30).returncode == 0
    assert installed["passwd"]["users"][0]["sshAuthorizedKeys"][0].startswith("ssh-ed25519 ")
    assert [u["name"] for u in installed["systemd"]["units"]] == ["vaquero-booted.service"]


def test_a_misspelt_ignition_key_fails_the_closed_schema(bundle: Any) -> None:
    """The check above can fail: the same config with one key misspelt does."""
    doc = copy.deepcopy(json.loads(bundle.hosts["fc1"].config))
    assert not list(validator().iter_errors(doc))
    doc["systemd"]["units"][0]["enable"] = doc["systemd"]["units"][0].pop("enabled")
    assert any("'enable'" in e.message for e in validator().iter_errors(doc))
    doc = copy.deepcopy(json.loads(bundle.hosts["fc1"].config))
    doc["storage"]["files"][0]["mod"] = doc["storage"]["files"][0].pop("mode")  # a key inside an allOf
    assert any("'mod'" in e.message for e in validator().iter_errors(doc))


# --- the agent ----------------------------------------------------------------------------------


def agent_for(tmp_path: Path) -> BootApp:
    """The installers SoT with its kernel and initrd paths pointed at files the agent holds."""
    root = tmp_path / "sot"
    shutil.copytree(SOT, root)
    assets = tmp_path / "assets"
    for name in ("debian-12-installer", "flatcar-stable-installer"):
        path = root / "profiles" / f"{name}.yaml"
        doc = yaml.safe_load(path.read_text())
        for asset in (doc["kernel"], *doc["initrd"]):
            data = f"{name}:{asset['path']}".encode()
            dest = assets / name / Path(asset["path"]).name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            asset["sha256"] = hashlib.sha256(data).hexdigest()
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return BootApp(render_site(load(root), "dc1"), BootStates(tmp_path / "state" / "boot-states.json"), asset_root=assets, admin_token="t0ken")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize(("host", "ip", "ctype"), [("deb1", "10.90.0.21", "text/plain"), ("fc1", "10.90.0.31", "application/json")])
async def test_the_agent_serves_the_config_with_both_tokens_and_takes_the_phone_home_once(tmp_path: Path, host: str, ip: str, ctype: str) -> None:
    app = agent_for(tmp_path)
    transport = httpx.ASGITransport(app=app, client=(ip, 4444))
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
        r = await client.post(f"/v1/boot/install/{host}", headers=ADMIN)
        assert r.status_code == 200, r.text
        mac = bundle_mac(app, host)
        script = (await client.get(f"/v1/boot/ipxe/{mac}")).text
        token = re.search(rf"/v1/boot/config/{host}\?token=([A-Za-z0-9_-]+)", script).group(1)  # type: ignore[union-attr]
        r = await client.get(f"/v1/boot/config/{host}?token={token}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(ctype)
        if host == "deb1":
            text = r.text
        else:  # the URLs sit in data URLs: the installer's script, and the installed system's config inside
            files = files_of(json.loads(r.text))
            text = files["/opt/installer/install.sh"] + "\n".join(files_of(json.loads(files["/opt/installer/ignition.json"])).values())
        phone = phone_home_token(token, host)
        assert "PLACEHOLDER" not in r.text
        assert f"/v1/boot/callback/{host}?token={token}" in text and f"/v1/boot/phone-home/{host}?token={phone}" in text
        # Before the installer's callback the OS has nothing to report with.
        assert (await client.post(f"/v1/boot/phone-home/{host}?token={phone}", json={"event": "booted"})).status_code in (401, 403, 409)
        r = await client.post(f"/v1/boot/callback/{host}?token={token}", json={"result": "success", "installer": "test"})
        assert r.status_code == 200 and r.json()["state"] == "installed", r.text
        # The installed OS boots elsewhere on the network (another lease): the phone home is taken once.
        transport2 = httpx.ASGITransport(app=app, client=("10.90.0.150", 5555))
        async with httpx.AsyncClient(transport=transport2, base_url="http://agent") as os_client:
            r = await os_client.post(f"/v1/boot/phone-home/{host}?token={phone}", json={"event": "booted", "hostname": host})
            assert r.status_code == 200 and r.json() == {"host": host, "phoned_home": True}
            assert (await os_client.post(f"/v1/boot/phone-home/{host}?token={phone}", json={"event": "booted"})).status_code == 401
        st = (await client.get(f"/v1/boot/status/{host}")).json()
        assert st["phoned_home_at"] is not None and st["report"]["phone_home"]["hostname"] == host


def bundle_mac(app: BootApp, host: str) -> str:
    return app.bundle.hosts[host].macs[0].replace(":", "-")


@pytest.mark.parametrize("value", [30, 86401, "an hour"])
def test_an_install_timeout_out_of_range_names_the_file_line_and_field(tmp_path: Path, value: Any) -> None:
    root = tmp_path / "sot"
    shutil.copytree(SOT, root)
    path = root / "profiles" / "debian-12-installer.yaml"
    text = path.read_text().replace("install_timeout: 3600", f"install_timeout: {json.dumps(value)}")
    path.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("install_timeout:"))
    with pytest.raises(SoTInvalid) as info:
        load(root, semantic=False)
    found = [e for e in info.value.errors if e.field == "install_timeout"]
    assert [(e.file, e.line) for e in found] == [("profiles/debian-12-installer.yaml", line)], info.value.errors


def test_the_federation_debian_profile_serves_d_i_a_preseed(tmp_path: Path) -> None:
    """The sample federation SoT netboots debian-installer with url= at the config: that config is a
    preseed debconf reads (it was cloud-init user-data, which d-i cannot read), keys included."""
    root = tmp_path / "federation"
    shutil.copytree(REPO / "inventories" / "federation", root)
    path = root / "clusters" / "storage.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["vars"] = {**doc.get("vars", {}), "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFaKe0nlyForTheTestAAAAAAAAAAAAAAAAAAAAAAAAA ops@example"]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    hb = render_site(load(root), "dc-west").hosts["stor1"]
    text = hb.config.decode()
    assert hb.config_format == "preseed" and preseed_error(text) is None
    (tmp_path / "stor1.cfg").write_text(text)
    res = subprocess.run([need("debconf-set-selections", "debconf"), "-c", str(tmp_path / "stor1.cfg")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "warning" not in res.stderr.lower(), res.stderr
    assert "d-i netcfg/get_hostname string stor1\n" in text
    late = late_command(text)
    assert subprocess.run(["sh", "-n", "-c", late], capture_output=True, timeout=30).returncode == 0
    assert shlex.quote(doc["vars"]["ssh_keys"][0]) in late
