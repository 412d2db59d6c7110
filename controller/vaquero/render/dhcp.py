"""DHCP configs for a site: dnsmasq (the default) and ISC Kea DHCPv4.

Both answer legacy PXE firmware with an iPXE binary over TFTP (BIOS: undionly.kpxe, UEFI:
ipxe.efi or snponly.efi, picked by option 93), UEFI HTTP boot (arch 16) with ipxe.efi over
HTTP, and iPXE itself (user class "iPXE" / option 175) with the agent's HTTP chain script,
which fetches the host's own script by MAC. Static reservations come from the SoT hosts.
In `proxy` mode (dnsmasq only) another DHCP server hands out addresses and options; Vaquero
answers PXE only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from vaquero.sot.models import Network, Site

from .site import RenderError, SiteHost

Flavor = Literal["dnsmasq", "kea"]


@dataclass(frozen=True)
class BootServer:
    """Where hosts fetch iPXE (TFTP) and their scripts (HTTP): the agent."""

    address: str
    http_base: str
    bios_file: str = "undionly.kpxe"
    efi_file: str = "ipxe.efi"
    chain_path: str = "/boot.ipxe"
    interface: str | None = None
    log_dhcp: bool = False
    # Send IPv6 router adverts built from the interface's own IPv6 prefix. iPXE waits for an
    # RA before it boots (~15 s without one); a network with an IPv6 router has one already.
    ipv6_ra: bool = False

    @property
    def chain_url(self) -> str:
        return f"{self.http_base.rstrip('/')}{self.chain_path}"

    @property
    def efi_http_url(self) -> str:
        return f"{self.http_base.rstrip('/')}/ipxe/{self.efi_file}"


_LEASE_RE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def lease_seconds(value: str) -> int:
    if value == "infinite":
        return 0xFFFFFFFF
    unit = value[-1]
    if unit.isdigit():
        return int(value)
    return int(value[:-1]) * _LEASE_RE_UNITS[unit]


def _tag(net: Network) -> str:
    return f"net-{net.name}"


def dnsmasq_host_lines(hosts: list[SiteHost]) -> list[str]:
    """Static reservations, in dhcp-hostsfile syntax (a dhcp-host= value per line)."""
    out = []
    for h in hosts:
        macs = ",".join(h.host.macs)
        if h.network.dhcp.mode == "proxy" or h.ip is None:
            out.append(f"{macs},set:known,{h.name}")
        else:
            out.append(f"{macs},set:known,{h.ip},{h.name}")
    return out


def render_dnsmasq_hosts(hosts: list[SiteHost]) -> str:
    """The dhcp-hostsfile: dnsmasq re-reads it on SIGHUP, so host changes need no restart."""
    return "".join(f"{line}\n" for line in dnsmasq_host_lines(hosts))


def render_dnsmasq(site: Site, hosts: list[SiteHost], server: BootServer, *, hosts_file: str | None = None) -> str:
    """A complete dnsmasq configuration (DHCP only: port=0, no DNS, no TFTP).

    With `hosts_file`, reservations go to that file (see render_dnsmasq_hosts) instead of
    inline, so the agent can apply host changes with SIGHUP rather than a restart.
    """
    out = [
        f"# dnsmasq configuration for site {site.name}, rendered by Vaquero. Do not edit: changes are overwritten.",
        "port=0",
        "bind-dynamic",
        "no-resolv",
        "no-hosts",
        "no-ping",
        "enable-ra",
        "dhcp-no-override",
    ]
    if server.log_dhcp:
        out.append("log-dhcp")
    interfaces = sorted({i for i in ([server.interface] if server.interface else [n.interface for n in site.networks]) if i})
    out += [f"interface={i}" for i in interfaces]
    proxy = any(n.dhcp.mode == "proxy" for n in site.networks)
    if not proxy:
        # Reservations are by MAC: firmware, iPXE and the OS send different client ids, and the
        # host must keep its address through all three.
        out += ["dhcp-authoritative", "dhcp-ignore-clid"]
    if server.ipv6_ra:
        out += [f"dhcp-range=::,constructor:{i},ra-only" for i in interfaces]
    out += [
        "",
        "# iPXE sends user class 'iPXE' and option 175; BIOS and UEFI are told apart by option 93.",
        "dhcp-match=set:ipxe,175",
        "dhcp-userclass=set:ipxe,iPXE",
        "dhcp-match=set:efi64,option:client-arch,7",
        "dhcp-match=set:efi64,option:client-arch,9",
        "dhcp-match=set:efihttp,option:client-arch,16",
    ]
    for net in site.networks:
        t = _tag(net)
        sub = net.subnet
        out += ["", f"# network {net.name} ({sub}), mode {net.dhcp.mode}"]
        if net.dhcp.mode == "proxy":
            out.append(f"dhcp-range=set:{t},{sub.network_address},proxy,{sub.netmask}")
            continue
        lease = net.dhcp.lease_time
        if net.dhcp.range is not None:
            first, last = net.dhcp.range
            out.append(f"dhcp-range=set:{t},{first},{last},{sub.netmask},{lease}")
        else:
            out.append(f"dhcp-range=set:{t},{sub.network_address},static,{sub.netmask},{lease}")
        if net.gateway is not None:
            out.append(f"dhcp-option=tag:{t},option:router,{net.gateway}")
        if net.dns:
            out.append(f"dhcp-option=tag:{t},option:dns-server,{','.join(str(d) for d in net.dns)}")
        if net.ntp:
            # Forced: iPXE and some firmware do not ask for option 42 but the OS wants it.
            out.append(f"dhcp-option-force=tag:{t},option:ntp-server,{','.join(str(n) for n in net.ntp)}")
        if net.domain:
            out.append(f"dhcp-option=tag:{t},option:domain-name,{net.domain}")
    if proxy:
        out += [
            "",
            "# proxy mode: another server hands out addresses; answer PXE only.",
            f'pxe-service=tag:!ipxe,x86PC,"Vaquero iPXE",{server.bios_file}',
            f'pxe-service=tag:!ipxe,X86-64_EFI,"Vaquero iPXE",{server.efi_file}',
            f'pxe-service=tag:!ipxe,BC_EFI,"Vaquero iPXE",{server.efi_file}',
            f'pxe-service=tag:ipxe,x86PC,"Vaquero",{server.chain_url}',
            f'pxe-service=tag:ipxe,X86-64_EFI,"Vaquero",{server.chain_url}',
            f'pxe-service=tag:ipxe,BC_EFI,"Vaquero",{server.chain_url}',
        ]
    else:
        out += [
            "",
            "# iPXE: do not wait for ProxyDHCP (saves seconds per boot).",
            "dhcp-option=encap:175,176,1",
            f"dhcp-boot=tag:ipxe,{server.chain_url}",
            "dhcp-option=tag:efihttp,option:vendor-class,HTTPClient",
            f"dhcp-boot=tag:!ipxe,tag:efihttp,{server.efi_http_url}",
            f"dhcp-boot=tag:!ipxe,tag:!efihttp,tag:efi64,{server.efi_file},,{server.address}",
            f"dhcp-boot=tag:!ipxe,tag:!efihttp,tag:!efi64,{server.bios_file},,{server.address}",
        ]
    if hosts_file is not None:
        out += ["", "# hosts of the SoT: static reservations by MAC, re-read on SIGHUP", f"dhcp-hostsfile={hosts_file}"]
    elif hosts:
        out += ["", "# hosts of the SoT: static reservations by MAC (name sent as option 12)"]
        out += [f"dhcp-host={line}" for line in dnsmasq_host_lines(hosts)]
    return "\n".join(out) + "\n"


def _client_classes(server: BootServer) -> list[dict[str, Any]]:
    is_ipxe = "(substring(option[77].hex,0,4) == 'iPXE' or option[175].exists)"
    return [
        {"name": "ipxe", "test": is_ipxe, "boot-file-name": server.chain_url},
        {
            "name": "efi-http",
            "test": f"not {is_ipxe} and option[93].hex == 0x0010",
            "boot-file-name": server.efi_http_url,
            "option-data": [{"name": "vendor-class-identifier", "data": "HTTPClient"}],
        },
        {
            "name": "efi-x64",
            "test": f"not {is_ipxe} and (option[93].hex == 0x0007 or option[93].hex == 0x0009)",
            "next-server": server.address,
            "boot-file-name": server.efi_file,
        },
        {
            "name": "bios",
            "test": f"not {is_ipxe} and (option[93].hex == 0x0000 or not option[93].exists)",
            "next-server": server.address,
            "boot-file-name": server.bios_file,
        },
    ]


def render_kea(site: Site, hosts: list[SiteHost], server: BootServer, *, lease_file: str | None = None) -> str:
    """A complete kea-dhcp4 JSON configuration. Kea has no ProxyDHCP: proxy mode is refused."""
    if any(n.dhcp.mode == "proxy" for n in site.networks):
        raise RenderError(f"site {site.name}: Kea cannot run in proxy mode; use the dnsmasq flavor for proxy networks")
    interfaces = sorted({i for i in ([server.interface] if server.interface else [n.interface for n in site.networks]) if i}) or ["*"]
    subnets = []
    for i, net in enumerate(site.networks, start=1):
        options: list[dict[str, Any]] = []
        if net.gateway is not None:
            options.append({"name": "routers", "data": str(net.gateway)})
        if net.dns:
            options.append({"name": "domain-name-servers", "data": ", ".join(str(d) for d in net.dns)})
        if net.ntp:
            options.append({"name": "ntp-servers", "data": ", ".join(str(n) for n in net.ntp), "always-send": True})
        if net.domain:
            options.append({"name": "domain-name", "data": net.domain})
        reservations = []
        for h in hosts:
            if h.network.name != net.name:
                continue
            for mac in h.host.macs:
                r: dict[str, Any] = {"hw-address": mac, "hostname": h.name}
                if h.ip is not None and len(h.host.macs) == 1:
                    r["ip-address"] = str(h.ip)
                elif h.ip is not None and mac == h.host.macs[0]:
                    r["ip-address"] = str(h.ip)
                reservations.append(r)
        subnet: dict[str, Any] = {
            "id": i,
            "subnet": str(net.subnet),
            "valid-lifetime": lease_seconds(net.dhcp.lease_time),
            "option-data": options,
            "reservations": reservations,
        }
        if net.dhcp.range is not None:
            subnet["pools"] = [{"pool": f"{net.dhcp.range[0]} - {net.dhcp.range[1]}"}]
        if net.interface and len(interfaces) > 1:
            subnet["interface"] = net.interface
        subnets.append(subnet)
    lease_db: dict[str, Any] = {"type": "memfile", "lfc-interval": 3600}
    if lease_file:
        lease_db["name"] = lease_file
    else:
        lease_db["persist"] = False
    config = {
        "Dhcp4": {
            "interfaces-config": {"interfaces": interfaces},
            "lease-database": lease_db,
            "authoritative": True,
            "reservations-out-of-pool": True,
            "host-reservation-identifiers": ["hw-address"],
            "client-classes": _client_classes(server),
            "subnet4": subnets,
        }
    }
    return json.dumps(config, indent=2) + "\n"


def render_dhcp(flavor: Flavor, site: Site, hosts: list[SiteHost], server: BootServer) -> str:
    if flavor == "dnsmasq":
        return render_dnsmasq(site, hosts, server)
    if flavor == "kea":
        return render_kea(site, hosts, server)
    raise RenderError(f"unknown DHCP flavor {flavor!r} (dnsmasq or kea)")
