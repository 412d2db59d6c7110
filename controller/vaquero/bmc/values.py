"""The values a BMC driver takes and returns: the endpoint, its secret, power and boot settings, inventory.

No behaviour here beyond checks on the values themselves, so drivers, the CLI and the collection can
share them without pulling in the guard.
"""

from __future__ import annotations

import enum
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any, Literal


class Secret:
    """A secret string whose repr and str are ``***``; call :meth:`reveal` at the point of use."""

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        self._value = value.reveal() if isinstance(value, Secret) else str(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # never pickled with the clear text by accident
        raise TypeError("Secret cannot be pickled")


class PowerState(enum.StrEnum):
    ON = "on"
    OFF = "off"
    # A BMC carrying out a power request (Redfish PoweringOn/PoweringOff): the host is in neither
    # state yet, so callers wait instead of taking it for where it came from.
    POWERING_ON = "powering_on"
    POWERING_OFF = "powering_off"

    @property
    def settled(self) -> bool:
        return self in (PowerState.ON, PowerState.OFF)

    @property
    def heading_to(self) -> PowerState:
        """The state this one ends in: itself when settled."""
        return {PowerState.POWERING_ON: PowerState.ON, PowerState.POWERING_OFF: PowerState.OFF}.get(self, self)


class PowerAction(enum.StrEnum):
    ON = "on"
    OFF = "off"  # soft, then hard after a timeout
    FORCE_OFF = "force_off"
    CYCLE = "cycle"
    RESET = "reset"


class BootDevice(enum.StrEnum):
    PXE = "pxe"
    DISK = "disk"
    CDROM = "cdrom"
    HTTP = "http"  # UEFI HTTP boot, where the BMC supports it
    BIOS_SETUP = "bios"
    NONE = "none"  # no override


class BootMode(enum.StrEnum):
    BIOS = "bios"
    UEFI = "uefi"


@dataclass(frozen=True)
class BootSetting:
    device: BootDevice
    persistent: bool
    mode: BootMode | None = None  # None: the BMC does not say

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device.value, "persistent": self.persistent, "mode": self.mode.value if self.mode else None}

    def describe(self) -> str:
        """``pxe (next boot only, uefi)``: how the CLI and the errors show a setting."""
        if self.device == BootDevice.NONE:
            return "none (no override)"
        return f"{self.device.value} ({'persistent' if self.persistent else 'next boot only'}{', ' + self.mode.value if self.mode else ''})"


@dataclass(frozen=True)
class Inventory:
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    uuid: str | None = None
    macs: tuple[str, ...] = ()
    power_state: PowerState | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "manufacturer": self.manufacturer,
            "model": self.model,
            "serial": self.serial,
            "uuid": self.uuid,
            "macs": list(self.macs),
            "power_state": self.power_state.value if self.power_state else None,
            **self.extra,
        }

    def mismatches(self, uuid: str | None = None, macs: list[str] | tuple[str, ...] | None = None) -> list[str]:
        """What differs from what the SoT expects (empty: the hardware is the machine we think it is).

        UUIDs are compared in their canonical form (lower case, 8-4-4-4-12). IPMI BMCs disagree on
        the byte order of the system GUID, so its other usual readings (``uuid_alternates``) count
        as the same GUID. Every expected MAC must be among the BMC's when it reports any.
        """
        problems: list[str] = []
        readings = {canonical_uuid(u) for u in (self.uuid, *self.extra.get("uuid_alternates", ())) if u}
        if uuid and self.uuid and canonical_uuid(uuid) not in readings:
            problems.append(f"the BMC reports system UUID {canonical_uuid(self.uuid)}, the SoT expects {canonical_uuid(uuid)}")
        if uuid and not self.uuid:
            problems.append(f"the BMC reports no system UUID to check against the SoT's {canonical_uuid(uuid)}")
        if macs and self.macs:
            have = {m.lower().replace("-", ":") for m in self.macs}
            missing = [m for m in macs if m.lower().replace("-", ":") not in have]
            if missing:
                problems.append(f"MAC(s) {', '.join(missing)} not reported by the BMC (it reports {', '.join(sorted(have))})")
        return problems


def canonical_uuid(value: str) -> str:
    """``value`` as a lower-case 8-4-4-4-12 UUID (any case, with or without dashes or braces);
    a string that is no UUID comes back stripped and lower-cased, so it never equals one."""
    text = str(value).strip()
    try:
        return str(uuidlib.UUID(text))
    except ValueError:
        return text.lower()


@dataclass(frozen=True)
class Endpoint:
    """A resolved BMC: where it is and how to log in. The password is a :class:`Secret`."""

    kind: Literal["ipmi", "redfish"]
    address: str
    username: str
    password: Secret
    host: str = ""  # the host name (SoT) this BMC belongs to, used in logs and errors
    port: int | None = None
    verify: bool = True  # Redfish: verify TLS
    ca_file: str | None = None
    scheme: Literal["https", "http"] = "https"
    system_id: str | None = None  # Redfish: which System when the service has several
    system_uuid: str | None = None  # Redfish: the host's SoT UUID, picks the System when several and no system_id
    # IPMI 2.0: the BMC key (Kg) of a two-key login; None: the BMC uses the password as Kg
    kg: Secret | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.password, Secret):
            object.__setattr__(self, "password", Secret(self.password))
        if self.kg is not None and not isinstance(self.kg, Secret):
            object.__setattr__(self, "kg", Secret(self.kg))
        if not self.host:
            object.__setattr__(self, "host", self.address)

    @property
    def key(self) -> str:
        return f"{self.kind}://{self.address}:{self.port or ''}"
