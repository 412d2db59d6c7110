"""The host file proposed for one inspected machine: a ``kind: Host`` document whose values come from
the report (dumped by a safe YAML dumper, never interpolated) and whose comments, for the reviewer,
carry the report's other facts as JSON strings (escaped: no report string can end a comment line).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

import yaml

from ..inspect import InspectionReport
from ..sot import SoT
from ..sot.models import Network, Site

NAME_PREFIX = "new-"


@dataclass(frozen=True)
class HostFile:
    name: str
    path: str  # relative to the SoT root: hosts/<name>.yaml
    text: str
    address: str
    network: str


class NoAddress(Exception):
    """The network has no free static address left."""


def _claimed(sot: SoT, net: Network) -> set[IPv4Address]:
    taken = {ip for _, _, host in sot.hosts() for ip in host.ips.values()}
    taken |= set(net.dns) | set(net.ntp)
    if net.gateway is not None:
        taken.add(net.gateway)
    return taken


def free_address(sot: SoT, net: Network, *, also_taken: Iterable[str] = ()) -> IPv4Address:
    """The first address of ``net`` a new host may have: inside the subnet, outside the DHCP range, not
    the gateway or a DNS/NTP server, used by no host of the SoT and by no other pending proposal."""
    taken = _claimed(sot, net) | {IPv4Address(a) for a in also_taken}
    rng = net.dhcp.range
    for ip in net.subnet.hosts():
        if ip in taken or (rng is not None and rng[0] <= ip <= rng[1]):
            continue
        return ip
    raise NoAddress(f"network {net.name} ({net.subnet}) has no free static address outside its DHCP range")


def host_name(sot: SoT, mac: str) -> str:
    """new-<the boot MAC's hex digits>, made unique against the SoT's hosts (a suffix if taken)."""
    base = NAME_PREFIX + mac.replace(":", "")
    names = {host.name for _, _, host in sot.hosts()} | set(sot.host_docs)
    name, n = base, 2
    while name in names:
        name, n = f"{base}-{n}", n + 1
    return name


def _facts(report: InspectionReport) -> Iterator[tuple[str, str]]:
    """(label, value as JSON) of what the report says besides the host's fields."""
    for label, value in (("vendor", report.vendor), ("product", report.product), ("cpu model", report.cpu_model)):
        if value is not None:
            yield label, json.dumps(value)
    yield "logical CPUs", json.dumps(report.cpus)
    yield "memory (MiB)", json.dumps(report.memory_mib)
    for nic in report.nics:
        yield f"nic {nic.name}", json.dumps(nic.mac)
    for disk in report.disks:
        shown: dict[str, Any] = {"size_bytes": disk.size_bytes}
        shown |= {k: v for k, v in (("model", disk.model), ("serial", disk.serial), ("rotational", disk.rotational)) if v is not None}
        shown["removable"] = disk.removable
        yield f"disk {disk.name}", json.dumps(shown, sort_keys=False)


def facts(report: InspectionReport) -> list[tuple[str, str]]:
    return list(_facts(report))


def host_file(sot: SoT, site: Site, report: InspectionReport, *, agent: str, also_taken: Iterable[str] = ()) -> HostFile:
    """The proposed host document for ``report``; NoAddress when the network is full."""
    disc = site.discovery
    assert disc is not None
    net = next((n for n in site.networks if n.name == disc.network), None) if disc.network else site.networks[0]
    if net is None:
        raise NoAddress(f"site {site.name} has no network {disc.network}")
    ip = free_address(sot, net, also_taken=also_taken)
    name = host_name(sot, report.boot_mac)
    doc: dict[str, Any] = {"apiVersion": "vaquero/v1", "kind": "Host", "name": name, "cluster": disc.cluster, "macs": report.macs}
    if report.uuid is not None:
        doc["uuid"] = report.uuid.lower()  # as the SoT keeps it: a plan compares it with the BMC's
    if report.serial is not None:
        doc["serial"] = report.serial
    doc["ips"] = {net.name: str(ip)}
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=False, width=4096)
    lines = [
        f"# Proposed by Vaquero: a machine the SoT did not know netbooted at site {json.dumps(site.name)} (agent {json.dumps(agent)})",
        "# and its inspection ramdisk reported it. Nothing is installed until this file is merged and the",
        "# plan of the merge is approved.",
        "# No BMC: a reviewer adds it (bmc: {type, address, credential}) if the host is to be power-managed;",
        "# the report cannot say where the BMC is or how to log in to it.",
        "# What the machine reported (JSON strings, as claimed, unverified):",
        *(f"#   {label}: {value}" for label, value in facts(report)),
    ]
    return HostFile(name=name, path=f"hosts/{name}.yaml", text="\n".join(lines) + "\n" + body, address=str(ip), network=net.name)
