"""The inspection report: what a machine not in the SoT says about itself.

Anyone on the provisioning network can send one, so every field is constrained (lengths, counts,
character sets, ranges) and the whole body is bounded before it is parsed. Nothing in a report is
trusted beyond "this machine claims it": it becomes a proposed SoT change a person reviews.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from vaquero.sot.models import ShortText

# A report is a few kilobytes; anything larger is refused unread.
MAX_REPORT_BYTES = 64 * 1024
_MAC_RE = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$")
# The SMBIOS system UUID as Linux prints it (/sys/class/dmi/id/product_uuid).
Uuid = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
# Kernel names of NICs and disks: what /sys/class/net and /sys/block list.
KernelName = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


def _mac(value: Any) -> Any:
    if isinstance(value, str):
        norm = value.strip().lower()
        if not _MAC_RE.match(norm):
            raise ValueError(f"{value[:40]!r} is not a MAC address")
        return norm.replace("-", ":")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReportNic(_Model):
    name: KernelName
    mac: str = Field(max_length=17)

    @field_validator("mac", mode="before")
    @classmethod
    def _norm(cls, v: Any) -> Any:
        return _mac(v)


class ReportDisk(_Model):
    name: KernelName = Field(description="kernel name, e.g. sda, vda, nvme0n1")
    size_bytes: int = Field(ge=0, le=1 << 60)
    model: ShortText | None = None
    serial: ShortText | None = None
    rotational: bool | None = None
    removable: bool = False


class InspectionReport(_Model):
    """One machine, as its inspection ramdisk saw it."""

    boot_mac: str = Field(max_length=17, description="the MAC the machine netbooted with (the one the agent did not know)")
    nics: list[ReportNic] = Field(min_length=1, max_length=64)
    uuid: Uuid | None = Field(None, description="SMBIOS system UUID")
    serial: ShortText | None = Field(None, description="SMBIOS system serial number")
    vendor: ShortText | None = None
    product: ShortText | None = None
    cpu_model: ShortText | None = None
    cpus: int = Field(ge=1, le=65_536, description="logical CPUs")
    memory_mib: int = Field(ge=1, le=1 << 40)
    disks: list[ReportDisk] = Field(default_factory=list, max_length=64)

    @field_validator("boot_mac", mode="before")
    @classmethod
    def _norm(cls, v: Any) -> Any:
        return _mac(v)

    @model_validator(mode="after")
    def _consistent(self) -> InspectionReport:
        macs = [n.mac for n in self.nics]
        if self.boot_mac not in macs:
            raise ValueError(f"boot_mac {self.boot_mac} is not among the reported NICs")
        if len(set(macs)) != len(macs):
            raise ValueError("a MAC is reported twice")
        names = [d.name for d in self.disks]
        if len(set(names)) != len(names):
            raise ValueError("a disk is reported twice")
        return self

    @property
    def macs(self) -> list[str]:
        """The boot MAC first, then the others in the order reported."""
        return [self.boot_mac] + [n.mac for n in self.nics if n.mac != self.boot_mac]
