#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: host_state
short_description: Report a host's lifecycle step to the Vaquero controller
version_added: 0.1.0
description:
  - Marks where a host is in its lifecycle (draining, powering_off, netbooting, installing,
    rebooting, validating, ready, failed).
  - The module changes nothing by itself. It returns the step as C(vaquero_event); when the
    playbook runs under the Vaquero controller, the controller's ansible-runner event handler
    turns that result into a host state transition, with the plan, run and SoT SHA of the run,
    and appends it to the host's timeline. Run by hand, the step is only shown.
author:
  - Vaquero developers (@vaquero)
options:
  host:
    description: The host, as named in the SoT (normally C(inventory_hostname)).
    type: str
    required: true
  state:
    description: The lifecycle state the host enters.
    type: str
    required: true
    choices: [pending, draining, wiping, powering_off, netbooting, installing, rebooting, validating, ready, failed, removed]
  reason:
    description: Why, in words a person reads in the timeline.
    type: str
    default: ''
  detail:
    description: Extra data kept with the event (no secrets).
    type: dict
    default: {}
notes:
  - Check mode is supported; the result is the same.
attributes:
  check_mode:
    support: full
    description: The result is the same; nothing changes in either mode.
  diff_mode:
    support: none
    description: No diff.
"""

EXAMPLES = r"""
- name: Tell the controller the host is netbooting
  vaquero.metal.host_state:
    host: "{{ inventory_hostname }}"
    state: netbooting
    reason: boot device pxe, power cycled
"""

RETURN = r"""
vaquero_event:
  description: The step, read by the controller's event handler.
  returned: always
  type: dict
  sample: {"host": "node1", "state": "netbooting", "reason": "power cycled", "detail": {}}
"""

import time

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", required=True),
            state=dict(
                type="str",
                required=True,
                choices=["pending", "draining", "wiping", "powering_off", "netbooting", "installing", "rebooting", "validating", "ready", "failed", "removed"],
            ),
            reason=dict(type="str", default=""),
            detail=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    p = module.params
    event = dict(host=p["host"], state=p["state"], reason=p["reason"], detail=p["detail"], time=time.time())
    module.exit_json(changed=False, vaquero_event=event, msg="%s: %s%s" % (p["host"], p["state"], (" (" + p["reason"] + ")") if p["reason"] else ""))


if __name__ == "__main__":
    main()
