"""Issue 10, item 1 (and the typed boundary): SoT values that would change the meaning of a file
they are rendered into are refused at validation with `file:line: field: message`, and the
renderers refuse them again when handed a model that skipped validation."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from vaquero.render import BootServer, RenderError, get_site, render_dnsmasq, render_kea, site_hosts
from vaquero.render.config import meta_data
from vaquero.render.dhcp import render_dnsmasq_hosts
from vaquero.render.ipxe import install_script, localboot_script
from vaquero.sot import SoT, SoTInvalid, load
from vaquero.sot.models import Site, cmdline_error
from vaquero.sot.templates import BootUrls, host_context

REPO = Path(__file__).resolve().parents[2]
INJECT = "lab.vaquero.test\ndhcp-script=/tmp/x"


@dataclass
class Case:
    id: str
    file: str
    old: str
    new: str
    field: str  # the field path the error must name
    line_of: str | None = None  # text whose line the error must point at (default: `new`)


def _copy(tmp_path: Path, base: str = "lab") -> Path:
    dst = tmp_path / base
    shutil.copytree(REPO / "inventories" / base, dst)
    return dst


def _edit(root: Path, file: str, old: str, new: str) -> int:
    path = root / file
    text = path.read_text()
    assert old in text, old
    text = text.replace(old, new, 1)
    path.write_text(text)
    return text.count("\n", 0, text.index(new)) + 1


# Each value lands in another language: dnsmasq.conf, Kea JSON, iPXE, cloud-init, ipmitool, a shell.
CASES = [
    Case("domain-newline", "sites/lab.yaml", "domain: lab.vaquero.test", 'domain: "lab.vaquero.test\\ndhcp-script=/tmp/x"', "networks[0].domain"),
    Case("domain-comma", "sites/lab.yaml", "domain: lab.vaquero.test", 'domain: "lab.vaquero.test,evil"', "networks[0].domain"),
    Case("domain-upper", "sites/lab.yaml", "domain: lab.vaquero.test", "domain: Lab.Vaquero.Test", "networks[0].domain"),
    Case("domain-too-long", "sites/lab.yaml", "domain: lab.vaquero.test", "domain: " + ".".join(["a" * 60] * 5), "networks[0].domain"),
    Case("interface-newline", "sites/lab.yaml", "interface: vq-br0", 'interface: "vq-br0\\ndhcp-script=/tmp/x"', "networks[0].interface"),
    Case("interface-too-long", "sites/lab.yaml", "interface: vq-br0", "interface: abcdefghijklmnop", "networks[0].interface"),
    Case("interface-slash", "sites/lab.yaml", "interface: vq-br0", "interface: a/b", "networks[0].interface"),
    Case("interface-dotdot", "sites/lab.yaml", "interface: vq-br0", 'interface: ".."', "networks[0].interface"),
    Case("interface-space", "sites/lab.yaml", "interface: vq-br0", 'interface: "vq br0"', "networks[0].interface"),
    Case("username-nul", "sites/lab.yaml", "username: admin", 'username: "admin\\0"', "credentials.lab-bmc.username"),
    Case("secret-env-grammar", "sites/lab.yaml", "env: VAQUERO_LAB_BMC_PASSWORD", 'env: "X; rm -rf /"', "credentials.lab-bmc.password.env"),
    Case("secret-file-relative", "sites/lab.yaml", "env: VAQUERO_LAB_BMC_PASSWORD", "file: etc/secret", "credentials.lab-bmc.password.file"),
    Case("secret-file-newline", "sites/lab.yaml", "env: VAQUERO_LAB_BMC_PASSWORD", 'file: "/etc/x\\n/etc/y"', "credentials.lab-bmc.password.file"),
    Case(
        "site-description-cr",
        "sites/lab.yaml",
        "description: Virtual lab of QEMU hosts on a bridge in a network namespace",
        'description: "Virtual\\rlab"',
        "description",
    ),
    Case("serial-newline", "clusters/lab.yaml", "roles: [control]", 'roles: [control]\n    serial: "SN1\\nx"', "hosts[0].serial", "serial:"),
    Case("asset-tag-u2028", "clusters/lab.yaml", "roles: [control]", 'roles: [control]\n    asset_tag: "A\\u2028B"', "hosts[0].asset_tag", "asset_tag:"),
    Case("asset-tag-bidi", "clusters/lab.yaml", "roles: [control]", 'roles: [control]\n    asset_tag: "A\\u202eB"', "hosts[0].asset_tag", "asset_tag:"),
    Case("role-space", "clusters/lab.yaml", "roles: [control]", 'roles: ["control plane"]', "hosts[0].roles[0]"),
    Case(
        "bmc-system-newline",
        "clusters/lab.yaml",
        "port: 6231, credential: lab-bmc}",
        'port: 6231, credential: lab-bmc, system: "/redfish/v1\\nx"}',
        "hosts[0].bmc.system",
    ),
    Case("var-key", "clusters/lab.yaml", "ips: {prov: 10.90.0.11}", 'ips: {prov: 10.90.0.11}\n    vars: {"a b": 1}', "hosts[0].vars", "vars:"),
    Case(
        "var-value-newline",
        "clusters/lab.yaml",
        "ips: {prov: 10.90.0.11}",
        'ips: {prov: 10.90.0.11}\n    vars: {motd: "hi\\n  + host evil will be added"}',
        "hosts[0].vars",
        "vars:",
    ),
    Case("var-nested-nel", "clusters/lab.yaml", "ips: {prov: 10.90.0.11}", 'ips: {prov: 10.90.0.11}\n    vars: {a: [{b: "x\\Ny"}]}', "hosts[0].vars", "vars:"),
    Case("cluster-var-nul", "clusters/lab.yaml", "policy:", 'vars: {k: "\\0"}\npolicy:', "vars", "vars:"),
    Case("bmc-address-semicolon", "clusters/lab.yaml", "address: 127.0.0.1, port: 6231", "address: '127.0.0.1;id', port: 6231", "hosts[0].bmc.address"),
    Case("var-nan", "clusters/lab.yaml", "ips: {prov: 10.90.0.11}", "ips: {prov: 10.90.0.11}\n    vars: {x: .nan}", "hosts[0].vars", "vars:"),
    Case("version-space", "profiles/lab-linux.yaml", 'version: "1"', 'version: "1 ${password}"', "version"),
    Case("hook-url-newline", "hooks/lab-hooks.yaml", 'url: "http://10.90.0.1:8080/', 'url: "http://10.90.0.1:8080/\\n', "url"),
    Case("hook-body-newline", "hooks/lab-hooks.yaml", "body: '\"installed\"'", 'body: "a\\nb"', "body"),
    Case("hook-command-cr", "hooks/lab-hooks.yaml", 'command: "echo draining', 'command: "echo \\r draining', "command"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_value_is_refused_at_validation_with_file_line_field(tmp_path: Path, case: Case) -> None:
    root = _copy(tmp_path)
    _edit(root, case.file, case.old, case.new)
    text = (root / case.file).read_text()
    needle = case.line_of or case.new.split("\n")[-1].strip()
    line = text.count("\n", 0, text.index(needle)) + 1
    with pytest.raises(SoTInvalid) as info:
        load(root)
    shown = [str(e) for e in info.value.errors]
    assert any(s.startswith(f"{case.file}:{line}: {case.field}: ") for s in shown), shown


def test_vars_alias_bomb_is_refused_within_the_node_budget(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    bomb = "\n".join(
        ["    vars:", "      l0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [f"      l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    )
    _edit(root, "clusters/lab.yaml", "    ips: {prov: 10.90.0.11}", "    ips: {prov: 10.90.0.11}\n" + bomb)
    with pytest.raises(SoTInvalid) as info:
        load(root)
    shown = [str(e) for e in info.value.errors]
    # Refused either by the loader's alias budget or by the vars node budget; never expanded.
    assert any(s.startswith("clusters/lab.yaml:") and ("vars" in s or "alias" in s.lower()) for s in shown), shown


def test_cli_refuses_newline_in_domain_and_interface(tmp_path: Path) -> None:
    """The reported attack, through the real `vaquero validate` process."""
    root = _copy(tmp_path)
    dom = _edit(root, "sites/lab.yaml", "domain: lab.vaquero.test", 'domain: "lab.vaquero.test\\ndhcp-script=/tmp/x"')
    ifc = _edit(root, "sites/lab.yaml", "interface: vq-br0", 'interface: "vq-br0\\ndhcp-script=/tmp/x"')
    res = subprocess.run([sys.executable, "-m", "vaquero.cli", "validate", str(root)], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert re.search(rf"sites/lab\.yaml:{dom}: networks\[0\]\.domain: ", res.stderr), res.stderr
    assert re.search(rf"sites/lab\.yaml:{ifc}: networks\[0\]\.interface: ", res.stderr), res.stderr
    assert "dhcp-script=/tmp/x\n" not in res.stderr  # the value is shown escaped, not as a line of its own


# --- the renderers do not trust the models -------------------------------------------------


@pytest.fixture(scope="module")
def lab() -> SoT:
    return load(REPO / "inventories" / "lab")


def _server() -> BootServer:
    return BootServer(address="10.90.0.1", http_base="http://10.90.0.1:8080")


def _bad_net(lab: SoT, **update: object) -> Site:
    site = get_site(lab, "lab")
    net = site.networks[0].model_copy(update=update)  # model_copy does not validate
    return site.model_copy(update={"networks": [net]})


@pytest.mark.parametrize("field", ["domain", "interface"])
def test_dnsmasq_and_kea_refuse_injected_values_built_without_validation(lab: SoT, field: str) -> None:
    site = _bad_net(lab, **{field: INJECT if field == "domain" else "vq-br0\ndhcp-script=/tmp/x"})
    hosts = site_hosts(lab, site)
    with pytest.raises(RenderError, match=rf"network prov: {field}: "):
        render_dnsmasq(site, hosts, _server())
    with pytest.raises(RenderError, match=rf"network prov: {field}: "):
        render_kea(site, hosts, _server())


def test_dnsmasq_refuses_a_model_constructed_network(lab: SoT) -> None:
    from vaquero.sot.models import Network

    site = get_site(lab, "lab")
    net = Network.model_construct(**{**site.networks[0].__dict__, "domain": "x.test\ndhcp-script=/tmp/x"})
    with pytest.raises(RenderError, match="domain"):
        render_dnsmasq(site.model_copy(update={"networks": [net]}), [], _server())


def test_hostsfile_and_ipxe_refuse_a_forged_host_name(lab: SoT) -> None:
    site = get_site(lab, "lab")
    hosts = site_hosts(lab, site)
    forged = hosts[0].host.model_copy(update={"name": "node1\ndhcp-script=/tmp/x"})
    bad = [type(hosts[0])(cluster=hosts[0].cluster, host=forged, profile=hosts[0].profile, network=hosts[0].network)]
    with pytest.raises(RenderError, match="name"):
        render_dnsmasq_hosts(bad)
    with pytest.raises(RenderError, match="name"):
        render_dnsmasq(site, bad, _server())
    with pytest.raises(RenderError, match="name"):
        localboot_script("node1\nchain http://evil", "bios")
    with pytest.raises(RenderError, match="name"):
        meta_data("node1\nuser-data: x", "node1-0-abc")


def test_ipxe_refuses_injected_version_and_cmdline(lab: SoT) -> None:
    site = get_site(lab, "lab")
    cluster, host = lab.host("node1") or (None, None)
    assert cluster is not None and host is not None
    profile = lab.profile_of(cluster, host)
    assert profile is not None
    ctx = host_context(site, cluster, host, profile)
    good = install_script("node1", "bios", profile, ctx, BootUrls())
    assert good.count("\n") == 5 and "${" not in good
    with pytest.raises(RenderError, match="version"):
        install_script("node1", "bios", profile.model_copy(update={"version": "1 ${net0/ip}"}), ctx, BootUrls())
    for attack in ("; chain http://evil/x", "|| shell", "&& shell", "#", "${net0/mac}", 'a="b c"', "a\\", "a\nchain http://evil"):
        bad = profile.model_copy(update={"cmdline": f"console=ttyS0 {attack}"})
        with pytest.raises(RenderError, match="host node1: profile lab-linux: cmdline"):
            install_script("node1", "bios", bad, ctx, BootUrls())


def test_cmdline_from_a_host_var_is_refused_at_validation(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root, "clusters/lab.yaml", "    ips: {prov: 10.90.0.11}", '    ips: {prov: 10.90.0.11}\n    vars: {extra: "x ; chain http://10.0.0.9/evil"}')
    line = _edit(root, "profiles/lab-linux.yaml", "console=ttyS0 quiet", "console=ttyS0 {{ vars.extra | default('') }} quiet")
    text = (root / "profiles/lab-linux.yaml").read_text()
    line = text.count("\n", 0, text.index("cmdline:")) + 1
    with pytest.raises(SoTInvalid) as info:
        load(root)
    shown = [str(e) for e in info.value.errors]
    assert any(s.startswith(f"profiles/lab-linux.yaml:{line}: cmdline: for host node1") and "';'" in s for s in shown), shown


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("console=ttyS0,115200n8 a=b?c=d&e=f%41 x.y:z/w@v+u", True),
        ("ip=dhcp url=http://10.0.0.1:8080/v1/boot/config/n1?token=AbC-_x9", True),
        ("quiet", True),
        ("", True),
        ("a  b", False),
        (" a", False),
        ("a\tb", False),
        ("a=$x", False),
        ("a=${x}", False),
        ("a=b;c", True),
        ("ds=nocloud-net;s=http://10.0.0.1/seed/", True),
        (";", False),
        ("a ; b", False),
        ("a;b", False),
        ("a=b#c", False),
        ("a=b&&c", False),
        ("a=b|c", False),
        ("a='b'", False),
        ('a="b"', False),
        ("a=b\\", False),
        ("a=<b>", False),
        ("a=`b`", False),
        ("=b", False),
        ("a=b\u2028c", False),
        ("a=é", False),
        ("a=" + "x" * 1700, True),
        ("a=" + "x" * 1800, False),  # Linux would cut it (and the callback token after it) at 2048 bytes
        ("a=" + "x" * 5000, False),
    ],
)
def test_cmdline_grammar(text: str, ok: bool) -> None:
    assert (cmdline_error(text) is None) is ok, cmdline_error(text)
