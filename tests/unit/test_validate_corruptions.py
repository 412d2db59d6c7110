"""Corrupt copies of the example SoTs and check each error names the right file, line and field.

The expected line is found independently of the validator: it is the line of the corrupted text
in the mutated file (or a line given explicitly where the error belongs to an enclosing node).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from vaquero.sot import SoTInvalid, load

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Case:
    id: str
    base: str  # lab | federation
    file: str
    old: str
    new: str
    field: str
    message: str
    expect_line: str | None = None  # text whose line the error must point at (default: `new`)
    expect_file: str | None = None


CASES = [
    Case("malformed-mac", "lab", "clusters/lab.yaml", '"52:54:00:00:10:03"', '"52:54:00:00:10:zz"', "hosts[2].macs", "not a MAC"),
    Case("duplicate-mac", "lab", "clusters/lab.yaml", 'macs: ["52:54:00:00:10:02"]', 'macs: ["52:54:00:00:10:01"]', "hosts[1].macs[0]", "duplicate MAC"),
    Case("malformed-uuid", "lab", "clusters/lab.yaml", "uuid: 5a9a0001-0000-4000-8000-000000001001", "uuid: not-a-uuid", "hosts[0].uuid", "is not a UUID"),
    Case(
        "duplicate-uuid",
        "lab",
        "clusters/lab.yaml",
        "uuid: 5a9a0001-0000-4000-8000-000000001003",
        "uuid: 5A9A0001-0000-4000-8000-000000001001",
        "hosts[2].uuid",
        "duplicate UUID",
    ),
    Case("duplicate-hostname", "lab", "clusters/lab.yaml", "name: node4", "name: node3", "hosts[3].name", "duplicate host name"),
    Case("duplicate-ip", "lab", "clusters/lab.yaml", "ips: {prov: 10.90.0.12}", "ips: {prov: 10.90.0.11}", "hosts[1].ips.prov", "duplicate IP"),
    Case("ip-outside-subnet", "lab", "clusters/lab.yaml", "ips: {prov: 10.90.0.13}", "ips: {prov: 10.91.0.13}", "hosts[2].ips.prov", "outside subnet"),
    Case("ip-in-dynamic-range", "lab", "clusters/lab.yaml", "ips: {prov: 10.90.0.14}", "ips: {prov: 10.90.0.150}", "hosts[3].ips.prov", "dynamic DHCP range"),
    Case("ip-is-gateway", "lab", "clusters/lab.yaml", "ips: {prov: 10.90.0.14}", "ips: {prov: 10.90.0.1}", "hosts[3].ips.prov", "is the gateway"),
    Case("unknown-profile", "lab", "clusters/lab.yaml", "profile: lab-linux", "profile: lab-linuks", "profile", "unknown profile 'lab-linuks'"),
    Case("unknown-site", "lab", "clusters/lab.yaml", "site: lab\n", "site: lob\n", "site", "unknown site 'lob'"),
    Case(
        "unknown-credential",
        "lab",
        "clusters/lab.yaml",
        "port: 6231, credential: lab-bmc",
        "port: 6231, credential: lab-bmx",
        "hosts[0].bmc.credential",
        "unknown credential",
    ),
    Case("unknown-hook", "lab", "clusters/lab.yaml", "validate: [agent-saw-callback]", "validate: [agent-saw-callbak]", "hooks.validate[0]", "unknown hook"),
    Case("unknown-network", "lab", "clusters/lab.yaml", "ips: {prov: 10.90.0.11}", "ips: {prv: 10.90.0.11}", "hosts[0].ips.prv", "unknown network 'prv'"),
    Case(
        "min-available-impossible", "lab", "clusters/lab.yaml", "min_available: 1", "min_available: 4", "policy.min_available", "no host could ever be rebooted"
    ),
    Case(
        "min-available-percent-impossible", "lab", "clusters/lab.yaml", "min_available: 1", "min_available: 100%", "policy.min_available", "no host could ever"
    ),
    Case("max-concurrent-zero", "lab", "clusters/lab.yaml", "max_concurrent: 2", "max_concurrent: 0", "policy.max_concurrent", "greater than or equal to 1"),
    Case("unknown-field-typo", "lab", "sites/lab.yaml", "lease_time: 1h", "lease_tme: 1h", "networks[0].dhcp.lease_tme", "unknown field"),
    Case("gateway-outside-subnet", "lab", "sites/lab.yaml", "gateway: 10.90.0.1", "gateway: 10.80.0.1", "networks[0].gateway", "outside subnet"),
    Case(
        "range-outside-subnet",
        "lab",
        "sites/lab.yaml",
        "range: [10.90.0.100, 10.90.0.199]",
        "range: [10.90.0.100, 10.90.1.199]",
        "networks[0].dhcp.range[1]",
        "outside subnet",
    ),
    Case(
        "range-reversed",
        "lab",
        "sites/lab.yaml",
        "range: [10.90.0.100, 10.90.0.199]",
        "range: [10.90.0.199, 10.90.0.100]",
        "networks[0].dhcp.range",
        "is after its end",
    ),
    Case(
        "literal-password-in-git",
        "lab",
        "sites/lab.yaml",
        "    password:\n      env: VAQUERO_LAB_BMC_PASSWORD",
        "    password: hunter2",
        "credentials.lab-bmc.password",
        "valid dictionary",
    ),
    Case(
        "secret-ref-both",
        "lab",
        "sites/lab.yaml",
        "      env: VAQUERO_LAB_BMC_PASSWORD",
        "      env: X\n      file: /etc/x",
        "credentials.lab-bmc.password",
        "exactly one",
        "password:",
    ),
    Case("wrong-api-version", "lab", "profiles/lab-linux.yaml", "apiVersion: vaquero/v1", "apiVersion: vaquero/v2", "apiVersion", "must be 'vaquero/v1'"),
    Case("unknown-kind", "lab", "hooks/lab-hooks.yaml", "kind: Hook", "kind: Hok", "kind", "unknown kind 'Hok'"),
    Case(
        "bad-sha256",
        "lab",
        "profiles/lab-linux.yaml",
        'sha256: "0000000000000000000000000000000000000000000000000000000000000000"',
        "sha256: abc",
        "kernel.sha256",
        "should match pattern",
    ),
    Case(
        "unquoted-sha256",
        "lab",
        "profiles/lab-linux.yaml",
        'sha256: "0000000000000000000000000000000000000000000000000000000000000000"',
        "sha256: 1234",
        "kernel.sha256",
        "put the value in quotes",
    ),
    Case(
        "template-undefined",
        "lab",
        "profiles/lab-linux.yaml",
        "vaquero.host={{ host.name }}",
        "vaquero.host={{ host.nmae }}",
        "cmdline",
        "does not render",
        "cmdline:",
    ),
    Case(
        "template-undefined-in-tojson",
        "lab",
        "templates/user-data.j2",
        "{{ network.ntp | tojson }}",
        "{{ [network.ntpp] | tojson }}",
        "config",
        "does not render",
        "config:",
        "profiles/lab-linux.yaml",
    ),
    Case(
        "template-syntax",
        "lab",
        "profiles/lab-linux.yaml",
        "vaquero.config={{ urls.config }}",
        "vaquero.config={{ urls.config }",
        "cmdline",
        "template syntax error",
        "cmdline:",
    ),
    Case(
        "config-template-missing",
        "lab",
        "profiles/lab-linux.yaml",
        "template: templates/user-data.j2",
        "template: templates/missing.j2",
        "config.template",
        "does not exist",
    ),
    Case(
        "config-template-escapes",
        "lab",
        "profiles/lab-linux.yaml",
        "template: templates/user-data.j2",
        "template: ../../etc/passwd",
        "config.template",
        "relative path inside",
    ),
    Case("yaml-syntax", "lab", "clusters/lab.yaml", "  - name: node2\n", "  - name: node2: x\n", "(document)", "YAML syntax error", "name: node2: x"),
    Case("unknown-depends-on", "federation", "clusters/k8s-control.yaml", "- etcd\n", "- etcdd\n", "depends_on[0]", "unknown cluster 'etcdd'"),
    Case(
        "dependency-cycle",
        "federation",
        "clusters/etcd.yaml",
        "description: etcd for",
        "depends_on: [k8s-workers]\ndescription: etcd for",
        "depends_on[0]",
        "dependency cycle",
        "- etcd\n",
        "clusters/k8s-control.yaml",
    ),
    Case("hook-file-missing", "federation", "hooks/hooks.yaml", "file: tasks/flush-cache.yml", "file: tasks/nope.yml", "file", "does not exist"),
    Case(
        "hook-missing-url",
        "federation",
        "hooks/hooks.yaml",
        'url: "https://{{ host.ip }}:2379/health"\n',
        "",
        "(document)",
        "needs url",
        "apiVersion: vaquero/v1\nkind: Hook\nname: etcd-healthy",
    ),
    Case(
        "bad-timezone",
        "federation",
        "clusters/k8s-workers.yaml",
        "timezone: Europe/Berlin",
        "timezone: Europe/Berln",
        "policy.windows[0].timezone",
        "unknown time zone",
    ),
    Case(
        "unquoted-window-time",
        "federation",
        "clusters/k8s-workers.yaml",
        "start: '22:00'",
        "start: 22:00",
        "policy.windows[0].start",
        "put the value in quotes",
    ),
    Case(
        "unknown-first-host",
        "federation",
        "clusters/k8s-workers.yaml",
        "  first:\n  - worker1",
        "  first:\n  - worker9",
        "policy.first[0]",
        "unknown host 'worker9'",
        "- worker9",
    ),
    Case("ignition-not-json", "federation", "profiles/flatcar.yaml", '{"ignition": {"version"', '{ignition: {"version"', "config", "is not JSON", "config:"),
    Case(
        "proxy-mode-with-range",
        "federation",
        "sites/dc-west.yaml",
        "dhcp: {mode: proxy}",
        "dhcp: {mode: proxy, range: [10.20.1.100, 10.20.1.200]}",
        "networks[0].dhcp.range",
        "proxy-mode network",
    ),
    Case(
        "unknown-stage-role",
        "federation",
        "clusters/k8s-workers.yaml",
        "    - canary\n  - name: rest",
        "    - canery\n  - name: rest",
        "policy.stages[0].roles[0]",
        "no host in this cluster has role 'canery'",
        "- canery",
    ),
    Case("bad-day", "federation", "clusters/etcd.yaml", "- tue\n", "- tuesday\n", "policy.windows[0].days[0]", "Input should be", "- tuesday"),
    Case("bad-hostname", "federation", "clusters/edge.yaml", "name: edge2", "name: Edge_2", "hosts[1].name", "should match pattern"),
    Case(
        "discovery-unknown-cluster",
        "lab",
        "sites/lab.yaml",
        "credentials:\n",
        "discovery:\n  enabled: true\n  cluster: lob\ncredentials:\n",
        "discovery.cluster",
        "unknown cluster 'lob'",
        "cluster: lob",
    ),
    Case(
        "discovery-unknown-network",
        "lab",
        "sites/lab.yaml",
        "credentials:\n",
        "discovery:\n  cluster: lab\n  network: provv\ncredentials:\n",
        "discovery.network",
        "unknown network 'provv'",
        "network: provv",
    ),
    Case(
        "discovery-without-cluster",
        "lab",
        "sites/lab.yaml",
        "credentials:\n",
        "discovery:\n  enabled: true\ncredentials:\n",
        "discovery.cluster",
        "Field required",
        "discovery:",
    ),
]


def _line_of(text: str, needle: str) -> int:
    idx = text.index(needle)
    return text.count("\n", 0, idx) + 1


@pytest.fixture
def sot_copy(tmp_path: Path):
    def make(base: str) -> Path:
        dst = tmp_path / base
        shutil.copytree(REPO / "inventories" / base, dst)
        return dst

    return make


def _mutate(root: Path, case: Case) -> int:
    """Apply the corruption; return the line where the edit starts."""
    path = root / case.file
    text = path.read_text()
    assert case.old in text, f"fixture drifted: {case.old!r} not in {case.file}"
    at = text.index(case.old)
    path.write_text(text[:at] + case.new + text[at + len(case.old) :])
    return text.count("\n", 0, at) + 1


def test_at_least_25_distinct_corruptions():
    assert len({c.id for c in CASES}) == len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corruption_is_reported_at_file_line_field(sot_copy, case: Case):
    root = sot_copy(case.base)
    edit_line = _mutate(root, case)
    with pytest.raises(SoTInvalid) as info:
        load(root)
    expect_file = case.expect_file or case.file
    expect_line = _line_of((root / expect_file).read_text(), case.expect_line) if case.expect_line else edit_line
    matches = [e for e in info.value.errors if case.message in e.message]
    assert matches, f"no error mentions {case.message!r}: {[str(e) for e in info.value.errors]}"
    err = matches[0]
    assert (err.file, err.line, err.field) == (expect_file, expect_line, case.field), str(err)
    # The error's text form is what a person reads: it must carry all three.
    assert str(err).startswith(f"{expect_file}:{expect_line}: {case.field}: ")


def test_all_errors_reported_at_once(sot_copy):
    root = sot_copy("lab")
    picked = [c for c in CASES if c.base == "lab" and c.id in ("malformed-mac", "unknown-field-typo", "bad-sha256", "unknown-kind")]
    for case in picked:
        _mutate(root, case)
    with pytest.raises(SoTInvalid) as info:
        load(root)
    messages = " | ".join(e.message for e in info.value.errors)
    for case in picked:
        assert case.message in messages


def test_examples_are_valid():
    lab = load(REPO / "inventories" / "lab")
    fed = load(REPO / "inventories" / "federation")
    assert len(list(lab.hosts())) == 4
    assert {c.site for c in fed.clusters.values()} == {"dc-east", "dc-west"}
    bmc_types = {h.bmc.type for _, _, h in fed.hosts() if h.bmc}
    assert bmc_types == {"ipmi", "redfish"}
    assert any(c.depends_on for c in fed.clusters.values())
