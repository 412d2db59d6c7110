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
    description: Epoch seconds; callbacks received before it are ignored. 0 accepts any callback. Not negative.
    type: float
    default: 0
  timeout:
    description: Seconds to wait before failing, from 1 to 86400.
    type: int
    default: 900
  interval:
    description: Seconds between polls, more than 0 and at most 60 (and at most O(timeout)).
    type: float
    default: 1
requirements:
  - vaquero
attributes:
  check_mode:
    support: partial
    description: Reads the host's boot status once and reports it, without waiting.
    details:
      - Check mode does not wait - the tasks before it did not power cycle the host, so no callback
        would come. The boot status is read once (the agent must answer); RV(callback) is set when
        a callback at or after O(since) is already there, RV(called_back) says which.
      - The module only reads, so C(changed) is false in both modes.
  diff_mode:
    support: none
    description: Nothing changes; there is nothing to show.
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
  returned: when the host called back (in check mode, when it already had)
  type: dict
  sample: {"host": "node1", "state": "installed", "since": 1764712345.2, "attempt": 1, "report": {"ok": true}, "script": "localboot"}
called_back:
  description: Whether a callback at or after O(since) was seen (always true after a real run that succeeds).
  returned: success
  type: bool
  sample: true
waited:
  description: Seconds waited.
  returned: always
  type: float
  sample: 42.5
"""

import re
import time

from ansible_collections.vaquero.metal.plugins.module_utils.core import (
    CallbackError,
    installed,
    load,
    read_status,
    status_url,
    vaquero_module,
    wait_for_callback,
)

MAX_TIMEOUT = 86400
MAX_INTERVAL = 60.0
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")  # the SoT's host name rule: it goes into the URL
_URL = re.compile(r"^https?://[A-Za-z0-9._:\[\]-]+(/[A-Za-z0-9._~/-]*)?$")


def option_errors(p):
    errors = []
    if not _NAME.match(p["host"]):
        errors.append("host must be a SoT host name (a-z, 0-9, -), not %r" % p["host"][:64])
    if p["url"] is not None and not _URL.match(p["url"]):
        errors.append("url must be an http:// or https:// URL without query or spaces")
    if not 0 < p["timeout"] <= MAX_TIMEOUT:
        errors.append("timeout must be between 1 and %d seconds, not %s" % (MAX_TIMEOUT, p["timeout"]))
    if not 0 < p["interval"] <= min(MAX_INTERVAL, max(p["timeout"], 1)):
        errors.append("interval must be more than 0 and at most %g seconds (and the timeout), not %s" % (MAX_INTERVAL, p["interval"]))
    if not p["since"] >= 0:  # also refuses NaN
        errors.append("since must be epoch seconds (0 or more), not %s" % p["since"])
    return errors


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
        supports_check_mode=True,
    )
    p = module.params
    errors = option_errors(p)
    if errors:
        module.fail_json(msg="; ".join(errors), waited=0.0)
    start = time.monotonic()
    try:
        url = p["url"] or status_url(load(p["sot"], semantic=False), p["host"])
        if module.check_mode:
            # One look, no wait: the tasks before this one did not power cycle the host in check mode.
            status = read_status(url)
            if not installed(status, p["since"]):
                module.exit_json(changed=False, called_back=False, waited=round(time.monotonic() - start, 1), msg="%s has not called back yet" % p["host"])
        else:
            status = wait_for_callback(url, since=p["since"], timeout=p["timeout"], interval=p["interval"])
    except CallbackError as exc:
        module.fail_json(msg=str(exc), waited=round(time.monotonic() - start, 1))
    except Exception as exc:  # the SoT could not be read
        module.fail_json(msg="%s: %s" % (type(exc).__name__, exc), waited=round(time.monotonic() - start, 1))
    module.exit_json(changed=False, called_back=True, callback=status, waited=round(time.monotonic() - start, 1), msg="%s called back" % p["host"])


if __name__ == "__main__":
    main()
