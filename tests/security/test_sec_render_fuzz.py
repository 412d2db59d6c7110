"""Issue 10, typed boundary: arbitrary strings in every string field of a small SoT.

For each example either the model refuses it with a located error (`file:line: field: ...`),
or every rendered file still has the shape the renderer meant: the dnsmasq config passes the
real `dnsmasq --test` and has the baseline's directive lines, Kea's config passes the real
`kea-dhcp4 -t`, the iPXE script has the baseline's commands, meta-data and user-data parse
with yaml.safe_load to the expected keys (and user-data carries the value back verbatim).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaquero.render import RenderError, get_site, render_kea, render_site, site_hosts
from vaquero.render.dhcp import BootServer, render_dnsmasq_hosts
from vaquero.sot import SoT, SoTInvalid, load
from vaquero.sot.models import cmdline_error

ZERO = "0" * 64
SITE: dict[str, Any] = {
    "apiVersion": "vaquero/v1",
    "kind": "Site",
    "name": "fz",
    "description": "fuzz site",
    "agents": [{"name": "a1", "url": "http://10.77.0.1:8080"}],
    "networks": [
        {
            "name": "prov",
            "subnet": "10.77.0.0/24",
            "gateway": "10.77.0.1",
            "interface": "lo",
            "dhcp": {"mode": "server", "range": ["10.77.0.100", "10.77.0.199"], "lease_time": "1h"},
            "dns": ["10.77.0.1"],
            "ntp": ["10.77.0.1"],
            "domain": "fz.test",
        }
    ],
    "credentials": {"bmc": {"username": "admin", "password": {"env": "FZ_PW"}}},
}
USER_DATA = "#cloud-config\nhostname: {{ host.name }}\nfqdn: {{ host.fqdn | tojson }}\nwrite_files:\n  - path: /etc/motd\n    content: {{ vars.v | tojson }}\n"
PROFILE: dict[str, Any] = {
    "apiVersion": "vaquero/v1",
    "kind": "Profile",
    "name": "p1",
    "version": "1.0",
    "kernel": {"path": "/srv/vmlinuz", "sha256": ZERO},
    "initrd": [{"path": "/srv/initrd.img", "sha256": ZERO}],
    "cmdline": "console=ttyS0 c={{ vars.c }} cb={{ urls.callback }}",
    "config": {"format": "cloud-init", "inline": USER_DATA},
}
CLUSTER: dict[str, Any] = {
    "apiVersion": "vaquero/v1",
    "kind": "Cluster",
    "name": "c1",
    "site": "fz",
    "profile": "p1",
    "description": "fuzz cluster",
    "vars": {"v": "motd", "c": "x"},
    "hosts": [
        {
            "name": "h1",
            "macs": ["52:54:00:77:00:01"],
            "serial": "S1",
            "asset_tag": "A1",
            "roles": ["r1"],
            "ips": {"prov": "10.77.0.11"},
            "bmc": {"type": "redfish", "address": "10.77.1.1", "credential": "bmc", "system": "/redfish/v1/Systems/1"},
            "vars": {"k": "v"},
        }
    ],
}
DOCS = {"sites/fz.yaml": SITE, "profiles/p1.yaml": PROFILE, "clusters/c1.yaml": CLUSTER}


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: str) -> None:
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _rename_key(doc: dict[str, Any], path: tuple[Any, ...], value: str) -> None:
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[value] = node.pop(path[-1])


# (id, file, where the value goes, setter, error fields that count as "located at this value")
Target = tuple[str, str, tuple[Any, ...], Callable[[dict[str, Any], tuple[Any, ...], str], None], tuple[str, ...]]
TARGETS: list[Target] = [
    ("domain", "sites/fz.yaml", ("networks", 0, "domain"), _set, ("networks[0].domain",)),
    ("interface", "sites/fz.yaml", ("networks", 0, "interface"), _set, ("networks[0].interface",)),
    ("site-description", "sites/fz.yaml", ("description",), _set, ("description",)),
    ("username", "sites/fz.yaml", ("credentials", "bmc", "username"), _set, ("credentials.bmc.username",)),
    ("secret-env", "sites/fz.yaml", ("credentials", "bmc", "password", "env"), _set, ("credentials.bmc.password",)),
    ("version", "profiles/p1.yaml", ("version",), _set, ("version",)),
    ("cmdline", "profiles/p1.yaml", ("cmdline",), _set, ("cmdline",)),
    ("cluster-description", "clusters/c1.yaml", ("description",), _set, ("description",)),
    ("var-into-user-data", "clusters/c1.yaml", ("vars", "v"), _set, ("vars",)),
    ("var-into-cmdline", "clusters/c1.yaml", ("vars", "c"), _set, ("vars", "cmdline")),
    ("serial", "clusters/c1.yaml", ("hosts", 0, "serial"), _set, ("hosts[0].serial",)),
    ("asset-tag", "clusters/c1.yaml", ("hosts", 0, "asset_tag"), _set, ("hosts[0].asset_tag",)),
    ("role", "clusters/c1.yaml", ("hosts", 0, "roles", 0), _set, ("hosts[0].roles[0]",)),
    ("bmc-system", "clusters/c1.yaml", ("hosts", 0, "bmc", "system"), _set, ("hosts[0].bmc.system",)),
    ("host-var-key", "clusters/c1.yaml", ("hosts", 0, "vars", "k"), _rename_key, ("hosts[0].vars",)),
    ("host-var-value", "clusters/c1.yaml", ("hosts", 0, "vars", "k"), _set, ("hosts[0].vars",)),
]

ATTACKS = [
    "\ndhcp-script=/tmp/x",
    "\r\ndhcp-script=/tmp/x",
    "\x00",
    "\u2028dhcp-script=/tmp/x",
    "\x85dhcp-script=/tmp/x",
    "; chain http://10.0.0.9/x",
    " || shell",
    " && shell",
    " #",
    "${net0/mac}",
    "${password}",
    ",dhcp-script=/tmp/x",
    '"',
    "'",
    "\\",
    "{{ 7*7 }}",
    ": x\n- y",
    "\u202e",
    "a" * 300,
]
SAFE = "abcxyzAZ09-_.:/@+%?=&,"
DANGER = "\n\r\t\x00\x0b\x0c\x85\u2028\u2029\u202e #;$|&{}\"'\\<>`,=:"
# Surrogates cannot be written to a UTF-8 file at all, so a SoT can never hold one.
ANY = st.characters(blacklist_categories=("Cs",))
VALUES = st.one_of(
    st.text(ANY, max_size=40),
    st.text(st.sampled_from(SAFE + DANGER), min_size=1, max_size=30),
    st.builds(lambda a, b, c: a + b + c, st.text(st.sampled_from(SAFE), max_size=10), st.sampled_from(ATTACKS), st.text(st.sampled_from(SAFE), max_size=5)),
    st.sampled_from(ATTACKS),
)
SERVER = BootServer(address="10.77.0.1", http_base="http://10.77.0.1:8080", interface="lo")
LOCATED = re.compile(r"^(?P<file>[^:]+):(?P<line>[0-9]+): (?P<field>\S+): .+", re.S)
# Run the daemons' own checkers on every accepted dnsmasq config, on a few Kea configs per field.
KEA_PER_TARGET = 3
_kea_runs: Counter[str] = Counter()


def _write(root: Path, docs: dict[str, dict[str, Any]]) -> None:
    for rel, doc in docs.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")


def _directives(conf: str) -> list[str]:
    return [line.split("=", 1)[0] for line in conf.split("\n") if line and not line.startswith("#")]


def _commands(script: str) -> list[str]:
    return [line.split(" ", 1)[0] for line in script.split("\n")]


def _render(sot: SoT) -> dict[str, Any]:
    bundle = render_site(sot, flavor="dnsmasq")
    site = get_site(sot)
    host = bundle.hosts["h1"]
    return {
        "dnsmasq": bundle.dhcp,
        "hostsfile": render_dnsmasq_hosts(site_hosts(sot, site)),
        "kea": render_kea(site, site_hosts(sot, site), SERVER),
        "ipxe": host.install,
        "meta": host.meta_data.decode(),
        "user": (host.config or b"").decode(),
    }


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("baseline")
    _write(root, DOCS)
    out = _render(load(root))
    _dnsmasq_test(out["dnsmasq"], root)
    _kea_test(out["kea"], root)
    return out


def _dnsmasq_test(conf: str, where: Path) -> None:
    if shutil.which("dnsmasq") is None:
        pytest.fail("dnsmasq is not installed (run scripts/setup.sh)")
    path = where / "dnsmasq.conf"
    path.write_text(conf, encoding="utf-8")
    res = subprocess.run(["dnsmasq", "--test", "-C", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr + conf


def _kea_test(conf: str, where: Path) -> None:
    if shutil.which("kea-dhcp4") is None:
        pytest.fail("kea-dhcp4 is not installed (run scripts/setup.sh)")
    path = where / "kea.json"
    path.write_text(conf, encoding="utf-8")
    res = subprocess.run(["kea-dhcp4", "-t", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]


def _check_example(target: Target, value: str, baseline: dict[str, Any]) -> None:
    tid, file, path, setter, fields = target
    docs = copy.deepcopy(DOCS)
    setter(docs[file], path, value)
    with tempfile.TemporaryDirectory(prefix="vq-fuzz-") as tmp:
        root = Path(tmp)
        _write(root, docs)
        try:
            sot = load(root)
        except SoTInvalid as exc:
            shown = [str(e) for e in exc.errors]
            for s in shown:
                assert LOCATED.match(s), s
            assert any(e.file == file and e.line > 0 and e.field.startswith(fields) for e in exc.errors) or any(
                e.file == "profiles/p1.yaml" and e.field in ("cmdline", "config") for e in exc.errors
            ), (tid, value, shown)
            return
        try:
            out = _render(sot)
        except RenderError as exc:  # pragma: no cover - the assertion explains
            pytest.fail(f"{tid}={value!r} validated but does not render: {exc}")
        # dnsmasq: the same directives, in the same order, and dnsmasq itself agrees.
        assert _directives(out["dnsmasq"]) == _directives(baseline["dnsmasq"]), (tid, value, out["dnsmasq"])
        assert out["dnsmasq"].count("\n") == baseline["dnsmasq"].count("\n")
        assert out["hostsfile"].count("\n") == 1 and "\r" not in out["hostsfile"]
        _dnsmasq_test(out["dnsmasq"], root)
        # Kea: the same structure; kea-dhcp4 -t on a sample.
        kea, base_kea = json.loads(out["kea"]), json.loads(baseline["kea"])
        assert kea.keys() == base_kea.keys() and len(kea["Dhcp4"]["subnet4"]) == 1
        assert [o["name"] for o in kea["Dhcp4"]["subnet4"][0]["option-data"]] == [o["name"] for o in base_kea["Dhcp4"]["subnet4"][0]["option-data"]]
        if out["kea"] != baseline["kea"] and _kea_runs[tid] < KEA_PER_TARGET:
            _kea_runs[tid] += 1
            _kea_test(out["kea"], root)
        # iPXE: the same commands; the cmdline follows the grammar; nothing for iPXE to expand.
        assert _commands(out["ipxe"]) == _commands(baseline["ipxe"]), (tid, value, out["ipxe"])
        assert "$" not in out["ipxe"]
        kernel = next(line for line in out["ipxe"].split("\n") if line.startswith("kernel "))
        rest = kernel.split(" initrd=initrd.img", 1)[1]
        assert rest == "" or rest.startswith(" "), kernel
        cmdline = rest[1:]
        assert cmdline_error(cmdline) is None, cmdline
        # NoCloud: meta-data has exactly its two keys; user-data carries the value verbatim.
        meta = yaml.safe_load(out["meta"])
        assert meta == {"instance-id": meta["instance-id"], "local-hostname": "h1"}
        user = yaml.safe_load(out["user"])
        assert set(user) == {"hostname", "fqdn", "write_files"} and user["hostname"] == "h1"
        # (What the SoT holds: YAML itself folds some breaks, e.g. a raw NEL reads as a space.)
        assert user["write_files"][0]["content"] == sot.clusters["c1"].vars["v"]


@pytest.mark.parametrize("target", TARGETS, ids=[t[0] for t in TARGETS])
def test_arbitrary_strings_are_refused_or_rendered_as_meant(target: Target, baseline: dict[str, Any]) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(VALUES)
    def run(value: str) -> None:
        _check_example(target, value, baseline)

    run()


def test_injection_in_domain_and_interface_is_refused_with_location(baseline: dict[str, Any]) -> None:
    """The reported attack, as a fixed example: refused, located, never rendered."""
    for target in TARGETS[:2]:
        docs = copy.deepcopy(DOCS)
        target[3](docs[target[1]], target[2], "fz.test\ndhcp-script=/tmp/x")
        with tempfile.TemporaryDirectory(prefix="vq-fuzz-") as tmp:
            _write(Path(tmp), docs)
            with pytest.raises(SoTInvalid) as info:
                load(Path(tmp))
        assert [e.field for e in info.value.errors] == [target[4][0]]
        assert str(info.value.errors[0]).startswith(f"sites/fz.yaml:{info.value.errors[0].line}: {target[4][0]}: ")
