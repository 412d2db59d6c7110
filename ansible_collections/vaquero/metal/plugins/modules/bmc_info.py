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
    machine the SoT describes, before anything gets installed on the wrong machine. The message
    names the host (O(host_name)), the BMC address, and the expected and observed values.
  - With O(identity_only=true) it reads only the system UUID and, where the BMC reports them, the
    host's MAC addresses (IPMI Get System GUID; Redfish the System and its EthernetInterfaces).
    The C(vaquero.metal.bmc_connection) role runs this check before any power or boot change.
author:
  - Vaquero developers (@vaquero)
extends_documentation_fragment:
  - vaquero.metal.bmc
options:
  expected_uuid:
    description:
      - The system UUID the SoT records for this host. Compared in canonical form (case and dashes
        do not matter). IPMI sends the GUID in SMBIOS byte order (what C(dmidecode) shows on the
        host); the byte-swapped readings some BMCs send count as the same GUID.
      - A BMC that reports no UUID fails the check.
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
  identity_only:
    description:
      - Read only the identity (system UUID, host MACs where reported); manufacturer, model,
        serial, power state and boot override are returned as null.
    type: bool
    default: false
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

- name: Check only that the BMC is this host's, reading nothing else
  vaquero.metal.bmc_info:
    bmc_type: ipmi
    bmc_address: 10.0.0.12
    bmc_username: admin
    bmc_password: "{{ bmc_password }}"
    host_name: "{{ inventory_hostname }}"
    expected_uuid: "{{ vaquero_host.uuid }}"
    identity_only: true
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

FIELDS = ("manufacturer", "model", "serial", "uuid", "macs", "power_state")


def refusal(p, mismatches):
    """Why the hardware is not the host's: the host, the BMC, then what differs (expected and observed)."""
    port = ":%s" % p["bmc_port"] if p["bmc_port"] else ""
    host = p["host_name"] or p["bmc_address"]
    return "host %s: the %s BMC at %s%s is not this host's BMC (the hardware is not the machine the SoT describes): %s" % (
        host,
        p["bmc_type"],
        p["bmc_address"],
        port,
        "; ".join(mismatches),
    )


def main():
    module = bmc_module(
        dict(
            expected_uuid=dict(type="str"),
            expected_macs=dict(type="list", elements="str"),
            fail_on_mismatch=dict(type="bool", default=True),
            identity_only=dict(type="bool", default=False),
        )
    )
    p = module.params
    bmc = open_module_bmc(module)

    def act(bmc):
        if p["identity_only"]:
            inv = bmc.identity()
            facts = dict((k, None) for k in FIELDS)
            facts.update(uuid=inv.uuid, macs=list(inv.macs), boot=None)
        else:
            inv = bmc.inventory()
            facts = inv.as_dict()
            facts = dict((k, facts[k]) for k in FIELDS)
            facts["boot"] = boot_or_none(bmc)  # a BMC without boot override support still has an identity
        return facts, inv.mismatches(uuid=p["expected_uuid"], macs=p["expected_macs"])

    facts, mismatches = run(module, bmc, act)
    if mismatches and p["fail_on_mismatch"]:
        module.fail_json(msg=refusal(p, mismatches), bmc=facts, mismatches=mismatches)
    module.exit_json(changed=False, bmc=facts, mismatches=mismatches)


if __name__ == "__main__":
    main()
