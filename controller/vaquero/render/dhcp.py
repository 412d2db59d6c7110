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
import re
from dataclasses import dataclass
from typing import Any, Literal

from vaquero.sot.models import Network, Site, control_char

from .site import RenderError, SiteHost, safe

Flavor = Literal["dnsmasq", "kea"]
_IPV4 = re.compile(r"[0-9.]+")  # looks like an address: then it must be a valid one


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
    return f"net-{safe(net.name, 'name', f'network {net.name!r}: name')}"


def _one_line(lines: list[str], what: str) -> str:
    """Join config lines, refusing any that would become two (a value carrying a line break)."""
    for line in lines:
        if control_char(line) is not None:
            raise RenderError(f"{what}: line {line!r} holds a control character: refused")
    return "".join(f"{line}\n" for line in lines)


def _server(server: BootServer, *, name_ok: bool = False) -> dict[str, str]:
    """The agent's own values, checked like SoT values: they come from flags and config files.

    name_ok: dnsmasq takes a DNS name as the TFTP server (its `dhcp-boot` third field) and resolves
    it itself; Kea's next-server must be an IPv4 address.
    """
    where = "boot server"
    if name_ok and not _IPV4.fullmatch(str(server.address)):
        address = safe(server.address, "domain", f"{where}: address (an IPv4 address or a DNS name)")
    else:
        address = safe(server.address, "ipv4", f"{where}: address (Kea's next-server must be an IPv4 address)" if not name_ok else f"{where}: address")
    return {
        "address": address,
        "bios_file": safe(server.bios_file, "file", f"{where}: bios_file"),
        "efi_file": safe(server.efi_file, "file", f"{where}: efi_file"),
        "chain_url": safe(server.chain_url, "url", f"{where}: chain_url"),
        "efi_http_url": safe(server.efi_http_url, "url", f"{where}: efi_http_url"),
    }


def _interfaces(site: Site, server: BootServer) -> list[str]:
    if server.interface:
        return [safe(server.interface, "interface", "boot server: interface")]
    return sorted({safe(n.interface, "interface", f"site {site.name}: network {n.name}: interface") for n in site.networks if n.interface})


def _host_fields(h: SiteHost) -> tuple[list[str], str, str | None]:
    where = f"host {h.name}"
    name = safe(h.name, "name", f"{where}: name")
    macs = [safe(m, "mac", f"{where}: macs") for m in h.host.macs]
    ip = None if h.ip is None else safe(h.ip, "ipv4", f"{where}: ips.{h.network.name}")
    return macs, name, ip


def dnsmasq_host_lines(hosts: list[SiteHost]) -> list[str]:
    """Static reservations, in dhcp-hostsfile syntax (a dhcp-host= value per line)."""
    out = []
    for h in hosts:
        macs, name, ip = _host_fields(h)
        if h.network.dhcp.mode == "proxy" or ip is None:
            out.append(f"{','.join(macs)},set:known,{name}")
        else:
            out.append(f"{','.join(macs)},set:known,{ip},{name}")
    return out


def render_dnsmasq_hosts(hosts: list[SiteHost]) -> str:
    """The dhcp-hostsfile: dnsmasq re-reads it on SIGHUP, so host changes need no restart."""
    return _one_line(dnsmasq_host_lines(hosts), "dhcp-hostsfile")


def render_dnsmasq(site: Site, hosts: list[SiteHost], server: BootServer, *, hosts_file: str | None = None) -> str:
    """A complete dnsmasq configuration (DHCP only: port=0, no DNS, no TFTP).

    With `hosts_file`, reservations go to that file (see render_dnsmasq_hosts) instead of
    inline, so the agent can apply host changes with SIGHUP rather than a restart.
    """
    srv = _server(server, name_ok=True)
    site_name = safe(site.name, "name", f"site {site.name!r}: name")
    out = [
        f"# dnsmasq configuration for site {site_name}, rendered by Vaquero. Do not edit: changes are overwritten.",
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
    interfaces = _interfaces(site, server)
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
        where = f"site {site_name}: network {net.name}"
        sub = safe(net.subnet, "subnet", f"{where}: subnet")
        netmask = safe(net.subnet.netmask, "ipv4", f"{where}: subnet")
        network_address = safe(net.subnet.network_address, "ipv4", f"{where}: subnet")
        mode = {"server": "server", "proxy": "proxy"}.get(net.dhcp.mode)
        if mode is None:
            raise RenderError(f"{where}: dhcp.mode {net.dhcp.mode!r} is not server or proxy: refused")
        out += ["", f"# network {net.name} ({sub}), mode {mode}"]
        if mode == "proxy":
            out.append(f"dhcp-range=set:{t},{network_address},proxy,{netmask}")
            continue
        lease = safe(net.dhcp.lease_time, "lease", f"{where}: dhcp.lease_time")
        if net.dhcp.range is not None:
            first, last = (safe(a, "ipv4", f"{where}: dhcp.range") for a in net.dhcp.range)
            out.append(f"dhcp-range=set:{t},{first},{last},{netmask},{lease}")
        else:
            out.append(f"dhcp-range=set:{t},{network_address},static,{netmask},{lease}")
        if net.gateway is not None:
            out.append(f"dhcp-option=tag:{t},option:router,{safe(net.gateway, 'ipv4', f'{where}: gateway')}")
        if net.dns:
            out.append(f"dhcp-option=tag:{t},option:dns-server,{','.join(safe(d, 'ipv4', f'{where}: dns') for d in net.dns)}")
        if net.ntp:
            # Forced: iPXE and some firmware do not ask for option 42 but the OS wants it.
            out.append(f"dhcp-option-force=tag:{t},option:ntp-server,{','.join(safe(n, 'ipv4', f'{where}: ntp') for n in net.ntp)}")
        if net.domain:
            out.append(f"dhcp-option=tag:{t},option:domain-name,{safe(net.domain, 'domain', f'{where}: domain')}")
    if proxy:
        out += [
            "",
            "# proxy mode: another server hands out addresses; answer PXE only.",
            f'pxe-service=tag:!ipxe,x86PC,"Vaquero iPXE",{srv["bios_file"]}',
            f'pxe-service=tag:!ipxe,X86-64_EFI,"Vaquero iPXE",{srv["efi_file"]}',
            f'pxe-service=tag:!ipxe,BC_EFI,"Vaquero iPXE",{srv["efi_file"]}',
            f'pxe-service=tag:ipxe,x86PC,"Vaquero",{srv["chain_url"]}',
            f'pxe-service=tag:ipxe,X86-64_EFI,"Vaquero",{srv["chain_url"]}',
            f'pxe-service=tag:ipxe,BC_EFI,"Vaquero",{srv["chain_url"]}',
        ]
    else:
        out += [
            "",
            "# iPXE: do not wait for ProxyDHCP (saves seconds per boot).",
            "dhcp-option=encap:175,176,1",
            f"dhcp-boot=tag:ipxe,{srv['chain_url']}",
            "dhcp-option=tag:efihttp,option:vendor-class,HTTPClient",
            f"dhcp-boot=tag:!ipxe,tag:efihttp,{srv['efi_http_url']}",
            f"dhcp-boot=tag:!ipxe,tag:!efihttp,tag:efi64,{srv['efi_file']},,{srv['address']}",
            f"dhcp-boot=tag:!ipxe,tag:!efihttp,tag:!efi64,{srv['bios_file']},,{srv['address']}",
        ]
    if hosts_file is not None:
        out += ["", "# hosts of the SoT: static reservations by MAC, re-read on SIGHUP", f"dhcp-hostsfile={safe(hosts_file, 'path', 'dhcp-hostsfile')}"]
    elif hosts:
        out += ["", "# hosts of the SoT: static reservations by MAC (name sent as option 12)"]
        out += [f"dhcp-host={line}" for line in dnsmasq_host_lines(hosts)]
    return _one_line(out, f"dnsmasq configuration of site {site_name}")


def _client_classes(srv: dict[str, str]) -> list[dict[str, Any]]:
    is_ipxe = "(substring(option[77].hex,0,4) == 'iPXE' or option[175].exists)"
    return [
        {"name": "ipxe", "test": is_ipxe, "boot-file-name": srv["chain_url"]},
        {
            "name": "efi-http",
            "test": f"not {is_ipxe} and option[93].hex == 0x0010",
            "boot-file-name": srv["efi_http_url"],
            "option-data": [{"name": "vendor-class-identifier", "data": "HTTPClient"}],
        },
        {
            "name": "efi-x64",
            "test": f"not {is_ipxe} and (option[93].hex == 0x0007 or option[93].hex == 0x0009)",
            "next-server": srv["address"],
            "boot-file-name": srv["efi_file"],
        },
        {
            "name": "bios",
            "test": f"not {is_ipxe} and (option[93].hex == 0x0000 or not option[93].exists)",
            "next-server": srv["address"],
            "boot-file-name": srv["bios_file"],
        },
    ]


def render_kea(site: Site, hosts: list[SiteHost], server: BootServer, *, lease_file: str | None = None) -> str:
    """A complete kea-dhcp4 JSON configuration. Kea has no ProxyDHCP: proxy mode is refused."""
    if any(n.dhcp.mode == "proxy" for n in site.networks):
        raise RenderError(f"site {site.name}: Kea cannot run in proxy mode; use the dnsmasq flavor for proxy networks")
    # Built as data and serialised by json.dumps; the values are checked all the same, because
    # Kea hands them on to clients (option 15, option 12) and to its own expression parser.
    srv = _server(server)
    interfaces = _interfaces(site, server) or ["*"]
    subnets = []
    for i, net in enumerate(site.networks, start=1):
        where = f"site {site.name}: network {net.name}"
        options: list[dict[str, Any]] = []
        if net.gateway is not None:
            options.append({"name": "routers", "data": safe(net.gateway, "ipv4", f"{where}: gateway")})
        if net.dns:
            options.append({"name": "domain-name-servers", "data": ", ".join(safe(d, "ipv4", f"{where}: dns") for d in net.dns)})
        if net.ntp:
            options.append({"name": "ntp-servers", "data": ", ".join(safe(n, "ipv4", f"{where}: ntp") for n in net.ntp), "always-send": True})
        if net.domain:
            options.append({"name": "domain-name", "data": safe(net.domain, "domain", f"{where}: domain")})
        reservations = []
        for h in hosts:
            if h.network.name != net.name:
                continue
            macs, name, ip = _host_fields(h)
            for mac in macs:
                r: dict[str, Any] = {"hw-address": mac, "hostname": name}
                if ip is not None and mac == macs[0]:
                    r["ip-address"] = ip
                reservations.append(r)
        subnet: dict[str, Any] = {
            "id": i,
            "subnet": safe(net.subnet, "subnet", f"{where}: subnet"),
            "valid-lifetime": lease_seconds(safe(net.dhcp.lease_time, "lease", f"{where}: dhcp.lease_time")),
            "option-data": options,
            "reservations": reservations,
        }
        if net.dhcp.range is not None:
            first, last = (safe(a, "ipv4", f"{where}: dhcp.range") for a in net.dhcp.range)
            subnet["pools"] = [{"pool": f"{first} - {last}"}]
        if net.interface and len(interfaces) > 1:
            subnet["interface"] = safe(net.interface, "interface", f"{where}: interface")
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
            "client-classes": _client_classes(srv),
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
