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
    description: The agent's base URL (C(http://) or C(https://)); defaults to the first agent of the host's site.
    type: str
  rearm:
    description:
      - With O(mode=install), arm a host that is already armed again - a fresh install token and
        the next attempt number - and report a change. By default an armed host is left as it is
        and nothing changes.
    type: bool
    default: false
requirements:
  - vaquero
notes:
  - The agent's boot state of the host is read first (C(GET /v1/boot/status/<host>), no token);
    the module asks for a change only when the host is not already in O(mode), and reports
    success only after reading back that the agent now serves O(mode).
attributes:
  check_mode:
    support: full
    description: Reads the agent's boot state and reports whether a real run would change it; changes nothing.
  diff_mode:
    support: full
    description: Shows the boot mode (and the agent's state) before and after.
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
  description: The agent's boot state of the host after the run (before it, in check mode).
  returned: success
  type: dict
  sample: {"host": "node1", "state": "install", "attempt": 2, "script": "install", "since": 1764712345.2}
previous_mode:
  description: What the agent served the host before the run.
  returned: success
  type: str
  sample: localboot
mode:
  description: What the agent serves the host after the run (what it would serve, in check mode).
  returned: success
  type: str
  sample: install
"""


from ansible_collections.vaquero.metal.plugins.module_utils.core import (
    AGENT_BASE_URL,
    AGENT_TOKEN_ENV,
    HOST_NAME,
    CallbackError,
    SecretMissing,
    agent_url,
    boot_status,
    load,
    resolve_secret,
    set_boot_mode,
    vaquero_module,
)


def mode_of(status):
    """What the agent serves the host: its ``script``, or what its state means (agent/state.py)."""
    script = status.get("script")
    if script in ("install", "localboot"):
        return script
    return "install" if status.get("state") == "install" else "localboot"


def read(module, base, host):
    try:
        return boot_status(base, host)
    except CallbackError as exc:
        module.fail_json(msg=str(exc))


def main():
    module = vaquero_module(
        dict(
            host=dict(type="str", required=True),
            sot=dict(type="path", required=True),
            mode=dict(type="str", required=True, choices=["install", "localboot"]),
            url=dict(type="str"),
            rearm=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not HOST_NAME.match(p["host"]):
        module.fail_json(msg="host must be a SoT host name (a-z, 0-9, -), not %r" % p["host"][:64])
    if p["url"] is not None and not AGENT_BASE_URL.match(p["url"]):
        module.fail_json(msg="url must be an http:// or https:// base URL without query or spaces")
    if p["rearm"] and p["mode"] != "install":
        module.fail_json(msg="rearm is for mode=install only")
    try:
        base = p["url"] or agent_url(load(p["sot"], semantic=False), p["host"])
    except Exception as exc:  # the SoT could not be read, or the host has no agent
        module.fail_json(msg="%s: %s" % (type(exc).__name__, exc))

    before = read(module, base, p["host"])
    previous = mode_of(before)
    out = dict(previous_mode=previous, mode=p["mode"])
    wanted = previous != p["mode"] or p["rearm"]
    if module._diff:
        out["diff"] = dict(before=dict(mode=previous, state=before.get("state"), attempt=before.get("attempt")), after=dict(mode=p["mode"]))
    if not wanted:
        module.exit_json(changed=False, status=before, msg="%s: already %s" % (p["host"], previous), **out)
    if module.check_mode:
        module.exit_json(changed=True, status=before, msg="would set %s from %s to %s at %s" % (p["host"], previous, p["mode"], base), **out)
    try:
        token = resolve_secret(env=AGENT_TOKEN_ENV)
    except SecretMissing:
        token = None
    try:
        set_boot_mode(base, p["host"], p["mode"], token)
    except CallbackError as exc:
        module.fail_json(msg=str(exc), **out)
    # Success is what the agent reports afterwards, not what the POST answered.
    after = read(module, base, p["host"])
    if mode_of(after) != p["mode"] or (p["rearm"] and after.get("attempt") == before.get("attempt")):
        module.fail_json(msg="the agent accepted %s for %s but reports %s" % (p["mode"], p["host"], mode_of(after)), status=after, **out)
    if module._diff:
        out["diff"]["after"].update(state=after.get("state"), attempt=after.get("attempt"))
    module.exit_json(changed=True, status=after, msg="%s: %s" % (p["host"], p["mode"]), **out)


if __name__ == "__main__":
    main()
