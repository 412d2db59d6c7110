"""vaquero.bmc: power and boot device over IPMI (pyghmi) and Redfish (redfish), one interface.

from vaquero.bmc import Endpoint, open_bmc
with open_bmc(Endpoint("redfish", "10.0.0.5", "admin", "secret", host="node1")) as bmc:
    bmc.set_boot_device("pxe", persistent=False, mode="uefi")
    bmc.power_cycle()
"""

from __future__ import annotations

from vaquero.bmc.base import Bmc
from vaquero.bmc.errors import (
    BmcAuthError,
    BmcBusy,
    BmcCircuitOpen,
    BmcError,
    BmcFenced,
    BmcProtocolError,
    BmcServerError,
    BmcTimeout,
    BmcUnreachable,
    BmcUnsupported,
)
from vaquero.bmc.guard import DEFAULT_GUARD, FENCE_ENV, Guard, GuardPolicy
from vaquero.bmc.values import BootDevice, BootMode, BootSetting, Endpoint, Inventory, PowerAction, PowerState, Secret


def open_bmc(endpoint: Endpoint, guard: Guard | None = None, policy: GuardPolicy | None = None, **options: float) -> Bmc:
    """The driver for ``endpoint.kind``; nothing is sent until the first operation."""
    if endpoint.kind == "ipmi":
        from vaquero.bmc.ipmi import IpmiBmc

        return IpmiBmc(endpoint, guard, policy)
    if endpoint.kind == "redfish":
        from vaquero.bmc.redfish_driver import RedfishBmc

        return RedfishBmc(endpoint, guard, policy, **options)
    raise BmcUnsupported(endpoint.host, f"unknown BMC type {endpoint.kind!r} (ipmi or redfish)")


__all__ = [
    "DEFAULT_GUARD",
    "FENCE_ENV",
    "Bmc",
    "BmcAuthError",
    "BmcBusy",
    "BmcCircuitOpen",
    "BmcError",
    "BmcFenced",
    "BmcProtocolError",
    "BmcServerError",
    "BmcTimeout",
    "BmcUnreachable",
    "BmcUnsupported",
    "BootDevice",
    "BootMode",
    "BootSetting",
    "Endpoint",
    "Guard",
    "GuardPolicy",
    "Inventory",
    "PowerAction",
    "PowerState",
    "Secret",
    "open_bmc",
]
