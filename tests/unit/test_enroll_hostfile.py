"""The proposed host file: values from a hostile report round-trip exactly and add nothing, the
comments carry only escaped text, the address is a free static one, and the file validates."""

from __future__ import annotations

import json
import shutil
from ipaddress import IPv4Address
from pathlib import Path

import yaml

from vaquero.enroll import free_address, host_file
from vaquero.enroll.hostfile import facts
from vaquero.enroll.pull import body_of, markdown_text
from vaquero.inspect import InspectionReport
from vaquero.sot import load

REPO = Path(__file__).resolve().parents[2]
HOSTILE = {
    "serial": "{{ lookup('pipe', 'id') }} $(reboot) `id`; | & \"x\" 'y' # !!python/object:os.system",
    "product": "*alias &anchor ? - : {a: b} [c] ---  ... % @ <script>|x|</script> ${IFS}",
    "vendor": "Ünïcødé ☃ \\ \\n",
    "cpu_model": "# not: a comment] }",
}


def report(**kw) -> InspectionReport:
    body = {
        "boot_mac": "52:54:00:aa:00:09",
        "nics": [{"name": "ens3", "mac": "52:54:00:aa:00:09"}, {"name": "ens4", "mac": "52:54:00:aa:00:0a"}],
        "uuid": "5A9A0001-0000-4000-8000-00000000AA09",
        "cpus": 2,
        "memory_mib": 1024,
        "disks": [{"name": "vda", "size_bytes": 10 << 30, "model": HOSTILE["product"], "serial": HOSTILE["serial"], "rotational": True}],
    } | HOSTILE
    return InspectionReport.model_validate(body | kw)


def discovery_sot(tmp_path: Path) -> Path:
    root = tmp_path / "sot"
    shutil.copytree(REPO / "inventories" / "lab", root)
    site = root / "sites" / "lab.yaml"
    site.write_text(site.read_text() + "discovery: {enabled: true, cluster: lab}\n")
    return root


def test_a_hostile_report_round_trips_exactly_and_adds_nothing(tmp_path):
    root = discovery_sot(tmp_path)
    sot = load(root)
    hf = host_file(sot, sot.sites["lab"], report(), agent="lab-agent")
    assert hf.name == "new-525400aa0009" and hf.path == "hosts/new-525400aa0009.yaml"
    doc = yaml.safe_load(hf.text)
    assert doc == {
        "apiVersion": "vaquero/v1",
        "kind": "Host",
        "name": "new-525400aa0009",
        "cluster": "lab",
        "macs": ["52:54:00:aa:00:09", "52:54:00:aa:00:0a"],
        "uuid": "5a9a0001-0000-4000-8000-00000000aa09",
        "serial": HOSTILE["serial"],
        "ips": {"prov": "10.90.0.2"},
    }
    # Comments: only whole lines starting with '#', each report string in them as its JSON form.
    comments = [line for line in hf.text.splitlines() if line.startswith("#")]
    assert hf.text.index("apiVersion") > max(hf.text.index(c) for c in comments)
    for key in ("product", "vendor", "cpu_model"):
        assert any(line.endswith(json.dumps(HOSTILE[key])) for line in comments), key
    assert "bmc" not in doc and any("No BMC" in c for c in comments)
    # and the SoT loads it with the same values
    (root / "hosts").mkdir()
    (root / hf.path).write_text(hf.text)
    merged = load(root).host("new-525400aa0009")
    assert merged is not None and merged[1].serial == HOSTILE["serial"] and merged[1].macs == doc["macs"]


def test_the_pull_request_body_shows_report_strings_as_text():
    body = body_of(facts(report()), host="new-525400aa0009", path="hosts/new-525400aa0009.yaml", site="lab", address="10.90.0.2", network="prov")
    table = [line for line in body.splitlines() if line.startswith("| ")]
    for row in table[1:]:
        assert row.count(" | ") == 1 and "<script>" not in row and "</script>" not in row  # no cell break, no HTML
    assert markdown_text("a|b<c>[d](e)") == "a\\|b\\<c\\>\\[d\\]\\(e\\)"
    assert "Nothing is installed until this is merged and its plan approved." in body


def test_the_address_is_free_static_and_not_claimed_twice(tmp_path):
    sot = load(discovery_sot(tmp_path))
    net = sot.sites["lab"].networks[0]
    first = free_address(sot, net)
    assert first == IPv4Address("10.90.0.2")  # .1 is the gateway (and the DNS and NTP server)
    assert free_address(sot, net, also_taken={"10.90.0.2", "10.90.0.3"}) == IPv4Address("10.90.0.4")
    used = {ip for _, _, h in sot.hosts() for ip in h.ips.values()}
    rng = net.dhcp.range
    assert rng is not None
    taken = {str(IPv4Address(n)) for n in range(int(IPv4Address("10.90.0.2")), int(IPv4Address("10.90.0.99")) + 1)}
    # the whole static part below the range taken: the first address after the DHCP range
    after = free_address(sot, net, also_taken=taken - {str(ip) for ip in used})
    assert after == IPv4Address("10.90.0.200") and after not in used and not (rng[0] <= after <= rng[1])
