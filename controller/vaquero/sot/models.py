"""Typed models of the source of truth (SoT).

A SoT is a folder (usually a git commit) of YAML documents, each one of four kinds:

- ``Site``     a datacenter: its agents, networks (DHCP, DNS, NTP) and BMC credential references;
- ``Profile``  an OS: kernel, initrds, image, cloud-init/Ignition template, kernel cmdline;
- ``Cluster``  hosts that run one profile at one site, with their policy and hooks;
- ``Hook``     a named, reusable action run around a host's reboot (drain, validate, ...).

Every document carries ``apiVersion: vaquero/v1``, ``kind`` and ``name``. Structural rules
live here; rules that need the whole SoT (references, duplicates, cycles) live in validate.py.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

API_VERSION = "vaquero/v1"

# RFC 1123 label: what DHCP option 12 and DNS accept as a host name.
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Percent = Annotated[str, StringConstraints(pattern=r"^(100|[1-9]?[0-9])%$")]

_MAC_RE = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$")
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

    env: str | None = Field(None, description="name of an environment variable holding the secret")
    file: str | None = Field(None, description="path of a file holding the secret (first line)")

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self


class Credential(Model):
    username: str
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
    domain: str | None = None
    interface: str | None = Field(None, description="the agent's interface on this network")


class Agent(Model):
    name: Name
    url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/\S*)?$")]


class Site(Model):
    apiVersion: Literal["vaquero/v1"]
    kind: Literal["Site"]
    name: Name
    description: str = ""
    agents: list[Agent] = []
    networks: list[Network] = Field(min_length=1)
    credentials: dict[str, Credential] = {}


# --- Profile ------------------------------------------------------------------------------


class Asset(Model):
    url: Annotated[str, StringConstraints(pattern=r"^(https?|file)://\S+$")] | None = None
    path: str | None = Field(None, description="relative: inside the SoT repository; absolute: on the agent")
    sha256: Sha256

    @model_validator(mode="after")
    def _one(self) -> Asset:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of 'url' or 'path'")
        return self


class ConfigTemplate(Model):
    format: Literal["cloud-init", "ignition"]
    template: str | None = Field(None, description="path of a Jinja2 template inside the SoT repository")
    inline: str | None = Field(None, description="the Jinja2 template itself")

    @model_validator(mode="after")
    def _one(self) -> ConfigTemplate:
        if (self.template is None) == (self.inline is None):
            raise ValueError("give exactly one of 'template' or 'inline'")
        return self


class Profile(Model):
    apiVersion: Literal["vaquero/v1"]
    kind: Literal["Profile"]
    name: Name
    version: str = Field(description="OS version: a change makes hosts on this profile upgrade")
    kernel: Asset
    initrd: list[Asset] = []
    image: Asset | None = None
    cmdline: str = Field("", description="Jinja2 template of the kernel command line")
    config: ConfigTemplate | None = None


# --- Hook ---------------------------------------------------------------------------------

HookType = Literal["wait_for_ssh", "http_check", "command", "kubernetes_drain", "kubernetes_uncordon", "tasks", "playbook"]
_HOOK_NEEDS: dict[str, tuple[str, ...]] = {
    "wait_for_ssh": (),
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
    url: str | None = None
    status: int = Field(200, ge=100, le=599)
    body: str | None = Field(None, description="http_check: a substring the response body must contain")
    command: str | None = None
    file: str | None = Field(None, description="tasks/playbook: path inside the SoT repository")
    port: int = Field(22, ge=1, le=65535)

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
    roles: list[str] = Field(min_length=1)


class Policy(Model):
    max_concurrent: int = Field(1, ge=1, description="hosts changed at once (wave size)")
    min_available: int | Percent = Field(0, description="hosts (or percent) that must stay ready")
    max_failures: int | Percent = Field(0, description="failed hosts tolerated before on_failure applies")
    on_failure: Literal["halt", "continue", "retry", "rollback"] = "halt"
    retries: int = Field(0, ge=0, le=10, description="attempts after the first, with on_failure: retry")
    windows: list[Window] = Field([], description="reboot windows; empty means any time")
    order_by: str = Field("name", description="host field or vars key the rollout order follows")
    first: list[Name] = Field([], description="hosts that go first, in this order")
    stages: list[Stage] = []
    auto_apply: bool = Field(False, description="apply without waiting for approval")

    @field_validator("min_available", "max_failures")
    @classmethod
    def _non_negative(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 0:
            raise ValueError("must be 0 or more")
        return v


class Upgrade(Model):
    strategy: Literal["reinstall", "reboot"] = Field("reinstall", description="netboot the new profile, or reboot into it")
    rollback: bool = Field(False, description="return to the previous profile when the upgrade fails")


class Bmc(Model):
    type: Literal["ipmi", "redfish"]
    address: Annotated[str, StringConstraints(min_length=1, pattern=r"^[^\s/]+$")]
    port: int | None = Field(None, ge=1, le=65535)
    credential: str
    insecure: bool = Field(False, description="redfish: skip TLS verification (logged as a warning)")
    ca_file: str | None = None
    system: str | None = Field(None, description="redfish: the System's path, when the BMC has several")


class Host(Model):
    name: Name
    macs: list[Mac] = Field(min_length=1)
    uuid: str | None = Field(None, description="SMBIOS system UUID")
    serial: str | None = None
    asset_tag: str | None = None
    roles: list[str] = []
    bmc: Bmc | None = None
    ips: dict[str, IPv4Address] = Field({}, description="address per network name")
    profile: Name | None = Field(None, description="overrides the cluster's profile")
    firmware: Literal["bios", "uefi"] = "bios"
    power: Literal["on", "off"] = "on"
    reinstall: int = Field(0, ge=0, description="bump to reinstall the host")
    vars: dict[str, Any] = {}
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
    description: str = ""
    depends_on: list[Name] = []
    policy: Policy = Policy()
    upgrade: Upgrade = Upgrade()
    hooks: dict[Phase, list[Name]] = {}
    vars: dict[str, Any] = {}
    hosts: list[Host] = []


KINDS: dict[str, type[Model]] = {"Site": Site, "Profile": Profile, "Cluster": Cluster, "Hook": Hook}
Document = Annotated[Site | Profile | Cluster | Hook, Field(discriminator="kind")]


def json_schema() -> dict[str, Any]:
    """JSON Schema of one SoT document, for editors (yaml-language-server) and other tools."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(Document).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Vaquero SoT document (apiVersion vaquero/v1)"
    return schema
