"""A per-host boot ISO for networks where DHCP/PXE is not allowed (the ``virtual_media`` boot method).

The ISO is Debian's iPXE ISO (isolinux + ``ipxe.lkrn``) rebuilt with one change: isolinux hands
iPXE the host's own script as its initrd, and iPXE runs a ``#!ipxe`` initrd instead of its DHCP
autoboot. The script finds the NIC with the host's MAC, gives it the static address, netmask,
gateway and DNS server of the SoT, opens it and chains the agent's per-host boot script (the same
one DHCP-booted hosts get, carrying the one-time install token). No DHCP packet is ever sent.

Every value is re-checked with the iPXE renderer's rules (``site.safe`` and ``ipxe._script``)
before it is written. The script holds no secret, so the ISO depends only on the SoT revision:
it is built once per content (the cache key is the SHA-256 of the base ISO, the script and this
builder's version) and kept under that name. Size is bounded: the base ISO's files and the
result are both capped at :data:`MAX_ISO`.

The ISO boots BIOS (legacy / CSM) firmware: Debian's iPXE build cannot run a script handed to its
EFI binary this way, so the EFI El Torito entry of the base ISO is left out rather than booting
a UEFI host into a DHCP attempt.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from .ipxe import _script, mac_key
from .site import RenderError, SiteHost, safe

BASE_ISO = Path("/usr/lib/ipxe/ipxe.iso")
MAX_ISO = 16 << 20
BUILDER_VERSION = "1"
# iPXE numbers NICs net0, net1, ... in bus order; a host with more NICs than this before the one
# the SoT names is not expected.
MAX_NICS = 8
MAX_MACS = 8
# The files taken from the base ISO (ISO 9660 names) and what isolinux calls them.
_BASE_FILES = ("/ISOLINUX.BIN;1", "/LDLINUX.C32;1", "/IPXE.KRN;1")
SCRIPT_NAME = "HOST.IPX"


class IsoError(RenderError):
    """The ISO cannot be built (base ISO missing or unexpected, too large, a bad value)."""


@dataclass(frozen=True)
class StaticNet:
    """What the ISO's script configures: checked again where it is rendered."""

    host: str
    macs: tuple[str, ...]
    ip: IPv4Address
    subnet: IPv4Network
    gateway: IPv4Address | None
    dns: IPv4Address | None
    agent_url: str


def static_net(sh: SiteHost, agent_url: str) -> StaticNet:
    """The static settings of a site host from the SoT: its address on its primary network."""
    if sh.ip is None:
        raise IsoError(f"host {sh.name}: virtual_media boots without DHCP and needs an address on network {sh.network.name}")
    net = sh.network
    return StaticNet(sh.name, tuple(sh.host.macs), sh.ip, net.subnet, net.gateway, net.dns[0] if net.dns else None, agent_url)


def static_script(net: StaticNet) -> str:
    """The ``#!ipxe`` script the ISO runs: static address on the host's NIC, then chain the agent."""
    name = safe(net.host, "name", f"host {net.host!r}: name")
    where = f"host {name}: virtual media"
    if not net.macs or len(net.macs) > MAX_MACS:
        raise IsoError(f"{where}: {len(net.macs)} MACs (1 to {MAX_MACS})")
    macs = [safe(mac_key(m).replace("-", ":"), "mac", f"{where}: MAC") for m in net.macs]
    if net.ip not in net.subnet:
        raise IsoError(f"{where}: address {net.ip} is outside {net.subnet}")
    ip = safe(net.ip, "ipv4", f"{where}: address")
    netmask = safe(net.subnet.netmask, "ipv4", f"{where}: netmask")
    base = safe(net.agent_url.rstrip("/"), "url", f"{where}: agent URL")
    lines = ["#!ipxe", f"echo Vaquero: {name} boots from virtual media with the static address {ip}"]
    # The first NIC whose MAC is one of the host's; an absent netN expands to nothing and iseq fails.
    for i in range(MAX_NICS):
        for mac in macs:
            lines.append(f"iseq ${{net{i}/mac}} {mac} && set vq-nic net{i} ||")
    lines += [
        "isset ${vq-nic} || goto vq-no-nic",
        f"set ${{vq-nic}}/ip {ip}",
        f"set ${{vq-nic}}/netmask {netmask}",
    ]
    if net.gateway is not None:
        lines.append(f"set ${{vq-nic}}/gateway {safe(net.gateway, 'ipv4', f'{where}: gateway')}")
    if net.dns is not None:
        lines.append(f"set ${{vq-nic}}/dns {safe(net.dns, 'ipv4', f'{where}: DNS server')}")
    lines += [
        "ifopen ${vq-nic} || goto vq-failed",
        "echo Vaquero: ${vq-nic} is ${${vq-nic}/mac} with ${${vq-nic}/ip}",
        f"chain --autofree {base}/v1/boot/ipxe/${{${{vq-nic}}/mac:hexhyp}} || goto vq-failed",
        ":vq-no-nic",
        f"echo Vaquero: no network interface with the MAC of {name}",
        ":vq-failed",
        f"echo Vaquero: {name} could not reach its agent, leaving the ISO",
        "exit 1",
    ]
    return _script(lines, name)


def _isolinux_cfg(host: str) -> str:
    name = safe(host, "name", f"host {host!r}: name")
    return f"SAY Vaquero: {name}, booting without DHCP\nTIMEOUT 0\nDEFAULT vaquero\nLABEL vaquero\n KERNEL ipxe.krn\n INITRD host.ipx\n"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def iso_key(script: str, base_iso: Path = BASE_ISO) -> str:
    """The cache name of the ISO for ``script``: SHA-256 of what goes into it."""
    try:
        base = _sha256_file(base_iso)
    except OSError as exc:
        raise IsoError(f"base ISO {base_iso}: {exc.strerror} (Debian package ipxe)") from None
    return hashlib.sha256(f"vaquero-boot-iso:{BUILDER_VERSION}\0{base}\0{script}".encode()).hexdigest()


def build_iso(host: str, script: str, cache_dir: Path, *, base_iso: Path = BASE_ISO, max_size: int = MAX_ISO) -> Path:
    """The ISO for ``script`` in ``cache_dir``: built once per content, then reused."""
    import pycdlib  # only where ISOs are built: the agent, not every renderer

    if not script.startswith("#!ipxe\n"):
        raise IsoError(f"host {host}: the ISO script is not an iPXE script")
    key = iso_key(script, base_iso)
    out = cache_dir / f"{key}.iso"
    if out.is_file():
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    src = pycdlib.PyCdlib()
    try:
        src.open(str(base_iso))
    except (OSError, pycdlib.pycdlibexception.PyCdlibException) as exc:
        raise IsoError(f"base ISO {base_iso} cannot be read: {exc}") from None
    try:
        total = 0
        for path in _BASE_FILES:
            try:
                rec = src.get_record(iso_path=path)
            except pycdlib.pycdlibexception.PyCdlibException:
                raise IsoError(f"base ISO {base_iso} has no {path} (not Debian's iPXE ISO?)") from None
            total += rec.get_data_length()
            if total > max_size:
                raise IsoError(f"base ISO {base_iso}: its boot files exceed {max_size} bytes")
            buf = io.BytesIO()
            src.get_file_from_iso_fp(buf, iso_path=path)
            files[path] = buf.getvalue()
    finally:
        src.close()
    extra = {"/ISOLINUX.CFG;1": _isolinux_cfg(host).encode(), f"/{SCRIPT_NAME};1": script.encode()}
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, vol_ident="VAQUERO", rock_ridge="1.09")
    for path, data in {**files, **extra}.items():
        iso.add_fp(io.BytesIO(data), len(data), path, rr_name=path[1:].split(";")[0].lower())
    iso.add_eltorito("/ISOLINUX.BIN;1", bootcatfile="/BOOT.CAT;1", boot_load_size=4, boot_info_table=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=cache_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            iso.write_fp(fh)
            fh.flush()
            if fh.tell() > max_size:
                raise IsoError(f"host {host}: the ISO would be {fh.tell()} bytes, more than {max_size}")
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    finally:
        iso.close()
    return out
