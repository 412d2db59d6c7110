#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bmc_info
short_description: Read a host's identity, power state and boot override from its BMC
version_added: 0.1.0
description:
  - Returns what the BMC reports about the host - manufacturer, model, serial number, system
    UUID, MAC addresses (Redfish; IPMI does not report the host's MACs), power state and boot
    override - so the SoT can be checked against the hardware.
  - With O(expected_uuid) and/or O(expected_macs), the module fails when the hardware is not the
    machine the SoT describes, before anything gets installed on the wrong machine.
author:
  - Vaquero developers (@vaquero)
extends_documentation_fragment:
  - vaquero.metal.bmc
options:
  expected_uuid:
    description:
      - The system UUID the SoT records for this host (case does not matter).
    type: str
  expected_macs:
    description:
      - MAC addresses the SoT records for this host; each must be reported by the BMC.
    type: list
    elements: str
  fail_on_mismatch:
    description:
      - Fail when the BMC's answer does not match O(expected_uuid) / O(expected_macs). V(false)
        only reports the differences in RV(mismatches).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Only reads; runs the same in check mode.
  diff_mode:
    support: N/A
    description: Nothing changes, so there is nothing to show.
"""

EXAMPLES = r"""
- name: Check that the hardware is the machine the SoT describes
  vaquero.metal.bmc_info:
    bmc_type: redfish
    bmc_address: 10.0.0.11
    bmc_username: admin
    bmc_password: "{{ bmc_password }}"
    expected_uuid: "{{ vaquero_host.uuid }}"
    expected_macs: "{{ vaquero_host.macs }}"
  register: hw

- name: Show the serial number
  ansible.builtin.debug:
    var: hw.bmc.serial
"""

RETURN = r"""
bmc:
  description: What the BMC reports.
  returned: success
  type: dict
  contains:
    manufacturer:
      description: Manufacturer of the system (IPMI without FRU data gives the BMC's IANA vendor).
      type: str
      sample: Dell Inc.
    model:
      description: Model of the system.
      type: str
      sample: PowerEdge R650
    serial:
      description: Serial number, when reported.
      type: str
      sample: 7XJ2K93
    uuid:
      description: The system UUID (SMBIOS), when reported.
      type: str
      sample: 27946b59-9e44-4fa7-8e91-f3527a1ef094
    macs:
      description: MAC addresses of the host's network interfaces, when reported (Redfish).
      type: list
      elements: str
      sample: ["00:5c:52:31:3a:9c"]
    power_state:
      description:
        - V(on) or V(off); V(powering_on) or V(powering_off) while the BMC is carrying out a power
          request (Redfish C(PoweringOn)/C(PoweringOff)).
      type: str
      choices: ["on", "off", powering_on, powering_off]
      sample: "off"
    boot:
      description: The boot override (device, persistent, mode).
      type: dict
      sample: {"device": "pxe", "persistent": false, "mode": "uefi"}
mismatches:
  description: How the hardware differs from O(expected_uuid) / O(expected_macs); empty when it matches.
  returned: success
  type: list
  elements: str
  sample: []
"""

from ansible_collections.vaquero.metal.plugins.module_utils.bmc import bmc_module, boot_or_none, open_module_bmc, run


def main():
    module = bmc_module(
        dict(
            expected_uuid=dict(type="str"),
            expected_macs=dict(type="list", elements="str"),
            fail_on_mismatch=dict(type="bool", default=True),
        )
    )
    p = module.params
    bmc = open_module_bmc(module)

    def act(bmc):
        inv = bmc.inventory()
        facts = inv.as_dict()
        facts = dict((k, facts[k]) for k in ("manufacturer", "model", "serial", "uuid", "macs", "power_state"))
        facts["boot"] = boot_or_none(bmc)  # a BMC without boot override support still has an identity
        return facts, inv.mismatches(uuid=p["expected_uuid"], macs=p["expected_macs"])

    facts, mismatches = run(module, bmc, act)
    if mismatches and p["fail_on_mismatch"]:
        module.fail_json(msg="the hardware is not the machine the SoT describes: " + "; ".join(mismatches), bmc=facts, mismatches=mismatches)
    module.exit_json(changed=False, bmc=facts, mismatches=mismatches)


if __name__ == "__main__":
    main()
