#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: boot_mode
short_description: Tell the site agent what a host boots next - its installer or its local disk
version_added: 0.1.0
description:
  - Netboot is state-driven. The agent serves a host armed for C(install) its profile's installer,
    and every other host C(localboot). The install callback moves the host back to localboot, so
    it never loops into its installer.
  - This module arms a host (C(install)) or disarms it (C(localboot)) through the agent's admin API
    (C(POST /v1/boot/install/<host>)). The agent's URL is read from the host's site in the SoT.
  - The agent's admin token is read on the node running the module, at the moment of use, from the
    environment variable C(VAQUERO_AGENT_TOKEN) (or the Vaquero controller's secrets folder); it is
    never a module argument.
  - Needs the C(vaquero) Python package on the node running the module.
author:
  - Vaquero developers (@vaquero)
options:
  host:
    description: The host, as named in the SoT (normally C(inventory_hostname)).
    type: str
    required: true
  sot:
    description: The SoT folder (normally C(vaquero_sot_root)).
    type: path
    required: true
  mode:
    description: C(install) serves the installer on the next netboot; C(localboot) the local disk.
    type: str
    required: true
    choices: [install, localboot]
  url:
    description: The agent's base URL; defaults to the first agent of the host's site.
    type: str
requirements:
  - vaquero
attributes:
  check_mode:
    support: full
    description: Reports the change without asking the agent.
  diff_mode:
    support: none
    description: No diff.
"""

EXAMPLES = r"""
- name: Serve the installer on the next netboot
  vaquero.metal.boot_mode:
    host: "{{ inventory_hostname }}"
    sot: "{{ vaquero_sot_root }}"
    mode: install
"""

RETURN = r"""
status:
  description: The agent's boot state of the host after the change.
  returned: success
  type: dict
  sample: {"host": "node1", "state": "install", "attempt": 2, "script": "install"}
"""

from ansible_collections.vaquero.metal.plugins.module_utils.core import (
    AGENT_TOKEN_ENV,
    CallbackError,
    SecretMissing,
    agent_url,
    load,
    resolve_secret,
    set_boot_mode,
    vaquero_module,
)


def main():
    module = vaquero_module(
        dict(
            host=dict(type="str", required=True),
            sot=dict(type="path", required=True),
            mode=dict(type="str", required=True, choices=["install", "localboot"]),
            url=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        base = p["url"] or agent_url(load(p["sot"], semantic=False), p["host"])
    except Exception as exc:  # the SoT could not be read, or the host has no agent
        module.fail_json(msg="%s: %s" % (type(exc).__name__, exc))
    if module.check_mode:
        module.exit_json(changed=True, status={}, msg="would set %s to %s at %s" % (p["host"], p["mode"], base))
    try:
        token = resolve_secret(env=AGENT_TOKEN_ENV)
    except SecretMissing:
        token = None
    try:
        status = set_boot_mode(base, p["host"], p["mode"], token)
    except CallbackError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, status=status, msg="%s: %s" % (p["host"], p["mode"]))


if __name__ == "__main__":
    main()
