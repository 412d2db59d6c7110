#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: boot_device
short_description: Set the device a host boots from next (or always) through its BMC
version_added: 0.1.0
description:
  - Reads the boot override the BMC holds and sets O(device) when it differs in device,
    persistence or (when O(uefi) is given) boot mode; reports the override read back afterwards.
  - After a change the override is read back until it is the one asked for, for up to
    O(wait_timeout) seconds. A BMC that accepts the request but keeps another setting (ignores it,
    keeps a one-time override as persistent, stores V(http) as V(pxe), drops a flag) fails the
    module with C(error_kind=setting_not_applied), a message naming the requested and the observed
    setting, and RV(boot) set to what the BMC reads back. No difference is forgiven, since the host would
    not boot as asked.
  - V(http) is UEFI HTTP boot, Redfish only; it needs O(uefi=true) or O(uefi) unset.
  - Redfish values are checked against the BMC's C(@Redfish.AllowableValues); a value the BMC does
    not offer fails the module with C(error_kind=unsupported) instead of being sent.
author:
  - Vaquero developers (@vaquero)
extends_documentation_fragment:
  - vaquero.metal.bmc
options:
  device:
    description:
      - The boot device. V(bios) boots into the firmware setup, V(none) clears the override.
    type: str
    required: true
    choices: [pxe, disk, cdrom, http, bios, none]
  persistent:
    description:
      - Keep the override for every boot (V(true)) or only the next one (V(false)).
    type: bool
    default: false
  uefi:
    description:
      - Boot in UEFI mode (V(true)) or legacy BIOS mode (V(false)). Unset leaves the mode as it is.
    type: bool
  wait_timeout:
    description:
      - Seconds to wait, after the change, for the BMC to read back the requested override before
        failing. From 0 (read back once) to 3600.
    type: int
    default: 10
attributes:
  check_mode:
    support: full
    description: Reads the boot override and reports whether it would change, without changing it.
  diff_mode:
    support: full
    description: Shows the boot override before and after.
notes:
  - sushy-emulator keeps every override as V(Continuous), so a one-time override (O(persistent=false))
    fails there with C(error_kind=setting_not_applied), and so does V(http), which it stores as
    V(pxe). OpenIPMI's C(ipmi_sim) answers the boot flags as not valid after a set (read as V(none)),
    which fails in the same way.
"""

EXAMPLES = r"""
- name: Netboot (PXE, UEFI) on the next boot only
  vaquero.metal.boot_device:
    bmc_type: ipmi
    bmc_address: 10.0.0.12
    bmc_username: admin
    bmc_password: "{{ bmc_password }}"
    device: pxe
    uefi: true

- name: Boot from the local disk from now on
  vaquero.metal.boot_device:
    bmc_type: redfish
    bmc_address: 10.0.0.11
    bmc_username: admin
    bmc_password: "{{ bmc_password }}"
    device: disk
    persistent: true
"""

RETURN = r"""
boot:
  description:
    - The boot override read back from the BMC after the change (before, in check mode).
    - On a failure with C(error_kind=setting_not_applied), the override the BMC reads back.
  returned: success, or failure with C(error_kind=setting_not_applied)
  type: dict
  contains:
    device:
      description: The boot device.
      type: str
      sample: pxe
    persistent:
      description: Whether the override applies to every boot.
      type: bool
      sample: false
    mode:
      description: V(uefi), V(bios), or null when the BMC does not say.
      type: str
      sample: uefi
previous_boot:
  description: The boot override read from the BMC before any change (same keys as RV(boot)).
  returned: success
  type: dict
  sample: {"device": "disk", "persistent": true, "mode": "uefi"}
"""

from ansible_collections.vaquero.metal.plugins.module_utils.bmc import bmc_module, fail, open_module_bmc, run
from ansible_collections.vaquero.metal.plugins.module_utils.core import BmcError, ensure_boot


def main():
    module = bmc_module(
        dict(
            device=dict(type="str", required=True, choices=["pxe", "disk", "cdrom", "http", "bios", "none"]),
            persistent=dict(type="bool", default=False),
            uefi=dict(type="bool"),
            wait_timeout=dict(type="int", default=10),
        )
    )
    p = module.params
    if not 0 <= p["wait_timeout"] <= 3600:
        module.fail_json(msg="wait_timeout must be between 0 and 3600 seconds, not %s" % p["wait_timeout"])
    mode = None if p["uefi"] is None else ("uefi" if p["uefi"] else "bios")
    bmc = open_module_bmc(module)

    def act(bmc):
        try:
            r = ensure_boot(bmc, p["device"], persistent=p["persistent"], mode=mode, check=module.check_mode, wait_timeout=float(p["wait_timeout"]))
        except BmcError as exc:
            if getattr(exc, "kind", None) != "setting_not_applied":
                raise
            # the request went out: say so, and what the BMC holds now
            fail(module, exc, changed=True, boot=exc.observed.as_dict(), requested_boot=exc.requested.as_dict())
        before, after = r.before.as_dict(), r.after.as_dict()
        return dict(
            changed=r.changed,
            boot=after,
            previous_boot=before,
            diff=dict(before=before, after=r.target.as_dict() if module.check_mode else after),
        )

    module.exit_json(**run(module, bmc, act))


if __name__ == "__main__":
    main()
