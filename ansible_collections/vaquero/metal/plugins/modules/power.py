#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: power
short_description: Power a host on, off, cycle or reset it through its BMC (IPMI or Redfish)
version_added: 0.1.0
description:
  - Reads the power state of the host through its BMC and changes it when it differs from O(state).
  - V(on) and V(off) are idempotent. V(cycled) and V(reset) always act (and report a change); on a
    host that is off, both power it on.
  - V(off) asks the operating system to shut down (ACPI soft off) and waits up to O(soft_timeout)
    seconds, then forces the power off. O(force=true) forces it at once. A Redfish BMC that offers
    no C(GracefulShutdown) makes a soft off fail with C(error_kind=unsupported); use O(force=true).
  - After every request the module reads the power state back until it is the one asked for
    (V(on) after V(cycled) and V(reset)), for up to O(wait_timeout) seconds. A BMC reporting a
    transition (Redfish C(PoweringOn), C(PoweringOff)) is still in progress. When the state is not
    reached the module fails with C(error_kind=state_not_reached), a message naming the host, the
    requested and the observed state, and RV(power_state) set to the observed state.
  - A host already on its way to O(state) (C(PoweringOn) when V(on) is asked) gets no second
    request; the module only waits.
author:
  - Vaquero developers (@vaquero)
extends_documentation_fragment:
  - vaquero.metal.bmc
options:
  state:
    description:
      - The power state the host must end in.
    type: str
    required: true
    choices: ["on", "off", cycled, reset]
  force:
    description:
      - With O(state=off), cut the power at once instead of asking the operating system first.
    type: bool
    default: false
  soft_timeout:
    description:
      - With O(state=off), seconds to wait for the operating system to power off before forcing it.
    type: int
    default: 60
  wait_timeout:
    description:
      - Seconds to wait, after the request, for the BMC to report the requested power state before
        failing. From 0 (read back once) to 3600.
    type: int
    default: 120
attributes:
  check_mode:
    support: full
    description: Reads the power state and reports what would change, without changing it.
  diff_mode:
    support: full
    description: Shows the power state before and after.
"""

EXAMPLES = r"""
- name: Power the host on
  vaquero.metal.power:
    bmc_type: redfish
    bmc_address: 10.0.0.11
    bmc_username: admin
    bmc_password: "{{ bmc_password }}"
    ca_path: /etc/vaquero/bmc-ca.pem
    state: "on"

- name: Shut the host down cleanly, forcing it after two minutes
  vaquero.metal.power:
    bmc_type: ipmi
    bmc_address: 10.0.0.12
    bmc_username: admin
    bmc_password: "{{ bmc_password }}"
    state: "off"
    soft_timeout: 120

- name: Power-cycle the host (netboot it after setting the boot device)
  vaquero.metal.power:
    bmc_type: ipmi
    bmc_address: 10.0.0.12
    bmc_username: admin
    bmc_password: "{{ bmc_password }}"
    host_name: "{{ inventory_hostname }}"
    state: cycled
"""

RETURN = r"""
power_state:
  description:
    - The power state read from the BMC after the module ran (before, in check mode).
    - On a failure with C(error_kind=state_not_reached), the state the BMC reported last, which can
      be V(powering_on) or V(powering_off).
  returned: success, or failure with C(error_kind=state_not_reached)
  type: str
  sample: "on"
previous_power_state:
  description: The power state read from the BMC before any change.
  returned: success
  type: str
  sample: "off"
forced:
  description: Whether the power had to be cut (O(force), or the soft off did not end in time).
  returned: success
  type: bool
  sample: false
"""

from ansible_collections.vaquero.metal.plugins.module_utils.bmc import bmc_module, fail, open_module_bmc, run
from ansible_collections.vaquero.metal.plugins.module_utils.core import BmcError, ensure_power


def main():
    module = bmc_module(
        dict(
            state=dict(type="str", required=True, choices=["on", "off", "cycled", "reset"]),
            force=dict(type="bool", default=False),
            soft_timeout=dict(type="int", default=60),
            wait_timeout=dict(type="int", default=120),
        )
    )
    p = module.params
    if not 0 <= p["wait_timeout"] <= 3600:
        module.fail_json(msg="wait_timeout must be between 0 and 3600 seconds, not %s" % p["wait_timeout"])
    bmc = open_module_bmc(module)

    def act(bmc):
        try:
            r = ensure_power(
                bmc, p["state"], force=p["force"], soft_timeout=float(p["soft_timeout"]), check=module.check_mode, wait_timeout=float(p["wait_timeout"])
            )
        except BmcError as exc:
            if getattr(exc, "kind", None) != "state_not_reached":
                raise
            # the request went out: say so, and what the BMC reports now
            fail(module, exc, changed=True, power_state=exc.observed.value)
        return dict(
            changed=r.changed,
            power_state=r.after.value,
            previous_power_state=r.before.value,
            forced=r.forced,
            diff=dict(before=dict(power_state=r.before.value), after=dict(power_state=r.target.value)),
        )

    module.exit_json(**run(module, bmc, act))


if __name__ == "__main__":
    main()
