#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: wait_callback
short_description: Wait until a netbooting host's installer has called back
version_added: 0.1.0
description:
  - Polls the site agent's boot status of a host until the agent has received the host's install
    callback (the agent then serves the host C(localboot), so it never loops into its installer).
  - Only a callback received at or after O(since) counts, so an older install is not mistaken
    for this one.
  - Needs the C(vaquero) Python package on the node running the module.
author:
  - Vaquero developers (@vaquero)
options:
  host:
    description: The host, as named in the SoT (normally C(inventory_hostname)).
    type: str
    required: true
  sot:
    description: The SoT folder; the agent's URL is read from the host's site.
    type: path
    required: true
  url:
    description: The status URL to poll; defaults to C(<agent url>/v1/boot/status/<host>).
    type: str
  since:
    description: Epoch seconds; callbacks received before it are ignored. 0 accepts any callback.
    type: float
    default: 0
  timeout:
    description: Seconds to wait before failing.
    type: int
    default: 900
  interval:
    description: Seconds between polls.
    type: float
    default: 1
requirements:
  - vaquero
attributes:
  check_mode:
    support: none
    description: The module only reads; check mode is not supported.
  diff_mode:
    support: none
    description: No diff.
"""

EXAMPLES = r"""
- name: Wait for the installer's callback
  vaquero.metal.wait_callback:
    host: "{{ inventory_hostname }}"
    sot: "{{ vaquero_sot_root }}"
    since: "{{ vaquero_install_started }}"
    timeout: 600
"""

RETURN = r"""
callback:
  description: What the agent reports about the host's boot, including the callback body.
  returned: success
  type: dict
waited:
  description: Seconds waited.
  returned: always
  type: float
"""

import time

from ansible_collections.vaquero.metal.plugins.module_utils.core import CallbackError, load, status_url, vaquero_module, wait_for_callback


def main():
    module = vaquero_module(
        dict(
            host=dict(type="str", required=True),
            sot=dict(type="path", required=True),
            url=dict(type="str"),
            since=dict(type="float", default=0),
            timeout=dict(type="int", default=900),
            interval=dict(type="float", default=1),
        ),
        supports_check_mode=False,
    )
    p = module.params
    start = time.monotonic()
    try:
        url = p["url"] or status_url(load(p["sot"], semantic=False), p["host"])
        status = wait_for_callback(url, since=p["since"], timeout=p["timeout"], interval=p["interval"])
    except CallbackError as exc:
        module.fail_json(msg=str(exc), waited=round(time.monotonic() - start, 1))
    except Exception as exc:  # the SoT could not be read
        module.fail_json(msg="%s: %s" % (type(exc).__name__, exc), waited=round(time.monotonic() - start, 1))
    module.exit_json(changed=False, callback=status, waited=round(time.monotonic() - start, 1), msg="%s called back" % p["host"])


if __name__ == "__main__":
    main()
