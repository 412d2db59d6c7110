"""Typed models of the source of truth (SoT).

A SoT is a folder (usually a git commit) of YAML documents, each one of five kinds:

- ``Site``     a datacenter: its agents, networks (DHCP, DNS, NTP) and BMC credential references;
- ``Profile``  an OS: kernel, initrds, image, cloud-init/Ignition template, kernel cmdline;
- ``Cluster``  hosts that run one profile at one site, with their policy and hooks;
- ``Hook``     a named, reusable action run around a host's reboot (drain, validate, ...);
- ``Host``     one host of a cluster in a file of its own (the loader merges it into the cluster).

Every document carries ``apiVersion: vaquero/v1``, ``kind`` and ``name``. Structural rules
live here; rules that need the whole SoT (references, duplicates, cycles) live in validate.py.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
import uuid as uuidlib
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

API_VERSION = "vaquero/v1"

# RFC 1123 label: what DHCP option 12 and DNS accept as a host name.
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Percent = Annotated[str, StringConstraints(pattern=r"^(100|[1-9]?[0-9])%$")]

_MAC_RE = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$")

# --- The typed boundary -------------------------------------------------------------------
# Every string of a SoT ends up in another language: dnsmasq.conf, Kea JSON, an iPXE script,
# a kernel command line, cloud-init YAML, a shell, the plan text an approver reads. A control
# character (newline, CR, NUL, NEL, U+2028...) starts a new line or ends a string in one of
# them, and format characters (bidi overrides, zero-width) make the approver read something
# other than what runs. So no SoT string holds one, except the few fields whose job is to
# hold several lines (templates, hook commands, descriptions), which may hold \n and \t.
_REFUSED_CATEGORIES = ("Cc", "Cf", "Zl", "Zp", "Cs", "Co")
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ASCII_CONTROL_ML = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # tab and newline pass


def control_char(value: str, *, multiline: bool = False) -> str | None:
    """The first character of `value` a SoT string may not hold, as an escape (None: clean)."""
    if value.isascii():
        m = _ASCII_CONTROL.search(value) if not multiline else _ASCII_CONTROL_ML.search(value)
        return None if m is None else ascii(m.group())[1:-1]
    for ch in value:
        if multiline and ch in "\n\t":
            continue
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            return ascii(ch)[1:-1]
    return None


def _one_line(value: str) -> str:
    bad = control_char(value)
    if bad is not None:
        raise ValueError(f"control or format character {bad} is not allowed here (one line of printable text)")
    return value


def _multi_line(value: str) -> str:
    bad = control_char(value, multiline=True)
    if bad is not None:
        raise ValueError(f"control or format character {bad} is not allowed here (only newlines and tabs)")
    return value


# One line of printable text, bounded: names people read (serial, asset tag, user name...).
ShortText = Annotated[str, StringConstraints(max_length=128), AfterValidator(_one_line)]
Text = Annotated[str, StringConstraints(max_length=4096), AfterValidator(_one_line)]
# Several lines, where the author means them: descriptions, hook commands, inline templates.
Description = Annotated[str, StringConstraints(max_length=4096), AfterValidator(_multi_line)]
Command = Annotated[str, StringConstraints(max_length=65_536), AfterValidator(_multi_line)]
Template = Annotated[str, StringConstraints(max_length=1_048_576), AfterValidator(_multi_line)]

_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
# RFC 1123 DNS name: lower-case labels of 1-63 characters, 253 in all, no trailing dot (dnsmasq and
# Kea send it as option 15 verbatim).
DomainName = Annotated[str, StringConstraints(max_length=253, pattern=rf"^{_LABEL}(\.{_LABEL})*$")]


# Linux dev_valid_name(): 1-15 bytes (IFNAMSIZ 16 with the NUL), not '.' or '..', no '/' and no
# white space. Narrowed to the characters interface names use in practice so that nothing
# meaningful to dnsmasq (',', '#', '*') or Kea ('/') gets through; ':' stays for alias labels.
def _not_dots(value: str) -> str:
    if value in (".", ".."):
        raise ValueError(f"{value!r} is not a valid interface name")
    return value


InterfaceName = Annotated[str, StringConstraints(min_length=1, max_length=15, pattern=r"^[A-Za-z0-9_.:@-]{1,15}$"), AfterValidator(_not_dots)]
# Keys people choose (role, credential, vars key, field names): word characters, dots and dashes.
Key = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")]
# POSIX environment variable name (portable character set).
EnvName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
AbsPath = Annotated[str, StringConstraints(min_length=2, max_length=4096, pattern=r"^/"), AfterValidator(_one_line)]
RelPath = Annotated[str, StringConstraints(min_length=1, max_length=4096), AfterValidator(_one_line)]
# Shown on iPXE `echo` lines and in plans: no spaces and nothing iPXE expands ('$').
Version = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+~:-]*$")]
HttpUrl = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s/]+(/\S*)?$"), AfterValidator(_one_line)]

# --- Kernel command line ------------------------------------------------------------------
# iPXE puts the rendered cmdline on its `kernel` line. Its parser (src/core/exec.c, script.c,
# settings.c in ipxe/ipxe) splits a line on isspace(); a token that is exactly '||', '&&' or ';'
# ends the command and starts another one; a token starting with '#' comments out the rest;
# '${...}' anywhere in a token is expanded from iPXE settings (which leaks or rewrites values);
# a trailing backslash joins the next script line. Linux then splits the cmdline on spaces
# but honours double quotes. So a cmdline token is `key` or `key=value`: both URL-safe
# printable ASCII (the key without '=', '?' or '&' and starting with a letter, digit or '_'),
# never '$', '#', '|', quotes, backslash, '<', '>', backtick or a space, and tokens are
# joined by single spaces. '?', '=', '&' (single), '%', '/', ':', '.', '-', '_', ',', '@', '+' stay allowed so a
# URL with a query string (a one-time token) fits. ';' is allowed inside a value only (cloud-init's
# `ds=nocloud-net;s=URL` needs it): a token holding it can never be exactly ';', which is all
# iPXE treats as a separator (tests/security/test_sec_ipxe_qemu.py boots one through a real iPXE).
# Linux keeps COMMAND_LINE_SIZE (2048 on x86) bytes and silently drops the rest, which would cut
# the callback URL and its token; iPXE adds initrd= names and the agent a token per URL.
CMDLINE_MAX = 1792
CMDLINE_TEMPLATE_MAX = 4096
_CMDLINE_TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._~:/%,@+!*-]*(=[A-Za-z0-9._~:/?=&;%,@+!*-]*)?")


def normalize_cmdline(text: str) -> str:
    """Runs of spaces (what Jinja blocks and folded YAML leave) become one; nothing else is touched."""
    return " ".join(t for t in text.split(" ") if t)


def cmdline_error(text: str) -> str | None:
    """Why a rendered kernel command line is refused (None: it follows the grammar)."""
    if len(text) > CMDLINE_MAX:
        return f"kernel command line is {len(text)} characters, at most {CMDLINE_MAX} are allowed"
    if text == "":
        return None
    bad = control_char(text)
    if bad is not None:
        return f"kernel command line holds control character {bad}"
    for token in text.split(" "):
        if token == "":
            return "kernel command line tokens must be separated by single spaces"
        if not _CMDLINE_TOKEN.fullmatch(token):
            return f"kernel command line token {token!r} is not key or key=value with URL-safe characters (no $ # | quotes \\ < > `, ';' only inside a value)"
        if "&&" in token:
            return f"kernel command line token {token!r} holds '&&'"
    return None


def cloud_config_error(text: str) -> str | None:
    """Why rendered cloud-init user-data is refused: '#cloud-config' must be a YAML mapping.

    A value holding ': ' or a line break can turn a template's YAML into other keys or into
    nothing at all, and cloud-init then silently skips it.
    """
    if not text.startswith("#cloud-config"):
        return None if text.startswith("#!") else "cloud-init user-data must start with '#cloud-config' or '#!'"
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return f"cloud-init user-data is not YAML: {' '.join(str(exc).split())}"
    if doc is not None and not isinstance(doc, dict):
        return "cloud-init user-data is not a YAML mapping"
    return None


# debconf-set-selections' line: owner, question, type, value. Owners and questions are debconf names
# (d-i's own plus packages'); the value runs to the end of the line.
_PRESEED_LINE = re.compile(r"^([a-z0-9][a-z0-9.+-]*)[ \t]+([A-Za-z0-9][A-Za-z0-9/_.+:-]*)[ \t]+([a-z]+)(?:[ \t](.*))?$")
_PRESEED_TYPES = frozenset({"string", "boolean", "select", "multiselect", "note", "password", "text", "title", "error", "seen"})
_PRESEED_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f\u0085\u2028\u2029]")


def preseed_error(text: str) -> str | None:
    """Why a rendered preseed is refused, naming the line.

    Every line is a comment, blank, or one whole answer. Backslash continuations are refused: a
    template value ending in a backslash would join the next answer to it, and one line per answer
    is what the checks here (and a reviewer) can see.
    """
    for n, line in enumerate(text.split("\n"), 1):
        # A CRLF file's \r ends its lines; any other \r is a control character like the rest.
        if _PRESEED_CONTROL.search(line.removesuffix("\r")):
            return f"preseed line {n}: a control character (only tabs are allowed)"
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            return f"preseed line {n}: ends with a backslash (continuation lines are not accepted: one answer per line)"
        m = _PRESEED_LINE.match(stripped)
        if m is None:
            return f"preseed line {n}: not 'owner question type value': {stripped[:80]!r}"
        if m.group(3) not in _PRESEED_TYPES:
            return f"preseed line {n}: unknown type {m.group(3)!r} for {m.group(2)}"
        if m.group(3) == "boolean" and (m.group(4) or "").strip() not in ("true", "false"):
            return f"preseed line {n}: {m.group(2)} is boolean: true or false, not {(m.group(4) or '').strip()[:40]!r}"
    return None


# vars feed templates (cmdline, cloud-init, Ignition): bounded in size and depth, keys are Keys,
# strings are one line. A long list of PEM blocks belongs in a template or a file, not in vars.
VARS_MAX_NODES = 10_000
VARS_MAX_DEPTH = 32
VARS_MAX_STRING = 65_536
_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _check_vars(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError("vars must be a mapping")
    budget = [VARS_MAX_NODES]

    def walk(node: Any, where: str, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise ValueError(f"vars hold more than {VARS_MAX_NODES} values (YAML aliases count once per use)")
        if depth > VARS_MAX_DEPTH:
            raise ValueError(f"{where}: vars nest deeper than {VARS_MAX_DEPTH} levels")
        if isinstance(node, str):
            if len(node) > VARS_MAX_STRING:
                raise ValueError(f"{where}: string of {len(node)} characters, at most {VARS_MAX_STRING}")
            bad = control_char(node)
            if bad is not None:
                raise ValueError(f"{where}: control or format character {bad} is not allowed in vars")
        elif isinstance(node, dict):
            for k, v in node.items():
                if not isinstance(k, str) or not _KEY_RE.match(k):
                    raise ValueError(f"{where}: key {k!r} must be letters, digits, '_', '.' or '-' (at most 128)")
                walk(v, f"{where}.{k}", depth + 1)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]", depth + 1)
        elif isinstance(node, float) and not math.isfinite(node):
            # nan != nan: the plan would show a change on every revision.
            raise ValueError(f"{where}: {node} is not allowed in vars (finite numbers only)")
        elif node is not None and not isinstance(node, bool | int | float | dt.date):
            raise ValueError(f"{where}: {type(node).__name__} is not allowed in vars (strings, numbers, booleans, null, lists, mappings)")

    for k, v in value.items():
        if not isinstance(k, str) or not _KEY_RE.match(k):
            raise ValueError(f"key {k!r} must be letters, digits, '_', '.' or '-' (at most 128)")
        walk(v, k, 1)
    return value


Vars = Annotated[dict[str, Any], AfterValidator(_check_vars)]
Phase = Literal["pre_shutdown", "pre_reboot", "post_reboot", "validate"]
PHASES: tuple[str, ...] = ("pre_shutdown", "pre_reboot", "post_reboot", "validate")
# "HH:MM" as a quoted string: YAML 1.1 reads an unquoted 04:00 as the number 240.
Clock = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALL_DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Model(BaseModel):
    # extra="forbid": a typo in a key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _mac(value: str) -> str:
    if not isinstance(value, str) or not _MAC_RE.match(value.lower()):
        raise ValueError(f"{value!r} is not a MAC address (expected six hex pairs like 52:54:00:12:34:56)")
    return value.lower().replace("-", ":")


Mac = Annotated[str, Field(description="MAC address, aa:bb:cc:dd:ee:ff")]


# --- Site ---------------------------------------------------------------------------------


class SecretRef(Model):
    """Where a secret lives on the node that uses it. The secret itself never enters git."""

    env: EnvName | None = Field(None, description="name of an environment variable holding the secret")
    file: AbsPath | None = Field(None, description="absolute path of a file holding the secret (first line)")

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self


class Credential(Model):
    username: ShortText
    password: SecretRef


class Dhcp(Model):
    mode: Literal["server", "proxy"] = Field("server", description="server: hand out addresses; proxy: only answer PXE")
    range: tuple[IPv4Address, IPv4Address] | None = Field(None, description="dynamic pool [first, last]; omit for static-only")
    lease_time: Annotated[str, StringConstraints(pattern=r"^[0-9]+[smhd]?$|^infinite$")] = "1h"


class Network(Model):
    name: Name
    subnet: IPv4Network
    gateway: IPv4Address | None = None
    dhcp: Dhcp = Dhcp()
    dns: list[IPv4Address] = []
    ntp: list[IPv4Address] = []
    domain: DomainName | None = Field(None, description="DNS domain (RFC 1123, lower case), sent as DHCP option 15")
    interface: InterfaceName | None = Field(None, description="the agent's interface on this network (a Linux interface name)")


class Agent(Model):
    name: Name
    url: HttpUrl


# How a host reaches its installer. pxe: DHCP hands out iPXE. virtual_media: the BMC (Redfish) attaches a
# per-host ISO served by the agent, which sets the host's static address itself (no DHCP on the wire).
# http: the BMC's UEFI HTTP boot target (Redfish UefiHttp), where the BMC offers it.
BootMethod = Literal["pxe", "virtual_media", "http"]


class Boot(Model):
    method: BootMethod = Field("pxe", description="pxe (DHCP + iPXE), virtual_media (Redfish VirtualMedia ISO, static address) or http (UEFI HTTP boot)")


class Discovery(Model):
    """What the site does with a machine whose MAC it does not know: by default, nothing."""

    enabled: bool = Field(False, description="boot unknown machines into the inspection ramdisk, which reports them for enrollment")
    cluster: Name = Field(description="the cluster (of this site) a reported machine is proposed into, by pull request")
    network: Name | None = Field(None, description="the network whose free static address a proposed host gets (default: the site's first)")


class Site(Model):
    apiVersion: Literal["vaquero/v1"]
    kind: Literal["Site"]
    name: Name
    description: Description = ""
    agents: list[Agent] = []
    networks: list[Network] = Field(min_length=1)
    credentials: dict[Key, Credential] = {}
    boot: Boot | None = Field(None, description="how the site's hosts boot their installer (default pxe); a host's own boot overrides it")
    discovery: Discovery | None = Field(None, description="enrollment of unknown machines: inspect them and propose each as a new host")


# --- Profile ------------------------------------------------------------------------------


class Asset(Model):
    url: Annotated[str, StringConstraints(max_length=2048, pattern=r"^(https?|file)://\S+$"), AfterValidator(_one_line)] | None = None
    path: RelPath | None = Field(None, description="relative: inside the SoT repository; absolute: on the agent")
    sha256: Sha256

    @model_validator(mode="after")
    def _one(self) -> Asset:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of 'url' or 'path'")
        return self


# --- Image deploy (docs/sot-format.md "Image profiles") -------------------------------------
# The deploy ramdisk streams the image to the disk with busybox (wget | decompress | dd): it has
# no qemu-img, so only raw images are written; qcow2, vmdk... must be converted before.
IMAGE_FORMATS = ("raw",)
IMAGE_COMPRESSIONS = ("none", "gzip", "xz")
# A block device node: what the ramdisk passes to dd and sfdisk. Lower-case letters, digits, '/',
# '_' and '-' only (/dev/sda, /dev/nvme0n1, /dev/vda), no empty, '.' or '..' segment: nothing a
# shell, a kernel name or a path could read as anything else.
DevPath = Annotated[str, StringConstraints(min_length=6, max_length=128, pattern=r"^/dev/[a-z0-9/_-]+$")]
# A /dev/disk/by-id/ link name (udev writes them from the vendor, model, serial or WWN).
DiskId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:+-]*$")]


def _dev_path(value: str) -> str:
    if any(seg in ("", ".", "..") for seg in value[len("/dev/") :].split("/")):
        raise ValueError(f"{value!r} has an empty, '.' or '..' path segment")
    return value


class DiskImage(Asset):
    """A disk image the deploy ramdisk writes to the host's disk, verified by its sha256 as served."""

    format: str = Field("raw", description="raw only (the ramdisk has no qemu-img): convert other formats to raw")
    compression: Literal["none", "gzip", "xz"] = Field("none", description="how the served bytes are compressed; the sha256 is of the served bytes")

    @field_validator("format")
    @classmethod
    def _raw(cls, v: str) -> str:
        if v not in IMAGE_FORMATS:
            shown = ascii(v[:32])
            raise ValueError(
                f"image format {shown} is not supported: the deploy ramdisk writes raw bytes (it has no qemu-img);"
                " convert to raw (qemu-img convert -O raw in.img out.raw), optionally compressed with gzip or xz"
            )
        return v


class Disk(Model):
    """Which disk the image goes to. Default: the first non-removable disk that is not a CD, loop,
    RAM or device-mapper disk, in kernel name order (nvme0n1, sda, vda...), of at least min_size_gb."""

    path: Annotated[DevPath, AfterValidator(_dev_path)] | None = Field(None, description="a device node, e.g. /dev/sda or /dev/nvme0n1")
    by_id: DiskId | None = Field(None, description="a name under /dev/disk/by-id/, e.g. wwn-0x5000c500a1b2c3d4")
    min_size_gb: int = Field(0, ge=0, le=1 << 20, description="skip disks smaller than this (GiB); 0: any size that fits the image")

    @model_validator(mode="after")
    def _one(self) -> Disk:
        if self.path is not None and self.by_id is not None:
            raise ValueError("give at most one of 'path' or 'by_id'")
        return self


# A Debian package name (Debian Policy 5.6.1) and version (5.6.12, the epoch's colon only after
# digits at the start): both become one apt argument, name=version, over SSH.
PackageName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9+.-]{1,127}$")]
PackageVersion = Annotated[str, StringConstraints(pattern=r"^([0-9]{1,9}:)?[0-9A-Za-z][0-9A-Za-z.+~-]{0,127}$")]


class Package(Model):
    """An OS package the profile holds at one version."""

    name: PackageName
    version: PackageVersion


class ConfigTemplate(Model):
    format: Literal["cloud-init", "ignition", "preseed"] = Field(
        description="cloud-init (NoCloud user-data), ignition (JSON) or preseed (debconf answers for debian-installer)"
    )
    template: RelPath | None = Field(None, description="path of a Jinja2 template inside the SoT repository")
    inline: Template | None = Field(None, description="the Jinja2 template itself")

    @model_validator(mode="after")
    def _one(self) -> ConfigTemplate:
        if (self.template is None) == (self.inline is None):
            raise ValueError("give exactly one of 'template' or 'inline'")
        return self


class Profile(Model):
    apiVersion: Literal["vaquero/v1"]
    kind: Literal["Profile"]
    name: Name
    version: Version = Field(description="OS version: a change makes hosts on this profile upgrade")
    kernel: Asset
    initrd: list[Asset] = []
    image: DiskImage | None = Field(None, description="a raw disk image the deploy ramdisk (kernel + initrd) writes to the host's disk")
    disk: Disk | None = Field(None, description="image profiles: which disk to write (default: the first fixed disk by kernel name)")
    cmdline: Annotated[str, StringConstraints(max_length=CMDLINE_TEMPLATE_MAX), AfterValidator(_one_line)] = Field(
        "", description="Jinja2 template of the kernel command line; once rendered: key or key=value tokens (see cmdline_error)"
    )
    config: ConfigTemplate | None = None
    phone_home: bool = Field(
        False,
        description="installer profiles: the installed OS reports itself to urls.phone_home (the config must use it) and the"
        " install waits for that report before the validate hooks; image profiles always do",
    )
    install_timeout: int | None = Field(
        None,
        ge=60,
        le=86400,
        description="seconds an install of this profile may take, power cycle to the installer's callback (an installer that"
        " fetches packages needs longer than an image deploy); unset: the netboot_install role's default (900)",
    )
    packages: list[Package] = Field(
        [],
        description="OS packages at these versions (Debian: apt): upgrade.strategy reboot installs them over SSH before the reboot,"
        " a rollback returns to the previous profile's versions",
    )

    @property
    def expects_phone_home(self) -> bool:
        """The installed OS reports itself at urls.phone_home: always after an image deploy (the ramdisk
        writes the URL), after an installer only when the profile says phone_home."""
        return self.image is not None or self.phone_home

    @field_validator("packages")
    @classmethod
    def _one_version_each(cls, v: list[Package]) -> list[Package]:
        names = [p.name for p in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"package {twice[0]} is listed more than once")
        return v


# --- Hook ---------------------------------------------------------------------------------

HookType = Literal["wait_for_ssh", "ssh_check", "http_check", "command", "kubernetes_drain", "kubernetes_uncordon", "tasks", "playbook"]
# A login name (useradd's rule) and a systemd unit name: both go into an ssh command line.
LoginName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]
UnitName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9:_.@-]{0,250}\.(service|socket|target|timer|mount|path)$")]
_HOOK_NEEDS: dict[str, tuple[str, ...]] = {
    "wait_for_ssh": (),
    "ssh_check": ("user", "ssh_key"),
    "http_check": ("url",),
    "command": ("command",),
    "kubernetes_drain": (),
    "kubernetes_uncordon": (),
    "tasks": ("file",),
    "playbook": ("file",),
}


class Hook(Model):
    apiVersion: Literal["vaquero/v1"]
    kind: Literal["Hook"]
    name: Name
    type: HookType
    timeout: int = Field(300, ge=1, le=86400, description="seconds for one attempt")
    retries: int = Field(0, ge=0, le=100)
    delay: int = Field(5, ge=0, le=3600, description="seconds between attempts")
    # A Jinja template (Ansible renders it per host), so spaces inside '{{ }}' are fine.
    url: Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://"), AfterValidator(_one_line)] | None = None
    status: int = Field(200, ge=100, le=599)
    body: Text | None = Field(None, description="http_check: a substring the response body must contain")
    command: Command | None = None
    file: RelPath | None = Field(None, description="tasks/playbook: path inside the SoT repository")
    port: int = Field(22, ge=1, le=65535)
    # ssh_check: log in to the host's SoT address and compare what it reports with the SoT.
    user: LoginName | None = Field(None, description="ssh_check: the login (e.g. debian, whose keys cloud-init sets from vars.ssh_keys)")
    ssh_key: AbsPath | None = Field(None, description="ssh_check: path of the private key on the node running the hook (ssh reads it, never the hook)")
    unit: UnitName = Field("ssh.service", description="ssh_check: a systemd unit that must be active")

    @model_validator(mode="after")
    def _needs(self) -> Hook:
        missing = [f for f in _HOOK_NEEDS[self.type] if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.type} hook needs {', '.join(missing)}")
        return self


# --- Cluster ------------------------------------------------------------------------------


class Window(Model):
    """A time when hosts of the cluster may be rebooted."""

    days: list[Day] = Field(default_factory=lambda: list(ALL_DAYS), min_length=1)
    start: Clock
    end: Clock
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @staticmethod
    def minutes(clock: str) -> int:
        hours, mins = clock.split(":")
        return int(hours) * 60 + int(mins)

    @model_validator(mode="after")
    def _span(self) -> Window:
        if self.start == self.end:
            raise ValueError("start and end are equal: the window would be empty")
        return self


class Stage(Model):
    """Incremental provisioning: stages run in order, each waits for the previous to be ready."""

    name: Name
    roles: list[Key] = Field(min_length=1)


class Policy(Model):
    max_concurrent: int = Field(1, ge=1, description="hosts changed at once (wave size)")
    min_available: int | Percent = Field(0, description="hosts (or percent) that must stay ready")
    max_failures: int | Percent = Field(0, description="failed hosts tolerated before on_failure applies")
    on_failure: Literal["halt", "continue", "retry", "rollback"] = "halt"
    retries: int = Field(0, ge=0, le=10, description="attempts after the first, with on_failure: retry")
    windows: list[Window] = Field([], description="reboot windows; empty means any time")
    order_by: Key = Field("name", description="host field or vars key the rollout order follows")
    first: list[Name] = Field([], description="hosts that go first, in this order")
    stages: list[Stage] = []
    auto_apply: bool = Field(False, description="apply without waiting for approval")

    @field_validator("min_available", "max_failures")
    @classmethod
    def _non_negative(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 0:
            raise ValueError("must be 0 or more")
        return v


class UpgradeSsh(Model):
    """How the in-place upgrade logs in to a host's operating system (at its SoT address)."""

    user: LoginName = Field(description="the login, with passwordless sudo (e.g. debian, whose keys cloud-init sets from vars.ssh_keys)")
    key: AbsPath = Field(description="path of the private key on the node running the playbook (ssh reads it, never Vaquero)")
    port: int = Field(22, ge=1, le=65535)
    trust_first_key: bool = Field(
        False,
        description="log in to a host that reported no SSH host keys when it phoned home, trusting the first key it shows;"
        " false: such a host fails the upgrade (its identity over SSH cannot be checked)",
    )


class Upgrade(Model):
    strategy: Literal["reinstall", "reboot"] = Field("reinstall", description="netboot the new profile, or reboot into it")
    rollback: bool = Field(False, description="return to the previous profile when the upgrade fails")
    ssh: UpgradeSsh | None = Field(
        None,
        description="reboot: apply the profile's packages over SSH and reboot through the OS, with the BMC as the fallback;"
        " unset: the BMC shuts the host down and powers it on",
    )
    reboot_timeout: int = Field(600, ge=30, le=7200, description="reboot: seconds for the OS to come back over SSH before the BMC power-cycles it")


class Bmc(Model):
    type: Literal["ipmi", "redfish"]
    # A host name or an IP address (IPv6 bare or in brackets): it becomes an ipmitool argument and the host of a URL.
    address: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._:\[\]-]+$")]
    port: int | None = Field(None, ge=1, le=65535)
    credential: Key
    insecure: bool = Field(False, description="redfish: skip TLS verification (logged as a warning)")
    ca_file: AbsPath | None = None
    # An Id or the @odata.id Redfish gives every System (the form the docs show): both name one
    # member of /redfish/v1/Systems, so anything else is refused here rather than at the BMC.
    system: Annotated[str, StringConstraints(pattern=r"^(/redfish/v1/Systems/)?[A-Za-z0-9][A-Za-z0-9._-]{0,127}/?$"), AfterValidator(_one_line)] | None = Field(
        None,
        description="redfish: which System when the BMC has several, by Id (1, System.Embedded.1) or @odata.id (/redfish/v1/Systems/1);"
        " unset: the only one, else the one whose UUID is the host's uuid",
    )
    identity: Literal["check", "skip"] = Field(
        "check",
        description="check: before any power or boot request, the BMC must report the host's uuid (and MACs where it reports them);"
        " skip: drive it unchecked (for a BMC that reports no usable UUID)",
    )


class Host(Model):
    name: Name
    macs: list[Mac] = Field(min_length=1)
    uuid: str | None = Field(None, description="SMBIOS system UUID")
    serial: ShortText | None = None
    asset_tag: ShortText | None = None
    roles: list[Key] = []
    bmc: Bmc | None = None
    ips: dict[str, IPv4Address] = Field({}, description="address per network name")
    profile: Name | None = Field(None, description="overrides the cluster's profile")
    firmware: Literal["bios", "uefi"] = "bios"
    boot: Boot | None = Field(None, description="overrides the site's boot method for this host")
    power: Literal["on", "off"] = "on"
    reinstall: int = Field(0, ge=0, description="bump to reinstall the host")
    vars: Vars = {}
    hooks: dict[Phase, list[Name]] = {}

    @field_validator("macs", mode="before")
    @classmethod
    def _macs(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [_mac(m) for m in v]
        return v

    @field_validator("power", mode="before")
    @classmethod
    def _power(cls, v: Any) -> Any:
        # YAML 1.1 reads unquoted on/off as booleans; take them as the user meant them.
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v

    @field_validator("uuid", mode="before")
    @classmethod
    def _uuid(cls, v: Any) -> Any:
        if v is None:
            return v
        try:
            return str(uuidlib.UUID(str(v)))
        except ValueError:
            raise ValueError(f"{v!r} is not a UUID") from None


class Cluster(Model):
    apiVersion: Literal["vaquero/v1"]
    kind: Literal["Cluster"]
    name: Name
    site: Name
    profile: Name
    description: Description = ""
    depends_on: list[Name] = []
    policy: Policy = Policy()
    upgrade: Upgrade = Upgrade()
    hooks: dict[Phase, list[Name]] = {}
    vars: Vars = {}
    hosts: list[Host] = []


class HostDocument(Host):
    """One host in a file of its own (e.g. hosts/<name>.yaml), merged into its cluster's hosts by the
    loader: a new machine is one new file, the change an enrollment pull request proposes."""

    apiVersion: Literal["vaquero/v1"]
    kind: Literal["Host"]
    cluster: Name = Field(description="the cluster (of the SoT) this host belongs to")

    def host(self) -> Host:
        """The host as its cluster holds it: the same values, no re-validation."""
        values = {name: getattr(self, name) for name in Host.model_fields}
        return Host.model_construct(_fields_set=self.model_fields_set & set(Host.model_fields), **values)


KINDS: dict[str, type[Model]] = {"Site": Site, "Profile": Profile, "Cluster": Cluster, "Hook": Hook, "Host": HostDocument}
Document = Annotated[Site | Profile | Cluster | Hook | HostDocument, Field(discriminator="kind")]


def boot_method(site: Site | None, host: Host) -> BootMethod:
    """The host's own boot method, else its site's, else pxe."""
    chosen = host.boot or (site.boot if site is not None else None)
    return chosen.method if chosen is not None else "pxe"


def json_schema() -> dict[str, Any]:
    """JSON Schema of one SoT document, for editors (yaml-language-server) and other tools."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(Document).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Vaquero SoT document (apiVersion vaquero/v1)"
    return schema
